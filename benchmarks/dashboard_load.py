"""How fast the dashboard's API answers the experiment page for a large experiment.

    python benchmarks/dashboard_load.py [--trials 10000] [--metric-rows 1000000] [--out benchmarks/results]

1. Builds a SQLite database with bulk inserts: one adaptive ASHA experiment whose trials and searcher
   state come from running hpt's own search method over synthetic learning curves (3 rungs of 250,
   1,000 and 4,000 batches, divisor 4), each trial reporting training and validation metrics every few
   batches (as many as it takes to reach about --metric-rows rows in all, an eighth of them validations),
   a validation at the end of its training and a checkpoint record there.
2. Serves it with the dashboard (a real uvicorn server on 127.0.0.1) and times each request the
   experiment page makes when it opens, and a few more: right after the server started, once the
   server's read-ahead of the newest experiments is done, and again (median of 5).
3. Writes the table to <out>/dashboard_load.md.

`build_experiment` is also what tests/dashboard/test_api_scale.py uses to build its 10,000-trial fixture.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from hpt_core import create_searcher, load_config
from hpt_core.searchers import Close, Create, Shutdown, ValidateAfter
from hpt_core.storage import Storage, schema
from hpt_core.storage.engine import create_storage_engine, write_transaction

MAX_LENGTH = 4000
INSERT_BATCH = 20_000


@dataclass(frozen=True)
class BuiltExperiment:
    """What `build_experiment` wrote: the experiment's id and how many rows of each kind."""

    experiment_id: int
    trials: int
    training_rows: int
    validation_rows: int
    seconds: float


def searcher_config(trials: int) -> dict[str, Any]:
    return {
        "entrypoint": "python train.py",
        "searcher": {"name": "adaptive_asha", "metric": "val_loss", "max_length": {"batches": MAX_LENGTH},
                     "max_trials": trials, "mode": "aggressive", "divisor": 4, "max_rungs": 3,
                     "max_concurrent_trials": 16},
        "hyperparameters": {"lr": {"type": "log", "minval": -4.0, "maxval": -1.0, "base": 10.0},
                            "width": {"type": "int", "minval": 16, "maxval": 512},
                            "optimizer": {"name": {"type": "categorical", "vals": ["adam", "sgd", "rmsprop"]}}},
    }


def validation_loss(hparams: dict[str, Any], batches: int) -> float:
    """A synthetic learning curve: falls with training, towards a floor set by the hyperparameters."""
    floor = 0.05 + abs(math.log10(hparams["lr"]) + 2.5) / 10 + (0.05 if hparams["optimizer"]["name"] == "sgd" else 0)
    return floor + 2.0 / math.sqrt(1.0 + batches * hparams["width"] / 256)


def run_search(config: dict[str, Any]) -> tuple[list[tuple[int, dict[str, Any], int]], dict[str, Any], float]:
    """Run the search method on the synthetic curves: (request id, hparams, batches trained) per trial,
    the searcher's final state and progress."""
    searcher = create_searcher(load_config(config), seed=0)
    trials: dict[int, dict[str, Any]] = {}
    trained: dict[int, int] = {}
    operations = deque(searcher.initial_operations())
    while operations:
        operation = operations.popleft()
        if isinstance(operation, Create):
            trials[operation.request_id] = operation.hparams
            trained[operation.request_id] = 0
            operations.extend(searcher.on_trial_created(operation.request_id))
        elif isinstance(operation, ValidateAfter):
            trained[operation.request_id] = operation.length
            metric = {"val_loss": validation_loss(trials[operation.request_id], operation.length)}
            operations.extend(searcher.on_validation_completed(operation.request_id, metric, operation.length))
        elif isinstance(operation, Close):
            operations.extend(searcher.on_trial_closed(operation.request_id))
        elif isinstance(operation, Shutdown):
            break
    return ([(request_id, hparams, trained[request_id]) for request_id, hparams in trials.items()],
            searcher.state_dict(), searcher.progress())


