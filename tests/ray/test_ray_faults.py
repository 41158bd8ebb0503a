"""Faults on the Ray cluster count as trial failures: the trial restarts from its latest checkpoint."""

import json

from hpt_core.executors.process_group import group_alive


def ray_executor(cluster):
    return {"type": "ray", "address": cluster.address}


def test_a_killed_trial_worker_restarts_the_trial_from_its_checkpoint(ray_cluster, experiment):
    run = experiment({"name": "single", "max_length": {"epochs": 4}},
                     {"behaviour": "kill_worker_once", "quality": 0.5}, executor=ray_executor(ray_cluster))
    assert run.state == "COMPLETED"
    (trial,) = run.trials()
    assert (trial.state, trial.restarts, trial.length_done) == ("COMPLETED", 1, 4)
    (killing,) = [entry for entry in run.log() if entry["event"] == "killing_worker"]
    assert killing["attempt"] == 1
    assert not group_alive(killing["pgid"]), "the trial's processes ended with its worker"
    (restart,) = [entry for entry in run.log() if entry["event"] == "start" and entry["attempt"] == 2]
    assert restart["restore_epochs"] == 2 and restart["restore"] == {"weight": 1.0, "epochs": 2}
    validations = [entry for entry in run.log() if entry["event"] == "validation"]
    assert [(entry["attempt"], entry["epochs"]) for entry in validations] == [(2, 4)]
    assert "=== attempt 1 lost: its Ray worker or node died" in run.trial_output(trial.id)


def test_a_removed_nodes_trial_is_rescheduled_on_another_node_from_its_checkpoint(ray_cluster, experiment,
                                                                                  tmp_path):
    doomed = ray_cluster.add_node("node_c")
    trial_log = tmp_path / "run-1" / "trial-log.jsonl"  # the first experiment's (see the fixture)

    def remove_the_node_once_its_trial_checkpointed(controller):
        if doomed in ray_cluster.cluster.worker_nodes and trial_log.exists() and any(
                entry["event"] == "checkpoint" and entry["node"] == doomed.node_id
                for entry in map(json.loads, trial_log.read_text().splitlines())):
            ray_cluster.cluster.remove_node(doomed)

    run = experiment({"name": "random", "max_length": {"epochs": 3}, "max_trials": 3, "max_concurrent_trials": 3},
                     {"behaviour": "wait_on_doomed_node", "quality": {"type": "double", "minval": 0.1, "maxval": 2}},
                     executor=ray_executor(ray_cluster), during=remove_the_node_once_its_trial_checkpointed,
                     variables={"DOOMED_NODE": doomed.node_id})
    assert doomed not in ray_cluster.cluster.worker_nodes, "a trial ran on the extra node and it was removed"
    assert run.state == "COMPLETED"
    assert [(trial.state, trial.length_done) for trial in run.trials()] == [("COMPLETED", 3)] * 3
    (lost,) = [trial for trial in run.trials() if trial.restarts]
    assert lost.restarts == 1
    starts = [entry for entry in run.log() if entry["event"] == "start" and entry["trial_id"] == lost.id]
    assert [(start["attempt"], ray_cluster.node_named(start["node"]) == "node_c") for start in starts] == \
        [(1, True), (2, False)]
    assert starts[1]["restore_epochs"] == 2
    assert "=== attempt 1 lost" in run.trial_output(lost.id)
