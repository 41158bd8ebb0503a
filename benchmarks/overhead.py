"""System overhead of hpt against Optuna and Ray Tune, in one run.

    python benchmarks/overhead.py [--trials 40] [--reports 500] [--framework-trials 5] [--out benchmarks/results]

1. Per-trial overhead: N no-op trials at concurrency 2 — hpt's local executor (warm starts on and
   off), Optuna (SQLite storage, 2 worker processes) and Ray Tune (default and reuse_actors=True).
2. Metric ingestion: reports per second that hpt's controller stores from 8 concurrent trials (each report
   call returns once its report is committed), p50/p99 latency of one report call, and how many were lost or
   stored twice; beside it Optuna's `trial.report` into SQLite from 8 processes and Ray Tune's `tune.report`
   from 8 trials.
3. Launch to first report for a trial that imports PyTorch Lightning and one that imports
   TensorFlow/Keras, cold (a fresh process) and warm (forked from the fork server), with how often
   the fresh-process fallback was taken.

Machines are noisy: compare the ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import hpt_core
from hpt_core.runner import build_controller, create_experiment
from hpt_core.storage import Storage

NOOP_TRIAL = """
import hpt_core
ctx = hpt_core.init()
for target in ctx.targets():
    ctx.report_validation({"loss": 0.0}, batches=target)
"""

REPORTING_TRIAL = """
import json
import os
import time
import hpt_core
ctx = hpt_core.init()
count = int(os.environ["REPORTS"])
latencies, began_at = [], time.time()
for target in ctx.targets():
    for step in range(1, count + 1):
        began = time.perf_counter()
        ctx.report_training({"loss": 1.0 / step, "step": step}, batches=step)
        latencies.append(time.perf_counter() - began)
    ctx.report_validation({"loss": 0.0}, batches=target)
with open(os.path.join(os.environ["LATENCIES"], f"{ctx.trial_id}.json"), "w") as file:
    json.dump({"latencies": latencies, "began": began_at, "ended": time.time()}, file)
"""

FRAMEWORK_TRIAL = """
{imports}
import hpt_core
ctx = hpt_core.init()
for target in ctx.targets():
    ctx.report_validation({{"loss": 0.0}}, batches=target)