def halving_trials(config: dict[str, Any]) -> list[tuple[int, dict[str, Any], int]]:
    """Trials as successive halving would leave them, without running the search method (which takes seconds
    at 10,000 trials): every 4**k-th trial reaches rung k; hyperparameters sampled from the space."""
    searcher = create_searcher(load_config(config), seed=0)
    rungs = [MAX_LENGTH // 16, MAX_LENGTH // 4, MAX_LENGTH]
    count = config["searcher"]["max_trials"]
    return [(number, searcher.sample_hparams(),
             rungs[max(rung for rung in range(len(rungs)) if number % 4 ** rung == 0)])
            for number in range(1, count + 1)]


def build_experiment(storage_url: str, trials: int, metric_rows: int, *, run_searcher: bool = True,
                     ) -> BuiltExperiment:
    """Write one finished adaptive ASHA experiment of `trials` trials and about `metric_rows` metric rows (an
    eighth of them validations, and one at the end of each trial's training).

    With `run_searcher` the trials and the stored searcher state come from running adaptive ASHA on synthetic
    curves; without, from `halving_trials` (no searcher state).
    """
    started = time.perf_counter()
    config = searcher_config(trials)
    if run_searcher:
        searched, state, progress = run_search(config)
    else:
        searched, state, progress = halving_trials(config), None, 1.0
    total_batches = sum(batches for _, _, batches in searched)
    validate_every = max(1, total_batches // max(metric_rows // 8, 1))
    train_every = max(1, total_batches // max(metric_rows - metric_rows // 8, 1))
    with Storage(storage_url) as storage:
        experiment_id = storage.create_experiment(name=f"load-{trials}", config=load_config(config).to_dict(),
                                                  model_dir=".", seed=0, secret="benchmark")
        if state is not None:
            storage.save_searcher_state(experiment_id, state, progress)
        storage.set_experiment_state(experiment_id, "COMPLETED")
        created = storage.get_experiment(experiment_id).created_at
    engine = create_storage_engine(storage_url)
    try:
        with write_transaction(engine) as connection:
            first_trial_id = _insert_trials(connection, experiment_id, searched, created)
        counts = {"training": 0, "validation": 0}
        rows = _metric_rows(searched, first_trial_id, created, train_every, validate_every)
        for chunk in _batched(rows, INSERT_BATCH):
            with write_transaction(engine) as connection:
                connection.execute(insert(schema.metrics), chunk)
            for row in chunk:
                counts[row["kind"]] += 1
        with write_transaction(engine) as connection:
            for chunk in _batched(_checkpoint_rows(searched, first_trial_id, created), INSERT_BATCH):
                connection.execute(insert(schema.checkpoints), chunk)
    finally:
        engine.dispose()
    return BuiltExperiment(experiment_id, len(searched), counts["training"], counts["validation"],
                           time.perf_counter() - started)


def _insert_trials(connection: Any, experiment_id: int, searched: list[tuple[int, dict[str, Any], int]],
                   created: datetime) -> int:
    rows = [{"experiment_id": experiment_id, "request_id": request_id, "hparams": hparams, "state": "COMPLETED",
             "end_reason": "completed its length" if batches == MAX_LENGTH else "closed at a rung", "restarts": 0,
             "parent_request_id": None, "seed": request_id, "target_length": batches, "length_done": batches,
             "created_at": created, "started_at": created, "ended_at": created}
            for request_id, hparams, batches in searched]
    for chunk in _batched(iter(rows), INSERT_BATCH):
        connection.execute(insert(schema.trials), chunk)
    from sqlalchemy import func, select

    return connection.execute(select(func.min(schema.trials.c.id)).where(
        schema.trials.c.experiment_id == experiment_id)).scalar_one()


def _metric_rows(searched: list[tuple[int, dict[str, Any], int]], first_trial_id: int, created: datetime,
                 train_every: int, validate_every: int) -> Iterator[dict[str, Any]]:
    for offset, (_, hparams, trained) in enumerate(searched):
        trial_id = first_trial_id + offset
        start = created + timedelta(seconds=offset)
        training = range(train_every, trained + 1, train_every)
        validations = {*range(validate_every, trained + 1, validate_every), trained}
        for batches in sorted({*training, *validations}):
            at = start + timedelta(milliseconds=batches * 10)
            loss = validation_loss(hparams, batches)
            if batches % train_every == 0:
                yield {"trial_id": trial_id, "kind": "training", "metrics": {"loss": loss * 1.1},
                       "batches": batches, "epochs": batches // 100, "reported_at": at}
            if batches in validations:
                yield {"trial_id": trial_id, "kind": "validation",
                       "metrics": {"val_loss": loss, "accuracy": 1.0 - loss / 3},
                       "batches": batches, "epochs": batches // 100, "reported_at": at}


def _checkpoint_rows(searched: list[tuple[int, dict[str, Any], int]], first_trial_id: int,
                     created: datetime) -> Iterator[dict[str, Any]]:
    """A checkpoint record per trial at the end of its training (no files: the benchmark does not download)."""
    for offset, (_, _, trained) in enumerate(searched):
        checkpoint_id = f"checkpoint-{first_trial_id + offset}"
        yield {"id": checkpoint_id, "trial_id": first_trial_id + offset, "batches": trained,
               "epochs": trained // 100, "length": trained, "metadata": {}, "path": f"/nonexistent/{checkpoint_id}",
               "state": "COMPLETED", "created_at": created}


def _batched(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def page_requests(experiment_id: int, trial_id: int) -> list[tuple[str, str]]:
    """(what, path) of each request the experiment page makes when it opens (the first EXPERIMENT_PAGE), then
    of other views: the table sorted, filtered and paged, hyperparameters at a length, the trial page."""
    base = f"/api/v1/experiments/{experiment_id}"
    return [
        ("experiment summary", base),
        ("best checkpoint", f"{base}/best-checkpoint"),
        ("best over time", f"{base}/best-over-time"),
        ("curves of the top 5", f"{base}/curves?top=5"),
        ("hyperparameters at the latest validation", f"{base}/hparams"),
        ("searcher view (ASHA rungs)", f"{base}/searcher-view"),
        ("trials, first page", f"{base}/trials?limit=50"),
        ("trials sorted by best validation", f"{base}/trials?limit=50&sort=best_validation"),
        ("trials sorted by a hyperparameter, filtered", f"{base}/trials?limit=50&sort=hp:lr&order=desc&q=adam"),
        ("trials, page 100", f"{base}/trials?limit=50&offset=5000"),
        ("hyperparameters at 1,000 batches", f"{base}/hparams?length=1000"),
        ("training curves of the top 5", f"{base}/curves?top=5&metric=loss&kind=training"),
        ("trial page", f"/api/v1/trials/{trial_id}"),
        ("trial metrics (training)", f"/api/v1/trials/{trial_id}/metrics?kind=training"),
    ]


EXPERIMENT_PAGE = 7


def fetch(base_url: str, path: str) -> tuple[float, int]:
    """Seconds one GET took, and the size of its response."""
    started = time.perf_counter()
    with urllib.request.urlopen(base_url.rstrip("/") + path, timeout=120) as response:
        size = len(response.read())
    return time.perf_counter() - started, size


def time_requests(storage_url: str, requests: list[tuple[str, str]], repeats: int = 5) -> dict[str, Any]:
    """Each request timed right after the server started, then after its read-ahead, then warm (median)."""
    from hpt_core.dashboard.server import DashboardServer

    with DashboardServer(storage_url) as server:
        at_start = [fetch(server.url, path)[0] for _, path in requests]
    with DashboardServer(storage_url) as server:
        started = time.perf_counter()
        server.app.state.dashboard.warmed.wait()
        read_ahead = time.perf_counter() - started
        rows = []
        for (what, path), first in zip(requests, at_start):
            after_read_ahead, size = fetch(server.url, path)
            again = statistics.median(fetch(server.url, path)[0] for _ in range(repeats))
            rows.append({"what": what, "path": path, "at_start_s": first, "after_read_ahead_s": after_read_ahead,
                         "warm_median_s": again, "bytes": size})
    return {"read_ahead_s": read_ahead, "rows": rows}


def report(built: BuiltExperiment, timings: dict[str, Any]) -> str:
    rows = timings["rows"]
    page = rows[:EXPERIMENT_PAGE]
    lines = [
        "## Dashboard: the experiment page's requests on a large experiment (SQLite)",
        "",
        f"{built.trials:,} trials (adaptive ASHA), {built.training_rows + built.validation_rows:,} metric rows "
        f"({built.training_rows:,} training, {built.validation_rows:,} validation); built in {built.seconds:.0f} s.",
        "",
        "| request | path | right after start (s) | after the read-ahead (s) | again, median of 5 (s) | KiB |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        *[f"| {row['what']} | `{row['path']}` | {row['at_start_s']:.3f} | {row['after_read_ahead_s']:.3f} | "
          f"{row['warm_median_s']:.3f} | {row['bytes'] / 1024:.0f} |" for row in rows],
        "",
        f"The experiment page's {EXPERIMENT_PAGE} requests (the first {EXPERIMENT_PAGE} rows), one after another: "
        + ", ".join(f"{sum(row[column] for row in page):.2f} s {label}" for column, label in [
            ("at_start_s", "right after the server started"),
            ("after_read_ahead_s", "once its read-ahead was done"), ("warm_median_s", "again")])
        + f". The read-ahead (what the newest experiments' pages need, read in the background from the start) "
        f"took {timings['read_ahead_s']:.2f} s.",
        "",
        f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end of the run "
        f"(other work was running: compare rows within one run).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--metric-rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hpt-dashboard-load-") as folder:
        storage_url = f"sqlite:///{folder}/hpt.db"
        built = build_experiment(storage_url, args.trials, args.metric_rows)
        print(f"built {built.trials} trials and {built.training_rows + built.validation_rows} metric rows "
              f"in {built.seconds:.0f} s", flush=True)
        with Storage(storage_url) as storage:
            best_trial = storage.list_trials(built.experiment_id)[-1].id
        results = time_requests(storage_url, page_requests(built.experiment_id, best_trial))
    text = report(built, results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dashboard_load.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
