"""Where checkpoints live: a local folder or an fsspec URL (`s3://bucket/x`, `gs://...`), handled alike.

A checkpoint is a folder `<root>/<checkpoint id>` holding the trial's files and, written last,
`CHECKPOINT_METADATA_FILE`: a folder holding it is a complete checkpoint. In a local root the
files are written into `<id>.partial`, synced and renamed into place; under a URL they are written
to a local folder first, uploaded, and the metadata file is uploaded last. The local executor, the
Ray executor, the controller and garbage collection all use this module, so a checkpoint means the
same everywhere. fsspec (extras `ray` or `s3`) is imported only for URLs; its credentials and
endpoint come from the environment as fsspec and the filesystem's own library read them (for S3:
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, ...).

>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> with checkpoint_directory(root, "c1", {"epochs": 1}) as folder:
...     _ = (folder / "weights.txt").write_text("0.5")
>>> is_complete(join(root, "c1")), [checkpoint_id for checkpoint_id, _ in completed_checkpoints(root)]
(True, ['c1'])
>>> remove(join(root, "c1")); is_complete(join(root, "c1"))
False
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from hpt_core.channel import CHECKPOINT_METADATA_FILE

_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
PARTIAL_SUFFIX = ".partial"


def is_local_path(path: str) -> bool:
    """Whether a checkpoint path is a local folder (not a URL such as `s3://bucket/x`).

    >>> is_local_path("/data/checkpoints"), is_local_path("s3://bucket/checkpoints")
    (True, False)
    """
    return _URL_SCHEME.match(str(path)) is None


def join(root: str, name: str) -> str:
    """`root/name` for a local folder or a URL.

    >>> join("s3://bucket/exp/", "c1"), join("/tmp/exp", "c1")
    ('s3://bucket/exp/c1', '/tmp/exp/c1')
    """
    if is_local_path(root):
        return str(Path(root) / name)
    return f"{root.rstrip('/')}/{name}"


@contextlib.contextmanager
def checkpoint_directory(root: str | Path, checkpoint_id: str, description: Mapping[str, Any]) -> Iterator[Path]:
    """A local folder to write a checkpoint into; only a completed block becomes `<root>/<id>` (with its metadata)."""
    root = str(root)
    metadata = json.dumps({"checkpoint_id": checkpoint_id, **description}, default=str)
    if is_local_path(root):
        with _local_checkpoint(Path(root), checkpoint_id, metadata) as folder:
            yield folder
        return
    with tempfile.TemporaryDirectory(prefix="hpt-checkpoint-") as staging:
        folder = Path(staging) / checkpoint_id
        folder.mkdir()
        yield folder
        _upload(folder, join(root, checkpoint_id), metadata)


def is_complete(path: str) -> bool:
    """Whether the checkpoint folder at `path` holds its metadata file (so it is complete)."""
    if is_local_path(path):
        return (Path(path) / CHECKPOINT_METADATA_FILE).is_file()
    filesystem, remote = _filesystem(path)
    return filesystem.isfile(f"{remote}/{CHECKPOINT_METADATA_FILE}")


def completed_checkpoints(root: str) -> list[tuple[str, dict[str, Any]]]:
    """(folder name, metadata) of every complete checkpoint under `root`, by name; incomplete ones are removed.

    Call it only while no trial writes there (when a controller resumes): a checkpoint being written
    then is one a trial will never finish.
    """
    completed = []
    for name, path in _children(root):
        if is_complete(path):
            completed.append((name, json.loads(_read_text(join(path, CHECKPOINT_METADATA_FILE)))))
        elif name.endswith(PARTIAL_SUFFIX) or not is_local_path(root):
            remove(path)
    return completed


def local_copy(path: str, destination: Path) -> Path:
    """A local folder with the checkpoint's files: `path` itself, or a download of it into `destination`."""
    if is_local_path(path):
        return Path(path)
    if not (destination / CHECKPOINT_METADATA_FILE).is_file():
        filesystem, remote = _filesystem(path)
        shutil.rmtree(destination, ignore_errors=True)
        destination.parent.mkdir(parents=True, exist_ok=True)
        filesystem.get(f"{remote}/", f"{destination}/", recursive=True)
    return destination


def remove(path: str) -> None:
    """Remove a checkpoint folder (or a whole checkpoint root); one already gone is fine."""
    if is_local_path(path):
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)
        return
    filesystem, remote = _filesystem(path)
    with contextlib.suppress(FileNotFoundError):
        filesystem.rm(remote, recursive=True)


def exists(path: str) -> bool:
    """Whether a folder (or file) exists at `path`."""
    if is_local_path(path):
        return Path(path).exists()
    filesystem, remote = _filesystem(path)
    return filesystem.exists(remote)


@contextlib.contextmanager
def _local_checkpoint(root: Path, checkpoint_id: str, metadata: str) -> Iterator[Path]:
    partial = root / f"{checkpoint_id}{PARTIAL_SUFFIX}"
    partial.mkdir(parents=True)
    try:
        yield partial
        (partial / CHECKPOINT_METADATA_FILE).write_text(metadata)
        _fsync_tree(partial)
        partial.rename(root / checkpoint_id)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _upload(folder: Path, url: str, metadata: str) -> None:
    filesystem, remote = _filesystem(url)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            filesystem.put_file(str(path), f"{remote}/{path.relative_to(folder).as_posix()}")
    filesystem.pipe_file(f"{remote}/{CHECKPOINT_METADATA_FILE}", metadata.encode())


def _children(root: str) -> list[tuple[str, str]]:
    if is_local_path(root):
        folder = Path(root)
        return [(child.name, str(child)) for child in sorted(folder.iterdir())] if folder.is_dir() else []
    filesystem, remote = _filesystem(root)
    if not filesystem.isdir(remote):
        return []
    names = sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in filesystem.ls(remote, detail=False))
    return [(name, join(root, name)) for name in names]


def _read_text(path: str) -> str:
    if is_local_path(path):
        return Path(path).read_text()
    filesystem, remote = _filesystem(path)
    return filesystem.cat_file(remote).decode()


def _filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of `url` (a fresh instance: cached listings must not hide another node's writes)."""
    try:
        import fsspec
    except ImportError:
        raise ImportError(f"checkpoint storage at {url} needs fsspec (pip install '.[s3]' or '.[ray]', plus "
                          "the filesystem's own package, e.g. s3fs or gcsfs)") from None
    filesystem, remote = fsspec.core.url_to_fs(url, skip_instance_cache=True)
    return filesystem, remote.rstrip("/")


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
