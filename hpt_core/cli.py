"""The `hpt` command."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console

import hpt_core
from hpt_core.errors import ConfigError
from hpt_core.labels import trial_label


def _load(path: str, overrides: list[str] | None) -> hpt_core.ExperimentConfig:
    """The experiment file at `path` with the `--config KEY=VALUE` overrides applied."""
    from hpt_core.config import apply_overrides
    from hpt_core.safe_yaml import load_yaml

    if not overrides:
        return hpt_core.load_config(Path(path))
    data = load_yaml(Path(path).read_bytes(), path)
    if not isinstance(data, dict):
        return hpt_core.load_config(Path(path))
    try:
        return hpt_core.load_config(apply_overrides(data, overrides))
    except ConfigError as error:
        raise ConfigError(error.problems, f"{path} with --config {' '.join(overrides)}") from None


def _config_check(args: argparse.Namespace) -> int:
    from hpt_core.safe_yaml import dump_yaml

    config = _load(args.file, args.config)
    print(f"# {args.file}: valid; normalised with every default filled in")
    print(dump_yaml(config.to_dict()), end="")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from hpt_core.preview import preview

    config = _load(args.file, args.config)
    print(preview(hpt_core.create_searcher(config)).render())
    return 0


def _experiment_create(args: argparse.Namespace) -> int:
    from hpt_core.runner import create_experiment, run_detached
    from hpt_core.storage import open_storage

    executor = [f"executor.type={args.executor}"] if args.executor else []
    config = _load(args.config, [*(args.overrides or []), *executor])
    model_dir = Path(args.model_dir) if args.model_dir else Path(args.config).resolve().parent
    if args.test:
        return _smoke_test(config, model_dir)
    storage = open_storage(args.storage)
    experiment_id = create_experiment(config, model_dir, storage)
    experiment = storage.get_experiment(experiment_id)
    print(f"experiment {experiment_id} created; its results go to {experiment.experiment_dir} "
          f"(storage {storage.shown_url})", flush=True)
    _print_dashboard_url(storage.url, experiment_id, same_storage=bool(args.storage))
    if args.detach:
        pid = run_detached(storage, experiment_id)
        print(f"experiment {experiment_id} runs in the background (process {pid}, log "
              f"{experiment.experiment_dir}/controller.log); follow it with `{hpt_command()} experiment describe {experiment_id}`")
        return 0
    return _run_controller(storage, experiment_id, args.quiet)


def _print_dashboard_url(storage_url: str, experiment_id: int, same_storage: bool) -> None:
    """The running dashboard's page of the experiment, or how to start one."""
    import importlib.util

    from hpt_core.dashboard.registry import running_dashboard_url

    url = running_dashboard_url(storage_url)
    if url is not None:
        print(f"watch it in the dashboard: {url}#/experiments/{experiment_id}", flush=True)
        return
    install = "" if importlib.util.find_spec("fastapi") else "pip install -e '.[dashboard]', then "
    storage = " with the same --storage" if same_storage else ""
    print(f"web dashboard: {install}run `{hpt_command()} dashboard`{storage} and open "
          f"http://127.0.0.1:8080/#/experiments/{experiment_id}", flush=True)


def _dashboard(args: argparse.Namespace) -> int:
    import os

    from hpt_core.dashboard.server import TOKEN_VARIABLE, is_loopback, serve
    from hpt_core.storage import default_storage_url

    storage_url = args.storage or default_storage_url()
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    access = "pause, activate and cancel need the token" if token else "read-only"
    if not is_loopback(args.host):
        access = "every request needs the token: open /?token=<token> once in a browser"
    serve(storage_url, args.host, args.port, token,
          announce=lambda url: print(f"hpt dashboard at {url} ({access}; Ctrl-C stops it)", flush=True))
    return 0


def _smoke_test(config: hpt_core.ExperimentConfig, model_dir: Path) -> int:
    from hpt_core.smoke import smoke_test

    print(f"testing {config.name or model_dir.name}: one short trial, then one that restores its checkpoint", flush=True)
    findings = smoke_test(config, model_dir)
    for finding in findings:
        print(finding)
    passed = all(finding.passed for finding in findings)
    print("the experiment is ready to run" if passed else "fix the problems above before running the experiment")
    return 0 if passed else 1


def _experiment_resume(args: argparse.Namespace) -> int:
    from hpt_core.runner import check_resumable
    from hpt_core.storage import open_storage

    storage = open_storage(args.storage)
    check_resumable(storage, args.experiment_id)
    print(f"resuming experiment {args.experiment_id}", flush=True)
    return _run_controller(storage, args.experiment_id, args.quiet)


