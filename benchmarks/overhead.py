"""System overhead of hpt against Optuna, Ray Tune and the bare process floor, in one run.

    python benchmarks/overhead.py [--trials 50 500] [--repeats 3] [--reports 500] [--together 50]
        [--framework-trials 6] [--frameworks lightning keras] [--concurrency 1 2] [--only-ingestion]
        [--out benchmarks/results]

1. Trial launch: N no-op trials, 2 at a time, for each system in a fresh process of its own, `--repeats` times
   round robin (the tables give the medians): hpt (random search, SQLite; warm starts on and off), Optuna (in
   memory with 2 threads, SQLite with 2 worker processes, a subprocess per trial), Ray Tune (reuse_actors off
   and on; off only at the smallest N, it costs seconds a trial) and the floor: a bare subprocess per trial, no
   tuner. "loop" is the time inside the search loop, "end to end" the whole process (interpreter start, imports,
   set-up included).
2. Metric ingestion: reports per second that hpt's controller stores from 8 concurrent trials (each report
   call returns once its report is committed), p50/p99 latency of one report call, and how many were lost or
   stored twice: one `ctx.report_training` call per report (the primary number), then `--together` reports
   handed over in each `ctx.report_training_many` call; beside them Optuna's `trial.report` into SQLite from 8
   processes and Ray Tune's `tune.report` from 8 trials.
3. Launch to first report of a trial that imports PyTorch Lightning and of one that imports Keras on
   TensorFlow, at max_concurrent_trials 1 and 2 with default thread settings, cold (HPT_WARM_START=0) and
   warm (from the pool of preloaded interpreters, once they have finished preloading).

Machines are noisy: compare the ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

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
count, together = int(os.environ["REPORTS"]), int(os.environ["TOGETHER"])
latencies, began_at = [], time.time()
for target in ctx.targets():
    for first in range(1, count + 1, together):
        steps = range(first, min(first + together, count + 1))
        began = time.perf_counter()
        if together == 1:
            ctx.report_training({"loss": 1.0 / first, "step": first}, batches=first)
        else:
            ctx.report_training_many([({"loss": 1.0 / step, "step": step}, step) for step in steps])
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
    "lightning": "import torch\nimport lightning",
    "keras": "import os\nos.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')\nimport tensorflow\nimport keras",
}

BARE_TRIAL = "print(0.0)\n"
"""The floor: a fresh interpreter that runs a script and ends (no tuner, no channel)."""


def run_hpt(model_dir: Path, trials: int, concurrency: int, warm: bool, env: dict[str, str] | None = None,
            on_tick: Any = None) -> dict:
    """Run a random search of no-op (or given) trials; wall time, trial starts and the store."""
    import hpt_core  # here: each system's process pays for its own imports only, as its end to end time says
    from hpt_core.runner import build_controller, create_experiment
    from hpt_core.storage import Storage

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
            controller = build_controller(storage, experiment_id, on_tick=on_tick)
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


def compile_hpt() -> None:
    """Compile hpt's modules to bytecode, as installing a package does (an editable install does not, and with
    PYTHONDONTWRITEBYTECODE set each process would compile them again: the peers' modules are compiled)."""
    spec = importlib.util.find_spec("hpt_core")
    for folder in spec.submodule_search_locations if spec is not None else []:
        compileall.compile_dir(folder, quiet=1)


def model_directory(root: Path, name: str, script: str) -> Path:
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "trial.py").write_text(textwrap.dedent(script))
    return directory


# --- 1. trial launch --------------------------------------------------------------------------

LAUNCH_SYSTEMS = {
    "hpt-warm": "hpt (random, SQLite, warm starts)",
    "hpt-cold": "hpt (random, SQLite, HPT_WARM_START=0)",
    "optuna-memory": "Optuna in memory, 2 threads (no process per trial)",
    "optuna-sqlite": "Optuna + SQLite, 2 worker processes (no process per trial)",
    "optuna-subprocess": "Optuna in memory, a subprocess per trial",
    "ray-default": "Ray Tune (reuse_actors=False)",
    "ray-reuse": "Ray Tune (reuse_actors=True)",
    "bare": "bare subprocess per trial, no tuner (the floor)",
}


