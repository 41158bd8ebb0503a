"""Checkpoints under an s3:// URL (moto's S3 server on loopback): written by trials on the Ray nodes, restored
from there, registered, garbage-collected and deleted with the experiment, with the same code as local folders."""

import json

import pytest

from hpt_core.export import export_checkpoint
from hpt_core.runner import delete_experiment

pytest.importorskip("s3fs", reason="S3 checkpoints need s3fs (pip install -e '.[s3]')")
moto_server = pytest.importorskip("moto.server", reason="the S3 stand-in is moto's server (pip install 'moto[server]')")

BUCKET = "hpt-checkpoints"


@pytest.fixture(scope="module")
def s3_environment():
    """An S3 server on 127.0.0.1 with an empty bucket, and the variables that lead fsspec (s3fs) to it."""
    import fsspec

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    variables = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)
        fsspec.filesystem("s3", skip_instance_cache=True).mkdir(BUCKET)
        yield variables
    server.stop()


def test_trials_on_ray_save_restore_and_lose_checkpoints_under_an_s3_url(ray_cluster, experiment, s3_environment,
                                                                           tmp_path):
    import fsspec

    run = experiment(
        {"name": "pbt", "population_size": 2, "num_rounds": 2, "length_per_round": {"epochs": 1},
         "replace_function": {"truncate_fraction": 0.5}},
        {"quality": {"type": "double", "minval": 0.1, "maxval": 2.0}},
        executor={"type": "ray", "address": ray_cluster.address}, variables=s3_environment,
        checkpoint_storage={"path": f"s3://{BUCKET}/runs", "save_trial_best": 0, "save_trial_latest": 1})
    assert run.state == "COMPLETED"
    folder = f"{BUCKET}/runs/{run.storage.get_experiment(run.experiment_id).uuid}"  # the experiment's own folder
    root = f"s3://{folder}"
    checkpoints = run.storage.checkpoints(experiment_id=run.experiment_id, include_deleted=True)
    assert checkpoints and all(checkpoint.path == f"{root}/{checkpoint.id}" for checkpoint in checkpoints)

    restored = [entry for entry in run.log() if entry["event"] == "start" and entry["restore"] is not None]
    assert restored, "round 2 starts from round 1's checkpoints"
    for start in restored:  # the files the trial read are those it saved on a node, fetched from S3
        assert start["restore"]["epochs"] == start["restore_epochs"] == 1

    s3 = fsspec.filesystem("s3", skip_instance_cache=True)
    kept = {checkpoint.id for checkpoint in checkpoints if checkpoint.state == "COMPLETED"}
    deleted = {checkpoint.id for checkpoint in checkpoints if checkpoint.state == "DELETED"}
    assert deleted, "a trial that went on to round 2 keeps only its latest checkpoint"
    folders = {path.rsplit("/", 1)[-1] for path in s3.ls(folder, detail=False)}
    assert folders == kept
    for checkpoint_id in kept:
        metadata = json.loads(s3.cat_file(f"{folder}/{checkpoint_id}/hpt_checkpoint.json"))
        assert metadata["checkpoint_id"] == checkpoint_id
        assert s3.isfile(f"{folder}/{checkpoint_id}/state.json")

    exported = export_checkpoint(run.storage, sorted(kept)[0], tmp_path / "exported")  # hpt checkpoint download
    assert json.loads((exported.path / "state.json").read_bytes()) == json.loads(
        s3.cat_file(f"{folder}/{sorted(kept)[0]}/state.json"))
    assert json.loads((exported.path / "hpt_export.json").read_text())["checkpoint"]["id"] == sorted(kept)[0]

    assert delete_experiment(run.storage, run.experiment_id)[-1] == root
    assert not fsspec.filesystem("s3", skip_instance_cache=True).exists(folder)
