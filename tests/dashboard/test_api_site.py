"""The dashboard's JSON API over real experiments (run by `hpt experiment create`, see conftest.py): what it
answers must be what storage holds and what the results API says."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from dashboard_support import HOSTILE_HPARAM, HOSTILE_METRIC, HOSTILE_NAME, HOSTILE_VALUE, get_json, http

import hpt_core
from hpt_core.space import flatten


@pytest.fixture(scope="module")
def storage(dashboard_site):
    with dashboard_site.storage() as opened:
        yield opened


def validations(storage, trial_id, metric="val_loss"):
    """(batches, epochs, value) of each validation report of the trial, oldest first."""
    return [(record.batches, record.epochs, record.metrics[metric])
            for record in storage.metrics(trial_id=trial_id, kind="validation")]


def all_trials(url, experiment_id, **params):
    """Every trial through the table's pages of 3 (so that paging is part of what is checked)."""
    rows, offset = [], 0
    while True:
        page = get_json(url, f"/api/v1/experiments/{experiment_id}/trials", offset=offset, limit=3, **params)
        rows += page["trials"]
        offset += 3
        if offset >= page["total"]:
            return page["total"], rows


# --- experiments --------------------------------------------------------------------------------


def test_the_list_shows_each_experiment_with_its_trials_by_state_as_storage_has_them(dashboard_url, storage):
    listed = {entry["id"]: entry for entry in get_json(dashboard_url, "/api/v1/experiments")["experiments"]}
    assert set(listed) == {record.id for record in storage.list_experiments()}
    for record in storage.list_experiments():
        states = Counter(trial.state for trial in storage.list_trials(record.id))
        entry = listed[record.id]
        assert (entry["name"], entry["searcher"], entry["metric"]) == (
            record.name, record.config["searcher"]["name"], record.config["searcher"]["metric"])
        assert entry["trials_by_state"] == dict(states) and entry["trial_count"] == sum(states.values())
        assert entry["started"] == record.created_at.isoformat()
    assert sorted(listed, reverse=True) == list(listed)


def test_the_best_metric_and_trial_are_those_of_the_results_api(dashboard_url, dashboard_site):
    for experiment_id in (dashboard_site.asha_id, dashboard_site.pbt_id, dashboard_site.hostile_id):
        with hpt_core.Experiment.load(experiment_id, dashboard_site.storage_url) as experiment:
            best = experiment.best_trial()
            summary = get_json(dashboard_url, f"/api/v1/experiments/{experiment_id}")
            assert summary["state"] == "COMPLETED" and summary["progress"] == 1.0
            assert (summary["best_trial_id"], summary["best_metric"]) == (best.id, best.best_validation.value)


def test_an_experiment_lists_its_hyperparameters_and_validation_metrics(dashboard_url, pbt_experiment_id):
    summary = get_json(dashboard_url, f"/api/v1/experiments/{pbt_experiment_id}")
    assert [(column["name"], column["type"]) for column in summary["hyperparameters"]] == [
        ("lr", "double"), ("optimizer.momentum", "double")]
    assert summary["hyperparameters"][0]["minval"] == 0.05 and summary["hyperparameters"][0]["maxval"] == 0.5
    assert summary["validation_metrics"] == ["accuracy", "val_loss"]
    assert summary["length_unit"] == "epochs" and summary["writable"] is True


def test_a_running_experiment_shows_its_running_trials(dashboard_url, running_experiment_id):
    summary = get_json(dashboard_url, f"/api/v1/experiments/{running_experiment_id}")
    assert summary["state"] == "ACTIVE" and summary["ended"] is None
    assert summary["trials_by_state"] == {"RUNNING": 2}


# --- the trials table ---------------------------------------------------------------------------


