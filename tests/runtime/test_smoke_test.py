"""`hpt experiment create --test` passes a good script and says what breaks in a bad one."""

import pytest
from real_experiments import RUNTIME_MODEL, ExperimentFolder


def smoke_test(tmp_path, behaviour):
    experiments = ExperimentFolder(tmp_path)
    path = experiments.write_file(
        "exp", {"name": "adaptive_asha", "max_length": {"epochs": 8}, "max_trials": 8},
        {"behaviour": behaviour, "quality": {"type": "double", "minval": 0.1, "maxval": 2.0}})
    return experiments.hpt("experiment", "create", "--test", str(path), str(RUNTIME_MODEL))


def test_a_good_script_passes_and_leaves_the_users_store_untouched(tmp_path):
    result = smoke_test(tmp_path, "normal")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("[ok  ]") == 3 and "ready to run" in result.stdout
    assert not (tmp_path / "home").exists()


def test_a_script_that_never_reports_the_metric_is_found(tmp_path):
    result = smoke_test(tmp_path, "no_metric")
    assert result.returncode == 1
    assert "[FAIL] the first configuration trains, validates and reports the searcher metric 'val_loss'" in result.stdout
    assert "'val_loss' was not reported; reported metrics: accuracy" in result.stdout


def test_a_checkpoint_that_does_not_restore_is_found(tmp_path):
    result = smoke_test(tmp_path, "bad_restore")
    assert result.returncode == 1
    assert "[ok  ] a checkpoint is saved" in result.stdout
    assert "[FAIL] a trial starts from that checkpoint and trains on" in result.stdout
    assert "RuntimeError: this script cannot load its own checkpoints" in result.stdout


@pytest.mark.parametrize("behaviour", ["invalid", "die"])
def test_an_exception_in_the_first_trial_is_found(tmp_path, behaviour):
    result = smoke_test(tmp_path, behaviour)
    assert result.returncode == 1 and "[FAIL] the first configuration" in result.stdout
