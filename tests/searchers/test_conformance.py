"""Every built-in search method (several configs each) passes the shipped conformance suite.

The suite itself is specified at the bottom: it must catch methods that break the protocol.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from hpt_core import create_searcher
from hpt_core.config import Length, PositiveInt, SearcherConfig
from hpt_core.searchers import Close, Create, Operation, SearchMethod, ValidateAfter
from hpt_core.testing import (
    ConformanceError,
    SearchMethodConformance,
    check_determinism,
    check_operations_target_open_trials,
    check_progress,
    check_single_shutdown_after_every_trial_closed,
    check_state_round_trip,
    drive,
)


class KeepBestConfig(SearcherConfig):
    max_length: Length
    first_trials: PositiveInt = 3
    first_length: PositiveInt = 1


class KeepBestSearch(SearchMethod):
    """A user's method: try a few configurations briefly, then train only the best one to max_length."""

    name: ClassVar[str] = "keep_best"
    config_model: ClassVar[type[SearcherConfig]] = KeepBestConfig

    def __init__(self, config: KeepBestConfig, space: Any, seed: int = 0) -> None:
        super().__init__(config, space, seed)
        self.losses: dict[str, float] = {}
        self.open_trials: list[int] = []
        self.finalist: int | None = None
        self.decided = False

    def initial_operations(self) -> list[Operation]:
        operations: list[Operation] = []
        for _ in range(self.config.first_trials):
            request_id = self.new_request_id()
            self.open_trials.append(request_id)
            operations += [Create(request_id, self.space.sample(self.rng)),
                           ValidateAfter(request_id, self.config.first_length)]
        return operations

    def on_validation_completed(self, request_id: int, metric: Any, length: int) -> list[Operation]:
        loss = self.loss(metric)
        if request_id == self.finalist:
            return [Close(request_id)]
        self.losses[str(request_id)] = loss
        return self._pick_finalist()

    def on_trial_exited_early(self, request_id: int, reason: Any) -> list[Operation]:
        self.record_exit(request_id, reason)
        self.losses.pop(str(request_id), None)
        return [] if self.decided else self._pick_finalist()

    def on_trial_closed(self, request_id: int) -> list[Operation]:
        self.open_trials.remove(request_id)
        return [self.shutdown()] if self.decided and not self.open_trials else []

    def progress(self) -> float:
        return 1.0 if self.decided and not self.open_trials else 0.5 * self.decided

    def _pick_finalist(self) -> list[Operation]:
        waiting = [rid for rid in self.open_trials if str(rid) not in self.losses and str(rid) not in self.exits]
        if self.decided or waiting:
            return []
        self.decided = True
        ranking = sorted(self.losses, key=lambda key: (self.losses[key], int(key)))
        if not ranking:
            return []
        self.finalist = int(ranking[0])
        return [ValidateAfter(self.finalist, self.config.max_length.value),
                *(Close(int(key)) for key in ranking[1:])]


SPACE = {
    "lr": {"type": "log", "minval": -4, "maxval": -1, "count": 2},
    "layers": {"type": "int", "minval": 1, "maxval": 8, "count": 2},
    "act": {"type": "categorical", "vals": ["relu", "tanh"]},
    "optimizer": {"momentum": {"type": "double", "minval": 0.0, "maxval": 0.9, "count": 2}, "name": "sgd"},
}


def experiment(**searcher: Any) -> dict[str, Any]:
    return {"searcher": {"metric": "loss", **searcher}, "hyperparameters": SPACE}


CONFIGS = {
    "single": experiment(name="single", max_length={"epochs": 3}),
    "random-all-at-once": experiment(name="random", max_length=4, max_trials=5, max_concurrent_trials=0),
    "random-two-at-a-time": experiment(name="random", max_length=4, max_trials=5, max_concurrent_trials=2,
                                       smaller_is_better=False),
    "grid-all-at-once": experiment(name="grid", max_length=2, max_concurrent_trials=0),
    "grid-three-at-a-time": experiment(name="grid", max_length=2, max_concurrent_trials=3),
    "pbt-halves": experiment(name="pbt", population_size=4, num_rounds=3, length_per_round=2),
    "pbt-no-truncation": experiment(name="pbt", population_size=3, num_rounds=2, length_per_round=1,
                                    replace_function={"truncate_fraction": 0.25}, smaller_is_better=False),
    "pbt-odd-population": experiment(name="pbt", population_size=5, num_rounds=4, length_per_round=3,
                                     replace_function={"truncate_fraction": 0.4},
                                     explore_function={"resample_probability": 0.0, "perturb_factor": 1.0}),
    "asha-standard": experiment(name="adaptive_asha", max_length=16, max_trials=8, divisor=2),
    "asha-aggressive-stop-once": experiment(name="adaptive_asha", max_length=27, max_trials=9, divisor=3,
                                            mode="aggressive", stop_once=True, max_concurrent_trials=3),
    "asha-conservative": experiment(name="adaptive_asha", max_length=8, max_trials=6, mode="conservative",
                                    max_concurrent_trials=2),
    "random-tpe": experiment(name="random", max_length=2, max_trials=24, max_concurrent_trials=3, sampler="tpe"),
    "asha-tpe": experiment(name="adaptive_asha", max_length=16, max_trials=40, divisor=2, sampler="tpe"),
    "asha-adaptive-fidelity-tpe": experiment(name="adaptive_asha", max_length=16, max_trials=40, divisor=2,
                                             sampler="tpe", fidelity="adaptive"),
    "random-gp": experiment(name="random", max_length=2, max_trials=16, max_concurrent_trials=3, sampler="gp"),
    "asha-adaptive-fidelity-gp": experiment(name="adaptive_asha", max_length=16, max_trials=30, divisor=2,
                                            sampler="gp", fidelity="adaptive"),
    "asha-stop-once-adaptive-fidelity": experiment(name="adaptive_asha", max_length=9, max_trials=30, divisor=3,
                                                   stop_once=True, max_concurrent_trials=4, fidelity="adaptive"),
    "asha-stop-once-tpe": experiment(name="adaptive_asha", max_length=9, max_trials=30, divisor=3, stop_once=True,
                                     max_concurrent_trials=4, sampler="tpe"),
    "custom-own-config": experiment(name="custom", **{"class": f"{__name__}:KeepBestSearch"}, max_length=5,
                                    first_trials=4, first_length=2),
    "custom-names-a-built-in": experiment(name="custom", **{"class": "hpt_core.searchers:RandomSearch"},
                                          max_length=3, max_trials=3, max_concurrent_trials=1),
}