def test_pages_sorted_by_best_validation_hold_every_trial_once_in_order(dashboard_url, dashboard_site):
    with hpt_core.Experiment.load(dashboard_site.asha_id, dashboard_site.storage_url) as experiment:
        trials = experiment.trials()
    best_first = [trial.id for trial in sorted(trials, key=lambda trial: (trial.best_validation.value, trial.id))]
    total, rows = all_trials(dashboard_url, dashboard_site.asha_id, sort="best_validation")
    assert total == len(trials) == 8
    assert [row["id"] for row in rows] == best_first
    _, rows = all_trials(dashboard_url, dashboard_site.asha_id, sort="best_validation", order="desc")
    assert [row["id"] for row in rows] == best_first[::-1]
    by_id = {trial.id: trial for trial in trials}
    for row in rows:
        trial = by_id[row["id"]]
        assert row["latest_validation"] == trial.latest_validation.value
        assert (row["batches"], row["epochs"]) == (trial.latest_validation.batches, trial.latest_validation.epochs)
        assert (row["state"], row["end_reason"], row["restarts"]) == (trial.state, trial.end_reason, trial.restarts)
        assert row["hparams"] == flatten(trial.hparams) and row["checkpoints"] == len(trial.checkpoints)


def test_trials_sort_by_a_hyperparameter(dashboard_url, pbt_experiment_id, storage):
    _, rows = all_trials(dashboard_url, pbt_experiment_id, sort="hp:optimizer.momentum", order="desc")
    expected = sorted(storage.list_trials(pbt_experiment_id), key=lambda trial: trial.id)
    expected.sort(key=lambda trial: trial.hparams["optimizer"]["momentum"], reverse=True)
    assert [row["id"] for row in rows] == [trial.id for trial in expected]


def test_trials_filter_by_state_and_by_text(dashboard_url, asha_experiment_id, storage):
    trials = storage.list_trials(asha_experiment_id)
    closed = [trial.id for trial in trials if trial.end_reason == "closed at a rung"]
    total, rows = all_trials(dashboard_url, asha_experiment_id, q="CLOSED AT")
    assert total == len(closed) > 0 and [row["id"] for row in rows] == closed
    total, _ = all_trials(dashboard_url, asha_experiment_id, state="COMPLETED,ERROR")
    assert total == len(trials)
    assert all_trials(dashboard_url, asha_experiment_id, state="RUNNING")[0] == 0
    some = trials[3]
    assert some.id in [row["id"] for row in all_trials(dashboard_url, asha_experiment_id, q=str(some.id))[1]]


@pytest.mark.parametrize(("params", "named"), [
    ({"sort": "nope"}, ["'sort'", "'nope'", "best_validation", "hp:lr"]),
    ({"order": "up"}, ["'order'", "'up'", "asc, desc"]),
    ({"state": "DONE"}, ["'state'", "'DONE'", "RUNNING"]),
    ({"limit": 501}, ["'limit'", "501", "1 to 500"]),
    ({"limit": "many"}, ["'limit'", "'many'", "integer"]),
    ({"offset": -1}, ["'offset'", "-1", "at least 0"]),
])
def test_a_bad_table_parameter_is_a_400_naming_it_its_value_and_what_is_allowed(
        dashboard_url, asha_experiment_id, params, named):
    query = "&".join(f"{name}={value}" for name, value in params.items())
    reply = http("GET", f"{dashboard_url}api/v1/experiments/{asha_experiment_id}/trials?{query}")
    assert reply.status == 400
    for text in named:
        assert text in reply.json()["detail"]


@pytest.mark.parametrize("path", ["/api/v1/experiments/999999", "/api/v1/experiments/999999/trials",
                                  "/api/v1/trials/999999", "/api/v1/trials/999999/log",
                                  "/api/v1/checkpoints/no-such-checkpoint/download"])
def test_what_storage_does_not_have_is_a_404(dashboard_url, path):
    reply = http("GET", dashboard_url.rstrip("/") + path)
    assert reply.status == 404
    assert "999999" in reply.json()["detail"] or "no-such-checkpoint" in reply.json()["detail"]


# --- charts -------------------------------------------------------------------------------------


