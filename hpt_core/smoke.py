"""`hpt experiment create --test`: run the first configuration briefly and say what would break.

One trial trains for a very short length (a few batches, or one epoch), validates and checkpoints;
a second trial starts from that checkpoint, as a PBT child or warm start would. Everything runs in
a throw-away store, so the user's experiments are untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from hpt_core.config import ExperimentConfig
from hpt_core.plugins import load_config
from hpt_core.runner import build_controller, create_experiment
from hpt_core.storage import Storage, TrialRecord, trial_log

SHORT_BATCHES = 4
LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class Finding:
    """One check of the smoke test: whether it passed, what it checked, and what was seen."""

    passed: bool
    check: str
    detail: str = ""

    def __str__(self) -> str:
        mark = "ok  " if self.passed else "FAIL"
        return f"[{mark}] {self.check}" + (f"\n{_indent(self.detail)}" if self.detail else "")


def smoke_test(config: ExperimentConfig, model_dir: str | Path) -> list[Finding]:
    """Run the smoke test of an experiment file on its model directory; every check it made, in order."""
    with tempfile.TemporaryDirectory(prefix="hpt-test-") as home, _hpt_home(home):
        storage = Storage(f"sqlite:///{home}/hpt.db")
        experiment_id = create_experiment(load_config(_test_config(config)), model_dir, storage)
        build_controller(storage, experiment_id).run()
        return _findings(storage, experiment_id, config.searcher.metric)


def _test_config(config: ExperimentConfig) -> dict:
    """The experiment file, changed to run the smoke test's two short trials once each."""
    data = config.to_dict()
    unit, length = _short_length(config)
    data["searcher"] = {
        "name": "custom", "class": "hpt_core.searchers.smoke_test:SmokeTestSearch",
        "metric": config.searcher.metric, "smaller_is_better": config.searcher.smaller_is_better,
        "max_length": {unit: length}, "length": length, "max_concurrent_trials": 1,
        "points_to_evaluate": config.searcher.points_to_evaluate,
    }
    data.update(max_restarts=0, checkpoint_policy="all", max_time=None, checkpoint_storage={"path": None})
    return data


def _short_length(config: ExperimentConfig) -> tuple[str, int]:
    searcher = config.searcher
    length = searcher.unit_length if searcher.longest_length is not None else None
    if length is None or length.unit == "batches":
        return "batches", min(SHORT_BATCHES, length.value if length else SHORT_BATCHES)
    if length.unit == "records":
        return "records", min(length.value, config.records_per_epoch or length.value)
    return "epochs", 1


def _findings(storage: Storage, experiment_id: int, metric: str) -> list[Finding]:
    trials = {trial.request_id: trial for trial in storage.list_trials(experiment_id)}
    first, second = trials.get(1), trials.get(2)
    findings = [_first_trial_finding(storage, first, metric)]
    if not findings[0].passed:
        return findings
    checkpoints = storage.checkpoints(trial_id=first.id)
    findings.append(Finding(bool(checkpoints), "a checkpoint is saved after the first unit of work",
                            "" if checkpoints else "the trial reported but saved no checkpoint: call "
                            "ctx.save_checkpoint() when ctx.should_checkpoint() (or use the framework callback)"))
    if not checkpoints:
        return findings
    restored = second is not None and second.state == "COMPLETED"
    findings.append(Finding(restored, "a trial starts from that checkpoint and trains on",
                            "" if restored else _failure(storage, second)))
    return findings


def _first_trial_finding(storage: Storage, trial: TrialRecord | None, metric: str) -> Finding:
    check = f"the first configuration trains, validates and reports the searcher metric {metric!r}"
    if trial is None:
        return Finding(False, check, "no trial was created")
    if trial.state == "COMPLETED":
        training = storage.metrics(trial_id=trial.id, kind="training")
        note = "" if training else "note: no training metrics were reported (only validation)"
        return Finding(True, check, note)
    return Finding(False, check, _failure(storage, trial))


def _failure(storage: Storage, trial: TrialRecord | None) -> str:
    if trial is None:
        return "the trial never started"
    reason = trial.end_reason or trial.state
    experiment = storage.get_experiment(trial.experiment_id)
    log = trial_log(experiment.experiment_dir, trial.id)
    tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:] if log.exists() else []
    return "\n".join([f"trial {trial.request_id} ended {trial.state}: {reason}", *(["its output ends with:"] + tail
                                                                                  if tail else [])])


@contextlib.contextmanager
def _hpt_home(home: str) -> Iterator[None]:
    previous = os.environ.get("HPT_HOME")
    os.environ["HPT_HOME"] = home
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HPT_HOME", None)
        else:
            os.environ["HPT_HOME"] = previous


def _indent(text: str) -> str:
    return "\n".join(f"       {line}" for line in text.splitlines())
