"""The experiments list and a finished experiment's page in a real browser: every chart draws what storage holds,
the search method's view matches storage, and the trials table sorts and pages through the API."""

from __future__ import annotations

import math

import pytest

import browser_expected as expected

METRIC = "val_loss"


@pytest.fixture
def storage(dashboard_site):
    with dashboard_site.storage() as opened:
        yield opened


def test_experiments_list_shows_every_experiment_with_its_state_and_best_metric(open_page, dashboard_url, storage,
                                                                               asha_experiment_id):
    watched = open_page(dashboard_url)
    watched.open("#/")
    rows = watched.page.locator("[data-testid=experiment-row]")
    shown = {int(rows.nth(index).get_attribute("data-experiment-id")) for index in range(rows.count())}
    assert shown == {record.id for record in storage.list_experiments()}
    asha = watched.page.locator(f"[data-testid=experiment-row][data-experiment-id='{asha_experiment_id}']")
    assert asha.get_by_test_id("state").inner_text() == "COMPLETED"
    trials = storage.list_trials(asha_experiment_id)
    assert asha.get_by_test_id("trial-counts").inner_text().startswith(f"{len(trials)} ")
    best = min(expected.best_by_trial(storage, asha_experiment_id, METRIC).values())
    assert f"{best:.4g}" in asha.inner_text()
    assert watched.problems() == []


def test_asha_charts_draw_the_stored_validations(open_page, dashboard_url, storage, asha_experiment_id):
    watched = open_page(dashboard_url)
    watched.open(f"#/experiments/{asha_experiment_id}")
    assert watched.page.get_by_test_id("experiment-page").get_attribute("data-live") == "false"  # finished: no polling

    best_over_time = watched.graph("[data-testid=best-over-time-chart]")["data"]
    improvements = expected.improvements(storage, asha_experiment_id, METRIC)
    assert len(best_over_time) == 1
    assert best_over_time[0]["customdata"] == [trial_id for trial_id, _ in improvements]
    assert best_over_time[0]["y"] == pytest.approx([value for _, value in improvements])
    labels = [label for label in best_over_time[0]["text"] if label]
    assert labels == [f"trial {trial_id}" for index, (trial_id, _) in enumerate(improvements)
                      if index == 0 or improvements[index - 1][0] != trial_id]

    best = expected.best_by_trial(storage, asha_experiment_id, METRIC)
    top_three = sorted(best, key=lambda trial_id: (best[trial_id], trial_id))[:3]
    watched.page.get_by_test_id("curves-top").select_option("3")
    watched.page.wait_for_function("() => document.querySelector('[data-testid=curves-chart]').data.length === 3")
    curves = watched.graph("[data-testid=curves-chart]")["data"]
    assert [curve["name"] for curve in curves] == [f"trial {trial_id}" for trial_id in top_three]
    for curve, trial_id in zip(curves, top_three, strict=True):
        points = expected.curve_points(storage, asha_experiment_id, METRIC, trial_id)
        assert curve["x"] == [batches for batches, _ in points]
        assert curve["y"] == pytest.approx([value for _, value in points])

    watched.page.get_by_test_id("curves-scale").select_option("log")
    watched.page.wait_for_function(
        "() => document.querySelector('[data-testid=curves-chart]').layout.yaxis.type === 'log'")
    assert watched.problems() == []