def test_best_over_time_marks_each_improvement_with_its_trial(dashboard_url, asha_experiment_id, storage):
    view = get_json(dashboard_url, f"/api/v1/experiments/{asha_experiment_id}/best-over-time")
    reports = storage.metrics(experiment_id=asha_experiment_id, kind="validation")
    improvements, best = [], None
    for record in reports:
        if best is None or record.metrics["val_loss"] < best:
            best = record.metrics["val_loss"]
            improvements.append((record.trial_id, record.metrics["val_loss"], record.batches,
                                 record.reported_at.isoformat()))
    assert [(point["trial_id"], point["value"], point["batches"], point["reported_at"])
            for point in view["points"]] == improvements
    seconds = [point["seconds"] for point in view["points"]]
    totals = [point["total_batches"] for point in view["points"]]
    assert seconds == sorted(seconds) and seconds[0] >= 0 and totals == sorted(totals)
    assert totals[-1] <= sum(trial.length_done * 10 for trial in storage.list_trials(asha_experiment_id))


def test_curves_are_those_of_the_best_trials_as_reported(dashboard_url, dashboard_site, storage):
    with hpt_core.Experiment.load(dashboard_site.asha_id, dashboard_site.storage_url) as experiment:
        ranked = sorted(experiment.trials(), key=lambda trial: (trial.best_validation.value, trial.id))
    curves = get_json(dashboard_url, f"/api/v1/experiments/{dashboard_site.asha_id}/curves", top=3, x="epochs")
    assert [series["trial_id"] for series in curves["series"]] == [trial.id for trial in ranked[:3]]
    for series, trial in zip(curves["series"], ranked):
        assert series["best"] == trial.best_validation.value
        assert series["points"] == [[epochs, value] for _, epochs, value in validations(storage, trial.id)]
    training = get_json(dashboard_url, f"/api/v1/experiments/{dashboard_site.asha_id}/curves", top=1,
                        metric="loss", kind="training")["series"][0]
    assert training["points"] == [[record.batches, record.metrics["loss"]]
                                  for record in storage.metrics(trial_id=ranked[0].id, kind="training")]


def test_hyperparameters_come_with_each_trials_validation_at_a_chosen_length(dashboard_url, asha_experiment_id,
                                                                             storage):
    trials = storage.list_trials(asha_experiment_id)
    at_10 = get_json(dashboard_url, f"/api/v1/experiments/{asha_experiment_id}/hparams", length=10)
    assert at_10["lengths"] == [10, 20, 30, 40]
    assert {entry["trial_id"]: entry["value"] for entry in at_10["trials"]} == {
        trial.id: next(value for batches, _, value in validations(storage, trial.id) if batches == 10)
        for trial in trials}
    assert {entry["trial_id"]: entry["hparams"] for entry in at_10["trials"]} == {
        trial.id: flatten(trial.hparams) for trial in trials}
    latest = get_json(dashboard_url, f"/api/v1/experiments/{asha_experiment_id}/hparams")
    assert {entry["trial_id"]: entry["value"] for entry in latest["trials"]} == {
        trial.id: validations(storage, trial.id)[-1][2] for trial in trials}
    at_35 = get_json(dashboard_url, f"/api/v1/experiments/{asha_experiment_id}/hparams", length=35)
    promoted = [trial for trial in trials if trial.length_done == 4]
    assert {entry["trial_id"]: entry["value"] for entry in at_35["trials"] if entry["trial_id"] in
            {trial.id for trial in promoted}} == {trial.id: validations(storage, trial.id)[2][2] for trial in promoted}


# --- the search method's view -------------------------------------------------------------------