def launch_rows(root: Path, trials: int, skip_ray: bool, repeats: int) -> list[dict]:
    """Each system's no-op trials in a fresh process, `repeats` times round robin (a burst of load on the machine
    hits every system alike): the median loop and end-to-end milliseconds per trial."""
    systems = [system for system in LAUNCH_SYSTEMS
               if not (system.startswith("ray") and (skip_ray or (system == "ray-default" and trials > 50)))]
    runs: dict[str, list[dict]] = {system: [] for system in systems}
    for _ in range(repeats):
        for system in systems:
            began = time.perf_counter()
            child = subprocess.run([sys.executable, __file__, "--system", system, "--trials", str(trials),
                                    "--scratch", str(root)], capture_output=True, text=True, check=True)
            runs[system].append({**json.loads(child.stdout.strip().splitlines()[-1]),
                                 "end_to_end_s": time.perf_counter() - began})
    return [{"system": LAUNCH_SYSTEMS[system], "trials": trials, "repeats": repeats,
             "loop_ms_per_trial": round(1000 * statistics.median(run["loop_s"] for run in runs[system]) / trials, 1),
             "end_to_end_ms_per_trial":
                 round(1000 * statistics.median(run["end_to_end_s"] for run in runs[system]) / trials, 1),
             "note": " / ".join(dict.fromkeys(run["note"] for run in runs[system]))} for system in systems]


def run_system(system: str, trials: int, root: Path) -> dict:
    """One system's search loop over `trials` no-op trials, 2 at a time (run in a process of its own)."""
    root = Path(tempfile.mkdtemp(prefix=f"{system}-", dir=root))
    bare = model_directory(root, "bare", BARE_TRIAL) / "trial.py"
    if system.startswith("hpt"):
        result = run_hpt(model_directory(root, "noop", NOOP_TRIAL), trials, 2, warm=system == "hpt-warm")
        return {"loop_s": result["wall"], "note": f"{result['starts']['warm']} warm, {result['starts']['cold']} cold"}
    if system == "bare":
        began = time.perf_counter()
        running: list[subprocess.Popen] = []
        for _ in range(trials):
            if len(running) == 2:
                running.pop(0).wait()
            running.append(subprocess.Popen([sys.executable, str(bare)], stdout=subprocess.DEVNULL))
        for process in running:
            process.wait()
        return {"loop_s": time.perf_counter() - began, "note": "2 at a time"}
    if system.startswith("optuna"):
        return _optuna_loop(system, trials, root, bare)
    return _ray_loop(trials, reuse=system == "ray-reuse")


def _optuna_objective(trial: Any) -> float:
    return trial.suggest_float("x", 0, 1) * 0.0