def test_hyperparameter_views_have_an_axis_per_hyperparameter_and_a_point_per_trial(
        open_page, dashboard_url, storage, pbt_experiment_id):
    watched = open_page(dashboard_url)
    watched.open(f"#/experiments/{pbt_experiment_id}")
    names = expected.varying_hyperparameters(storage, pbt_experiment_id)
    latest = {}
    for trial_id, _, _, value in expected.validations(storage, pbt_experiment_id, METRIC):
        latest[trial_id] = value

    (parcoords,) = watched.graph("[data-testid=parcoords-chart]")["data"]
    labels = [dimension["label"] for dimension in parcoords["dimensions"]]
    assert labels == [*names, METRIC]
    assert parcoords["dimensions"][-1]["values"] == pytest.approx([latest[trial_id] for trial_id in sorted(latest)])
    assert parcoords["line"]["color"] == pytest.approx(parcoords["dimensions"][-1]["values"])
    assert watched.page.locator("[data-testid=parcoords-chart] .no-webgl").count() == 0

    scatters = watched.page.locator("[data-testid=hp-scatter]")
    assert [scatters.nth(index).get_attribute("data-hp") for index in range(scatters.count())] == names
    hparams = expected.trial_values(storage, pbt_experiment_id)
    for name in names:
        (points,) = watched.graph(f"[data-testid=hp-scatter][data-hp='{name}']")["data"]
        assert points["customdata"] == sorted(latest)
        assert points["x"] == pytest.approx([hparams[trial_id][name] for trial_id in sorted(latest)])

    lengths = sorted({batches for _, batches, _, _ in expected.validations(storage, pbt_experiment_id, METRIC)})
    watched.page.get_by_test_id("hparams-length").select_option(str(lengths[0]))
    at_first = {trial_id for trial_id, batches, _, _ in expected.validations(storage, pbt_experiment_id, METRIC)
                if batches <= lengths[0]}
    watched.page.wait_for_function(
        "count => document.querySelector('[data-testid=parcoords-chart]').data[0].dimensions[0].values.length"
        " === count", arg=len(at_first))
    assert watched.problems() == []


def test_asha_view_counts_each_rung_as_storage_does(open_page, dashboard_url, storage, asha_experiment_id):
    watched = open_page(dashboard_url)
    watched.open(f"#/experiments/{asha_experiment_id}")
    brackets = watched.page.locator("[data-testid=asha-bracket]")
    assert brackets.count() == 1
    rungs = brackets.first.locator("[data-testid=asha-rung]")
    lengths = [int(rungs.nth(index).locator("td").nth(1).inner_text()) for index in range(rungs.count())]
    assert lengths == [1, 4]  # max_length 4 epochs, divisor 4, 2 rungs
    reached = [expected.trials_reaching(storage, asha_experiment_id, METRIC, length) for length in lengths]
    for index, rung_trials in enumerate(reached):
        row = rungs.nth(index)
        promoted = len(reached[index + 1]) if index + 1 < len(reached) else 0
        assert int(row.locator("[data-field=reached]").inner_text()) == len(rung_trials)
        assert int(row.locator("[data-field=promoted]").inner_text()) == promoted
        assert int(row.locator("[data-field=stopped_here]").inner_text()) == len(rung_trials) - promoted
    closed_early = [trial for trial in storage.list_trials(asha_experiment_id) if trial.length_done < lengths[-1]]
    reasons = watched.page.get_by_test_id("end-reasons").inner_text()
    assert f"{closed_early[0].end_reason}\t{len(closed_early)}" in reasons
    assert watched.problems() == []


def test_pbt_lineage_has_the_stored_parent_child_edges(open_page, dashboard_url, storage, pbt_experiment_id):
    watched = open_page(dashboard_url)
    watched.open(f"#/experiments/{pbt_experiment_id}")
    edges = expected.lineage_edges(storage, pbt_experiment_id)
    assert edges, "the PBT experiment has children"
    rows = watched.page.locator("[data-testid=pbt-edge]")
    shown = {(int(rows.nth(index).get_attribute("data-parent")), int(rows.nth(index).get_attribute("data-child")))
             for index in range(rows.count())}
    assert shown == edges
    hparams = expected.trial_values(storage, pbt_experiment_id)
    for index in range(rows.count()):
        parent, child = (int(rows.nth(index).get_attribute(name)) for name in ("data-parent", "data-child"))
        changed = [name for name in hparams[child] if hparams[child][name] != hparams[parent][name]]
        text = rows.nth(index).locator("td").nth(2).inner_text()
        assert all(f"{name}:" in text for name in changed)
    edge_trace, node_trace = watched.graph("[data-testid=pbt-lineage-chart]")["data"]
    assert len(node_trace["customdata"]) == len(storage.list_trials(pbt_experiment_id))
    assert edge_trace["x"].count(None) == len(edges)
    assert watched.problems() == []


def _shown_ids(watched) -> list[int]:
    rows = watched.page.locator("[data-testid=trial-row]")
    return [int(rows.nth(index).get_attribute("data-trial-id")) for index in range(rows.count())]


def _wait_for_table(watched, first_id: int) -> None:
    watched.page.wait_for_function(
        "id => { const row = document.querySelector('[data-testid=trial-row]');"
        " return row !== null && Number(row.dataset.trialId) === id; }", arg=first_id)


