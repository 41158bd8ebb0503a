"""`searcher.sampler: gp` — new trials' hyperparameters from a multi-fidelity Gaussian process (expected improvement).

It reads the same plain-JSON sampler history as `sampler: tpe` (`searchers/tpe.py`), on which
lengths a model may be fitted included (enough results; with `fidelity: adaptive`, no rung that
fails to predict the next), and keeps one more entry there, its fitted hyperparameters, so that
restoring the state restores the model:

1. with probability `RANDOM_SHARE`, or while no length holds enough results, a random sample;
2. otherwise a Gaussian process (`gaussian_process.py`) is conditioned on every such length's
   results (at most `MAX_OBSERVATIONS` in all, shared evenly, an even sample in rank order): each
   result's target is its normal score within its length, Φ⁻¹((rank + ½) / n), ties sharing their
   middle rank (ranks: a few outlying losses do not dominate, and lengths whose losses differ in
   scale compare), and the length is one more input (its log ratio to the longest), so that the
   model learns how far a short run predicts a long one; trials with invalid hyperparameters (the latest `MAX_INVALID`)
   count as the worst result of the longest length. Its hyperparameters are fitted once and
   refitted, from the last fit, each time the results have grown by `REFIT_GROWTH`;
3. trials still running without a result (the latest `MAX_FANTASIES`) are added at the model's own
   prediction (so parallel proposals spread out: the model is surest where a trial already runs);
4. of `RANDOM_CANDIDATES` uniform candidates and `LOCAL_CANDIDATES` near each of the longest
   length's best `LOCAL_STARTS` trials, the one with the largest expected improvement at the
   longest length, over the best predicted there, that no trial has tried yet is proposed (compared
   as logs, which stay exact where the improvement is too small for a float).

>>> from hpt_core.hyperparameters import space_from_dict
>>> from hpt_core.searchers.tpe import TrialHistory, new_history
>>> space = space_from_dict({"x": {"type": "double", "minval": 0, "maxval": 1}})
>>> history, rng = TrialHistory(new_history(), space), np.random.default_rng(0)
>>> for request_id, x in enumerate(np.linspace(0, 1, 12)):
...     history.created(request_id, {"x": float(x)})
...     history.reported(request_id, 1, float((x - 0.3) ** 2))
...     history.ended(request_id)
>>> proposals = [GPSampler(space).propose(history, rng)["x"] for _ in range(10)]
>>> sum(abs(x - 0.3) < 0.05 for x in proposals) >= 8, list(history.state["gp"])  # random: 1 in 10 on average
(True, ['1-0'])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hpt_core.searchers.gaussian_process import FIT_STEPS, REFIT_STEPS, GaussianProcess
from hpt_core.searchers.normal import log_expected_improvement, normal_quantile
from hpt_core.searchers.sampler import Sampler
from hpt_core.searchers.tpe import RANDOM_SHARE, TrialHistory

MAX_OBSERVATIONS = 100
"""The most results the model is conditioned on (its cost grows with their cube)."""
MAX_INVALID = 25
"""The most trials with invalid hyperparameters (the latest) it is conditioned on besides."""
MAX_FANTASIES = 100
"""The most running trials (the latest) added at the model's prediction (a cluster may run thousands at once)."""
REFIT_GROWTH = 1.1
RANDOM_CANDIDATES = 512
LOCAL_STARTS = 8
LOCAL_CANDIDATES = 64
LOCAL_STEPS = (0.02, 0.08, 0.2)
"""A local candidate moves each numeric dimension by a normal step of one of these widths (chosen per candidate)."""
LOCAL_KEEP_CHOICES = 0.3
"""The share of local candidates that keep every categorical choice; the others draw one of them again at random."""


class GPSampler(Sampler):
    """`sampler: gp`: the proposals of this module."""

    name = "gp"

    def propose(self, history: TrialHistory, rng: np.random.Generator) -> dict[str, Any]:
        if rng.random() < RANDOM_SHARE or history.encoding.dimensions == 0:
            return self.space.sample(rng)
        lengths = history.model_lengths()
        if not lengths:
            return self.space.sample(rng)
        model = _fitted_model(history, lengths)
        running = [history.state["configs"][str(request_id)]
                   for request_id in sorted(history.index.running)[-MAX_FANTASIES:]]
        model = model.with_fantasies(*_inputs(history, running, len(lengths) > 1))
        best = [history.state["configs"][str(request_id)]
                for _, request_id in history.index.ranked[lengths[0]][:LOCAL_STARTS]]
        numeric, categorical = _candidates(history, rng, best)
        incumbent = model.predict(*_inputs(history, best + running, len(lengths) > 1))[0].min()
        mean, sd = model.predict(*_inputs_of(numeric, categorical, len(lengths) > 1))
        log_improvement = np.log(sd) + log_expected_improvement((incumbent - mean) / sd)
        return history.best_untried(numeric, categorical, log_improvement)


