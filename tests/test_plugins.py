"""The plugin surface: built-ins and installed plugins register through the same hooks."""

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path

import pytest

from hpt_core import ConfigError, events, hookimpl, load_config
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


# --- event hooks: pluggy's order, tryfirst/trylast, wrappers; one failure stops no other -------------


def plugin(name, calls, fails=False, **marks):
    """A plugin observing `hpt_trial_ended` (with pluggy's `marks`) that appends `name` to `calls`, then raises
    if it `fails`."""

    @hookimpl(**marks)
    def hpt_trial_ended(experiment_id, trial_id):
        calls.append(name)
        if fails:
            raise RuntimeError(f"{name} is broken")

    return types.SimpleNamespace(hpt_trial_ended=hpt_trial_ended)


class NewStyleWrapper:
    def __init__(self, calls):
        self.calls = calls

    @hookimpl(wrapper=True)
    def hpt_trial_ended(self, trial_id):
        self.calls.append(f"new-style wrapper before trial {trial_id}")
        result = yield
        self.calls.append("new-style wrapper after")
        return result


class OldStyleWrapper:
    def __init__(self, calls):
        self.calls = calls

    @hookimpl(hookwrapper=True, tryfirst=True)
    def hpt_trial_ended(self):
        self.calls.append("old-style wrapper before")
        outcome = yield
        self.calls.append(f"old-style wrapper after, {outcome.exception is None}")


@pytest.fixture
def registered():
    """Register plugins on hpt's plugin manager for the test's time."""
    manager, added = get_plugin_manager(), []

    def register(*plugins):
        for index, instance in enumerate(plugins):
            added.append(manager.register(instance, name=f"test plugin {len(added)}-{index}"))

    yield register
    for name in added:
        manager.unregister(name=name)


def test_notify_calls_in_pluggys_order_inside_the_wrappers_and_a_failure_stops_no_other(registered, caplog):
    calls = []
    registered(plugin("first registered", calls), plugin("tryfirst", calls, tryfirst=True),
               plugin("trylast", calls, trylast=True), plugin("broken", calls, fails=True),
               plugin("last registered", calls), NewStyleWrapper(calls), OldStyleWrapper(calls))
    notify("hpt_trial_ended", experiment_id=1, trial_id=7, state="COMPLETED", reason="completed its length")
    assert calls == ["old-style wrapper before", "new-style wrapper before trial 7", "tryfirst", "last registered",
                     "broken", "first registered", "trylast", "new-style wrapper after",
                     "old-style wrapper after, True"]
    (failure,) = [record for record in caplog.records if record.levelname == "ERROR"]
    assert "failed in hpt_trial_ended" in failure.getMessage() and "broken is broken" in failure.exc_text


def test_a_wrapper_that_fails_before_its_yield_is_logged_and_the_observers_still_run(registered, caplog):
    calls = []

    class BrokenWrapper:
        @hookimpl(wrapper=True)
        def hpt_trial_ended(self):
            raise ValueError("broken wrapper")
            yield  # a generator, as a wrapper must be, that never gets to its yield

    registered(plugin("observer", calls), BrokenWrapper())
    notify("hpt_trial_ended", experiment_id=1, trial_id=7, state="COMPLETED", reason="completed its length")
    assert calls == ["observer"]
    assert any("broken wrapper" in (record.exc_text or "") for record in caplog.records)


def test_the_event_worker_delivers_in_order_says_when_it_falls_behind_and_drains_on_close(monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger=events.__name__)  # whatever level another library left the root at
    monkeypatch.setattr(events, "BACKLOG_NOTICE", 3)
    released, delivered = threading.Event(), []

    def slow_delivery(hook_name, kwargs):
        released.wait()
        delivered.append((hook_name, kwargs["trial_id"]))

    worker = events.EventWorker(slow_delivery, "test events")
    for trial_id in range(5):
        worker.put("hpt_trial_ended", {"trial_id": trial_id})  # returns although nothing is delivered yet
    assert delivered == []
    assert any("events wait for them; the trials go on" in record.getMessage() for record in caplog.records)
    released.set()
    worker.close()
    assert delivered == [("hpt_trial_ended", trial_id) for trial_id in range(5)]
