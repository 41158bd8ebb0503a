"""A trial's working directory: a link farm of the model directory.

Directories are recreated and files symlinked, so a trial reads the user's code and data where
they are, while the files it creates (`lightning_logs/`, caches, outputs) land in its own
directory: concurrent trials never collide on them and the model directory gains nothing.
(A trial that opens one of the user's existing files for writing writes through its link.)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Collection

#: Names never mirrored into a trial's working directory.
SKIPPED_NAMES = frozenset({".git", "__pycache__", ".venv"})


def make_link_farm(model_dir: Path, workdir: Path, exclude: Collection[Path] = ()) -> None:
    """Create `workdir` as a link farm of `model_dir`, leaving out `SKIPPED_NAMES` and the `exclude` directories.

    Symlinked directories in the model directory are linked, not entered. The farm is built
    beside `workdir` and renamed into place, so a `workdir` that exists is always complete.
    """
    source = model_dir.resolve()
    excluded = {path.resolve() for path in exclude}
    staging = workdir.with_name(f"{workdir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for directory, subdirectories, files in os.walk(source):
        here = Path(directory)
        mirror = staging / here.relative_to(source)
        mirror.mkdir(parents=True, exist_ok=True)
        entered = []
        for name in subdirectories:
            path = here / name
            if name in SKIPPED_NAMES or path in excluded:
                continue
            if path.is_symlink():
                files.append(name)
            else:
                entered.append(name)
        subdirectories[:] = entered
        for name in files:
            if name not in SKIPPED_NAMES:
                os.symlink(here / name, mirror / name)
    os.rename(staging, workdir)
