"""The `hpt` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

import yaml
from rich.console import Console

import hpt_core
from hpt_core.errors import ConfigError


def _config_check(args: argparse.Namespace) -> int:
    config = hpt_core.load_config(args.file)
    print(f"# {args.file}: valid; normalised with every default filled in")
    print(yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True), end="")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from hpt_core.preview import preview

    config = hpt_core.load_config(args.file)
    print(preview(hpt_core.create_searcher(config)).render())
    return 0


def _experiment_create(args: argparse.Namespace) -> int:
    from hpt_core.progress import ProgressView
    from hpt_core.runner import build_controller, create_experiment, run_in_foreground
    from hpt_core.storage import open_storage

    config = hpt_core.load_config(Path(args.config))
    model_dir = Path(args.model_dir) if args.model_dir else Path(args.config).resolve().parent
    storage = open_storage(args.storage)
    experiment_id = create_experiment(config, model_dir, storage)
    experiment = storage.get_experiment(experiment_id)
    print(f"experiment {experiment_id} created; its results go to {experiment.experiment_dir} "
          f"(storage {storage.url})", flush=True)
    view = ProgressView(experiment_id, config.searcher.metric, quiet=args.quiet)
    controller = build_controller(storage, experiment_id, on_tick=view.update)
    for notice in controller.executor.notices():
        print(notice, flush=True)
    state = run_in_foreground(controller)
    view.close(controller)
    _print_outcome(storage, experiment_id, state)
    return 0 if state == "COMPLETED" else 1


def _print_outcome(storage: object, experiment_id: int, state: str) -> None:
    from hpt_core.describe import describe_experiment
    from hpt_core.space import flatten

    description = describe_experiment(storage, experiment_id)
    print(f"experiment {experiment_id} {state}; results in {description['experiment_dir']}")
    best = next((trial for trial in description["trials"] if trial["id"] == description["best_trial"]), None)
    if best is not None:
        hparams = ", ".join(f"{name}={value}" for name, value in flatten(best["hparams"]).items())
        print(f"best trial {best['id']}: {description['metric']} {best['best_validation']['value']:.6g} "
              f"after {best['length_trained']} {description['length_unit']} ({hparams})")
    print(f"every trial: hpt experiment describe {experiment_id}", flush=True)


def _experiment_describe(args: argparse.Namespace) -> int:
    from hpt_core.describe import describe_experiment, render_description
    from hpt_core.storage import open_storage

    description = describe_experiment(open_storage(args.storage), args.experiment_id)
    if args.json:
        print(json.dumps(description, indent=2, default=str))
    else:
        render_description(description, Console(width=max(Console().width, 160)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpt", description="Hyperparameter search for PyTorch Lightning, Keras and plain Python."
    )
    parser.add_argument("--version", action="version", version=f"hpt {hpt_core.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    config = commands.add_parser("config", help="work with experiment files")
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND")
    check = config_commands.add_parser("check", help="validate an experiment file and print it normalised")
    check.add_argument("file", help="the experiment file (YAML)")
    check.set_defaults(handler=_config_check)

    preview = commands.add_parser("preview", help="show how many trials train to which length, without running")
    preview.add_argument("file", help="the experiment file (YAML)")
    preview.set_defaults(handler=_preview)

    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument("--storage", metavar="URL", default=None,
                         help="database URL (default: $HPT_STORAGE, else SQLite under $HPT_HOME, else ~/.hpt)")
    experiment = commands.add_parser("experiment", help="run and inspect experiments")
    experiment_commands = experiment.add_subparsers(dest="experiment_command", metavar="COMMAND")
    create = experiment_commands.add_parser("create", parents=[storage], help="run an experiment in the foreground")
    create.add_argument("config", help="the experiment file (YAML)")
    create.add_argument("model_dir", nargs="?", help="the directory holding the entrypoint (default: the file's)")
    create.add_argument("--quiet", action="store_true", help="print only the start and the end")
    create.set_defaults(handler=_experiment_create)
    describe = experiment_commands.add_parser("describe", parents=[storage], help="state, trials and best trial")
    describe.add_argument("experiment_id", type=int)
    describe.add_argument("--json", action="store_true", help="print JSON instead of tables")
    describe.set_defaults(handler=_experiment_describe)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return handler(args)
    except ConfigError as error:
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
