"""hpt: hyperparameter search for PyTorch Lightning, Keras and plain Python, with Determined's semantics."""

from hpt_core.config import ExperimentConfig
from hpt_core.context import Context, LocalContext, Restore, TrialContext, init
from hpt_core.errors import ConfigError, InvalidHP, Problem
from hpt_core.plugins import create_searcher, hookimpl, load_config
from hpt_core.space import Space

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Experiment",
    "Context",
    "LocalContext",
    "Restore",
    "TrialContext",
    "init",
    "list_experiments",
    "ExperimentConfig",
    "InvalidHP",
    "Problem",
    "Space",
    "__version__",
    "create_searcher",
    "hookimpl",
    "load_config",
]


def __getattr__(name: str) -> object:
    """`Experiment` and `list_experiments` load on first use, so trial processes stay light."""
    if name in ("Experiment", "list_experiments"):
        from hpt_core import results

        return getattr(results, name)
    raise AttributeError(f"module 'hpt_core' has no attribute {name!r}")
