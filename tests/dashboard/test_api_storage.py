"""The dashboard's API on each storage backend (SQLite and PostgreSQL), over records written through `Storage`:
hostile names in JSON columns, values that are not finite numbers, a metric where larger is better, a PBT
lineage and checkpoint files."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from dashboard_support import HOSTILE_HPARAM, HOSTILE_METRIC, HOSTILE_VALUE, get_json, http

from hpt_core.dashboard.server import DashboardServer
from hpt_core.storage import Storage

CONFIG = {
    "searcher": {"name": "pbt", "metric": HOSTILE_METRIC, "smaller_is_better": False, "population_size": 2,
                 "num_rounds": 2, "length_per_round": {"batches": 10}},
    "hyperparameters": {HOSTILE_HPARAM: {"type": "categorical", "vals": [HOSTILE_VALUE, "plain", 3]},
                        "lr": {"type": "log", "minval": -3.0, "maxval": -1.0, "base": 10.0},
                        "$dollar": {"type": "int", "minval": 1, "maxval": 9}},
}


@dataclass(frozen=True)
class Written:
    url: str
    experiment_id: int
    trials: list[int]
    kept: str
    deleted: str
    folder: Path


@pytest.fixture
def written(storage_url, tmp_path):
    """An experiment of 3 trials: the third a PBT child of the first, with its lr changed."""
    with Storage(storage_url) as storage:
        experiment_id = storage.create_experiment(name=HOSTILE_METRIC, config=CONFIG, model_dir=".", seed=0,
                                                  secret="s")
        hparams = [{HOSTILE_HPARAM: HOSTILE_VALUE, "lr": 0.01, "$dollar": 5},
                   {HOSTILE_HPARAM: "plain", "lr": 0.001, "$dollar": 2},
                   {HOSTILE_HPARAM: HOSTILE_VALUE, "lr": 0.02, "$dollar": 5}]
        trials = [storage.create_trial(experiment_id, request_id=number, hparams=values, seed=number,
                                       parent_request_id=1 if number == 3 else None)
                  for number, values in enumerate(hparams, start=1)]
        reports = [(trials[0], 10, 0.5), (trials[1], 10, float("nan")), (trials[1], 20, 0.25),
                   (trials[0], 20, 0.75), (trials[2], 10, "not a number"), (trials[2], 20, float("inf")),
                   (trials[2], 30, 0.9)]
        for trial_id, batches, value in reports:
            storage.add_metrics(trial_id, "training", {"loss": batches / 100}, batches=batches, epochs=0)
            storage.add_metrics(trial_id, "validation", {HOSTILE_METRIC: value, "$rate": 1.0}, batches=batches,
                                epochs=0)
        folder = tmp_path / "checkpoints" / "kept-1"
        (folder / "nested").mkdir(parents=True)
        (folder / "model.bin").write_bytes(bytes(range(256)) * 64)
        (folder / "nested" / "state.json").write_text('{"step": 20}')
        kept = storage.add_checkpoint(trials[0], "kept-1", path=str(folder), batches=20, epochs=0, length=20,
                                      metadata={HOSTILE_HPARAM: HOSTILE_VALUE}).id
        deleted = storage.add_checkpoint(trials[0], "gone-1", path=str(tmp_path / "gone-1"), batches=10, epochs=0,
                                         length=10, metadata={}).id
        storage.mark_checkpoint_deleted(deleted)
    with DashboardServer(storage_url) as server:
        yield Written(server.url, experiment_id, trials, kept, deleted, folder)


def test_values_that_are_not_finite_numbers_are_left_out_and_larger_is_better(written):
    first, second, child = written.trials
    summary = get_json(written.url, f"/api/v1/experiments/{written.experiment_id}")
    assert (summary["best_trial_id"], summary["best_metric"]) == (child, 0.9)
    assert summary["validation_metrics"] == sorted(["$rate", HOSTILE_METRIC])
    points = get_json(written.url, f"/api/v1/experiments/{written.experiment_id}/best-over-time")["points"]
    assert [(point["trial_id"], point["value"]) for point in points] == [(first, 0.5), (first, 0.75), (child, 0.9)]
    page = get_json(written.url, f"/api/v1/experiments/{written.experiment_id}/trials", sort="best_validation",
                    order="desc")
    assert [(row["id"], row["best_validation"], row["latest_validation"]) for row in page["trials"]] == [
        (child, 0.9, 0.9), (first, 0.75, 0.75), (second, 0.25, 0.25)]


def test_the_table_sorts_by_hyperparameters_of_any_name_and_finds_values(written):
    first, second, child = written.trials
    path = f"/api/v1/experiments/{written.experiment_id}/trials"
    by_value = get_json(written.url, path, sort=f"hp:{HOSTILE_HPARAM}")["trials"]
    assert [row["id"] for row in by_value] == [first, child, second]  # "<script>..." before "plain"
    assert [row["id"] for row in get_json(written.url, path, sort="hp:$dollar", order="desc")["trials"]] == [
        first, child, second]
    found = get_json(written.url, path, q=HOSTILE_VALUE.upper())
    assert found["total"] == 2 and {row["id"] for row in found["trials"]} == {first, child}
    assert all(row["hparams"][HOSTILE_HPARAM] == HOSTILE_VALUE for row in found["trials"])


def test_hyperparameters_at_a_length_and_the_lineage(written):
    first, second, child = written.trials
    at_15 = get_json(written.url, f"/api/v1/experiments/{written.experiment_id}/hparams", length=15)
    assert at_15["lengths"] == [10, 20, 30]
    assert {entry["trial_id"]: entry["value"] for entry in at_15["trials"]} == {first: 0.5}
    view = get_json(written.url, f"/api/v1/experiments/{written.experiment_id}/searcher-view")
    assert view["edges"] == [{"parent_trial_id": first, "child_trial_id": child, "changed": {"lr": [0.01, 0.02]}}]
    assert {node["trial_id"]: node["generation"] for node in view["nodes"]} == {first: 0, second: 0, child: 1}


def test_curves_are_the_training_reports_of_the_best_trials(written):
    curves = get_json(written.url, f"/api/v1/experiments/{written.experiment_id}/curves", metric="loss",
                      kind="training", top=2, max_points=4)
    assert [series["trial_id"] for series in curves["series"]] == [written.trials[2], written.trials[0]]
    assert curves["series"][0]["points"] == [[10, 0.1], [20, 0.2], [30, 0.3]]


def test_a_checkpoint_downloads_byte_for_byte_and_a_deleted_one_does_not(written):
    reply = http("GET", f"{written.url}api/v1/checkpoints/{written.kept}/download")
    assert reply.status == 200
    with zipfile.ZipFile(io.BytesIO(reply.body)) as archive:
        assert {name: archive.read(name) for name in archive.namelist()} == {
            "model.bin": (written.folder / "model.bin").read_bytes(),
            "nested/state.json": (written.folder / "nested" / "state.json").read_bytes()}
    assert http("GET", f"{written.url}api/v1/checkpoints/{written.deleted}/download").status == 404
    best = get_json(written.url, f"/api/v1/experiments/{written.experiment_id}/best-checkpoint")
    assert (best["checkpoint_id"], best["trial_id"]) == (written.kept, written.trials[0])
    detail = get_json(written.url, f"/api/v1/trials/{written.trials[0]}")
    assert [(entry["id"], entry["download"] is None) for entry in detail["checkpoints"]] == [
        (written.kept, False), (written.deleted, True)]
    assert detail["checkpoints"][0]["metadata"] == {HOSTILE_HPARAM: HOSTILE_VALUE}


def test_reports_made_after_a_first_look_show_up(written, storage_url):
    first, second, child = written.trials
    path = f"/api/v1/experiments/{written.experiment_id}"
    assert get_json(written.url, path)["best_trial_id"] == child
    with Storage(storage_url) as storage:
        storage.add_metrics(second, "validation", {HOSTILE_METRIC: 2.0}, batches=40, epochs=0)
        fourth = storage.create_trial(written.experiment_id, request_id=4, hparams={HOSTILE_HPARAM: "plain",
                                                                                    "lr": 0.1, "$dollar": 1}, seed=4)
    summary = get_json(written.url, path)
    assert (summary["best_trial_id"], summary["best_metric"], summary["trial_count"]) == (second, 2.0, 4)
    assert summary["best_trial_number"] == 2  # `second` is the experiment's second trial (request 2)
    assert get_json(written.url, f"{path}/best-over-time")["points"][-1]["trial_id"] == second
    page = get_json(written.url, f"{path}/trials", sort="best_validation", order="desc")
    assert [row["id"] for row in page["trials"]] == [second, child, first, fourth]
    assert page["trials"][0]["latest_validation"] == 2.0 and page["trials"][-1]["best_validation"] is None


def test_an_experiment_created_after_one_was_deleted_shows_its_own_trials(written, storage_url):
    path = f"/api/v1/experiments/{written.experiment_id}"
    assert get_json(written.url, f"{path}/trials")["total"] == 3
    with Storage(storage_url) as storage:
        storage.delete_experiment(written.experiment_id)
        assert http("GET", f"{written.url}{path.lstrip('/')}").status == 404
        experiment_id = storage.create_experiment(name="next", config=CONFIG, model_dir=".", seed=0, secret="s")
        trial_id = storage.create_trial(experiment_id, request_id=1, seed=1,
                                        hparams={HOSTILE_HPARAM: "plain", "lr": 0.05, "$dollar": 9})
        storage.add_metrics(trial_id, "validation", {HOSTILE_METRIC: 0.125}, batches=10, epochs=0)
    page = get_json(written.url, f"/api/v1/experiments/{experiment_id}/trials")
    assert [(row["id"], row["hparams"]["lr"], row["best_validation"]) for row in page["trials"]] == [
        (trial_id, 0.05, 0.125)]


def single_experiment(storage_url, name, model_dir):
    """A new `single` experiment without trials; its id."""
    with Storage(storage_url) as storage:
        return storage.create_experiment(name=name, config={"searcher": {"name": "single", "metric": "val_loss",
                                                                         "max_length": {"epochs": 1}}},
                                         model_dir=str(model_dir), seed=0, secret="s")


def test_an_experiment_without_checkpoints_has_no_best_checkpoint_yet(storage_url, tmp_path):
    experiment_id = single_experiment(storage_url, "empty", tmp_path)
    with DashboardServer(storage_url) as server:
        assert get_json(server.url, f"/api/v1/experiments/{experiment_id}/best-checkpoint") == {
            "checkpoint_id": None, "trial_id": None, "batches": None, "epochs": None, "download": None}
        assert http("GET", f"{server.url}api/v1/experiments/{experiment_id + 1000}/best-checkpoint").status == 404


def test_the_experiment_page_names_the_controller_that_holds_the_lease(storage_url, tmp_path):
    experiment_id = single_experiment(storage_url, "leased", tmp_path)
    with DashboardServer(storage_url) as server:
        assert get_json(server.url, f"/api/v1/experiments/{experiment_id}")["controller"] is None
        with Storage(storage_url) as storage:
            lease = storage.acquire_lease(experiment_id, token="t", host="gpu-node-7", pid=4242, seconds=60)
        controller = get_json(server.url, f"/api/v1/experiments/{experiment_id}")["controller"]
    assert controller == {"host": "gpu-node-7", "pid": 4242, "since": lease.acquired_at.isoformat(),
                          "expires_at": lease.expires_at.isoformat(), "expired": False}
