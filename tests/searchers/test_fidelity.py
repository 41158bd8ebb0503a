"""`searcher.fidelity: adaptive`: adaptive ASHA measures whether a rung ranks trials as the next does.

Searches are driven through the protocol (`hpt_core.testing.drive`) on objectives whose low
fidelity is built to be exact or pure noise; every run has a fixed seed.
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any, Mapping

import numpy as np
import pytest

from hpt_core import ConfigError, create_searcher
from hpt_core.searchers import SearchMethod
from hpt_core.searchers.fidelity import MIN_PAIRS, pair_estimate, rank_correlation, trust
from hpt_core.testing import check_state_round_trip, drive

SPACE = {"x": {"type": "double", "minval": 0.0, "maxval": 1.0},
         "y": {"type": "double", "minval": 0.0, "maxval": 1.0}}
FULL = 16


def searcher(fidelity: str = "adaptive", seed: int = 0, **fields: Any) -> SearchMethod:
    config = {"name": "adaptive_asha", "metric": "loss", "max_length": FULL, "max_trials": 96, "divisor": 4,
              "mode": "aggressive", "max_concurrent_trials": 4, "fidelity": fidelity, **fields}
    return create_searcher({"searcher": config, "hyperparameters": SPACE}, seed=seed)


def final_loss(hparams: Mapping[str, Any]) -> float:
    return (hparams["x"] - 0.3) ** 2 + (hparams["y"] - 0.7) ** 2


def exact(request_id: int, hparams: Mapping[str, Any], length: int) -> dict[str, float]:
    """Every length ranks configurations as the full length does."""
    return {"loss": final_loss(hparams) + 1.0 / length}


def noisy_low_fidelity(request_id: int, hparams: Mapping[str, Any], length: int) -> dict[str, float]:
    """Below the full length, a value that has nothing to do with the configuration's final loss."""
    if length == FULL:
        return {"loss": final_loss(hparams)}
    return {"loss": float(np.random.default_rng(zlib.crc32(f"{request_id}-{length}".encode())).random())}


def reached(run_searcher: SearchMethod, length: int) -> int:
    """How many trials reported at `length`."""
    return sum(len(rung) for state in run_searcher.bracket_states
               for rung_length, rung in zip(state["rung_lengths"], state["rungs"]) if rung_length == length)


# --- the estimate ------------------------------------------------------------------------------------


def test_rank_correlation_of_constructed_rankings() -> None:
    assert rank_correlation([(i, 10 * i) for i in range(6)]) == pytest.approx(1.0)
    assert rank_correlation([(i, -i) for i in range(6)]) == pytest.approx(-1.0)
    # ranks (0,1,2,3) against (0,1,3,2): 1 - 6*2/(4*15) = 0.8
    assert rank_correlation([(1, 10), (2, 20), (3, 30), (4, 25)]) == pytest.approx(0.8)
    # ties share their mean rank: (0.5, 0.5, 2) against (0, 1, 2) -> 0.866
    assert rank_correlation([(1, 1), (1, 2), (3, 3)]) == pytest.approx(math.sqrt(3) / 2)
    assert rank_correlation([(1, 5), (2, 5), (3, 5)]) == 0.0


def test_trust_is_full_without_evidence_or_with_exact_ranking_and_none_with_noise() -> None:
    assert trust(-1.0, MIN_PAIRS - 1, 1.0) == 1.0
    assert trust(1.0, MIN_PAIRS, 1.0) == 1.0
    assert trust(0.0, 100, 4.0) == 0.0
    assert 0.0 < trust(0.5, 40, 1.0) < 1.0
    assert trust(0.6, 10, 1.0) < trust(0.6, 100, 1.0)  # the same correlation earns more trust from more pairs
    # within the top 1/16 of a rung a weak correlation still means a rung that ranks well overall
    assert trust(0.4, 30, 1.0) < 0.5 < trust(0.4, 30, 16.0) == 1.0


