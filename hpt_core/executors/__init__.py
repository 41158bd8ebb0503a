"""Where trials run: `LocalExecutor` (processes on this machine, the default) or `RayExecutor` (a Ray
cluster), behind the `Executor` interface.

The controller drives an executor with `LaunchSpec`s and reads back `TrialExit`s; executors are
registered by name through the `hpt_executors` plugin hook.
"""

from hpt_core.executors.base import Executor, ExecutorError, LaunchSpec, ResourcesUnavailable, TrialExit
from hpt_core.executors.local import NO_GPUS_NOTICE, LocalExecutor
from hpt_core.executors.ray import RayExecutor

__all__ = [
    "NO_GPUS_NOTICE",
    "Executor",
    "ExecutorError",
    "LaunchSpec",
    "LocalExecutor",
    "RayExecutor",
    "ResourcesUnavailable",
    "TrialExit",
]
