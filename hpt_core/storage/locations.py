"""Where hpt keeps its database and experiment folders unless told otherwise."""

from __future__ import annotations

import os
from pathlib import Path

from hpt_core.private_files import private_folder

HOME_VARIABLE = "HPT_HOME"
STORAGE_VARIABLE = "HPT_STORAGE"


def hpt_home() -> Path:
    """`$HPT_HOME`, or `~/.hpt`."""
    configured = os.environ.get(HOME_VARIABLE)
    return Path(configured).expanduser() if configured else Path.home() / ".hpt"


def default_storage_url() -> str:
    """`$HPT_STORAGE`, or a SQLite file `hpt.db` in `hpt_home()` (whose folder is created, its owner's only)."""
    configured = os.environ.get(STORAGE_VARIABLE)
    if configured:
        return configured
    home = private_folder(hpt_home())
    return f"sqlite:///{home.resolve() / 'hpt.db'}"


def experiment_dir(home: Path | str, experiment_uuid: str) -> Path:
    """The folder of one experiment's files: `<home>/experiments/<experiment uuid>` (unique even when two
    databases share one home; experiments made before hpt had uuids keep `<home>/experiments/<id>`)."""
    return Path(home) / "experiments" / experiment_uuid


def trial_log(experiment_directory: Path | str, trial_id: int) -> Path:
    """The file of a trial's output, every attempt appended: `<experiment dir>/trials/<trial_id>/output.log`."""
    return Path(experiment_directory) / "trials" / str(trial_id) / "output.log"


def channel_file(experiment_directory: Path | str) -> Path:
    """Where the experiment's current controller writes its channel's address, for trials to find it again."""
    return Path(experiment_directory) / "channel.json"


def notebook_folders(home: Path | str) -> Path:
    """Where `hpt_core.notebook.run` writes each run's trial function: `<home>/notebook/<uuid hex>`."""
    return Path(home) / "notebook"
