"""Whose files are whose: an experiment's folders are keyed by its uuid, so experiments of two storages that
share `checkpoint_storage.path` never touch each other's files, and resume registers only checkpoints that its
own trials wrote."""

import json
import uuid
from pathlib import Path

import pytest

from hpt_core.checkpoint_storage import checkpoint_directory
from hpt_core.runner import build_controller, change_state
from real_experiments import RUNTIME_MODEL, ExperimentFolder


def test_deleting_experiment_1_of_one_storage_leaves_experiment_1_of_another_sharing_its_checkpoint_path(tmp_path):
    shared = tmp_path / "shared-checkpoints"
    first, second = (ExperimentFolder(tmp_path / name, variables={"EPOCH_SECONDS": "0.05"}) for name in ("a", "b"))
    for experiments in (first, second):
        path = experiments.write_file("exp", {"name": "single", "max_length": {"epochs": 2}},
                                      {"quality": 1.0, "checkpoint_each_epoch": True},
                                      checkpoint_storage={"path": str(shared), "save_trial_latest": 2})
        created = experiments.hpt("experiment", "create", str(path), str(RUNTIME_MODEL), "--quiet")
        assert created.returncode == 0, created.stdout + created.stderr
    with first.storage() as storage:
        doomed = storage.checkpoints(experiment_id=1)
    with second.storage() as storage:
        kept = storage.checkpoints(experiment_id=1)
    assert doomed and kept and {Path(c.path).parent for c in doomed}.isdisjoint({Path(c.path).parent for c in kept})
    described = second.hpt("experiment", "describe", "1", "--json")

    deleted = first.hpt("experiment", "delete", "1", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert not any(Path(c.path).exists() for c in doomed)
    assert all(Path(c.path, "state.json").is_file() for c in kept)
    again = second.hpt("experiment", "describe", "1", "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == json.loads(described.stdout)


def test_resume_registers_the_checkpoints_its_trials_left_on_disk_and_no_other_experiments(tmp_path):
    experiments = ExperimentFolder(tmp_path, variables={"EPOCH_SECONDS": "0.1"})
    experiment_id = experiments.create({"name": "single", "max_length": {"epochs": 4}}, {"quality": 1.0})
    storage = experiments.storage()

    def fail_once_a_trial_trained(controller):
        if experiments.log("report"):
            raise RuntimeError("the controller's machine went away")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HPT_HOME", str(experiments.home))
        controller = build_controller(storage, experiment_id, on_tick=fail_once_a_trial_trained)
        with pytest.raises(Exception, match="went away"):
            controller.run()
        (trial,) = storage.list_trials(experiment_id)
        own, foreign = str(uuid.uuid4()), str(uuid.uuid4())
        for checkpoint_id, experiment_uuid in ((own, controller.experiment_uuid), (foreign, str(uuid.uuid4()))):
            description = {"trial_id": trial.id, "experiment_uuid": experiment_uuid, "batches": 10, "epochs": 1}
            with checkpoint_directory(controller.checkpoint_root, checkpoint_id, description) as folder:
                (folder / "state.json").write_text(json.dumps({"weight": 1.0, "epochs": 1}))
        change_state(storage, experiment_id, "activate")
        assert build_controller(storage, experiment_id).run() == "COMPLETED"
    registered = {c.id for c in storage.checkpoints(experiment_id=experiment_id, include_deleted=True)}
    assert own in registered and foreign not in registered


def test_delete_of_an_experiment_from_before_uuids_removes_what_it_recorded_in_folders_keyed_by_its_id(tmp_path):
    shared = tmp_path / "shared-checkpoints"
    experiments = ExperimentFolder(tmp_path)
    experiment_id = experiments.create({"name": "single", "max_length": 1}, {"quality": 1.0},
                                       checkpoint_storage={"path": str(shared)})
    legacy_dir, legacy_root = experiments.home / "experiments" / "1", shared / "1"
    with experiments.storage() as storage:  # the layout hpt used before: folders named by the experiment's id
        storage.set_experiment_dir(experiment_id, str(legacy_dir))
        trial_id = storage.create_trial(experiment_id, 1, {"quality": 1.0}, seed=1)
        recorded = str(uuid.uuid4())
        with checkpoint_directory(legacy_root, recorded, {"trial_id": trial_id}):
            pass
        storage.add_checkpoint(trial_id, recorded, path=str(legacy_root / recorded), batches=1, epochs=1, length=1,
                               metadata={})
    (legacy_dir / "trials").mkdir(parents=True)
    other_storages = legacy_root / str(uuid.uuid4())  # experiment 1 of another storage, in the same old folder
    other_storages.mkdir()

    deleted = experiments.hpt("experiment", "delete", str(experiment_id), "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert not legacy_dir.exists() and not (legacy_root / recorded).exists()
    assert other_storages.is_dir()
