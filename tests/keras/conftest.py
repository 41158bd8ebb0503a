"""Keras tests: Keras is imported into the test process with its home in a temporary folder and
TensorFlow's logs silenced; trial scripts under model/ are run by experiments, never collected."""

import importlib
import importlib.util

import pytest

collect_ignore_glob = ["model/*", "conftest.py"]


@pytest.fixture(scope="session")
def keras(tmp_path_factory):
    """The keras module (TensorFlow backend), imported once with KERAS_HOME in a temporary folder."""
    if importlib.util.find_spec("keras") is None:
        pytest.skip("the Keras tests need the keras extra")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras-home")))
        patch.setenv("KERAS_BACKEND", "tensorflow")
        patch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
        patch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
        return importlib.import_module("keras")
