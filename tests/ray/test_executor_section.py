"""`executor:` in the experiment file and `--executor` on the command line: validated like the rest of the file,
Ray imported only when used, and a model directory too big for Ray refused before anything runs."""

import subprocess
import sys

import pytest
from real_experiments import ExperimentFolder

import hpt_core
from hpt_core.runner import build_controller

SEARCHER = {"name": "single", "metric": "val_loss", "max_length": {"epochs": 1}}


def config_with(executor):
    return hpt_core.load_config({"entrypoint": f"{sys.executable} trial.py", "searcher": SEARCHER,
                                 "executor": executor})


def test_trials_run_locally_unless_the_file_says_otherwise():
    config = hpt_core.load_config({"searcher": SEARCHER})
    assert config.executor.type == "local"
    assert config_with({"type": "ray", "address": "ray://head:10001"}).executor.address == "ray://head:10001"


@pytest.mark.parametrize("executor, path, given, allowed", [
    ({"type": "slurm"}, "executor.type", "slurm", "unknown executor; installed: local, ray"),
    ({"type": "ray", "address": "http://head:8265"}, "executor.address", "http://head:8265", "ray://HOST:PORT"),
    ({"type": "ray", "cpus_per_trial": -1}, "executor.cpus_per_trial", -1, "greater than or equal to 0"),
    ({"type": "ray", "custom_resources": {"big_memory": 0}}, "executor.custom_resources.big_memory", 0,
     "greater than 0"),
    ({"type": "ray", "adress": "auto"}, "executor.adress", "adress", "did you mean 'address'"),
    ({"address": "auto"}, "executor.address", "address", "unknown field; allowed: preload, type"),
])
def test_a_bad_executor_section_is_an_error_naming_the_field_the_value_and_what_is_allowed(executor, path, given,
                                                                                           allowed):
    with pytest.raises(hpt_core.ConfigError) as raised:
        config_with(executor)
    (problem,) = raised.value.problems
    assert problem.path == path and allowed in problem.message
    assert f"{path}: {problem.message}" in str(raised.value) and str(given) in str(raised.value)


def test_importing_hpt_and_its_ray_executor_imports_neither_ray_nor_fsspec():
    code = ("import sys, hpt_core, hpt_core.runner, hpt_core.executors.ray, hpt_core.checkpoint_storage\n"
            "print(sorted(name for name in ('ray', 'fsspec', 's3fs') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_model_directory_over_rays_limit_is_refused_naming_its_largest_file(model_dir, tmp_path):
    with open(model_dir / "dataset.bin", "wb") as data:
        data.truncate(501 * 2**20)  # sparse: its size counts, the disk holds nothing
    experiments = ExperimentFolder(tmp_path, model_dir)
    experiment_id = experiments.create(SEARCHER, {}, executor={"type": "ray"})
    with pytest.raises(hpt_core.ConfigError) as raised, experiments.storage() as storage:
        build_controller(storage, experiment_id)
    (problem,) = raised.value.problems
    assert problem.path == "model_dir" and problem.value == str(model_dir)
    assert "501 MiB, over the 500 MiB" in problem.message and "dataset.bin (501 MiB)" in problem.message


def test_experiment_create_with_executor_ray_runs_the_trials_on_the_cluster(ray_cluster, model_dir, tmp_path):
    experiments = ExperimentFolder(tmp_path, model_dir, variables={"EPOCH_SECONDS": "0.1"})
    path = experiments.write_file("exp", SEARCHER, {}, directory=model_dir)
    result = experiments.hpt("experiment", "create", str(path), "--executor", "ray",
                             "--config", f"executor.address={ray_cluster.address}", "--quiet", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "experiment 1 COMPLETED" in result.stdout
    with experiments.storage() as storage:
        stored = storage.get_experiment(1).config
    assert stored["executor"]["type"] == "ray"
    nodes = {entry["node"] for entry in experiments.log()}
    assert len(nodes) == 1 and nodes <= set(ray_cluster.node_ids.values())