def _experiment_continue(args: argparse.Namespace) -> int:
    from hpt_core.runner import controller_alive
    from hpt_core.storage import open_storage

    storage = open_storage(args.storage)
    experiment = storage.get_experiment(args.experiment_id)
    if experiment.state in ("ACTIVE", "PAUSED") or controller_alive(storage, args.experiment_id):
        raise ConfigError([hpt_core.Problem("experiment", f"experiment {args.experiment_id} has not ended; "
                                            "continue extends a finished search", experiment.state)])
    searcher = hpt_core.create_searcher(experiment.config)
    if not searcher.extensible:
        raise ConfigError([hpt_core.Problem("searcher.name", "this search method has a fixed set of trials and "
                                            "cannot be continued; random and adaptive_asha can", searcher.name)])
    if args.max_trials < 1:
        raise ConfigError([hpt_core.Problem("--max-trials", "must be at least 1", args.max_trials)])
    storage.set_experiment_state(args.experiment_id, "ACTIVE")
    print(f"continuing experiment {args.experiment_id} with {args.max_trials} more trials", flush=True)
    return _run_controller(storage, args.experiment_id, args.quiet, additional_trials=args.max_trials)


def _run_controller(storage: object, experiment_id: int, quiet: bool, additional_trials: int = 0) -> int:
    from hpt_core.controller import ControllerFailed
    from hpt_core.ownership import LeaseLost
    from hpt_core.progress import ProgressView
    from hpt_core.runner import build_controller, run_in_foreground

    controller = build_controller(storage, experiment_id)
    controller.add_trials(additional_trials)
    view = ProgressView(experiment_id, controller.config.searcher.metric, quiet=quiet)
    controller.on_tick = view.update
    for notice in controller.executor.notices():
        print(notice, flush=True)
    try:
        state = run_in_foreground(controller)
    except (ControllerFailed, LeaseLost) as failure:
        view.close(controller)
        print(f"error: {failure}", file=sys.stderr)
        return 1
    view.close(controller)
    _print_outcome(storage, experiment_id, state)
    return 0 if state == "COMPLETED" else 1


def _experiment_delete(args: argparse.Namespace) -> int:
    from hpt_core.runner import delete_experiment
    from hpt_core.storage import open_storage

    storage = open_storage(args.storage)
    experiment = storage.get_experiment(args.experiment_id)
    if not args.yes:
        trials = len(storage.list_trials(args.experiment_id))
        question = (f"delete experiment {args.experiment_id} {experiment.name!r} ({experiment.state}, {trials} trials) "
                    f"with its checkpoints and logs in {experiment.experiment_dir}? [y/N] ")
        if not sys.stdin.isatty():
            raise ConfigError([hpt_core.Problem("--yes", "deleting without a terminal to confirm needs --yes")])
        if input(question).strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    removed = delete_experiment(storage, args.experiment_id)
    print(f"experiment {args.experiment_id} deleted" + "".join(f"; removed {folder}" for folder in removed))
    return 0


def _experiment_set_state(args: argparse.Namespace) -> int:
    """pause, activate and cancel: the running controller follows the state in storage."""
    from hpt_core.runner import ActionRefused, change_state, controller_alive
    from hpt_core.storage import open_storage

    storage = open_storage(args.storage)
    try:
        wanted = change_state(storage, args.experiment_id, args.experiment_command)
    except ActionRefused as refused:
        raise ConfigError([hpt_core.Problem("experiment", str(refused),
                                            storage.get_experiment(args.experiment_id).state)]) from None
    running = controller_alive(storage, args.experiment_id)
    note = "" if running else (" (no controller is running it" +
                               ("" if wanted == "CANCELED" else f"; `{hpt_command()} experiment resume {args.experiment_id}` "
                                "runs it") + ")")
    print(f"experiment {args.experiment_id} is {wanted}{note}")
    return 0


def _print_outcome(storage: object, experiment_id: int, state: str) -> None:
    from hpt_core.describe import describe_experiment
    from hpt_core.space import flatten

    description = describe_experiment(storage, experiment_id)
    print(f"experiment {experiment_id} {state}; results in {description['experiment_dir']}")
    best = next((trial for trial in description["trials"] if trial["id"] == description["best_trial"]), None)
    if best is not None:
        hparams = ", ".join(f"{name}={value}" for name, value in flatten(best["hparams"]).items())
        validation = best["best_validation"]
        unit = "epochs" if description["length_unit"] != "batches" else "batches"
        count = validation[unit]
        at = f"{count} {unit if count != 1 else unit.removesuffix('es' if unit == 'batches' else 's')}"
        print(f"best trial {trial_label(best['id'], best['request_id'], experiment_id)}: {description['metric']} "
              f"{validation['value']:.6g} at {at} ({hparams})")
    print(f"every trial: {hpt_command()} experiment describe {experiment_id}", flush=True)


def hpt_command() -> str:
    """How to run this hpt from here: `hpt` when it is on PATH, else the path of the `hpt` beside the running
    Python (`.venv/bin/hpt` after the README's first command, which does not activate the venv)."""
    beside = Path(sys.executable).parent / "hpt"
    on_path = shutil.which("hpt")
    if not beside.exists() or (on_path is not None and Path(on_path).resolve() == beside.resolve()):
        return "hpt"
    try:
        return str(beside.relative_to(Path.cwd()))
    except ValueError:
        return str(beside)


