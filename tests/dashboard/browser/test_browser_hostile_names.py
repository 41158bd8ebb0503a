"""Names and values that are markup (a hyperparameter, a categorical value, a metric, the experiment's name) show
as literal text everywhere, in tables and in charts, and never run: no element is injected, no dialog opens."""

from __future__ import annotations

from dashboard_support import HOSTILE_HPARAM, HOSTILE_METRIC, HOSTILE_NAME, HOSTILE_VALUE

INJECTED = "() => document.querySelectorAll('img, script:not([src]), [onerror], [onload]').length"


def svg_texts(watched, selector: str) -> list[str]:
    return watched.page.evaluate(
        "selector => [...document.querySelectorAll(selector)].map(node => node.textContent)", selector)


def test_experiment_page_shows_hostile_names_as_text(open_page, dashboard_url, hostile_experiment_id):
    watched = open_page(dashboard_url)
    watched.open("#/")
    assert watched.page.get_by_text(HOSTILE_NAME, exact=True).is_visible()

    watched.open(f"#/experiments/{hostile_experiment_id}")
    page = watched.page
    assert page.get_by_test_id("experiment-title").inner_text() == f"Experiment {hostile_experiment_id}: {HOSTILE_NAME}"
    assert HOSTILE_METRIC in page.get_by_test_id("summary-metric").inner_text()
    header = page.locator("[data-testid=trials-header]", has_text=HOSTILE_HPARAM)
    assert header.inner_text() == HOSTILE_HPARAM
    assert page.locator("[data-testid=trial-row] td", has_text=HOSTILE_VALUE).count() >= 1

    assert HOSTILE_HPARAM in svg_texts(watched, "[data-testid=parcoords-chart] text.axis-title")
    assert HOSTILE_METRIC in svg_texts(watched, "[data-testid=parcoords-chart] text.axis-title")
    assert HOSTILE_VALUE in svg_texts(watched, "[data-testid=parcoords-chart] .tick text")
    assert HOSTILE_HPARAM in svg_texts(watched, "[data-testid=hp-scatter] .g-xtitle text")
    assert HOSTILE_VALUE in svg_texts(watched, "[data-testid=hp-scatter] .xtick text")
    assert svg_texts(watched, "[data-testid=curves-chart] .g-ytitle text") == [HOSTILE_METRIC]
    assert svg_texts(watched, "[data-testid=best-over-time-chart] .g-ytitle text") == [f"best {HOSTILE_METRIC}"]

    assert page.evaluate(INJECTED) == 0
    assert watched.dialogs == []
    assert watched.problems() == []


def test_trial_page_shows_hostile_names_as_text(open_page, dashboard_url, dashboard_site, hostile_experiment_id):
    with dashboard_site.storage() as storage:
        trial = next(trial for trial in storage.list_trials(hostile_experiment_id)
                     if trial.hparams[HOSTILE_HPARAM] == HOSTILE_VALUE)
    watched = open_page(dashboard_url)
    watched.open(f"#/trials/{trial.id}")
    row = watched.page.locator("[data-testid=hparam-row]", has_text=HOSTILE_HPARAM)
    assert row.locator("th").inner_text() == HOSTILE_HPARAM
    assert row.locator("td").inner_text() == HOSTILE_VALUE
    assert HOSTILE_METRIC in svg_texts(watched, "[data-testid=trial-validation-chart] .legendtext")
    assert watched.page.evaluate(INJECTED) == 0
    assert watched.problems() == []