def test_the_asha_rungs_count_what_the_trials_reached_and_why_they_stopped(dashboard_url, asha_experiment_id,
                                                                           storage):
    view = get_json(dashboard_url, f"/api/v1/experiments/{asha_experiment_id}/searcher-view")
    trials = storage.list_trials(asha_experiment_id)
    assert view["kind"] == "adaptive_asha" and len(view["brackets"]) == 1
    rungs = view["brackets"][0]["rungs"]
    assert [rung["length"] for rung in rungs] == [1, 4]  # max_length 4 epochs, divisor 4, 2 rungs
    reached = [sum(trial.length_done >= rung["length"] for trial in trials) for rung in rungs]
    assert [rung["reached"] for rung in rungs] == reached == [8, 2]
    assert [rung["promoted"] for rung in rungs] == [reached[1], 0]
    assert [rung["stopped_here"] for rung in rungs] == [reached[0] - reached[1], reached[1]]
    assert view["end_reasons"] == dict(Counter(trial.end_reason for trial in trials))
    by_id = {trial.id: trial for trial in trials}
    assert {entry["trial_id"]: (entry["rung_length"], entry["end_reason"]) for entry in view["trials"]} == {
        trial.id: (trial.length_done, trial.end_reason) for trial in trials}
    assert all(entry["state"] == by_id[entry["trial_id"]].state for entry in view["trials"])


def test_the_pbt_lineage_has_an_edge_per_child_with_the_hyperparameters_that_changed(dashboard_url,
                                                                                     pbt_experiment_id, storage):
    view = get_json(dashboard_url, f"/api/v1/experiments/{pbt_experiment_id}/searcher-view")
    trials = {trial.request_id: trial for trial in storage.list_trials(pbt_experiment_id)}
    children = [trial for trial in trials.values() if trial.parent_request_id is not None]
    assert len(children) == 4  # 3 rounds, 2 children after each of the first two
    expected = {}
    for child in children:
        parent = trials[child.parent_request_id]
        old, new = flatten(parent.hparams), flatten(child.hparams)
        expected[(parent.id, child.id)] = {name: [old[name], new[name]] for name in old if old[name] != new[name]}
    assert {(edge["parent_trial_id"], edge["child_trial_id"]): edge["changed"] for edge in view["edges"]} == expected
    generations = {node["trial_id"]: node["generation"] for node in view["nodes"]}
    assert [generations[trial.id] for trial in trials.values() if trial.parent_request_id is None] == [0] * 4
    assert all(generations[child] == generations[parent] + 1 for parent, child in expected)


# --- trials and checkpoints ---------------------------------------------------------------------


def test_a_trial_shows_its_record_and_every_checkpoint(dashboard_url, asha_experiment_id, storage):
    for trial in storage.list_trials(asha_experiment_id):
        detail = get_json(dashboard_url, f"/api/v1/trials/{trial.id}")
        assert (detail["experiment_id"], detail["request_id"], detail["state"], detail["length_done"]) == (
            asha_experiment_id, trial.request_id, trial.state, trial.length_done)
        assert detail["hparams"] == flatten(trial.hparams)
        assert detail["validation_metrics"] == ["accuracy", "val_loss"]
        assert detail["training_metrics"] == ["loss", "weight"]
        stored = storage.checkpoints(trial_id=trial.id, include_deleted=True)
        assert [(entry["id"], entry["state"], entry["batches"]) for entry in detail["checkpoints"]] == [
            (checkpoint.id, checkpoint.state, checkpoint.batches) for checkpoint in stored]
        assert all((entry["download"] is None) == (entry["state"] == "DELETED") for entry in detail["checkpoints"])


def test_a_checkpoint_downloads_as_a_zip_of_its_stored_files(dashboard_url, asha_experiment_id, storage):
    kept = storage.checkpoints(experiment_id=asha_experiment_id)
    assert kept
    for checkpoint in kept:
        reply = http("GET", f"{dashboard_url}api/v1/checkpoints/{checkpoint.id}/download")
        assert reply.status == 200 and reply.headers["content-type"] == "application/zip"
        assert checkpoint.id in reply.headers["content-disposition"]
        folder = Path(checkpoint.path)
        stored = {path.relative_to(folder).as_posix(): path.read_bytes()
                  for path in folder.rglob("*") if path.is_file()}
        with zipfile.ZipFile(io.BytesIO(reply.body)) as archive:
            assert {name: archive.read(name) for name in archive.namelist()} == stored
        assert set(stored) >= {"state.json", "weights.bin"}