def test_pair_estimate_pools_the_brackets_and_leaves_out_early_exits() -> None:
    def rung(*results: tuple[int, float | None]) -> list[dict[str, Any]]:
        return [{"request_id": request_id, "loss": loss, "promoted": False} for request_id, loss in results]

    states = [{"rung_lengths": [1, 4], "rungs": [rung((1, 0.1), (2, 0.2), (3, 0.3)), rung((1, 0.5), (2, 0.4))]},
              {"rung_lengths": [1, 4], "rungs": [rung((7, 0.15), (8, 0.9)), rung((7, 0.45), (8, None))]}]
    # trials 1, 2, 7 reached both (8 exited): low 0.1, 0.2, 0.15 -> ranks (0, 2, 1); high 0.5, 0.4, 0.45 -> (2, 0, 1);
    # squared rank differences 4 + 4 + 0 = 8: rho = 1 - 6 * 8 / (3 * 8) = -1. Ranks of all five at length 1:
    # 0 .. 4, spread sqrt(2); of the three paired (0, 2, 1), sqrt(2/3): selection sqrt(3)
    assert pair_estimate(states, 1, 4) == [pytest.approx(-1.0), 3, pytest.approx(math.sqrt(3))]


# --- the search --------------------------------------------------------------------------------------


def test_backs_off_where_the_low_fidelity_is_noise() -> None:
    adaptive, fixed = searcher("adaptive"), searcher("fixed")
    drive(adaptive, noisy_low_fidelity)
    drive(fixed, noisy_low_fidelity)
    trusted = adaptive.fidelity_trust()
    assert trusted["1-4"] == 0.0 and trusted["4-16"] == 0.0
    # ASHA promotes a quarter; with no trust left nearly every trial goes on to 4 and 16 epochs
    assert reached(fixed, 4) <= 96 / 3
    assert reached(adaptive, 4) > 0.6 * 96
    assert reached(adaptive, FULL) > 3 * reached(fixed, FULL)


@pytest.mark.parametrize("mode", ["aggressive", "standard", "conservative"])
def test_stays_as_aggressive_as_asha_where_the_low_fidelity_is_exact(mode: str) -> None:
    adaptive, fixed = searcher("adaptive", mode=mode), searcher("fixed", mode=mode)
    adaptive_run, fixed_run = drive(adaptive, exact), drive(fixed, exact)
    assert set(adaptive.fidelity_trust().values()) == {1.0}
    assert adaptive_run.operations == fixed_run.operations
    assert adaptive.placements() == fixed.placements()
    assert adaptive.brackets() == fixed.brackets()


@pytest.mark.parametrize("mode", ["aggressive", "standard"])
def test_the_estimates_are_plain_json_state_and_a_restored_search_goes_on_exactly(mode: str) -> None:
    run = drive(searcher(sampler="tpe", mode=mode), noisy_low_fidelity)
    check_state_round_trip(lambda: searcher(sampler="tpe", mode=mode), run, cuts=6)
    again = searcher(sampler="tpe", mode=mode)
    assert drive(again, noisy_low_fidelity).operations == run.operations
    state = json.loads(json.dumps(again.state_dict()))
    assert set(state["rung_correlations"]) == {"1-4", "4-16"}
    assert state["rung_correlations"]["1-4"][1] >= MIN_PAIRS


def test_fidelity_must_be_fixed_or_adaptive() -> None:
    with pytest.raises(ConfigError, match="fidelity"):
        searcher("sometimes")


# --- the model -----------------------------------------------------------------------------------


def test_the_model_starts_from_fewer_results_and_skips_rungs_that_do_not_predict() -> None:
    method = searcher(sampler="tpe")
    drive(method, noisy_low_fidelity)
    assert method.first_model_results() < 10
    assert method.untrusted_lengths() == {1, 4}
    assert searcher("fixed", sampler="tpe").untrusted_lengths() == set()


def test_proposals_for_several_free_workers_at_once_spread_out() -> None:
    """Eight proposals in a row with none of them reported yet: each pending one counts as bad for the next."""
    spreads = []
    for seed in range(6):
        method = searcher(sampler="tpe", seed=seed)
        drive(method, exact)
        points = []
        for offset in range(8):
            proposal = method.propose_hparams()
            method.remember_created(10_000 + offset, proposal)
            points.append([proposal["x"], proposal["y"]])
        distances = [np.linalg.norm(np.subtract(a, b)) for i, a in enumerate(points) for b in points[i + 1:]]
        spreads.append(min(distances))
        assert len({tuple(point) for point in points}) == 8
    assert np.median(spreads) > 0.01
