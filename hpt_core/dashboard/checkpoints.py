"""Checkpoints for download: the experiment's best, and any checkpoint's folder as a zip streamed in pieces.

Only checkpoints that storage knows are served, from the folder storage recorded for them; nothing
from the request becomes a path. Symbolic links inside a checkpoint go into the zip as links, never
followed.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

from hpt_core.checkpoint_gc import rank_by_validation
from hpt_core.dashboard.state import DashboardState
from hpt_core.export import trial_checkpoint
from hpt_core.storage import CheckpointRecord, Storage
from hpt_core.storage import queries

CHUNK_BYTES = 1 << 20


def downloadable_checkpoint(storage: Storage, checkpoint_id: str) -> CheckpointRecord:
    """The checkpoint with this id if its files are there to download; RecordNotFound (a LookupError) otherwise."""
    checkpoint = storage.get_checkpoint(checkpoint_id)
    return trial_checkpoint(storage, checkpoint.trial_id, checkpoint.id)


def best_checkpoint(state: DashboardState, experiment_id: int) -> CheckpointRecord | None:
    """The experiment's checkpoint whose validation (the searcher metric reported at its step) is best, the older
    among equals: `Experiment.best_checkpoint`, with the validations taken from the dashboard's index."""
    record = state.experiment(experiment_id)
    checkpoints = queries.checkpoint_steps(state.storage, experiment_id)
    index = state.validations(record)
    with index.lock:
        validations = {trial_id: dict(index.trials[trial_id].series)
                       for trial_id in {checkpoint.trial_id for checkpoint in checkpoints} if trial_id in index.trials}
    ranked = rank_by_validation(checkpoints, validations, index.smaller_is_better)
    return state.storage.get_checkpoint(ranked[0].id) if ranked else None


def zip_stream(folder: Path) -> Iterator[bytes]:
    """The files under `folder` as a zip archive, produced a piece at a time (names relative to `folder`)."""
    buffer = _Pieces()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for directory, subdirectories, files in os.walk(folder):
            subdirectories.sort()
            base = Path(directory)
            for name in sorted(files) + [entry for entry in subdirectories if (base / entry).is_symlink()]:
                path = base / name
                yield from _add(archive, path, path.relative_to(folder).as_posix(), buffer)
    yield buffer.take()


def _add(archive: zipfile.ZipFile, path: Path, name: str, buffer: _Pieces) -> Iterator[bytes]:
    if path.is_symlink():
        info = zipfile.ZipInfo(name)
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, os.readlink(path))
    else:
        info = zipfile.ZipInfo.from_file(path, name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as source, archive.open(info, "w", force_zip64=True) as target:
            while chunk := source.read(CHUNK_BYTES):
                target.write(chunk)
                yield buffer.take()
    yield buffer.take()


class _Pieces:
    """A write-only stream that hands out what was written since the last `take`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data
