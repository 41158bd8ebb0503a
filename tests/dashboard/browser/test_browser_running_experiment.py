"""A running experiment's pages update by themselves, and pause/resume/cancel work from the page only with the
dashboard's token."""

from __future__ import annotations

from dashboard_support import DASHBOARD_TOKEN

CURVE_POINTS = ("() => document.querySelector('[data-testid=curves-chart]').data"
                ".reduce((total, curve) => total + curve.x.length, 0)")
TRAINING_POINTS = ("() => document.querySelector('[data-testid=trial-training-chart]').data"
                   ".reduce((total, curve) => total + curve.x.length, 0)")
UPDATE_TIMEOUT_MS = 30_000


def test_experiment_and_trial_pages_update_while_the_experiment_runs(open_page, dashboard_url, dashboard_site,
                                                                     running_experiment_id):
    watched = open_page(dashboard_url)
    watched.open(f"#/experiments/{running_experiment_id}")
    page = watched.page
    assert page.get_by_test_id("experiment-page").get_attribute("data-live") == "true"
    before = page.evaluate(CURVE_POINTS)
    page.wait_for_function(f"before => ({CURVE_POINTS})() > before", arg=before, timeout=UPDATE_TIMEOUT_MS)
    with dashboard_site.storage() as storage:
        reports = len(storage.metrics(experiment_id=running_experiment_id, kind="validation"))
        trial_id = storage.list_trials(running_experiment_id)[0].id
    assert before < page.evaluate(CURVE_POINTS) <= reports
    with dashboard_site.storage() as storage:
        lease = storage.lease(running_experiment_id)
    assert f"process {lease.pid} on {lease.host} since" in page.get_by_test_id("summary-controller").inner_text()

    watched.open(f"#/trials/{trial_id}")
    before = page.evaluate(TRAINING_POINTS)
    page.wait_for_function(f"before => ({TRAINING_POINTS})() > before", arg=before, timeout=UPDATE_TIMEOUT_MS)
    assert watched.problems() == []


def test_read_only_dashboard_shows_no_pause_or_cancel(open_page, readonly_dashboard_url, running_experiment_id):
    watched = open_page(readonly_dashboard_url)
    watched.open(f"#/experiments/{running_experiment_id}")
    assert watched.page.get_by_test_id("experiment-actions").locator("button").count() == 0
    assert watched.problems() == []


def test_pause_needs_the_token_then_pauses_and_resumes(open_page, dashboard_url, dashboard_site, running_experiment_id):
    watched = open_page(dashboard_url)
    watched.open(f"#/experiments/{running_experiment_id}")
    page = watched.page
    assert page.get_by_test_id("action-cancel").is_visible()

    with page.expect_response(lambda response: response.url.endswith("/pause")) as refused:
        page.get_by_test_id("action-pause").click()
    assert refused.value.status == 401
    page.get_by_test_id("action-message").filter(has_text="Not allowed").wait_for()
    with dashboard_site.storage() as storage:
        assert storage.get_experiment(running_experiment_id).state == "ACTIVE"
    watched.console_errors.remove(next(text for text in watched.console_errors if "401" in text))

    page.get_by_test_id("token-input").fill(DASHBOARD_TOKEN)
    page.get_by_test_id("action-pause").click()
    page.get_by_test_id("action-message").filter(has_text="PAUSED").wait_for()
    with dashboard_site.storage() as storage:
        assert storage.get_experiment(running_experiment_id).state == "PAUSED"

    page.get_by_test_id("action-activate").click()
    page.get_by_test_id("action-message").filter(has_text="ACTIVE").wait_for()
    with dashboard_site.storage() as storage:
        assert storage.get_experiment(running_experiment_id).state == "ACTIVE"
    assert watched.problems() == []