def test_a_deleted_or_unknown_checkpoint_or_a_path_is_not_served(dashboard_url, asha_experiment_id, storage):
    deleted = [checkpoint for checkpoint in storage.checkpoints(experiment_id=asha_experiment_id,
                                                                 include_deleted=True)
               if checkpoint.state == "DELETED"]
    assert deleted  # garbage collection removed the promoted trials' early checkpoints
    reply = http("GET", f"{dashboard_url}api/v1/checkpoints/{deleted[0].id}/download")
    assert reply.status == 404 and "deleted" in reply.json()["detail"]
    kept = storage.checkpoints(experiment_id=asha_experiment_id)[0]
    for attempt in ["%2e%2e%2f%2e%2e%2fhpt.db", "..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd",
                    f"..%2F{kept.id}", kept.path.replace("/", "%2F")]:
        reply = http("GET", f"{dashboard_url}api/v1/checkpoints/{attempt}/download")
        assert reply.status == 404, attempt
        assert not reply.body.startswith(b"PK")


def test_the_best_checkpoint_is_the_results_apis(dashboard_url, dashboard_site):
    for experiment_id in (dashboard_site.asha_id, dashboard_site.pbt_id):
        with hpt_core.Experiment.load(experiment_id, dashboard_site.storage_url) as experiment:
            best = experiment.best_checkpoint()
        answer = get_json(dashboard_url, f"/api/v1/experiments/{experiment_id}/best-checkpoint")
        assert (answer["checkpoint_id"], answer["trial_id"]) == (best.id, best.trial_id)
        assert http("GET", dashboard_url.rstrip("/") + answer["download"]).status == 200


def test_a_trials_log_tail_is_the_end_of_its_output(dashboard_url, asha_experiment_id, storage):
    trial = storage.list_trials(asha_experiment_id)[0]
    whole = get_json(dashboard_url, f"/api/v1/trials/{trial.id}/log")
    assert whole["exists"] and not whole["truncated"]
    assert f"trial {trial.id} exits at epoch {trial.length_done}" in whole["text"].splitlines()[-1]
    tail = get_json(dashboard_url, f"/api/v1/trials/{trial.id}/log", tail_bytes=40)
    assert tail["truncated"] and len(tail["text"]) <= 40 and whole["text"].endswith(tail["text"])


def test_a_trials_metrics_are_its_reports(dashboard_url, asha_experiment_id, storage):
    trial = storage.list_trials(asha_experiment_id)[1]
    series = get_json(dashboard_url, f"/api/v1/trials/{trial.id}/metrics", kind="training")["series"]
    reports = storage.metrics(trial_id=trial.id, kind="training")
    assert series == {name: [[record.batches, record.metrics[name]] for record in reports]
                      for name in ("loss", "weight")}


# --- hostile names ------------------------------------------------------------------------------


def test_hostile_names_and_values_come_back_as_data_unchanged(dashboard_url, hostile_experiment_id, storage):
    summary = get_json(dashboard_url, f"/api/v1/experiments/{hostile_experiment_id}")
    assert summary["name"] == HOSTILE_NAME and summary["metric"] == HOSTILE_METRIC
    assert summary["description"] == f"described as {HOSTILE_NAME}"
    assert HOSTILE_HPARAM in [column["name"] for column in summary["hyperparameters"]]
    assert HOSTILE_VALUE in next(column["vals"] for column in summary["hyperparameters"]
                                 if column["name"] == HOSTILE_HPARAM)
    assert HOSTILE_METRIC in summary["validation_metrics"] and summary["best_metric"] is not None
    total, rows = all_trials(dashboard_url, hostile_experiment_id, q=HOSTILE_VALUE, sort=f"hp:{HOSTILE_HPARAM}")
    assert total == 2 and all(row["hparams"][HOSTILE_HPARAM] == HOSTILE_VALUE for row in rows)
    trial = rows[0]["id"]
    assert HOSTILE_METRIC in get_json(dashboard_url, f"/api/v1/trials/{trial}/metrics")["series"]
    curves = get_json(dashboard_url, f"/api/v1/experiments/{hostile_experiment_id}/curves")
    assert curves["metric"] == HOSTILE_METRIC and len(curves["series"]) == 4
    assert get_json(dashboard_url, f"/api/v1/experiments/{hostile_experiment_id}/best-over-time")["points"]


