"""Experiments on a real two-node Ray cluster: where trials run, what code they run, and that the
results are those of the local executor."""

import pytest

HYPERPARAMETERS = {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}}
SEARCHERS = {
    "random": {"name": "random", "max_length": {"epochs": 2}, "max_trials": 2},
    "adaptive_asha": {"name": "adaptive_asha", "max_length": {"epochs": 2}, "max_trials": 3, "mode": "aggressive",
                      "divisor": 2},
    "pbt": {"name": "pbt", "population_size": 2, "num_rounds": 2, "length_per_round": {"epochs": 1},
            "replace_function": {"truncate_fraction": 0.5}},
}


def outcome(run):
    """Each trial's request, hyperparameters, end and validations: what must not depend on the executor."""
    return [(trial.request_id, trial.hparams, trial.state, trial.end_reason, trial.length_done,
             trial.parent_request_id, [(record.epochs, record.metrics) for record in run.metrics(trial, "validation")])
            for trial in run.trials()]


def ray_executor(cluster, **fields):
    return {"type": "ray", "address": cluster.address, **fields}


def test_trials_spread_over_both_nodes_running_the_code_ray_shipped(ray_cluster, experiment):
    run = experiment({**SEARCHERS["random"], "max_trials": 4, "max_concurrent_trials": 2}, HYPERPARAMETERS,
                     executor=ray_executor(ray_cluster))
    assert run.state == "COMPLETED"
    assert [(trial.state, trial.length_done) for trial in run.trials()] == [("COMPLETED", 2)] * 4
    starts = [entry for entry in run.log() if entry["event"] == "start"]
    assert len(starts) == 4
    assert {ray_cluster.node_named(start["node"]) for start in starts} == {"node_a", "node_b"}
    for start in starts:
        node_dir = ray_cluster.temp_dirs[ray_cluster.node_named(start["node"])]
        assert start["cwd"].startswith(str(node_dir)), "each node runs trials from its own copy of the model"
        assert not start["cwd"].startswith(str(run.model_dir)), "the original model directory is not used"
    assert len({start["cwd"] for start in starts}) == 4, "every trial has a working directory of its own"
    for trial in run.trials():
        output = run.trial_output(trial.id)
        assert "=== attempt 1 started" in output and "runs on Ray node" in output


@pytest.mark.parametrize("searcher", sorted(SEARCHERS))
def test_one_at_a_time_results_match_the_local_executors(ray_cluster, experiment, searcher):
    on_ray = experiment({**SEARCHERS[searcher], "max_concurrent_trials": 1}, HYPERPARAMETERS,
                        executor=ray_executor(ray_cluster))
    local = experiment({**SEARCHERS[searcher], "max_concurrent_trials": 1}, HYPERPARAMETERS)
    assert (on_ray.state, local.state) == ("COMPLETED", "COMPLETED")
    assert outcome(on_ray) == outcome(local)
    assert len(outcome(on_ray)) >= 2
    assert {entry["node"] for entry in local.log()} == {None}
    assert None not in {entry["node"] for entry in on_ray.log()}


def test_trials_get_the_cpus_and_custom_resources_the_file_asks_for(ray_cluster, experiment):
    # node_b alone has the resource `node_b`, and one CPU: two trials of half a CPU each fit there together
    run = experiment({**SEARCHERS["random"], "max_concurrent_trials": 2}, HYPERPARAMETERS,
                     executor=ray_executor(ray_cluster, cpus_per_trial=0.5, custom_resources={"node_b": 0.5}))
    assert run.state == "COMPLETED"
    starts = [entry for entry in run.log() if entry["event"] == "start"]
    assert len(starts) == 2 and {ray_cluster.node_named(start["node"]) for start in starts} == {"node_b"}
