"""Files and folders only their owner can read: hpt's home, its database, logs and the channel's address.

They hold secrets (the experiment's, in the database) and what trials print; other users of the
machine see none of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(path: str | Path) -> Path:
    """Create `path` (and missing parents) readable by its owner only; an existing folder is left as it is."""
    folder = Path(path)
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    return folder


def open_private(path: str | Path) -> BinaryIO:
    """`path` opened for appending bytes (its `name` is the path), created readable and writable by its owner only."""
    return open(path, "ab", opener=lambda name, flags: os.open(name, flags, FILE_MODE))


def create_private(path: str | Path) -> None:
    """Create the empty file `path` with its owner's permissions only, unless it exists."""
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, FILE_MODE))


def write_private(path: str | Path, content: str) -> None:
    """Replace `path`'s content at once (a reader sees the old or the new content), readable by its owner only."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(descriptor, "w") as file:
        file.write(content)
    os.replace(partial, path)
