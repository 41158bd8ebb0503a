"""`preview(searcher)`: how many trials a search trains to which length, without running anything.

The preview answers work first in, first out, and each trial reports one metric drawn for it
(in creation order) from numpy's `default_rng(0)`. The first sixteen draws, rounded:

    trial  1 .637   2 .2698   3 .0410   4 .0165   5 .8133   6 .9128   7 .6066   8 .7295
    trial  9 .5436 10 .9351  11 .8159  12 .0027  13 .8574  14 .0336  15 .7297  16 .1757
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hpt_core import create_searcher
from hpt_core.config import SearcherConfig
from hpt_core.errors import SearcherError
from hpt_core.preview import Preview, PreviewGroup, preview
from hpt_core.searchers import Create, ValidateAfter
from hpt_core.testing.scripted import ScriptedSearch

SPACE = {"lr": {"type": "log", "minval": -4, "maxval": -1}}
AGGRESSIVE = dict(name="adaptive_asha", mode="aggressive", max_length=16, divisor=4, max_trials=16)


def experiment(**searcher: Any) -> dict[str, Any]:
    return {"searcher": {"metric": "loss", **searcher}, "hyperparameters": SPACE}


def test_the_draws_in_the_docstring_are_numpys() -> None:
    draws = np.random.default_rng(0).random(16)
    assert [round(float(draw), 4) for draw in draws[[0, 3, 11, 13, 15]]] == [0.637, 0.0165, 0.0027, 0.0336, 0.1757]


def test_aggressive_asha() -> None:
    # One bracket, rungs 1, 4, 16; 16 trials, all 16 at once (max_concurrent_trials 16), reporting at
    # rung 0 in order 1..16. With n results before, promote if place < floor((n+1)/4), else the trial at
    # place floor(n/4) when that count grows:
    #   trial 4  (.0165, n=3):  place 0 < 1                       -> 4 promoted
    #   trial 8  (.7295, n=7):  place 5; count 1 -> 2; place 1 is trial 3 (.041) -> 3 promoted
    #   trial 12 (.0027, n=11): place 0 < 3                       -> 12 promoted
    #   trial 14 (.0336, n=13): place 2 < floor(14/4) = 3         -> 14 promoted
    #   trial 16 (.1757, n=15): place 4; count 3 -> 4; place 3 is trial 3, already promoted -> none
    # 12 trials stop at 1 batch. Rung 1 gets 4, 3, 12, 14 in that order; the fourth result (n=3) promotes
    # place 0, trial 12 (.0027): 3 trials stop at 4 batches, 1 trains to 16.
    result = preview(create_searcher(experiment(**AGGRESSIVE)))
    assert result.groups == (PreviewGroup("Bracket 1 of 1: 3 rungs, 16 trials, 16 at a time",
                                          ((12, 1), (3, 4), (1, 16))),)
    assert (result.trials, result.total_length, result.unit) == (16, 12 * 1 + 3 * 4 + 16, "batches")


def test_aggressive_asha_stop_once() -> None:
    # Same plan; a trial continues if its place (ties ahead) among the rung's n results is < max(floor(n/4), 1).
    # Rung 0: trials 1, 2, 3, 4 are each the best so far (place 0 < 1); 5-11 are not (5: place 4 vs 1,
    # 6: 5 vs 1, 7: 3 vs 1, 8: 5 vs 2, 9: 3 vs 2, 10: 9 vs 2, 11: 8 vs 2); 12 (.0027, n=12) place 0 < 3;
    # 13 stops; 14 (.0336, n=14) place 2 < 3; 15 stops; 16 (.1757, n=16) place 4, not < 4.
    # Continuing: 1, 2, 3, 4, 12, 14; 10 stop at 1 batch. Rung 1, in that order: 1, 2, 3, 4, 12 are each
    # the best so far (place 0 < 1); 14 (.0336, n=6) is at place 2, not < max(1, 1): 1 stops at 4.
    result = preview(create_searcher(experiment(**AGGRESSIVE, stop_once=True)))
    assert result.groups[0].rows == ((10, 1), (1, 4), (5, 16))
    assert result.total_length == 10 + 4 + 5 * 16


def test_standard_asha_groups_by_bracket() -> None:
    # R = 3; standard: brackets of 3 and 2 rungs. w = 16/3, 4/2; trials floor(11.6) = 11 (+1 remainder),
    # floor(4.4) = 4; M = 16: 8 each. Bracket 1 (1, 4, 16 batches) starts trials 1-8, bracket 2 (4, 16)
    # starts 9-12; each report at rung 0 that promotes nothing makes room for a new trial in its bracket.
    # FIFO: 1, 2, 3 promote nothing -> 13, 14, 15; 4 (.0165, n=3) promoted; 5 -> 16 (budget of 12 spent);
    # 8 (n=7): count 1 -> 2, place 1 is trial 3 -> promoted. Bracket 2: 12 (.0027, n=3) promoted to 16,
    # 9, 10, 11 closed. Then 14 (.0336, n=9): place 1 < floor(10/4) = 2 -> promoted; 16 (n=11): count
    # 2 -> 3, place 2 is trial 3, already promoted. Bracket 1's rung 1 holds 3 results (< 4): none go on.
    result = preview(create_searcher(experiment(name="adaptive_asha", max_length=16, max_trials=16)))
    assert [group.rows for group in result.groups] == [((9, 1), (3, 4)), ((3, 4), (1, 16))]
    assert [group.title for group in result.groups] == [
        "Bracket 1 of 2: 3 rungs, 12 trials, 8 at a time", "Bracket 2 of 2: 2 rungs, 4 trials, 8 at a time"]
    assert (result.trials, result.total_length) == (16, 9 + 12 + 12 + 16)


def test_a_method_without_brackets_is_one_group_in_its_unit() -> None:
    result = preview(create_searcher(experiment(name="random", max_length={"epochs": 5}, max_trials=3)))
    assert result.groups == (PreviewGroup("", ((3, 5),)),)
    assert (result.unit, result.total_length) == ("epochs", 15)


def test_render() -> None:
    assert preview(create_searcher(experiment(**AGGRESSIVE))).render() == (
        "Bracket 1 of 1: 3 rungs, 16 trials, 16 at a time\n"
        "Trials | Training length\n"
        "-------+----------------\n"
        "    12 | 1 batch\n"
        "     3 | 4 batches\n"
        "     1 | 16 batches\n"
        "\n"
        "Total: 16 trials, 40 batches of training")


def test_render_one_group_without_title() -> None:
    rendered = Preview((PreviewGroup("", ((1, 1000),)),), "records").render()
    assert rendered == ("Trials | Training length\n"
                        "-------+----------------\n"
                        "     1 | 1000 records\n"
                        "\n"
                        "Total: 1 trial, 1000 records of training")


def test_a_method_that_stops_before_its_shutdown_is_an_error() -> None:
    searcher = ScriptedSearch(SearcherConfig(name="stalls", metric="loss"), create_searcher(experiment(**AGGRESSIVE)).space,
                              [Create(1, {}), ValidateAfter(1, 1)])
    with pytest.raises(SearcherError, match="stopped before its Shutdown"):
        preview(searcher)
