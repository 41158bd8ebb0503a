"""hpt: hyperparameter search for PyTorch Lightning, Keras and plain Python, with Determined's semantics."""

from hpt_core.config import ExperimentConfig
from hpt_core.context import Context, LocalContext, Restore, TrialContext, init
from hpt_core.errors import ConfigError, InvalidHP, Problem
from hpt_core.plugins import create_searcher, hookimpl, load_config
from hpt_core.space import Space

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Context",
    "LocalContext",
    "Restore",
    "TrialContext",
    "init",
    "ExperimentConfig",
    "InvalidHP",
    "Problem",
    "Space",
    "__version__",
    "create_searcher",
    "hookimpl",
    "load_config",
]
