"""What an experiment writes per event, and how long resuming it takes, at 1,000 and 10,000 events.

An adaptive ASHA search (random or TPE sampler) is driven through the controller's trial state
machine into real SQLite storage, with the controller's snapshot cadence (every
`SNAPSHOT_EVENTS` events); trials "train" instantly and report a random loss. Then a fresh
machine is rebuilt from storage exactly as `hpt experiment resume` does it (latest snapshot, then
the records after it), and, for comparison, from the whole record with no snapshot (what resume
did before snapshots). Measured:

- bytes written per event: the searcher records and snapshots written (as JSON), over the events;
  beside it, what the former per-event dump of the whole search-method state wrote;
- resume time and the records read: from the snapshot and tail, and from the whole record.

Writes benchmarks/results/resume.md.

    python benchmarks/resume.py                   # 1,000 and 10,000 events: a few minutes
    python benchmarks/resume.py --events 1000     # seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import hpt_core
from hpt_core.controller import SNAPSHOT_EVENTS
from hpt_core.recording import StorageBooks, rebuild, trial_of
from hpt_core.lifecycle import TrialMachine
from hpt_core.operations import operation_to_dict
from hpt_core.replay import EventLog
from hpt_core.storage import Storage

RESULTS = Path(__file__).resolve().parent / "results" / "resume.md"
SPACE = {"lr": {"type": "log", "minval": -5, "maxval": -1}, "width": {"type": "int", "minval": 8, "maxval": 512},
         "dropout": {"type": "double", "minval": 0.0, "maxval": 0.5}}


def experiment_config(sampler: str, events: int) -> hpt_core.ExperimentConfig:
    return hpt_core.load_config({
        "entrypoint": "python train.py",
        "searcher": {"name": "adaptive_asha", "metric": "loss", "max_length": {"epochs": 9}, "divisor": 3,
                     "mode": "aggressive", "max_trials": events, "max_concurrent_trials": 4, "sampler": sampler},
        "hyperparameters": SPACE})


class CountingBooks(StorageBooks):
    """The controller's books, also counting events and what a dump of the whole state per event would write."""

    def __init__(self, storage: Storage, experiment_id: int, searcher: Any) -> None:
        super().__init__(storage, experiment_id, max_restarts=0)
        self.searcher = searcher
        self.events = 0
        self.written = 0
        self.dumped = 0

    def record_event(self, name: str, args: list[Any]) -> None:
        super().record_event(name, args)
        self.events += 1
        self.written += len(json.dumps({"name": name, "args": args}))
        self.dumped += len(json.dumps(self.searcher.state_dict()))

    def record_operation(self, operation: Any) -> None:
        super().record_operation(operation)
        self.written += len(json.dumps(operation_to_dict(operation)))

    def save_snapshot(self, snapshot: dict[str, Any]) -> None:
        self.storage.save_snapshot(self.experiment_id, snapshot)
        self.written += len(json.dumps(snapshot))


def run_search(storage: Storage, config: hpt_core.ExperimentConfig, events: int) -> CountingBooks:
    """Drive the search to `events` events, snapshotting as the controller does."""
    experiment_id = storage.create_experiment(name="resume", config=config.model_dump(mode="json"), model_dir=".",
                                              seed=0, secret="s")
    searcher = hpt_core.create_searcher(config, seed=0)
    books = CountingBooks(storage, experiment_id, searcher)
    machine = TrialMachine(config, searcher, books, seed=0)
    losses = np.random.default_rng(0)
    machine.dispatch("initial_operations")
    while books.events < events and machine.pending:
        trial = machine.trials[machine.pending[0]]
        machine.launched(trial, trial.attempt + 1)
        decision = "continue"
        while decision == "continue":  # a trial promoted at once trains on to its new target
            machine.reported(trial, "validation", {"loss": float(losses.random())}, batches=0, epochs=trial.target)
            decision = machine.decision(trial)["decision"]
        machine.exited(trial, 0)
        if machine.events_since_snapshot >= SNAPSHOT_EVENTS:
            books.save_snapshot(machine.snapshot())
    return books


def resume_seconds(storage: Storage, config: hpt_core.ExperimentConfig, from_snapshot: bool) -> tuple[float, int]:
    """Seconds to rebuild a fresh machine from storage, and the searcher records it read."""
    started = time.perf_counter()
    machine = TrialMachine(config, hpt_core.create_searcher(config, seed=0),
                           StorageBooks(storage, 1, max_restarts=0), seed=0)
    if from_snapshot:
        rebuild(machine, storage, 1)
    else:
        rebuild_without_snapshot(machine, storage)
    seconds = time.perf_counter() - started
    snapshot = storage.latest_snapshot(1)
    if from_snapshot and snapshot is not None:
        return seconds, len(storage.searcher_records(1, after=snapshot.seq)) + 1
    return seconds, len([record for record in storage.searcher_records(1) if record.kind != "snapshot"])


def rebuild_without_snapshot(machine: TrialMachine, storage: Storage) -> None:
    """A rebuild that replays every recorded event (the snapshot records skipped): resume before snapshots."""
    machine.load([trial_of(row, 0) for row in storage.list_trials(1)], None,
                 [(record.trial_id, record.metrics) for record in storage.metrics(experiment_id=1, kind="validation")])
    machine.replay(EventLog([record for record in storage.searcher_records(1) if record.kind != "snapshot"]))


def measure(sampler: str, events: int) -> dict[str, Any]:
    config = experiment_config(sampler, events)
    with tempfile.TemporaryDirectory() as folder, Storage(f"sqlite:///{folder}/hpt.db") as storage:
        started = time.perf_counter()
        books = run_search(storage, config, events)
        drive = time.perf_counter() - started
        dispatched, dumped = books.events, books.dumped
        snapshot_resume, snapshot_read = resume_seconds(storage, config, from_snapshot=True)
        full_resume, full_read = resume_seconds(storage, config, from_snapshot=False)
        return {"sampler": sampler, "events": dispatched, "drive_s": drive,
                "bytes_per_event": books.written / dispatched, "dump_bytes_per_event": dumped / dispatched,
                "resume_s": snapshot_resume, "resume_records": snapshot_read,
                "full_replay_s": full_resume, "full_replay_records": full_read}


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| sampler | events | written per event (bytes) | former state dump per event (bytes) | "
             "resume: records read | resume (s) | full replay: records read | full replay (s) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['sampler']} | {row['events']:,} | {row['bytes_per_event']:,.0f} | "
                     f"{row['dump_bytes_per_event']:,.0f} | {row['resume_records']:,} | {row['resume_s']:.3f} | "
                     f"{row['full_replay_records']:,} | {row['full_replay_s']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--samplers", nargs="+", default=["random", "tpe"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = []
    for sampler in args.samplers:
        for events in args.events:
            rows.append(measure(sampler, events))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows))
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
