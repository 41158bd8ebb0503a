"""The plugin surface: built-ins and installed plugins register through the same hooks."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hpt_core import ConfigError, load_config
from hpt_core.plugins import get_plugin_manager, notify, search_methods

PLUGIN_DIR = Path(__file__).parent / "plugin_fixture"


def run_with_plugin_installed(code, tmp_path):
    """Run `code` in a fresh interpreter that sees the fixture plugin as an installed distribution."""
    env = {**os.environ, "PYTHONPATH": str(PLUGIN_DIR), "HPT_PLUGIN_LOG": str(tmp_path / "log.jsonl")}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_builtin_search_methods_register_through_the_hook():
    assert set(search_methods()) >= {"single", "grid", "random", "adaptive_asha", "pbt", "custom"}
    assert "hpt-builtin-search-methods" in {name for name, _ in get_plugin_manager().list_name_plugin()}


def test_an_installed_plugin_is_found_and_its_search_method_validated_like_a_builtin(tmp_path):
    result = run_with_plugin_installed(
        """
        import hpt_core
        from hpt_core.searchers import Create
        config = hpt_core.load_config({"searcher": {"name": "every_other", "metric": "loss", "tries": 3},
                                        "hyperparameters": {"x": {"type": "int", "minval": 0, "maxval": 9}}})
        searcher = hpt_core.create_searcher(config)
        ops = searcher.initial_operations()
        print(type(searcher).__name__, config.searcher.tries, [type(op).__name__ for op in ops])
        try:
            hpt_core.load_config({"searcher": {"name": "every_other", "metric": "loss", "triess": 3}})
        except hpt_core.ConfigError as error:
            print(error.problems[0].path, "|", error.problems[0].message)
        """,
        tmp_path,
    )
    first, second = result.stdout.splitlines()
    assert first == "EveryOther 3 ['Create', 'ValidateAfter']"
    assert second.startswith("searcher.triess | unknown field") and "did you mean 'tries'" in second


def test_a_failing_observer_is_logged_and_does_not_stop_the_others(tmp_path):
    result = run_with_plugin_installed(
        """
        from hpt_core.plugins import notify
        notify("hpt_experiment_started", experiment_id=1, config=None)
        notify("hpt_experiment_ended", experiment_id=1, state="COMPLETED")
        print("still running")
        """,
        tmp_path,
    )
    assert result.stdout.strip() == "still running"
    assert "the hpt plugin 'example' failed in hpt_experiment_started" in result.stderr
    assert "this observer is broken" in result.stderr
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log == [{"experiment_id": 1, "state": "COMPLETED"}]


def test_notify_with_no_observers_is_a_no_op(caplog):
    assert get_plugin_manager().hook.hpt_trial_ended.get_hookimpls() == []
    with caplog.at_level("DEBUG"):
        notify("hpt_trial_ended", experiment_id=1, trial_id=2, state="COMPLETED", reason="completed its length")
    assert caplog.records == []


def test_unknown_search_method_lists_the_registered_ones():
    with pytest.raises(ConfigError) as caught:
        load_config({"searcher": {"name": "every_other", "metric": "loss"}})
    assert "adaptive_asha" in caught.value.problems[0].message