"""

FRAMEWORK_IMPORTS = {
    "lightning": "import torch\nimport pytorch_lightning",
    "keras": "import os\nos.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')\nimport tensorflow\nimport keras",
}


def run_hpt(model_dir: Path, trials: int, concurrency: int, warm: bool, env: dict[str, str] | None = None) -> dict:
    """Run a random search of no-op (or given) trials; wall time, trial starts and the store."""
    with tempfile.TemporaryDirectory(prefix="hpt-bench-") as home:
        previous = dict(os.environ)
        os.environ.update({"HPT_HOME": home, "HPT_WARM_START": "1" if warm else "0", **(env or {})})
        try:
            config = hpt_core.load_config({
                "entrypoint": f"{sys.executable} trial.py",
                "searcher": {"name": "random", "metric": "loss", "max_length": 1, "max_trials": trials,
                             "max_concurrent_trials": concurrency},
                "hyperparameters": {"x": {"type": "double", "minval": 0, "maxval": 1}},
                "checkpoint_policy": "none",
            })
            storage = Storage(f"sqlite:///{home}/hpt.db")
            experiment_id = create_experiment(config, model_dir, storage)
            controller = build_controller(storage, experiment_id)
            started = time.perf_counter()
            state = controller.run()
            wall = time.perf_counter() - started
            return {"state": state, "wall": wall, "starts": dict(controller.executor.starts),
                    "start_kinds": dict(controller.executor.start_kinds),
                    "trials": storage.list_trials(experiment_id),
                    "metrics": storage.metrics(experiment_id=experiment_id)}
        finally:
            os.environ.clear()
            os.environ.update(previous)


def model_directory(root: Path, name: str, script: str) -> Path:
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "trial.py").write_text(textwrap.dedent(script))
    return directory


# --- 1. per-trial overhead ---------------------------------------------------------------------


def hpt_overhead(root: Path, trials: int) -> list[dict]:
    model_dir = model_directory(root, "noop", NOOP_TRIAL)
    rows = []
    for warm in (True, False):
        result = run_hpt(model_dir, trials, 2, warm)
        rows.append(_overhead_row(f"hpt local executor ({'warm starts' if warm else 'cold starts'})",
                                  trials, result["wall"], f"{result['starts']['warm']} warm, "
                                  f"{result['starts']['cold']} cold starts"))
    return rows


def _optuna_worker(storage_url: str, study_name: str, trials: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=storage_url)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1) * 0.0, n_trials=trials)


def optuna_overhead(root: Path, trials: int) -> list[dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage_url = f"sqlite:///{root}/optuna.db"
    optuna.create_study(study_name="noop", storage=storage_url)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_optuna_worker, args=(storage_url, "noop", trials // 2)) for _ in range(2)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    return [_overhead_row("Optuna (SQLite, 2 worker processes)", trials, wall,
                          "trials run inside the workers: no process per trial; includes the workers' start")]


def ray_overhead(trials: int) -> list[dict]:
    import ray
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:
        tune.report({"loss": config["x"] * 0.0})

    began = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray_start = time.perf_counter() - began
    rows = []
    try:
        for reuse in (False, True):
            tuner = tune.Tuner(
                trainable,
                param_space={"x": tune.uniform(0, 1)},
                tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=2, reuse_actors=reuse),
                run_config=tune.RunConfig(verbose=0, storage_path=tempfile.mkdtemp(prefix="ray-bench-")),
            )
            started = time.perf_counter()
            tuner.fit()
            wall = time.perf_counter() - started
            rows.append(_overhead_row(f"Ray Tune ({'reuse_actors=True' if reuse else 'default'})", trials, wall,
                                      f"trials are actors; ray.init took {ray_start:.1f} s, not counted"))
    finally:
        ray.shutdown()
    return rows


def _overhead_row(name: str, trials: int, wall: float, note: str) -> dict:
    return {"system": name, "trials": trials, "wall_s": round(wall, 2),
            "trials_per_s": round(trials / wall, 2), "overhead_per_trial_s": round(wall * 2 / trials, 3),
            "note": note}


# --- 2. ingestion ---------------------------------------------------------------------------


INGESTION_TRIALS = 8


def ingestion(root: Path, reports: int) -> dict:
    """hpt: 8 trials at once, each sending `reports` training reports as fast as its calls return."""
    model_dir = model_directory(root, "reporting", REPORTING_TRIAL)
    latency_dir = root / "latencies"
    latency_dir.mkdir(exist_ok=True)
    result = run_hpt(model_dir, INGESTION_TRIALS, INGESTION_TRIALS, warm=True,
                     env={"REPORTS": str(reports), "LATENCIES": str(latency_dir)})
    training = [metric for metric in result["metrics"] if metric.kind == "training"]
    kept = {(metric.trial_id, metric.metrics["step"]) for metric in training}
    trials = [json.loads(path.read_text()) for path in latency_dir.glob("*.json")]
    return _ingestion_row("hpt (local executor, SQLite)", INGESTION_TRIALS * reports, len(training),
                          lost=INGESTION_TRIALS * reports - len(kept), duplicated=len(training) - len(kept),
                          seconds=max(trial["ended"] for trial in trials) - min(trial["began"] for trial in trials),
                          latencies=[value for trial in trials for value in trial["latencies"]])


def _ingestion_row(system: str, sent: int, stored: int, *, lost: int, duplicated: int, seconds: float,
                   latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {"system": system, "concurrent_trials": INGESTION_TRIALS, "reports_sent": sent, "reports_stored": stored,
            "reports_per_s": round(stored / seconds, 1), "p50_ms": round(1000 * ordered[len(ordered) // 2], 3),
            "p99_ms": round(1000 * ordered[int(len(ordered) * 0.99)], 3), "lost": lost, "duplicated": duplicated}


def _optuna_reporter(storage_url: str, study_name: str, reports: int, queue: Any) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    latencies: list[float] = []
    began_at = time.time()
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
        trial = study.ask()
        for step in range(1, reports + 1):
            began = time.perf_counter()
            trial.report(1.0 / step, step)
            latencies.append(time.perf_counter() - began)
        study.tell(trial, 0.0)
    finally:  # a report that raised (SQLite busy) is lost; the parent learns how far this worker got
        queue.put((latencies, began_at, time.time()))


def optuna_ingestion(root: Path, reports: int) -> dict:
    """Optuna: 8 worker processes, each one trial calling `trial.report` into one SQLite storage."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage_url = f"sqlite:///{root}/optuna-reports.db"
    study = optuna.create_study(study_name="reports", storage=storage_url)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_optuna_reporter, args=(storage_url, "reports", reports, queue))
               for _ in range(INGESTION_TRIALS)]
    for worker in workers:
        worker.start()
    finished = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    latencies = [value for worker_latencies, _, _ in finished for value in worker_latencies]
    seconds = max(ended for _, _, ended in finished) - min(began for _, began, _ in finished)
    stored = sum(len(trial.intermediate_values) for trial in study.get_trials())
    return _ingestion_row("Optuna trial.report (SQLite)", INGESTION_TRIALS * reports, stored,
                          lost=INGESTION_TRIALS * reports - stored, duplicated=0, seconds=seconds,
                          latencies=latencies)


