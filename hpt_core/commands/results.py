"""`hpt experiment list|download`, `hpt trial describe|logs|download`, `hpt checkpoint list`: reading results.

Each handler takes the parsed arguments and returns the exit code; tables go to stdout, errors are
raised (LookupError, ConfigError) for `hpt_core.cli.main` to print as `error: ...`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from hpt_core.errors import ConfigError, Problem
from hpt_core.export import ExportedCheckpoint, export_checkpoint, export_experiment, trial_checkpoint
from hpt_core.labels import trial_label
from hpt_core.results import Experiment, Trial
from hpt_core.space import flatten
from hpt_core.storage import Storage, open_storage, trial_log

ENDED_STATES = ("COMPLETED", "CANCELED", "ERROR")
FOLLOW_SECONDS = 0.5
UNLIMITED_WIDTH = 100_000


def add_result_commands(
    commands: argparse._SubParsersAction,
    experiment_commands: argparse._SubParsersAction,
    storage_parent: argparse.ArgumentParser,
) -> None:
    """Add the result commands: to `hpt experiment` (its subparsers), and `hpt trial` and `hpt checkpoint`."""
    listing = experiment_commands.add_parser("list", parents=[storage_parent], help="every experiment and its state")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=experiment_list)
    download = experiment_commands.add_parser("download", parents=[storage_parent],
                                              help="copy the best checkpoints of the best trials out of hpt")
    download.add_argument("experiment_id", type=int)
    download.add_argument("--top-n", type=int, default=1, metavar="N", help="how many trials (default 1)")
    download.add_argument("-o", "--output", metavar="DIR",
                          help="where to write them (default ./checkpoints/experiment-ID)")
    download.set_defaults(handler=experiment_download)

    trial = commands.add_parser("trial", help="inspect trials and download their checkpoints")
    trial_commands = trial.add_subparsers(dest="trial_command", metavar="COMMAND")
    describe = trial_commands.add_parser("describe", parents=[storage_parent],
                                         help="a trial's state, hyperparameters, validations and checkpoints")
    describe.add_argument("trial_id", type=int)
    describe.add_argument("--json", action="store_true", help="print JSON (with every report) instead of tables")
    describe.set_defaults(handler=trial_describe)
    logs = trial_commands.add_parser("logs", parents=[storage_parent], help="a trial's output (every attempt)")
    logs.add_argument("trial_id", type=int)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new output until the trial ends")
    logs.set_defaults(handler=trial_logs)
    trial_download = trial_commands.add_parser("download", parents=[storage_parent],
                                               help="copy one of a trial's checkpoints out of hpt")
    trial_download.add_argument("trial_id", type=int)
    which = trial_download.add_mutually_exclusive_group(required=True)
    which.add_argument("--best", action="store_const", const="best", dest="which",
                       help="the checkpoint with the best validation")
    which.add_argument("--latest", action="store_const", const="latest", dest="which",
                       help="the checkpoint with the highest step")
    which.add_argument("--id", dest="which", metavar="CHECKPOINT_ID", help="the checkpoint with this id")
    trial_download.add_argument("-o", "--output", metavar="DIR",
                                help="where to write it (default ./checkpoints/CHECKPOINT_ID)")
    trial_download.set_defaults(handler=trial_download_checkpoint)

    checkpoint = commands.add_parser("checkpoint", help="list checkpoints")
    checkpoint_commands = checkpoint.add_subparsers(dest="checkpoint_command", metavar="COMMAND")
    checkpoint_list = checkpoint_commands.add_parser("list", parents=[storage_parent],
                                                     help="an experiment's checkpoints with their steps and metric")
    checkpoint_list.add_argument("experiment_id", type=int)
    checkpoint_list.add_argument("--deleted", action="store_true",
                                 help="also those that garbage collection removed")
    checkpoint_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    checkpoint_list.set_defaults(handler=checkpoint_list_command)


# --- handlers ----------------------------------------------------------------------------------


def experiment_list(args: argparse.Namespace) -> int:
    storage = open_storage(args.storage)
    rows = []
    for record in storage.list_experiments():
        searcher = record.config.get("searcher", {})
        rows.append({"id": record.id, "name": record.name, "state": record.state, "searcher": searcher.get("name"),
                     "metric": searcher.get("metric"), "trials": len(storage.list_trials(record.id)),
                     "progress": record.progress, "created_at": record.created_at.isoformat(),
                     "ended_at": record.ended_at.isoformat() if record.ended_at else None})
    if args.json:
        _print_json(rows)
        return 0
    table = _table("id", "name", "state", "searcher", "metric", "trials", "progress", "created", "ended")
    for row in rows:
        table.add_row(str(row["id"]), row["name"] or "", row["state"], row["searcher"] or "", row["metric"] or "",
                      str(row["trials"]), f"{row['progress']:.0%}", _minutes(row["created_at"]),
                      _minutes(row["ended_at"]))
    _print_table(table)
    return 0


def experiment_download(args: argparse.Namespace) -> int:
    storage = open_storage(args.storage)
    storage.get_experiment(args.experiment_id)
    destination = Path(args.output or Path("checkpoints") / f"experiment-{args.experiment_id}")
    try:
        exported = export_experiment(storage, args.experiment_id, destination, top_n=args.top_n)
    except FileExistsError as error:
        raise _output_problem(error) from None
    print(f"wrote the best checkpoint of {len(exported)} trial{'s' if len(exported) != 1 else ''} "
          f"to {destination.resolve()}")
    _print_exports(exported)
    return 0


def trial_download_checkpoint(args: argparse.Namespace) -> int:
    storage = open_storage(args.storage)
    checkpoint = trial_checkpoint(storage, args.trial_id, args.which)
    destination = Path(args.output or Path("checkpoints") / checkpoint.id)
    try:
        exported = export_checkpoint(storage, checkpoint.id, destination)
    except FileExistsError as error:
        raise _output_problem(error) from None
    print(f"wrote checkpoint {checkpoint.id} of trial {args.trial_id} to {destination.resolve()}")
    _print_exports([exported])
    return 0


def trial_describe(args: argparse.Namespace) -> int:
    storage = open_storage(args.storage)
    experiment = Experiment(storage, storage.get_experiment(storage.get_trial(args.trial_id).experiment_id))
    trial = experiment.trial(args.trial_id)
    reports = experiment.metrics(trial_id=trial.id)
    if args.json:
        _print_json({**dataclasses.asdict(trial), "metric": experiment.metric,
                     "validations": [report for report in reports if report["kind"] == "validation"],
                     "training": [report for report in reports if report["kind"] == "training"]})
        return 0
    _render_trial(experiment, trial, reports)
    return 0


def trial_logs(args: argparse.Namespace) -> int:
    storage = open_storage(args.storage)
    trial = storage.get_trial(args.trial_id)
    experiment_dir = storage.get_experiment(trial.experiment_id).experiment_dir
    log = trial_log(experiment_dir or ".", trial.id)
    if not args.follow and not log.is_file():
        print(f"trial {trial.id} has written no output yet ({trial.state})", file=sys.stderr)
        return 0
    position = 0
    interrupted = threading.Event()  # Ctrl-C only sets it, never interrupts a storage read half-way
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
    try:
        while not interrupted.is_set():
            ended = not args.follow or _has_ended(storage, trial.id, trial.experiment_id)
            position = _copy_from(log, position, sys.stdout.buffer)
            if ended:
                return 0
            interrupted.wait(FOLLOW_SECONDS)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)


def checkpoint_list_command(args: argparse.Namespace) -> int:
    storage = open_storage(args.storage)
    experiment = Experiment(storage, storage.get_experiment(args.experiment_id))
    checkpoints = experiment.checkpoints(include_deleted=args.deleted)
    if args.json:
        _print_json([dataclasses.asdict(checkpoint) for checkpoint in checkpoints])
        return 0
    table = _table("checkpoint", "trial", "batches", "epochs", f"{experiment.metric} at its step", "state", "path")
    for checkpoint in checkpoints:
        table.add_row(checkpoint.id, str(checkpoint.trial_id), str(checkpoint.batches), str(checkpoint.epochs),
                      _metric(checkpoint.validation, experiment.metric), checkpoint.state, str(checkpoint.path))
    _print_table(table)
    return 0


# --- rendering ---------------------------------------------------------------------------------


def _render_trial(experiment: Experiment, trial: Trial, reports: Sequence[dict[str, Any]]) -> None:
    metric = experiment.metric
    hparams = ", ".join(f"{name}={value}" for name, value in flatten(trial.hparams).items())
    lines = [
        f"trial {trial_label(trial.id, trial.request_id, experiment.id)}: {trial.state}"
        + (f", {trial.end_reason}" if trial.end_reason else ""),
        f"hyperparameters: {hparams}",
        f"trained {trial.length_trained}" + (f" of {trial.target_length}" if trial.target_length else "")
        + f"; restarts {trial.restarts}"
        + (f"; child of request {trial.parent_request_id}" if trial.parent_request_id is not None else ""),
        f"best {metric}: {_validation(trial.best_validation)}; latest: {_validation(trial.latest_validation)}",
    ]
    print("\n".join(lines))
    validations = [report for report in reports if report["kind"] == "validation"]
    names = _metric_names(report["metrics"] for report in validations)
    table = _table("batches", "epochs", *names, title="validations")
    for report in validations:
        table.add_row(str(report["batches"]), str(report["epochs"]), *(_cell(report["metrics"].get(name))
                                                                        for name in names))
    _print_table(table)
    training = sum(1 for report in reports if report["kind"] == "training")
    print(f"training reports: {training} (every one with --json)")
    table = _table("checkpoint", "batches", "epochs", f"{metric} at its step", "path", title="checkpoints")
    for checkpoint in trial.checkpoints:
        table.add_row(checkpoint.id, str(checkpoint.batches), str(checkpoint.epochs),
                      _metric(checkpoint.validation, metric), str(checkpoint.path))
    _print_table(table)


def _print_exports(exported: Sequence[ExportedCheckpoint]) -> None:
    validations = [entry.metadata["validation"] or {} for entry in exported]
    names = _metric_names(validations)
    table = _table("trial", "checkpoint", "batches", "epochs", *names, "folder")
    for entry, validation in zip(exported, validations):
        checkpoint = entry.metadata["checkpoint"]
        table.add_row(str(entry.metadata["trial"]["id"]), checkpoint["id"], str(checkpoint["batches"]),
                      str(checkpoint["epochs"]), *(_cell(validation.get(name)) for name in names), str(entry.path))
    _print_table(table)


def _table(*columns: str, title: str | None = None) -> Table:
    table = Table(*columns, title=title, title_justify="left")
    for column in table.columns:
        column.no_wrap = True
    return table


def _print_table(table: Table) -> None:
    """Print a table whole: on a narrow terminal or a pipe, wider than the screen rather than cut; text such as
    metric names and paths printed as it is, never read as markup (`acc[b]`)."""
    console = Console()
    needed = Measurement.get(console, console.options.update_width(UNLIMITED_WIDTH), table).maximum
    Console(width=max(console.width, needed), markup=False).print(table)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _output_problem(error: FileExistsError) -> ConfigError:
    return ConfigError([Problem("--output", str(error))], "the command line")


def _has_ended(storage: Storage, trial_id: int, experiment_id: int) -> bool:
    """No more output will come: the trial has ended, or its experiment has (a paused trial stays paused)."""
    return (storage.get_trial(trial_id).state in ENDED_STATES
            or storage.get_experiment(experiment_id).state in ENDED_STATES)


def _copy_from(path: Path, position: int, out: BinaryIO) -> int:
    """Copy what `path` holds past `position` to `out`; returns the new position."""
    try:
        with open(path, "rb") as source:
            source.seek(position)
            data = source.read()
    except FileNotFoundError:
        return position
    out.write(data)
    out.flush()
    return position + len(data)


def _metric_names(metrics: Iterable[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(name for entry in metrics for name in entry))


def _metric(validation: dict[str, Any] | None, metric: str) -> str:
    return "-" if validation is None else _cell(validation.get(metric))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _validation(validation: Any) -> str:
    if validation is None:
        return "-"
    return f"{validation.value:.6g} at batch {validation.batches} (epoch {validation.epochs})"


def _minutes(timestamp: str | None) -> str:
    return "" if timestamp is None else timestamp[:16].replace("T", " ")

