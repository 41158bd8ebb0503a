"""A trial's working directory: a link farm of the model directory.

Directories are recreated and files symlinked, so a trial reads the user's code and data where
they are, while the files it creates (`lightning_logs/`, caches, outputs) land in its own
directory: concurrent trials never collide on them and the model directory gains nothing.
(A trial that opens one of the user's existing files for writing writes through its link.)
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

#: Names never mirrored into a trial's working directory.
SKIPPED_NAMES = frozenset({".git", "__pycache__", ".venv"})


@dataclass(frozen=True)
class ModelListing:
    """What a link farm of a model directory holds: each directory to recreate and each file (or symlinked
    directory) to link, relative to the model directory."""

    source: Path
    directories: tuple[Path, ...]
    links: tuple[Path, ...]


def list_model_dir(model_dir: Path, exclude: Collection[Path] = ()) -> ModelListing:
    """Walk `model_dir` once, leaving out `SKIPPED_NAMES` and the `exclude` directories; symlinked directories
    are linked, not entered."""
    source = model_dir.resolve()
    excluded = {path.resolve() for path in exclude}
    directories, links = [], []
    for directory, subdirectories, files in os.walk(source):
        here = Path(directory)
        directories.append(here.relative_to(source))
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
        links.extend(here.relative_to(source) / name for name in files if name not in SKIPPED_NAMES)
    return ModelListing(source, tuple(directories), tuple(links))


def build_link_farm(listing: ModelListing, workdir: Path) -> None:
    """Create `workdir` as a link farm of the listed model directory. The farm is built beside `workdir` and
    renamed into place, so a `workdir` that exists is always complete."""
    staging = workdir.with_name(f"{workdir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for directory in listing.directories:
        (staging / directory).mkdir(parents=True, exist_ok=True)
    for link in listing.links:
        os.symlink(listing.source / link, staging / link)
    os.rename(staging, workdir)


def make_link_farm(model_dir: Path, workdir: Path, exclude: Collection[Path] = ()) -> None:
    """Create `workdir` as a link farm of `model_dir` as it is now (see `list_model_dir`)."""
    build_link_farm(list_model_dir(model_dir, exclude), workdir)
