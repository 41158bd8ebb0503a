"""`executor.preload` in the experiment file: validated, and what the local executor's interpreters import."""

import pytest

import hpt_core
from hpt_core.errors import ConfigError

BASE = {"entrypoint": "python trial.py", "hyperparameters": {},
        "searcher": {"name": "single", "metric": "loss", "max_length": 1}}


def config_with(executor):
    return hpt_core.load_config({**BASE, "executor": executor})


def test_preload_names_the_modules_to_import():
    assert config_with({"preload": ["torch", "lightning.pytorch"]}).executor.preload == ["torch", "lightning.pytorch"]
    assert config_with({"type": "local"}).executor.preload is None


@pytest.mark.parametrize("executor, message", [
    ({"preload": "torch"}, "executor.preload: must be a list"),
    ({"preload": ["torch", "not a module"]}, "executor.preload.1: must be a Python module name to import"),
    ({"type": "ray", "preload": ["torch"]}, "executor.preload: unknown field; allowed: address, controller_host"),
])
def test_a_preload_that_cannot_be_used_is_refused_with_the_field_and_value(executor, message):
    with pytest.raises(ConfigError, match=message):
        config_with(executor)