def test_trials_table_sorts_by_a_clicked_header(open_page, dashboard_url, storage, asha_experiment_id):
    watched = open_page(dashboard_url)
    watched.open(f"#/experiments/{asha_experiment_id}")
    best = expected.best_by_trial(storage, asha_experiment_id, METRIC)
    ascending = sorted(best, key=lambda trial_id: best[trial_id])

    watched.page.locator("th[data-sort=best_validation] button").click()
    _wait_for_table(watched, ascending[0])
    assert _shown_ids(watched) == ascending
    assert watched.page.locator("th[data-sort=best_validation]").get_attribute("aria-sort") == "ascending"

    watched.page.locator("th[data-sort=best_validation] button").click()
    _wait_for_table(watched, ascending[-1])
    assert _shown_ids(watched) == ascending[::-1]

    hparams = expected.trial_values(storage, asha_experiment_id)
    by_lr = sorted(hparams, key=lambda trial_id: hparams[trial_id]["lr"])
    watched.page.locator("th[data-sort='hp:lr'] button").click()
    _wait_for_table(watched, by_lr[0])
    assert _shown_ids(watched) == by_lr
    assert watched.problems() == []


def test_trials_table_pages_and_filters_through_the_api(open_page, dashboard_url, storage, asha_experiment_id):
    watched = open_page(dashboard_url)
    watched.open(f"#/experiments/{asha_experiment_id}")
    ids = sorted(trial.id for trial in storage.list_trials(asha_experiment_id))
    assert len(ids) > 5

    watched.page.get_by_test_id("trials-page-size").select_option("5")
    watched.page.wait_for_function("() => document.querySelectorAll('[data-testid=trial-row]').length === 5")
    assert _shown_ids(watched) == ids[:5]
    assert watched.page.get_by_test_id("trials-page-info").inner_text() == f"1–5 of {len(ids)} trials"
    assert watched.page.get_by_test_id("trials-prev").is_disabled()

    watched.page.get_by_test_id("trials-next").click()
    _wait_for_table(watched, ids[5])
    assert _shown_ids(watched) == ids[5:10]
    assert watched.page.get_by_test_id("trials-page-info").inner_text() == (
        f"6–{min(10, len(ids))} of {len(ids)} trials")

    watched.page.get_by_test_id("trials-state-filter").select_option("ERROR")
    watched.page.get_by_test_id("trials-page-info").filter(has_text="of 0 trials").wait_for()
    assert _shown_ids(watched) == []
    watched.page.get_by_test_id("trials-state-filter").select_option("COMPLETED")
    _wait_for_table(watched, ids[0])

    closed = [trial.id for trial in storage.list_trials(asha_experiment_id) if trial.end_reason == "closed at a rung"]
    watched.page.get_by_test_id("trials-text-filter").fill("closed at a rung")
    watched.page.wait_for_function(
        "total => document.querySelector('[data-testid=trials-table]').dataset.total === String(total)",
        arg=len(closed))
    assert _shown_ids(watched) == sorted(closed)[:5]
    assert watched.problems() == []


def test_trial_page_charts_every_stored_metric(open_page, dashboard_url, storage, pbt_experiment_id):
    trial = storage.list_trials(pbt_experiment_id)[-1]
    watched = open_page(dashboard_url)
    watched.open(f"#/trials/{trial.id}")
    for kind in ("validation", "training"):
        reports = storage.metrics(trial_id=trial.id, kind=kind)
        names = sorted({name for report in reports for name in report.metrics})
        traces = watched.graph(f"[data-testid=trial-{kind}-chart]")["data"]
        assert [trace["name"] for trace in traces] == names
        for trace in traces:
            points = [(report.batches, report.metrics[trace["name"]]) for report in reports
                      if trace["name"] in report.metrics]
            assert trace["x"] == [batches for batches, _ in points]
            assert trace["y"] == pytest.approx([value for _, value in points])
    shown = watched.page.locator("[data-testid=hparam-row] th").all_inner_texts()
    assert shown == sorted(expected.trial_values(storage, pbt_experiment_id)[trial.id])
    assert watched.page.get_by_test_id("trial-restarts").inner_text().endswith(str(trial.restarts))
    assert watched.page.locator("h1").inner_text() == \
        f"Trial {trial.id} (#{trial.request_id} in experiment {pbt_experiment_id})"
    assert watched.problems() == []