def _experiment_describe(args: argparse.Namespace) -> int:
    from hpt_core.describe import describe_experiment, render_description
    from hpt_core.storage import open_storage

    description = describe_experiment(open_storage(args.storage), args.experiment_id)
    if args.json:
        print(json.dumps(description, indent=2, default=str))
    else:
        render_description(description, Console(width=max(Console().width, 160), markup=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpt", description="Hyperparameter search for PyTorch Lightning, Keras and plain Python."
    )
    parser.add_argument("--version", action="version", version=f"hpt {hpt_core.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    config = commands.add_parser("config", help="work with experiment files")
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND")
    overrides = argparse.ArgumentParser(add_help=False)
    overrides.add_argument("--config", dest="config", action="append", metavar="KEY=VALUE",
                           help="override a field of the file (dotted KEY, YAML VALUE); repeatable")
    check = config_commands.add_parser("check", parents=[overrides],
                                       help="validate an experiment file and print it normalised")
    check.add_argument("file", help="the experiment file (YAML)")
    check.set_defaults(handler=_config_check)

    preview = commands.add_parser("preview", parents=[overrides],
                                  help="show how many trials train to which length, without running")
    preview.add_argument("file", help="the experiment file (YAML)")
    preview.set_defaults(handler=_preview)

    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument("--storage", metavar="URL", default=None,
                         help="database URL (default: $HPT_STORAGE, else SQLite under $HPT_HOME, else ~/.hpt)")
    experiment = commands.add_parser("experiment", help="run and inspect experiments")
    experiment_commands = experiment.add_subparsers(dest="experiment_command", metavar="COMMAND")
    create = experiment_commands.add_parser("create", parents=[storage], help="run an experiment in the foreground")
    create.add_argument("config", help="the experiment file (YAML)")
    create.add_argument("--config", dest="overrides", action="append", metavar="KEY=VALUE",
                        help="override a field of the file (dotted KEY, YAML VALUE); repeatable")
    create.add_argument("model_dir", nargs="?", help="the directory holding the entrypoint (default: the file's)")
    create.add_argument("--quiet", action="store_true", help="print only the start and the end")
    create.add_argument("--detach", action="store_true", help="run the controller in the background")
    create.add_argument("--executor", default=None, metavar="NAME",
                        help="where trials run: an installed executor, e.g. local or ray (sets executor.type; "
                             "ray: see docs/ray.md)")
    create.add_argument("--test", action="store_true",
                        help="run one short trial (and a checkpoint restore) and report what would break")
    create.set_defaults(handler=_experiment_create)
    resume = experiment_commands.add_parser("resume", parents=[storage],
                                            help="continue an experiment whose controller stopped (e.g. killed)")
    resume.add_argument("experiment_id", type=int)
    resume.add_argument("--quiet", action="store_true", help="print only the start and the end")
    resume.set_defaults(handler=_experiment_resume)
    extend = experiment_commands.add_parser("continue", parents=[storage],
                                            help="extend a finished search with more trials")
    extend.add_argument("experiment_id", type=int)
    extend.add_argument("--max-trials", type=int, required=True, metavar="N", help="how many trials to add")
    extend.add_argument("--quiet", action="store_true", help="print only the start and the end")
    extend.set_defaults(handler=_experiment_continue)
    delete = experiment_commands.add_parser("delete", parents=[storage],
                                            help="delete an experiment with its checkpoints and logs")
    delete.add_argument("experiment_id", type=int)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(handler=_experiment_delete)
    for name, text in (("pause", "pause: running trials checkpoint and wait"), ("activate", "continue a paused one"),
                       ("cancel", "end every trial gracefully; the experiment is CANCELED")):
        command = experiment_commands.add_parser(name, parents=[storage], help=text)
        command.add_argument("experiment_id", type=int)
        command.set_defaults(handler=_experiment_set_state)
    describe = experiment_commands.add_parser("describe", parents=[storage], help="state, trials and best trial")
    describe.add_argument("experiment_id", type=int)
    describe.add_argument("--json", action="store_true", help="print JSON instead of tables")
    describe.set_defaults(handler=_experiment_describe)
    dashboard = commands.add_parser("dashboard", parents=[storage], help="serve the web dashboard over the storage")
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="address to listen on (default 127.0.0.1; any other needs a token)")
    dashboard.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    dashboard.add_argument("--token", default=None,
                           help="token that pause, activate and cancel require (default: $HPT_DASHBOARD_TOKEN)")
    dashboard.set_defaults(handler=_dashboard)
    from hpt_core.commands.results import add_result_commands
    from hpt_core.simulator.cli import add_simulate_command

    add_result_commands(commands, experiment_commands, storage)
    add_simulate_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from hpt_core.ownership import ExperimentOwned

    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return handler(args)
    except (ConfigError, ExperimentOwned) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"error: no such file: {error.filename}", file=sys.stderr)
        return 2
    except LookupError as error:
        print(f"error: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