# --- the page, its files and its safety ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/static/vendor/plotly.min.js", "/api/v1/experiments",
                                  "/api/v1/trials/999999", "/api/openapi.json"])
def test_every_response_carries_a_policy_that_blocks_inline_script(dashboard_url, path):
    reply = http("GET", dashboard_url.rstrip("/") + path)
    policy = dict(part.strip().split(" ", 1) for part in reply.headers["content-security-policy"].split(";"))
    assert policy["script-src"].split() == ["'self'", "'unsafe-eval'"]
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_plotly_and_its_license_are_served_from_the_installed_package(dashboard_url):
    import plotly

    package = Path(plotly.__file__).parent
    script = http("GET", f"{dashboard_url}static/vendor/plotly.min.js")
    assert script.status == 200 and script.body == (package / "package_data" / "plotly.min.js").read_bytes()
    license_text = http("GET", f"{dashboard_url}static/vendor/plotly-LICENSE.txt")
    assert license_text.status == 200 and b"MIT License" in license_text.body


def test_the_api_is_described_by_openapi(dashboard_url):
    paths = get_json(dashboard_url, "/api/openapi.json")["paths"]
    for path in ["/api/v1/experiments", "/api/v1/experiments/{experiment_id}/trials",
                 "/api/v1/experiments/{experiment_id}/searcher-view", "/api/v1/trials/{trial_id}/log",
                 "/api/v1/checkpoints/{checkpoint_id}/download", "/api/v1/experiments/{experiment_id}/cancel"]:
        assert path in paths


def test_a_request_for_another_host_name_is_refused(dashboard_url):
    reply = http("GET", f"{dashboard_url}api/v1/experiments", headers={"Host": "attacker.example:80"})
    assert reply.status == 400


def test_write_actions_need_the_token(dashboard_url, readonly_dashboard_url, running_experiment_id, storage):
    pause = f"api/v1/experiments/{running_experiment_id}/pause"
    reply = http("POST", readonly_dashboard_url + pause, token="anything")
    assert reply.status == 403 and "read-only" in reply.json()["detail"]
    assert http("POST", dashboard_url + pause).status == 401
    assert http("POST", dashboard_url + pause, token="wrong").status == 403
    assert storage.get_experiment(running_experiment_id).state == "ACTIVE"


def test_with_the_token_a_running_experiment_pauses_and_goes_on(dashboard_url, running_experiment_id, storage):
    from dashboard_support import DASHBOARD_TOKEN

    try:
        reply = http("POST", f"{dashboard_url}api/v1/experiments/{running_experiment_id}/pause", token=DASHBOARD_TOKEN)
        assert (reply.status, reply.json()) == (200, {"state": "PAUSED"})
        assert storage.get_experiment(running_experiment_id).state == "PAUSED"
    finally:
        reply = http("POST", f"{dashboard_url}api/v1/experiments/{running_experiment_id}/activate",
                     token=DASHBOARD_TOKEN)
    assert (reply.status, reply.json()) == (200, {"state": "ACTIVE"})
    assert storage.get_experiment(running_experiment_id).state == "ACTIVE"


def test_an_ended_experiment_cannot_be_cancelled(dashboard_url, asha_experiment_id, storage):
    from dashboard_support import DASHBOARD_TOKEN

    reply = http("POST", f"{dashboard_url}api/v1/experiments/{asha_experiment_id}/cancel", token=DASHBOARD_TOKEN)
    assert reply.status == 409 and "COMPLETED" in reply.json()["detail"]
    assert storage.get_experiment(asha_experiment_id).state == "COMPLETED"
