"""Outside an experiment `hpt_core.init()` gives a local context: nothing is recorded, but a report that an
experiment would refuse is refused here too, so a script that runs locally does not fail only once launched."""

import math

import pytest

import hpt_core


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    monkeypatch.delenv("HPT_CONTROLLER_URL", raising=False)
    monkeypatch.delenv("HPT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    context = hpt_core.init()
    assert isinstance(context, hpt_core.LocalContext)
    return context


def test_finite_training_reports_pass_one_at_a_time_and_together(ctx):
    ctx.report_training({"loss": 0.5}, batches=1)
    ctx.report_training_many([({"loss": 0.4}, 2), ({"loss": 0.3}, 3, 1)])


def test_a_non_finite_training_metric_is_refused_naming_it(ctx):
    with pytest.raises(ValueError, match="metric 'loss' is nan: a metric must not be NaN or infinite"):
        ctx.report_training({"loss": math.nan, "accuracy": 0.5}, batches=1)


def test_a_non_finite_metric_in_any_report_handed_over_together_is_refused_naming_it(ctx):
    with pytest.raises(ValueError, match="metric 'grad_norm' is inf"):
        ctx.report_training_many([({"loss": 0.4}, 1), ({"loss": 0.3, "grad_norm": math.inf}, 2)])