def _fitted_model(history: TrialHistory, lengths: list[int]) -> GaussianProcess:
    """The model of every length in `lengths` (longest first), its hyperparameters fitted or refitted (and kept in
    the history) as the module says."""
    rows, relative_lengths, scores = [], [], []
    remaining = MAX_OBSERVATIONS
    for position, length in enumerate(lengths):
        ranked = history.index.ranked[length]
        chosen = _even_sample(len(ranked), remaining // (len(lengths) - position))
        remaining -= len(chosen)
        rows += [history.state["configs"][str(ranked[rank][1])] for rank in chosen]
        relative_lengths += [math.log(length / lengths[0])] * len(chosen)
        scores += list(_normal_scores(np.array([loss for loss, _ in ranked]), np.array(chosen)))
    invalid = [history.state["configs"][str(request_id)] for request_id in history.state["invalid"][-MAX_INVALID:]]
    rows += invalid
    relative_lengths += [0.0] * len(invalid)
    longest = len(history.index.ranked[lengths[0]])
    scores += list(normal_quantile(np.full(len(invalid), (longest - 0.5) / longest)))
    numeric, categorical = history.encoding.split(rows)
    if len(lengths) > 1:
        numeric = np.hstack([numeric, np.array(relative_lengths)[:, None] / math.log(lengths[0] / lengths[-1])])
    targets = np.array(scores)
    targets = (targets - targets.mean()) / (targets.std() + 1e-9)
    fits = history.state.setdefault("gp", {})
    key = f"{numeric.shape[1]}-{categorical.shape[1]}"
    results = sum(len(history.index.ranked[length]) for length in lengths)
    previous = fits.get(key)
    model = GaussianProcess(numeric, categorical, targets, previous["hyperparameters"] if previous else None)
    if previous is None or results >= previous["results"] * REFIT_GROWTH:
        model.fit(FIT_STEPS if previous is None else REFIT_STEPS)
        fits[key] = {"hyperparameters": [float(value) for value in model.log_hyperparameters], "results": results}
    return model


def _candidates(history: TrialHistory, rng: np.random.Generator, best: list[list[float]]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Uniform candidates and local ones around `best` (encoded configurations): (numeric, categorical)."""
    choices = np.array(history.choices(), dtype=int)
    numeric = rng.random((RANDOM_CANDIDATES, len(history.encoding.numeric)))
    categorical = (rng.random((RANDOM_CANDIDATES, len(choices))) * choices).astype(int)
    best_numeric, best_categorical = history.encoding.split(best)
    starts = np.repeat(np.arange(len(best)), LOCAL_CANDIDATES)
    steps = rng.choice(LOCAL_STEPS, (len(starts), 1))
    local_numeric = np.clip(best_numeric[starts] + rng.standard_normal((len(starts), numeric.shape[1])) * steps, 0, 1)
    local_categorical = best_categorical[starts].copy()
    if len(choices):
        changed = rng.integers(0, len(choices), len(starts))
        local_categorical[np.arange(len(starts)), changed] = (rng.random(len(starts)) * choices[changed]).astype(int)
        kept = rng.random(len(starts)) < LOCAL_KEEP_CHOICES
        local_categorical[kept] = best_categorical[starts][kept]
    return np.vstack([numeric, local_numeric]), np.vstack([categorical, local_categorical])


def _inputs(history: TrialHistory, configs: list[list[float]], multi_length: bool) -> tuple[np.ndarray, np.ndarray]:
    """The model's inputs for encoded configurations evaluated at the longest length."""
    return _inputs_of(*history.encoding.split(configs), multi_length)


def _inputs_of(numeric: np.ndarray, categorical: np.ndarray, multi_length: bool) -> tuple[np.ndarray, np.ndarray]:
    if multi_length:
        numeric = np.hstack([numeric, np.zeros((len(numeric), 1))])
    return numeric, categorical


def _normal_scores(losses: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Φ⁻¹((rank + ½) / n) of the `chosen` positions of `losses` (sorted, n of them), tied losses sharing their
    middle rank (equal losses must not look like a trend)."""
    ranks = (np.searchsorted(losses, losses[chosen], "left") + np.searchsorted(losses, losses[chosen], "right") - 1) / 2
    return normal_quantile((ranks + 0.5) / len(losses))


def _even_sample(count: int, most: int) -> list[int]:
    """At most `most` of the ranks 0..count-1, evenly spread, the best first."""
    if count <= most:
        return list(range(count))
    return [int(index * count / most) for index in range(most)]