class TestBuiltinSearchMethods(SearchMethodConformance):
    @pytest.fixture(params=list(CONFIGS.values()), ids=list(CONFIGS))
    def searcher_factory(self, request: pytest.FixtureRequest):
        return lambda: create_searcher(request.param, seed=11)


class TestSuiteThroughMakeSearcher(SearchMethodConformance):
    """The plain way a user subclasses the suite: one `make_searcher()`."""

    def make_searcher(self) -> SearchMethod:
        return create_searcher(CONFIGS["custom-own-config"], seed=3)


# --- the suite catches broken methods ------------------------------------------------------------


def random_searcher(seed: int = 0) -> SearchMethod:
    return create_searcher(CONFIGS["random-two-at-a-time"], seed=seed)


class ValidatesAfterClose(KeepBestSearch):
    def on_trial_closed(self, request_id: int) -> list[Operation]:
        return [ValidateAfter(request_id, 1), *super().on_trial_closed(request_id)]


class ShrinkingLength(KeepBestSearch):
    def on_validation_completed(self, request_id: int, metric: Any, length: int) -> list[Operation]:
        operations = super().on_validation_completed(request_id, metric, length)
        return [ValidateAfter(operation.request_id, 1) if isinstance(operation, ValidateAfter) else operation
                for operation in operations]


class ShutsDownEarly(KeepBestSearch):
    def on_trial_closed(self, request_id: int) -> list[Operation]:
        operations = super().on_trial_closed(request_id)
        return operations or [self.shutdown()]


class ForgetsToShutDown(KeepBestSearch):
    def on_trial_closed(self, request_id: int) -> list[Operation]:
        self.open_trials.remove(request_id)
        return []


class GlobalRandomness(KeepBestSearch):
    def initial_operations(self) -> list[Operation]:
        self.rng = np.random.default_rng()
        return super().initial_operations()


def make(method: type[SearchMethod]) -> SearchMethod:
    config = KeepBestConfig(name="custom", metric="loss", max_length=Length(batches=4), first_length=2)
    return method(config, create_searcher(CONFIGS["single"]).space, seed=0)


@pytest.mark.parametrize(("method", "check", "message"), [
    (ValidatesAfterClose, check_operations_target_open_trials, "open trial"),
    (ShrinkingLength, check_operations_target_open_trials, "never decrease"),
    (ShutsDownEarly, check_single_shutdown_after_every_trial_closed, "before trials"),
    (ForgetsToShutDown, check_single_shutdown_after_every_trial_closed, "must end with a Shutdown"),
])
def test_suite_catches_protocol_violations(method, check, message) -> None:
    with pytest.raises(ConformanceError, match=message):
        check(drive(make(method)))


def test_suite_catches_randomness_outside_the_state() -> None:
    with pytest.raises(ConformanceError, match="same seed"):
        check_determinism(drive(make(GlobalRandomness)), drive(make(GlobalRandomness)))


def test_suite_catches_state_that_does_not_survive_json() -> None:
    class TupleInState(KeepBestSearch):
        """Keeps a tuple in its state: JSON gives it back as a list, so the restored method differs."""

        def __init__(self, config: KeepBestConfig, space: Any, seed: int = 0) -> None:
            super().__init__(config, space, seed)
            self.shape = (2, 3)

        def initial_operations(self) -> list[Operation]:
            return [Create(op.request_id, {**op.hparams, "shape": self.shape}) if isinstance(op, Create) else op
                    for op in super().initial_operations()]

    with pytest.raises(ConformanceError, match="after restoring the state"):
        check_state_round_trip(lambda: make(TupleInState), drive(make(TupleInState)))


def test_suite_catches_progress_out_of_range() -> None:
    class Overshoots(KeepBestSearch):
        def progress(self) -> float:
            return 2.0

    with pytest.raises(ConformanceError, match=r"\[0, 1\]"):
        check_progress(drive(make(Overshoots)))


def test_drive_is_reproducible_and_ends_every_trial() -> None:
    first, second = drive(random_searcher(), rng=5), drive(random_searcher(), rng=5)
    assert first.steps == second.steps
    assert all(trial.closed for trial in first.trials.values())
