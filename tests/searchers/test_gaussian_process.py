"""The Gaussian process behind `sampler: gp` (`searchers/gaussian_process.py`) and the sampler's own rules
(`searchers/gp.py`): fitted hyperparameters, fantasies for running trials, several lengths in one model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpt_core import create_searcher
from hpt_core.hyperparameters import space_from_dict
from hpt_core.searchers.gaussian_process import GaussianProcess
from hpt_core.searchers import gp
from hpt_core.searchers.gp import REFIT_GROWTH, GPSampler
from hpt_core.searchers.normal import log_expected_improvement, normal_cdf, normal_quantile
from hpt_core.searchers.tpe import TrialHistory, new_history



def no_choices(count: int) -> np.ndarray:
    return np.zeros((count, 0), dtype=int)


def test_the_gradient_of_the_fit_is_the_log_posteriors_slope() -> None:
    """Analytic gradient against central differences, numeric and categorical lengthscales, signal and noise."""
    rng = np.random.default_rng(0)
    numeric, categorical = rng.random((30, 3)), rng.integers(0, 3, (30, 2))
    model = GaussianProcess(numeric, categorical, rng.standard_normal(30))
    squared = np.moveaxis((numeric[:, None, :] - numeric[None, :, :]) ** 2, 2, 0)
    differs = np.moveaxis(categorical[:, None, :] != categorical[None, :, :], 2, 0).astype(float)
    theta = rng.normal(-0.5, 0.3, 7)
    _, gradient = model._log_posterior(theta, squared, differs)
    step = 1e-6
    differences = [(model._log_posterior(theta + offset, squared, differs)[0]
                    - model._log_posterior(theta - offset, squared, differs)[0]) / (2 * step)
                   for offset in np.eye(7) * step]
    np.testing.assert_allclose(gradient, differences, rtol=1e-4, atol=1e-6)


def test_a_fitted_model_predicts_a_smooth_function_between_its_observations() -> None:
    points = np.linspace(0, 1, 12)[:, None]
    values = np.sin(6 * points[:, 0])
    model = GaussianProcess(points, no_choices(12), values)
    model.fit(40)
    between = np.linspace(0.04, 0.96, 25)[:, None]
    mean, sd = model.predict(between, no_choices(25))
    assert np.abs(mean - np.sin(6 * between[:, 0])).max() < 0.1
    assert sd.max() < 0.2


def test_a_choice_that_decides_the_value_is_learnt() -> None:
    """The value is 0 for choice 1 and 1 otherwise, whatever x is: the model predicts it for unseen x."""
    rng = np.random.default_rng(2)
    numeric, categorical = rng.random((24, 1)), rng.integers(0, 3, (24, 1))
    model = GaussianProcess(numeric, categorical, (categorical[:, 0] != 1).astype(float) * 2 - 1)
    model.fit(40)
    mean, _ = model.predict(np.array([[0.5], [0.5], [0.5]]), np.array([[0], [1], [2]]))
    assert mean[1] < mean[0] - 1 and mean[1] < mean[2] - 1


def test_a_fantasy_keeps_the_mean_and_shrinks_the_uncertainty_where_a_trial_runs() -> None:
    points = np.array([[0.1], [0.5], [0.9]])
    model = GaussianProcess(points, no_choices(3), np.array([0.0, 1.0, 0.0]))
    pending = np.array([[0.3]])
    fantasised = model.with_fantasies(pending, no_choices(1))
    (mean, sd), (mean_after, sd_after) = model.predict(pending, no_choices(1)), fantasised.predict(pending,
                                                                                                   no_choices(1))
    assert mean_after[0] == pytest.approx(mean[0], abs=1e-3)
    assert sd_after[0] < 0.5 * sd[0]
    assert model.with_fantasies(np.zeros((0, 1)), no_choices(0)) is model


def test_the_normal_quantile_inverts_the_cdf() -> None:
    probabilities = np.linspace(0.001, 0.999, 999)
    np.testing.assert_allclose(normal_cdf(normal_quantile(probabilities)), probabilities, atol=2e-7)


def test_the_log_expected_improvement_is_exact_and_keeps_its_order_far_into_the_tail() -> None:
    middle = np.linspace(-6, 4, 101)
    exact = [math.log(z * 0.5 * math.erfc(-z / math.sqrt(2)) + math.exp(-z * z / 2) / math.sqrt(2 * math.pi))
             for z in middle]
    np.testing.assert_allclose(log_expected_improvement(middle), exact, rtol=1e-9)
    tail = log_expected_improvement(np.linspace(-60, -6, 1000))
    assert np.isfinite(tail).all() and (np.diff(tail) > 0).all()
    below, above = log_expected_improvement(np.array([-10.0001, -9.9999]))
    assert below < above < below + 0.01


# --- the sampler ----------------------------------------------------------------------------------


def test_the_fitted_hyperparameters_are_kept_and_refitted_only_as_results_grow() -> None:
    space = {"x": {"type": "double", "minval": 0, "maxval": 1}, "y": {"type": "double", "minval": 0, "maxval": 1}}
    config = {"name": "random", "metric": "loss", "max_length": 1, "max_trials": 1000, "sampler": "gp",
              "max_concurrent_trials": 1}
    method = create_searcher({"searcher": config, "hyperparameters": space}, seed=0)
    fits_seen = []
    for request_id in range(40):
        hparams = method.propose_hparams()
        method.remember_created(request_id, hparams)
        method.remember_result(request_id, 1, (hparams["x"] - 0.3) ** 2 + hparams["y"])
        method.remember_closed(request_id)
        fits_seen.append(dict(method.sampler_history.get("gp", {}).get("2-0", {"results": 0})))
    counts = sorted({fit["results"] for fit in fits_seen if fit["results"]})
    assert counts[0] == 10  # the first fit, once a length holds max(3, 10) results
    assert all(later >= REFIT_GROWTH * earlier for earlier, later in zip(counts, counts[1:]))
    assert len(counts) > 3
    assert all(isinstance(value, float) for value in fits_seen[-1]["hyperparameters"])


def test_only_the_latest_running_trials_are_added_as_fantasies() -> None:
    """With 300 trials running, the proposal is the one made with only the latest `MAX_FANTASIES` of them (far from
    the optimum), though the 200 before them (around it) move it when they are the latest."""
    space = space_from_dict({"x": {"type": "double", "minval": 0, "maxval": 1}})

    def proposal(running: range) -> float:
        history = TrialHistory(new_history(), space)
        for request_id, x in enumerate(np.linspace(0, 1, 12)):
            history.created(request_id, {"x": float(x)})
            history.reported(request_id, 1, float((x - 0.3) ** 2))
            history.ended(request_id)
        for request_id in running:
            draw = float(np.random.default_rng(request_id).random())
            history.created(request_id, {"x": 0.25 + 0.1 * draw if request_id < 212 else 0.7 + 0.3 * draw})
        return GPSampler(space).propose(history, np.random.default_rng(1))["x"]

    assert gp.MAX_FANTASIES == 100
    latest = proposal(range(12, 312))
    assert latest == proposal(range(212, 312))
    assert latest != proposal(range(12, 212))


def share_near_optimum(short_results: bool) -> float:
    """Six results at the full length of (x - 0.3)² with noise, and (if `short_results`) sixty at a short length
    that rank as it does: the share of proposals within 0.05 of 0.3."""
    space = space_from_dict({"x": {"type": "double", "minval": 0, "maxval": 1}})
    shares = []
    for seed in range(20):
        history = TrialHistory(new_history(), space, first_results=5)
        rng = np.random.default_rng(seed)
        for request_id in range(66):
            x = float(rng.random())
            history.created(request_id, {"x": x})
            if short_results and request_id >= 6:
                history.reported(request_id, 1, (x - 0.3) ** 2 + 0.1)
            if request_id < 6:
                history.reported(request_id, 1, (x - 0.3) ** 2 + 0.1)
                history.reported(request_id, 4, (x - 0.3) ** 2 + 0.02 * float(rng.standard_normal()))
            history.ended(request_id)
        proposals = [GPSampler(space).propose(history, np.random.default_rng(100 + index))["x"]
                     for index in range(10)]
        shares.append(np.mean([abs(x - 0.3) < 0.05 for x in proposals]))
    return float(np.mean(shares))


def test_a_short_length_that_ranks_as_the_long_one_informs_its_predictions() -> None:
    """The length is an input of the model: sixty short results that agree with six long ones bring the
    proposals closer to the optimum than the six alone."""
    with_short, without = share_near_optimum(True), share_near_optimum(False)
    assert with_short > without + 0.1  # 0.71 against 0.55
    assert with_short > 0.6


def test_a_proposal_reads_every_length_as_its_log_ratio_to_the_longest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two lengths, 1 and 3: the model's last input is 0 for the longest and -1 for the shortest (log ratios over
    the log of the longest to the shortest), and the fit is kept under that many inputs."""
    inputs = []

    class Recording(GaussianProcess):
        def __init__(self, numeric: np.ndarray, *args: object, **fields: object) -> None:
            inputs.append(numeric)
            super().__init__(numeric, *args, **fields)

    monkeypatch.setattr(gp, "GaussianProcess", Recording)
    space = space_from_dict({"x": {"type": "double", "minval": 0, "maxval": 1}})
    history = TrialHistory(new_history(), space, first_results=5)
    for request_id in range(12):
        x = request_id / 12
        history.created(request_id, {"x": x})
        history.reported(request_id, 1, abs(x - 0.5))
        if request_id % 2:
            history.reported(request_id, 3, abs(x - 0.5) * math.log(3))
        history.ended(request_id)
    GPSampler(space).propose(history, np.random.default_rng(0))  # its first draw: no random proposal
    lengths = inputs[0][:, -1]
    assert inputs[0].shape == (18, 2)
    assert sorted(set(np.round(lengths, 9))) == [-1.0, 0.0] and (lengths == 0).sum() == 6
    assert set(history.state["gp"]) == {"2-0"}


def test_equal_losses_share_their_normal_score() -> None:
    """Targets are normal scores of ranks; tied losses share their middle rank, so equal losses (an integer
    metric, or diverged trials all at inf) do not look like a trend in the order the trials were recorded."""
    losses = np.array([0.1, 0.5, 0.5, 0.5, 0.9, math.inf, math.inf])
    scores = gp._normal_scores(losses, np.arange(7))
    np.testing.assert_allclose(scores, normal_quantile((np.array([0, 2, 2, 2, 4, 5.5, 5.5]) + 0.5) / 7))
    assert scores[0] < scores[1] == scores[3] < scores[4] < scores[5] == scores[6]
    assert np.all(gp._normal_scores(np.ones(12), np.arange(0, 12, 3)) == 0.0)
