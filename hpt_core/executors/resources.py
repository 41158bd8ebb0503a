"""A machine's compute for local trials: its GPUs, handed out by index, and its CPU cores, shared out as threads."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Iterable, Mapping, Sequence

#: Variables through which numerical libraries size their thread pools (OpenMP is what torch and
#: Lightning read; MKL, OpenBLAS, BLIS, Accelerate, numexpr and TensorFlow read their own).
THREAD_LIMIT_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)

_NVIDIA_SMI_TIMEOUT_SECONDS = 20.0


def detect_gpus(environ: Mapping[str, str]) -> list[str]:
    """The GPUs trials may use, as CUDA_VISIBLE_DEVICES entries; empty on a machine without GPUs.

    A `CUDA_VISIBLE_DEVICES` in `environ` decides (as it does for CUDA: entries up to the first
    negative index); otherwise `nvidia-smi -L`, if it is on `environ`'s PATH, counts the GPUs.

    >>> detect_gpus({"CUDA_VISIBLE_DEVICES": "2,3"})
    ['2', '3']
    >>> detect_gpus({"CUDA_VISIBLE_DEVICES": ""})
    []
    """
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return _visible_devices(visible)
    nvidia_smi = shutil.which("nvidia-smi", path=environ.get("PATH", os.defpath))
    if nvidia_smi is None:
        return []
    try:
        listing = subprocess.run(
            [nvidia_smi, "-L"], capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if listing.returncode != 0:
        return []
    count = sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))
    return [str(index) for index in range(count)]


def _visible_devices(visible: str) -> list[str]:
    devices = []
    for entry in (item.strip() for item in visible.split(",")):
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return devices


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_trial(cores: int, concurrency_limits: Iterable[int]) -> int:
    """Threads each trial gets so that the trials running at once share `cores` without oversubscribing.

    `concurrency_limits` are upper bounds on how many trials run at once (0 = no bound); with no
    bound at all, as many trials as cores are assumed.

    >>> threads_per_trial(8, [3, 0])
    2
    >>> threads_per_trial(8, [0])
    1
    """
    bounds = [limit for limit in concurrency_limits if limit > 0]
    at_once = min(bounds) if bounds else cores
    return max(1, cores // max(1, at_once))


def thread_limits(threads: int) -> dict[str, str]:
    """Every thread-pool variable in `THREAD_LIMIT_VARIABLES`, set to `threads`."""
    return {variable: str(threads) for variable in THREAD_LIMIT_VARIABLES}


class GpuPool:
    """GPUs handed out to trials, each to one trial at a time, lowest position first."""

    def __init__(self, devices: Sequence[str]) -> None:
        if len(set(devices)) != len(devices):
            raise ValueError(f"GPU ids must be distinct, but got {list(devices)}")
        self.devices = tuple(devices)
        self._free = list(self.devices)

    @property
    def free(self) -> int:
        """How many GPUs no trial holds now."""
        return len(self._free)

    def acquire(self, count: int) -> tuple[str, ...] | None:
        """`count` free GPUs, now held by the caller; None (and nothing held) when fewer are free."""
        if count > len(self._free):
            return None
        taken, self._free = tuple(self._free[:count]), self._free[count:]
        return taken

    def release(self, devices: Iterable[str]) -> None:
        """Give back GPUs from `acquire`."""
        self._free = sorted({*self._free, *devices}, key=self.devices.index)
