"""`searcher.name: custom`: a user's own SearchMethod subclass, named by `searcher.class: module:Class`.

The user methods below live in this test module and are named by its import path, as a user's
would be named by theirs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from hpt_core import ConfigError, Problem, create_searcher, load_config
from hpt_core.config import Length, PositiveInt, SearcherConfig
from hpt_core.searchers import Close, Create, Operation, SearchMethod, Shutdown, ValidateAfter
from hpt_core.searchers.custom import CustomConfig
from hpt_core.space import Space
from hpt_core.testing import drive

HERE = __name__


class RepeatConfig(SearcherConfig):
    max_length: Length
    repeats: PositiveInt = 2

    def check_space(self, space: Space) -> list[Problem]:
        return [] if space.names else [Problem("hyperparameters", "repeat search needs at least one hyperparameter")]


class RepeatDefaultsSearch(SearchMethod):
    """Train the defaults `repeats` times, one trial after another (e.g. to measure noise between runs)."""

    name: ClassVar[str] = "repeat_defaults"
    config_model: ClassVar[type[SearcherConfig]] = RepeatConfig

    def __init__(self, config: RepeatConfig, space: Space, seed: int = 0) -> None:
        super().__init__(config, space, seed)
        self.closed = 0

    def initial_operations(self) -> list[Operation]:
        return self._next_trial()

    def on_validation_completed(self, request_id: int, metric: Any, length: int) -> list[Operation]:
        self.loss(metric)
        return [Close(request_id)]

    def on_trial_closed(self, request_id: int) -> list[Operation]:
        self.closed += 1
        return self._next_trial() if len(self.created) < self.config.repeats else [self.shutdown()]

    def progress(self) -> float:
        return self.closed / self.config.repeats

    def _next_trial(self) -> list[Operation]:
        request_id = self.new_request_id()
        return [Create(request_id, self.space.defaults()), ValidateAfter(request_id, self.config.max_length.value)]


class DefaultsOnceSearch(SearchMethod):
    """Declares no config model of its own: it takes only the fields every search method shares."""

    def __init__(self, config: SearcherConfig, space: Space, seed: int = 0) -> None:
        super().__init__(config, space, seed)
        self.done = False

    def initial_operations(self) -> list[Operation]:
        return [Create(1, self.space.defaults()), ValidateAfter(1, self.config.max_length.value)]

    def on_validation_completed(self, request_id: int, metric: Any, length: int) -> list[Operation]:
        return [Close(request_id)]

    def on_trial_closed(self, request_id: int) -> list[Operation]:
        self.done = True
        return [self.shutdown()]

    def progress(self) -> float:
        return 1.0 if self.done else 0.0


class NotASearchMethod:
    pass


class Unfinished(SearchMethod):
    def initial_operations(self) -> list[Operation]:
        return []


SPACE = {"lr": {"type": "log", "minval": -4, "maxval": -2}, "layers": 3}


def custom(class_path: str, hyperparameters: dict[str, Any] = SPACE, **fields: Any) -> SearchMethod:
    searcher = {"name": "custom", "class": class_path, "metric": "loss", **fields}
    return create_searcher({"searcher": searcher, "hyperparameters": hyperparameters}, seed=5)


def test_the_user_class_is_built_with_its_own_validated_config() -> None:
    searcher = custom(f"{HERE}:RepeatDefaultsSearch", max_length={"epochs": 4}, repeats=3)
    assert type(searcher) is RepeatDefaultsSearch
    assert isinstance(searcher.config, RepeatConfig)
    assert (searcher.config.repeats, searcher.config.max_length, searcher.config.metric) == (3, Length(epochs=4), "loss")
    assert searcher.space.names == ["layers", "lr"]


def test_the_user_config_models_defaults_apply() -> None:
    searcher = custom(f"{HERE}:RepeatDefaultsSearch", max_length=4)
    assert searcher.config.repeats == 2
    assert searcher.config.max_concurrent_trials == 16


def test_the_user_method_runs_a_search() -> None:
    run = drive(custom(f"{HERE}:RepeatDefaultsSearch", max_length=4, repeats=3))
    # Three trials one after another with the defaults lr = 10 ** -3, layers = 3, each to 4.
    assert [trial.hparams for trial in run.trials.values()] == [{"layers": 3, "lr": pytest.approx(1e-3)}] * 3
    assert [trial.reported_lengths for trial in run.trials.values()] == [[4], [4], [4]]
    assert run.shutdowns == [Shutdown(failure=False, cancel=False)]


def test_the_seed_reaches_the_user_method() -> None:
    first = custom(f"{HERE}:RepeatDefaultsSearch", max_length=4).rng.random()
    again = custom(f"{HERE}:RepeatDefaultsSearch", max_length=4).rng.random()
    assert first == again


def test_invalid_fields_are_reported_by_the_user_model_with_searcher_paths() -> None:
    with pytest.raises(ConfigError) as raised:
        custom(f"{HERE}:RepeatDefaultsSearch", max_length=4, repeats=0, repeets=2)
    assert sorted(raised.value.paths) == ["searcher.repeats", "searcher.repeets"]
    assert "did you mean 'repeats'" in str(raised.value)


def test_a_missing_required_field_of_the_user_model_is_reported() -> None:
    with pytest.raises(ConfigError) as raised:
        custom(f"{HERE}:RepeatDefaultsSearch", repeats=2)
    assert raised.value.paths == ["searcher.max_length"]


def test_the_user_models_space_check_applies() -> None:
    with pytest.raises(ConfigError) as raised:
        custom(f"{HERE}:RepeatDefaultsSearch", hyperparameters={}, max_length=4)
    assert raised.value.paths == ["hyperparameters"]


def test_without_its_own_model_the_user_class_takes_the_shared_fields() -> None:
    searcher = custom(f"{HERE}:DefaultsOnceSearch", max_length=7, smaller_is_better=False)
    assert isinstance(searcher.config, CustomConfig)
    assert (searcher.config.max_length, searcher.config.smaller_is_better) == (Length(batches=7), False)
    assert searcher.initial_operations() == [Create(1, {"layers": 3, "lr": pytest.approx(1e-3)}), ValidateAfter(1, 7)]


def test_without_its_own_model_any_other_field_is_refused_with_did_you_mean() -> None:
    with pytest.raises(ConfigError) as raised:
        custom(f"{HERE}:DefaultsOnceSearch", max_length=7, smaller_is_bettrr=False, label="baseline")
    assert sorted(raised.value.paths) == ["searcher.label", "searcher.smaller_is_bettrr"]
    assert "did you mean 'smaller_is_better'" in str(raised.value)


def test_the_experiment_file_is_checked_against_the_user_model_before_any_search_is_built() -> None:
    """`hpt config check` (load_config) imports the class, so typos never wait for the run to be ignored."""
    experiment = {"searcher": {"name": "custom", "class": f"{HERE}:RepeatDefaultsSearch", "metric": "loss",
                               "max_length": 4, "repeets": 3}, "hyperparameters": SPACE}
    with pytest.raises(ConfigError) as raised:
        load_config(experiment)
    assert raised.value.paths == ["searcher.repeets"]
    assert "allowed: class, max_concurrent_trials, max_length" in str(raised.value)


def test_the_normalised_file_keeps_the_class_and_the_user_models_fields() -> None:
    experiment = {"searcher": {"name": "custom", "class": f"{HERE}:RepeatDefaultsSearch", "metric": "loss",
                               "max_length": 4}, "hyperparameters": SPACE}
    normalised = load_config(experiment).to_dict()
    assert normalised["searcher"]["class"] == f"{HERE}:RepeatDefaultsSearch"
    assert normalised["searcher"]["repeats"] == 2
    assert load_config(normalised).to_dict() == normalised


@pytest.mark.parametrize(("class_path", "reason"), [
    ("no_such_module_for_hpt:Search", "cannot import module 'no_such_module_for_hpt'"),
    (f"{HERE}:NoSuchClass", "has no attribute 'NoSuchClass'"),
    (f"{HERE}:NotASearchMethod", "NotASearchMethod is not a search method"),
    ("hpt_core.searchers.custom:CustomSearch", "CustomSearch is not a search method"),
    (f"{HERE}:Unfinished", "Unfinished does not implement on_trial_closed, on_validation_completed, progress"),
])
def test_a_class_that_cannot_be_used_is_a_config_error_naming_searcher_class(class_path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        custom(class_path, max_length=4)
    (problem,) = raised.value.problems
    assert problem.path == "searcher.class"
    assert problem.value == class_path
    assert reason in problem.message
    assert "allowed: 'module:Class' naming an importable subclass of hpt_core.searchers.SearchMethod" in problem.message


def test_class_must_be_written_module_colon_class() -> None:
    with pytest.raises(ConfigError) as raised:
        custom("just_a_module", max_length=4)
    assert raised.value.paths == ["searcher.class"]


def test_class_is_required() -> None:
    with pytest.raises(ConfigError) as raised:
        create_searcher({"searcher": {"name": "custom", "metric": "loss"}, "hyperparameters": SPACE})
    assert raised.value.paths == ["searcher.class"]


def test_a_built_in_method_can_be_named_too() -> None:
    searcher = custom("hpt_core.searchers:GridSearch", max_length=2, hyperparameters={"act": {
        "type": "categorical", "vals": ["relu", "tanh"]}})
    assert [operation.hparams for operation in searcher.initial_operations()[::2]] == [{"act": "relu"},
                                                                                       {"act": "tanh"}]
