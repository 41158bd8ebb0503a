"""hpt: hyperparameter search for PyTorch Lightning, Keras and plain Python, with Determined's semantics.

A trial process imports only what it needs (`init` and the context, the errors); the rest of the public
names load on first use, so `import hpt_core` in a trial stays light (docs/benchmarks.md, trial import).
"""

from importlib import import_module

from hpt_core.context import Context, LocalContext, Restore, TrialContext, init
from hpt_core.errors import ConfigError, InvalidHP, Problem

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

_LOADED_ON_FIRST_USE = {
    "Experiment": "hpt_core.results",
    "list_experiments": "hpt_core.results",
    "ExperimentConfig": "hpt_core.config",
    "Space": "hpt_core.space",
    "create_searcher": "hpt_core.plugins",
    "hookimpl": "hpt_core.plugins",
    "load_config": "hpt_core.plugins",
}


def __getattr__(name: str) -> object:
    """The controller-side names load on first use, so trial processes stay light."""
    if name in _LOADED_ON_FIRST_USE:
        return getattr(import_module(_LOADED_ON_FIRST_USE[name]), name)
    raise AttributeError(f"module 'hpt_core' has no attribute {name!r}")