def ray_ingestion(reports: int) -> dict:
    """Ray Tune: 8 trials at once, each calling `tune.report` in a loop (results kept by the driver)."""
    import ray
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:
        latencies = []
        for step in range(1, config["reports"] + 1):
            began = time.perf_counter()
            tune.report({"loss": 1.0 / step, "step": step, "latencies": latencies[-1:], "sent_at": time.time()})
            latencies.append(time.perf_counter() - began)

    ray.init(num_cpus=INGESTION_TRIALS, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        tuner = tune.Tuner(
            trainable, param_space={"reports": reports, "x": tune.grid_search(list(range(INGESTION_TRIALS)))},
            tune_config=tune.TuneConfig(max_concurrent_trials=INGESTION_TRIALS),
            run_config=tune.RunConfig(verbose=0, storage_path=tempfile.mkdtemp(prefix="ray-bench-")),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    frames = [result.metrics_dataframe for result in results]
    stored = sum(len(frame) for frame in frames)
    latencies = [value for frame in frames for values in frame["latencies"] for value in values]
    kept = {(index, step) for index, frame in enumerate(frames) for step in frame["step"]}
    seconds = max(frame["sent_at"].max() for frame in frames) - min(frame["sent_at"].min() for frame in frames)
    return _ingestion_row("Ray Tune tune.report", INGESTION_TRIALS * reports, stored,
                          lost=INGESTION_TRIALS * reports - len(kept), duplicated=stored - len(kept),
                          seconds=seconds, latencies=latencies)


# --- 3. framework trials, warm and cold ------------------------------------------------------


def framework_starts(root: Path, framework: str, trials: int) -> dict:
    """Launch to first report at concurrency 2 (one thread per trial), cold and with warm starts on."""
    model_dir = model_directory(root, framework, FRAMEWORK_TRIAL.format(imports=FRAMEWORK_IMPORTS[framework]))
    cold = run_hpt(model_dir, trials, 2, warm=False)
    warm = run_hpt(model_dir, trials + 4, 2, warm=True)  # the first trials start cold while the server imports
    cold_times = _launch_to_first_report(cold, "cold")
    warm_times = _launch_to_first_report(warm, "warm")
    cold_median = statistics.median(cold_times)
    warm_median = statistics.median(warm_times) if warm_times else None
    return {"framework": framework, "cold_median_s": round(cold_median, 3),
            "warm_median_s": round(warm_median, 3) if warm_median else "-",
            "warm_to_cold": round(warm_median / cold_median, 3) if warm_median else "-",
            "warm_starts": warm["starts"]["warm"], "fresh_process_fallbacks": warm["starts"]["cold"], "trials": trials}


def _launch_to_first_report(result: dict, kind: str) -> list[float]:
    firsts: dict[int, Any] = {}
    for metric in result["metrics"]:
        firsts.setdefault(metric.trial_id, metric.reported_at)
    return [(firsts[trial.id] - trial.started_at).total_seconds() for trial in result["trials"]
            if trial.id in firsts and result["start_kinds"].get(trial.id) == kind]


# --- report ----------------------------------------------------------------------------------


def markdown(results: dict) -> str:
    lines = ["## System overhead", "", f"`{results['command']}` on {results['machine']}, {results['date']}.", "",
             "| system | trials | wall (s) | trials/s | overhead per trial (s) | note |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for row in results["overhead"]:
        lines.append(f"| {row['system']} | {row['trials']} | {row['wall_s']} | {row['trials_per_s']} | "
                     f"{row['overhead_per_trial_s']} | {row['note']} |")
    lines += ["", "| reporting | trials at once | reports sent | stored | reports/s | p50 of a call (ms) | "
              "p99 (ms) | lost | duplicated |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in results["ingestion"]:
        lines.append(f"| {row['system']} | {row['concurrent_trials']} | {row['reports_sent']} | {row['reports_stored']} "
                     f"| {row['reports_per_s']} | {row['p50_ms']} | {row['p99_ms']} | {row['lost']} | "
                     f"{row['duplicated']} |")
    lines += ["", "| trial imports | cold launch → first report (s) | warm (s) | warm / cold | warm starts | fresh-process fallbacks |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in results["frameworks"]:
        lines.append(f"| {row['framework']} | {row['cold_median_s']} | {row['warm_median_s']} | {row['warm_to_cold']} | "
                     f"{row['warm_starts']} | {row['fresh_process_fallbacks']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="no-op trials per system (default 40)")
    parser.add_argument("--reports", type=int, default=500, help="training reports per trial for ingestion")
    parser.add_argument("--framework-trials", type=int, default=5, help="trials per framework and start kind")
    parser.add_argument("--skip-ray", action="store_true", help="leave Ray Tune out (its start costs seconds)")
    parser.add_argument("--out", default="benchmarks/results", help="where to write overhead.json and .md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hpt-overhead-") as scratch:
        root = Path(scratch)
        overhead = hpt_overhead(root, args.trials) + optuna_overhead(root, args.trials)
        if not args.skip_ray:
            overhead += ray_overhead(args.trials)
        results = {
            "command": "python benchmarks/overhead.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
            "date": time.strftime("%Y-%m-%d"),
            "overhead": overhead,
            "ingestion": [ingestion(root, args.reports), optuna_ingestion(root, args.reports)]
            + ([] if args.skip_ray else [ray_ingestion(args.reports)]),
            "frameworks": [framework_starts(root, name, args.framework_trials) for name in FRAMEWORK_IMPORTS],
        }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "overhead.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "overhead.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
