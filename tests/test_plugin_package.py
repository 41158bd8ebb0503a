"""A third-party plugin package (tests/plugin_fixture, installed on the trials' and the command's path) used
from the `hpt` command: its executor, sampler, search method and logger are chosen by name like hpt's own."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import yaml
from real_experiments import ExperimentFolder

PLUGIN_PATH = {"PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent / "plugin_fixture"),
                                                            os.environ.get("PYTHONPATH")]))}
INT_X = {"x": {"type": "int", "minval": 0, "maxval": 8}}


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_a_third_party_executor_and_sampler_chosen_in_the_experiment_file_run_an_experiment(tmp_path):
    experiments = ExperimentFolder(tmp_path)
    journal = tmp_path / "launches.jsonl"
    path = experiments.write_file(
        "steps", {"name": "random", "sampler": "steps", "max_length": 1, "max_trials": 5, "max_concurrent_trials": 2},
        INT_X, executor={"type": "journal", "path": str(journal)})
    result = experiments.hpt("experiment", "create", str(path), str(experiments.model_dir), "--quiet",
                             variables=PLUGIN_PATH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "COMPLETED" in result.stdout
    with experiments.storage() as storage:
        trials = sorted(storage.list_trials(1), key=lambda trial: trial.request_id)
    assert [trial.hparams["x"] for trial in trials] == [0, 2, 4, 6, 8]
    assert sorted(entry["trial_id"] for entry in read_jsonl(journal)) == sorted(trial.id for trial in trials)


def test_a_third_party_search_method_runs_on_an_executor_named_on_the_command_line_and_has_a_dashboard_view(
        tmp_path):
    experiments = ExperimentFolder(tmp_path)
    journal = tmp_path / "launches.jsonl"
    path = experiments.write_file("every_other", {"name": "every_other", "tries": 2, "max_length": 1}, INT_X)
    result = experiments.hpt("experiment", "create", str(path), str(experiments.model_dir), "--quiet",
                             "--executor", "journal", "--config", f"executor.path={journal}", variables=PLUGIN_PATH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(read_jsonl(journal)) == 2
    view = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import json
        from hpt_core.dashboard.searcher_views import searcher_view
        from hpt_core.dashboard.state import DashboardState
        from hpt_core.storage import Storage
        print(json.dumps(searcher_view(DashboardState(Storage({experiments.storage_url!r})), 1)))
        """)], env={**os.environ, **PLUGIN_PATH}, capture_output=True, text=True, check=True)
    assert json.loads(view.stdout) == {"kind": "every_other", "end_reasons": {"completed its length": 2},
                                       "closed": 2}


def test_config_check_names_the_installed_plugins_when_a_name_is_unknown(tmp_path):
    experiments = ExperimentFolder(tmp_path)
    path = tmp_path / "typos.yaml"
    path.write_text(yaml.safe_dump({
        "entrypoint": "python trial.py", "searcher": {"name": "random", "metric": "loss", "sampler": "stepz",
                                                       "max_length": 1, "max_trials": 2},
        "executor": {"type": "jurnal"}, "loggers": {"jurnal": {}}}))
    result = experiments.hpt("config", "check", str(path), variables=PLUGIN_PATH)
    assert result.returncode == 2
    assert "executor.type: unknown executor; installed: journal, local, ray; did you mean 'journal'?" in result.stderr
    assert "searcher.sampler: unknown sampler; installed: gp, random, steps, tpe; did you mean 'steps'?" in result.stderr
    assert "loggers.jurnal: unknown logger; installed: journal, mlflow, tensorboard" in result.stderr
    path.write_text(yaml.safe_dump({"searcher": {"name": "every_othr", "metric": "loss"}}))
    result = experiments.hpt("config", "check", str(path), variables=PLUGIN_PATH)
    assert "searcher.name: unknown search method" in result.stderr and "every_other" in result.stderr


def test_a_slow_and_failing_logger_never_delays_a_trial_and_still_gets_every_event(tmp_path):
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0"})
    events, release = tmp_path / "logged.jsonl", tmp_path / "server-is-back"
    path = experiments.write_file(
        "slow_logger", {"name": "single", "max_length": {"epochs": 3}}, {},
        loggers={"journal": {"path": str(events), "hold_until": str(release), "fail_on_reports": True}})
    process = experiments.start_hpt("experiment", "create", str(path), str(experiments.model_dir), "--quiet",
                                    variables=PLUGIN_PATH, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not experiments.log("exit"):  # the trial reports and ends while the logger holds its first event
        assert process.poll() is None and time.monotonic() < deadline, "the trial did not finish"
        time.sleep(0.1)
    assert not events.exists()
    release.touch()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0 and "COMPLETED" in stdout, stdout + stderr
    logged = [entry["event"] for entry in read_jsonl(events)]
    assert logged == ["experiment_started", "trial_started", *["metrics_reported"] * 4, "trial_ended",
                      "experiment_ended"]
    assert stderr.count("the hpt plugin 'journal logger of experiment 1' failed in hpt_metrics_reported") == 4
    assert "the tracking server is down" in stderr