def _optuna_worker(storage_url: str, trials: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.load_study(study_name="noop", storage=storage_url).optimize(_optuna_objective, n_trials=trials)


def _optuna_loop(system: str, trials: int, root: Path, bare: Path) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    began = time.perf_counter()
    if system == "optuna-sqlite":
        storage_url = f"sqlite:///{root}/optuna.db"
        optuna.create_study(study_name="noop", storage=storage_url)
        context = multiprocessing.get_context("spawn")
        workers = [context.Process(target=_optuna_worker, args=(storage_url, trials // 2)) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return {"loop_s": time.perf_counter() - began, "note": "includes the workers' start"}
    study = optuna.create_study()
    if system == "optuna-memory":
        study.optimize(_optuna_objective, n_trials=trials, n_jobs=2)
        return {"loop_s": time.perf_counter() - began, "note": "trials are function calls"}

    def in_a_subprocess(trial: Any) -> float:
        trial.suggest_float("x", 0, 1)
        return float(subprocess.run([sys.executable, str(bare)], capture_output=True, text=True, check=True).stdout)

    study.optimize(in_a_subprocess, n_trials=trials, n_jobs=2)
    return {"loop_s": time.perf_counter() - began, "note": "each trial a fresh interpreter, as in hpt"}


def _ray_loop(trials: int, reuse: bool) -> dict:
    import ray
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:
        tune.report({"loss": config["x"] * 0.0})

    began = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray_start = time.perf_counter() - began
    tuner = tune.Tuner(
        trainable, param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=2, reuse_actors=reuse),
        run_config=tune.RunConfig(verbose=0, storage_path=tempfile.mkdtemp(prefix="ray-bench-")))
    started = time.perf_counter()
    tuner.fit()
    loop = time.perf_counter() - started
    ray.shutdown()
    return {"loop_s": loop, "note": f"trials are actors; ray.init {ray_start:.1f} s (in end to end only)"}


# --- 2. ingestion ---------------------------------------------------------------------------


INGESTION_TRIALS = 8


def ingestion(root: Path, reports: int, together: int = 1) -> dict:
    """hpt: 8 trials at once, each sending `reports` training reports as fast as its calls return, `together`
    a call (1: `report_training`, else `report_training_many`)."""
    model_dir = model_directory(root, "reporting", REPORTING_TRIAL)
    latency_dir = root / f"latencies-{together}"
    latency_dir.mkdir(exist_ok=True)
    result = run_hpt(model_dir, INGESTION_TRIALS, INGESTION_TRIALS, warm=True,
                     env={"REPORTS": str(reports), "TOGETHER": str(together), "LATENCIES": str(latency_dir)})
    training = [metric for metric in result["metrics"] if metric.kind == "training"]
    kept = {(metric.trial_id, metric.metrics["step"]) for metric in training}
    trials = [json.loads(path.read_text()) for path in latency_dir.glob("*.json")]
    system = "hpt `ctx.report_training`, a call per report" if together == 1 else \
        f"hpt `ctx.report_training_many`, {together} reports a call"
    return _ingestion_row(system, INGESTION_TRIALS * reports, len(training),
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


def framework_starts(root: Path, framework: str, trials: int, concurrency: int) -> dict:
    """Launch to first report, cold (HPT_WARM_START=0) and warm, with default thread settings. In the warm run
    the controller waits for the interpreters to finish preloading before it launches (the steady state of
    an experiment whose trials run longer than an import), so its trials after the first ones start warm."""
    model_dir = model_directory(root, framework, FRAMEWORK_TRIAL.format(imports=FRAMEWORK_IMPORTS[framework]))
    cold = run_hpt(model_dir, trials, concurrency, warm=False)
    warm = run_hpt(model_dir, trials + concurrency, concurrency, warm=True, on_tick=_hold_until_preloaded)
    cold_median = statistics.median(_launch_to_first_report(cold, "cold"))
    warm_times = _launch_to_first_report(warm, "warm")
    warm_median = statistics.median(warm_times) if warm_times else None
    return {"framework": framework, "concurrency": concurrency, "cold_median_s": round(cold_median, 3),
            "warm_median_s": round(warm_median, 3) if warm_median else "-",
            "warm_to_cold": round(warm_median / cold_median, 3) if warm_median else "-",
            "warm_starts": warm["starts"]["warm"], "cold_starts_in_warm_run": warm["starts"]["cold"]}


def _launch_to_first_report(result: dict, kind: str) -> list[float]:
    firsts: dict[int, Any] = {}
    for metric in result["metrics"]:
        firsts.setdefault(metric.trial_id, metric.reported_at)
    return [(firsts[trial.id] - trial.started_at).total_seconds() for trial in result["trials"]
            if trial.id in firsts and result["start_kinds"].get(trial.id) == kind]


def _hold_until_preloaded(controller: Any) -> None:
    while controller.executor.preloading():
        time.sleep(0.05)


# --- report ----------------------------------------------------------------------------------


def markdown(results: dict) -> str:
    lines = ["## System overhead", "", f"`{results['command']}` on {results['machine']}, {results['date']}.", "",
             *_launch_table(results["launch"])]
    lines += ["", "| reporting | trials at once | reports sent | stored | reports/s | p50 of a call (ms) | "
              "p99 (ms) | lost | duplicated |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in results["ingestion"]:
        lines.append(f"| {row['system']} | {row['concurrent_trials']} | {row['reports_sent']} | {row['reports_stored']} "
                     f"| {row['reports_per_s']} | {row['p50_ms']} | {row['p99_ms']} | {row['lost']} | "
                     f"{row['duplicated']} |")
    lines += ["", *_framework_table(results["frameworks"])]
    return "\n".join(lines) + "\n"


def _launch_table(rows: list[dict]) -> list[str]:
    floor = {row["trials"]: row for row in rows if row["system"] == LAUNCH_SYSTEMS["bare"]}
    lines = ["| system | trials | loop ms/trial | end to end ms/trial | loop / floor | note |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for row in rows:
        ratio = row["loop_ms_per_trial"] / floor[row["trials"]]["loop_ms_per_trial"] if row["trials"] in floor else 0
        lines.append(f"| {row['system']} | {row['trials']} | {row['loop_ms_per_trial']} | "
                     f"{row['end_to_end_ms_per_trial']} | {ratio:.2f} | {row['note']} |")
    return lines


def _framework_table(rows: list[dict]) -> list[str]:
    lines = ["| trial imports | max_concurrent_trials | cold launch → first report (s) | warm (s) | warm / cold | "
             "warm starts | cold starts in the warm run |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['framework']} | {row['concurrency']} | {row['cold_median_s']} | {row['warm_median_s']} | "
                     f"{row['warm_to_cold']} | {row['warm_starts']} | {row['cold_starts_in_warm_run']} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[50, 500], help="no-op trials per system (50 500)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each system's no-op trials; the tables "
                        "give the median (3)")
    parser.add_argument("--reports", type=int, default=500, help="training reports per trial for ingestion")
    parser.add_argument("--together", type=int, default=50, help="reports a `report_training_many` call hands "
                        "over in the batched ingestion row (default 50)")
    parser.add_argument("--only-ingestion", action="store_true", help="measure metric ingestion only")
    parser.add_argument("--framework-trials", type=int, default=6, help="trials per framework, start kind and "
                        "concurrency")
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORK_IMPORTS, default=list(FRAMEWORK_IMPORTS),
                        help="the framework trials to start warm and cold (default: all)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2],
                        help="max_concurrent_trials of the framework runs (default: 1 2)")
    parser.add_argument("--skip-ray", action="store_true", help="leave Ray Tune out (its start costs seconds)")
    parser.add_argument("--out", default="benchmarks/results", help="where to write overhead.json and .md")
    parser.add_argument("--system", choices=LAUNCH_SYSTEMS, help=argparse.SUPPRESS)  # one system, in a child
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.system:
        print(json.dumps(run_system(args.system, args.trials[0], Path(args.scratch))))
        return 0
    compile_hpt()
    with tempfile.TemporaryDirectory(prefix="hpt-overhead-") as scratch:
        root = Path(scratch)
        results = {
            "command": "python benchmarks/overhead.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
            "date": time.strftime("%Y-%m-%d"),
            "launch": [] if args.only_ingestion else
            [row for trials in args.trials for row in launch_rows(root, trials, args.skip_ray, args.repeats)],
            "ingestion": [ingestion(root, args.reports), ingestion(root, args.reports, args.together),
                          optuna_ingestion(root, args.reports)]
            + ([] if args.skip_ray else [ray_ingestion(args.reports)]),
            "frameworks": [] if args.only_ingestion else
            [framework_starts(root, name, args.framework_trials, concurrency)
             for name in args.frameworks for concurrency in args.concurrency],
        }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "overhead.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "overhead.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
