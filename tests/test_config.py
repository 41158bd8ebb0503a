"""The experiment file: shapes, defaults, strict types, and errors that name the field."""

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hpt_core
from hpt_core import ConfigError, load_config
from hpt_core.space import Categorical, Const, Double, Group, Int, Log


def config_text(text):
    return load_config(textwrap.dedent(text))


def problems_of(text_or_mapping):
    source = text_or_mapping if isinstance(text_or_mapping, dict) else textwrap.dedent(text_or_mapping)
    with pytest.raises(ConfigError) as caught:
        load_config(source)
    return caught.value.problems


def paths_of(text_or_mapping):
    return [problem.path for problem in problems_of(text_or_mapping)]


def minimal(searcher=None, hyperparameters=None, **fields):
    return {
        "searcher": {"name": "random", "metric": "loss", "max_length": 10, "max_trials": 4, **(searcher or {})},
        "hyperparameters": hyperparameters if hyperparameters is not None else {"lr": 0.1},
        **fields,
    }


# --- a valid file -------------------------------------------------------------------------------


def test_a_full_file_is_read_into_a_typed_config_with_defaults_filled_in():
    config = config_text(
        """
        name: mnist
        entrypoint: python train.py
        hyperparameters:
          global_batch_size: 32
          optimizer:
            lr: {type: log, minval: -5, maxval: -1, base: 10}
            momentum: {type: double, minval: 0.5, maxval: 0.99}
          layers: {type: int, minval: 1, maxval: 4}
          activation: {type: categorical, vals: [relu, tanh]}
        searcher:
          name: adaptive_asha
          metric: val_loss
          max_length: {epochs: 20}
          max_trials: 30
        """
    )
    assert config.name == "mnist" and config.entrypoint == "python train.py"
    assert config.max_restarts == 5
    assert config.checkpoint_policy == "best"
    assert (config.checkpoint_storage.save_experiment_best, config.checkpoint_storage.save_trial_best,
            config.checkpoint_storage.save_trial_latest) == (0, 1, 1)
    searcher = config.searcher
    assert (searcher.name, searcher.metric, searcher.smaller_is_better) == ("adaptive_asha", "val_loss", True)
    assert (searcher.max_length.unit, searcher.max_length.value) == ("epochs", 20)
    assert (searcher.mode, searcher.divisor, searcher.max_rungs, searcher.stop_once) == ("standard", 4, 5, False)
    assert searcher.max_concurrent_trials == 16 and searcher.bracket_rungs is None
    space = config.space
    assert space.names == ["activation", "global_batch_size", "layers", "optimizer.lr", "optimizer.momentum"]
    leaves = dict((".".join(path), hp) for path, hp in space.leaves())
    assert leaves["global_batch_size"] == Const(32)
    assert leaves["layers"] == Int(1, 4)
    assert leaves["optimizer.lr"] == Log(-5, -1, base=10)
    assert leaves["optimizer.momentum"] == Double(0.5, 0.99)
    assert leaves["activation"] == Categorical(["relu", "tanh"])


def test_a_plain_integer_length_counts_batches():
    config = load_config(minimal({"max_length": 100}))
    assert (config.searcher.max_length.unit, config.searcher.max_length.value) == ("batches", 100)


@pytest.mark.parametrize("unit", ["batches", "epochs", "records"])
def test_length_units(unit):
    config = load_config(minimal({"max_length": {unit: 3}}))
    assert config.searcher.max_length.unit == unit


def test_a_list_or_scalar_is_a_constant_and_a_mapping_without_type_is_a_group():
    config = load_config(minimal(hyperparameters={"sizes": [1, 2], "name": "x", "deep": {"er": {"lr": 0.1}}}))
    leaves = dict((".".join(path), hp) for path, hp in config.space.leaves())
    assert leaves == {"deep.er.lr": Const(0.1), "name": Const("x"), "sizes": Const([1, 2])}


def test_yaml_scientific_notation_is_a_float_and_yes_no_are_booleans():
    config = config_text(
        """
        hyperparameters:
          lr: {type: double, minval: 1e-5, maxval: 1e-1}
        searcher: {name: random, metric: acc, smaller_is_better: no, max_length: 5, max_trials: 2}
        """
    )
    assert config.space.leaves()[0][1] == Double(1e-5, 1e-1)
    assert config.searcher.smaller_is_better is False


def test_environment_variables_as_mapping_or_determined_list():
    as_list = load_config(minimal(environment={"variables": ["A=1", "B=x=y"]}))
    as_map = load_config(minimal(environment={"variables": {"A": "1", "B": "x=y"}}))
    assert as_list.environment.variables == as_map.environment.variables == {"A": "1", "B": "x=y"}


def test_checkpoint_storage_and_other_settings():
    config = load_config(
        minimal(
            checkpoint_storage={"path": "s3://bucket/run", "save_experiment_best": 2},
            checkpoint_policy="all",
            records_per_epoch=5000,
            min_validation_period={"batches": 100},
            reproducibility={"experiment_seed": 99},
            resources={"slots_per_trial": 2},
            max_restarts=0,
            description="d",
        )
    )
    assert config.checkpoint_storage.path == "s3://bucket/run"
    assert config.checkpoint_storage.save_experiment_best == 2 and config.checkpoint_storage.save_trial_latest == 1
    assert config.checkpoint_policy == "all" and config.records_per_epoch == 5000
    assert config.min_validation_period.value == 100 and config.reproducibility.experiment_seed == 99
    assert config.resources.slots_per_trial == 2 and config.max_restarts == 0


def test_a_whole_float_is_accepted_as_an_int():
    assert load_config(minimal({"max_trials": 8.0})).searcher.max_trials == 8


def test_names_keep_any_character_but_the_dot():
    name = "<img src=x onerror=alert(1)> λ"
    config = load_config(minimal(hyperparameters={name: {"type": "categorical", "vals": ["<b>", 'q"']}}))
    assert config.space.names == [name]


def test_the_normalised_config_reads_back_to_the_same_config():
    config = load_config(
        minimal(
            {"name": "adaptive_asha", "bracket_rungs": [3, 2]},
            hyperparameters={"g": {"a": {"type": "int", "minval": 1, "maxval": 9, "count": 3, "default": 2}},
                             "c": {"type": "categorical", "vals": [None, "x"], "default": None}, "k": [1]},
        )
    )
    again = load_config(config.to_dict())
    assert again.to_dict() == config.to_dict()
    assert again.space == config.space
    assert config.to_dict()["searcher"]["max_length"] == {"batches": 10}


def test_custom_searcher_fields_are_those_of_the_class_it_names():
    config = load_config(minimal({"name": "custom", "class": "hpt_core.searchers:RandomSearch", "sampler": "tpe"}))
    assert config.searcher.class_path == "hpt_core.searchers:RandomSearch"
    assert (config.searcher.max_trials, config.searcher.sampler) == (4, "tpe")
    assert paths_of(minimal({"name": "custom", "class": "hpt_core.searchers:RandomSearch", "population": 7})) == [
        "searcher.population"]


# --- errors --------------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_dotted_paths():
    problems = problems_of(
        minimal(
            {"max_trials": 0, "divisor": 1},
            hyperparameters={"optimizer": {"lr": {"type": "double", "minval": 0.5, "maxval": 0.1}}},
            max_restarts=-1,
        )
    )
    paths = [problem.path for problem in problems]
    assert "searcher.max_trials" in paths
    assert "searcher.divisor" in paths  # unknown for random
    assert "max_restarts" in paths
    assert "hyperparameters.optimizer.lr" in paths
    message = str(ConfigError(problems))
    assert "`minval < maxval` must hold, but got minval=0.5, maxval=0.1" in message


def test_the_error_names_the_value_given_and_what_is_allowed():
    (problem,) = problems_of(minimal({"max_trials": "5"}))
    assert problem.path == "searcher.max_trials"
    assert problem.value == "5"
    assert "integer" in problem.message
    assert "'5'" in str(problem)


@pytest.mark.parametrize("value", [True, "3", 2.5, None, [3]])
def test_strict_integers(value):
    assert paths_of(minimal({"max_trials": value})) == ["searcher.max_trials"]


@pytest.mark.parametrize("value", [True, "0.5", None])
def test_strict_numbers(value):
    paths = paths_of(minimal(hyperparameters={"p": {"type": "double", "minval": value, "maxval": 1.0}}))
    assert paths == ["hyperparameters.p.minval"]


def test_unknown_keys_get_a_did_you_mean():
    problems = problems_of({**minimal(), "max_restart": 3})
    assert problems[0].path == "max_restart"
    assert "did you mean 'max_restarts'" in problems[0].message
    problems = problems_of(minimal({"max_trails": 3}))
    assert any(p.path == "searcher.max_trails" and "did you mean 'max_trials'" in p.message for p in problems)
    problems = problems_of(minimal(hyperparameters={"lr": {"type": "double", "minval": 0, "maxvall": 1}}))
    assert any(p.path == "hyperparameters.lr.maxvall" and "did you mean 'maxval'" in p.message for p in problems)


def test_unknown_top_level_section_suggests_the_real_one():
    problems = problems_of({"seracher": {}, "hyperparameters": {}})
    assert {"seracher", "searcher"} <= {p.path for p in problems}
    assert any("did you mean 'searcher'" in p.message for p in problems)


def test_unknown_search_method_and_hyperparameter_type():
    problems = problems_of(minimal({"name": "asha"}))
    assert problems[0].path == "searcher.name" and "adaptive_asha" in problems[0].message
    problems = problems_of(minimal(hyperparameters={"x": {"type": "categorial", "vals": [1]}}))
    assert problems[0].path == "hyperparameters.x.type" and "did you mean 'categorical'" in problems[0].message


@pytest.mark.parametrize(
    "searcher, missing",
    [
        ({"name": "random", "max_length": 5}, "searcher.max_trials"),
        ({"name": "adaptive_asha", "max_length": 5}, "searcher.max_trials"),
        ({"name": "grid"}, "searcher.max_length"),
        ({"name": "single"}, "searcher.max_length"),
        ({"name": "random", "max_trials": 5}, "searcher.max_length"),
        ({"name": "pbt", "num_rounds": 2, "length_per_round": 5}, "searcher.population_size"),
        ({"name": "pbt", "population_size": 2, "length_per_round": 5}, "searcher.num_rounds"),
        ({"name": "pbt", "population_size": 2, "num_rounds": 5}, "searcher.length_per_round"),
        ({"name": "custom"}, "searcher.class"),
    ],
)
def test_required_searcher_fields(searcher, missing):
    assert missing in paths_of({"searcher": {"metric": "loss", **searcher}, "hyperparameters": {}})


def test_the_metric_is_always_required():
    assert paths_of({"searcher": {"name": "single", "max_length": 3}}) == ["searcher.metric"]
    assert paths_of({"hyperparameters": {}}) == ["searcher"]


def test_pbt_needs_no_max_length():
    config = load_config({"searcher": {"name": "pbt", "metric": "loss", "population_size": 4, "num_rounds": 3,
                                       "length_per_round": {"epochs": 1}}})
    assert config.searcher.replace_function.truncate_fraction == 0.5
    assert config.searcher.explore_function.resample_probability == 0.5
    assert config.searcher.explore_function.perturb_factor == 0.2


@pytest.mark.parametrize(
    "fields, path",
    [
        ({"replace_function": {"truncate_fraction": 0.6}}, "searcher.replace_function.truncate_fraction"),
        ({"replace_function": {"truncate_fraction": -0.1}}, "searcher.replace_function.truncate_fraction"),
        ({"explore_function": {"resample_probability": 1.5}}, "searcher.explore_function.resample_probability"),
        ({"explore_function": {"perturb_factor": -1}}, "searcher.explore_function.perturb_factor"),
        ({"population_size": 0}, "searcher.population_size"),
        ({"length_per_round": 0}, "searcher.length_per_round.batches"),
    ],
)
def test_pbt_bounds(fields, path):
    searcher = {"name": "pbt", "metric": "loss", "population_size": 4, "num_rounds": 3, "length_per_round": 2}
    assert path in paths_of({"searcher": {**searcher, **fields}})


@pytest.mark.parametrize(
    "fields, path",
    [
        ({"divisor": 1}, "searcher.divisor"),
        ({"max_rungs": 0}, "searcher.max_rungs"),
        ({"max_trials": 0}, "searcher.max_trials"),
        ({"max_concurrent_trials": -1}, "searcher.max_concurrent_trials"),
        ({"mode": "fast"}, "searcher.mode"),
        ({"max_length": {"epochs": 0}}, "searcher.max_length.epochs"),
        ({"max_length": {"epochs": 2, "batches": 3}}, "searcher.max_length"),
        ({"max_length": {"minutes": 2}}, "searcher.max_length.minutes"),
        ({"bracket_rungs": [2, 0]}, "searcher.bracket_rungs.1"),
        ({"stop_once": "yes"}, "searcher.stop_once"),
    ],
)
def test_adaptive_asha_bounds(fields, path):
    assert path in paths_of(minimal({"name": "adaptive_asha", **fields}))


@pytest.mark.parametrize(
    "hyperparameter, path",
    [
        ({"type": "int", "minval": 3, "maxval": 3}, "hyperparameters.h"),
        ({"type": "int", "minval": 1.5, "maxval": 3}, "hyperparameters.h.minval"),
        ({"type": "int", "minval": 1, "maxval": 3, "count": 0}, "hyperparameters.h.count"),
        ({"type": "int", "minval": 1, "maxval": 3, "default": 4}, "hyperparameters.h.default"),
        ({"type": "double", "minval": 1, "maxval": 3, "default": 0.5}, "hyperparameters.h.default"),
        ({"type": "double", "minval": 0, "maxval": float("inf")}, "hyperparameters.h.maxval"),
        ({"type": "log", "minval": -3, "maxval": -1, "base": 0}, "hyperparameters.h.base"),
        ({"type": "log", "minval": -3, "maxval": -1, "default": 0.5}, "hyperparameters.h.default"),
        ({"type": "log", "minval": -3, "maxval": 400}, "hyperparameters.h.maxval"),
        ({"type": "log", "minval": -400, "maxval": -1}, "hyperparameters.h.minval"),
        ({"type": "log", "minval": -4, "maxval": -1, "base": 1e308}, "hyperparameters.h.base"),
        ({"type": "log", "minval": 1, "maxval": 2, "base": 10**400}, "hyperparameters.h.base"),
        ({"type": "double", "minval": -1e308, "maxval": 1e308}, "hyperparameters.h"),
        ({"type": {"a": 1}, "minval": 1, "maxval": 4}, "hyperparameters.h.type"),
        ({"type": ["int"], "minval": 1, "maxval": 4}, "hyperparameters.h.type"),
        ({"type": "const", "val": {1: "a"}}, "hyperparameters.h.val.1"),
        ({"type": "categorical", "vals": ["a", {"b"}]}, "hyperparameters.h.vals.1"),
        ({"type": "categorical", "vals": []}, "hyperparameters.h.vals"),
        ({"type": "categorical", "vals": "abc"}, "hyperparameters.h.vals"),
        ({"type": "categorical", "vals": [1, 2], "default": 3}, "hyperparameters.h.default"),
        ({"type": "const"}, "hyperparameters.h.val"),
        ({"type": "int", "minval": 1, "maxval": 2, "step": 1}, "hyperparameters.h.step"),
    ],
)
def test_hyperparameter_problems(hyperparameter, path):
    assert path in paths_of(minimal(hyperparameters={"h": hyperparameter}))


def test_hyperparameter_names_must_be_non_empty_and_dotless():
    assert paths_of(minimal(hyperparameters={"a.b": 1})) == ["hyperparameters.a.b"]
    assert "hyperparameters." in paths_of(minimal(hyperparameters={"": 1}))
    assert paths_of(minimal(hyperparameters={"g": {"x.y": 1}})) == ["hyperparameters.g.x.y"]


def test_grid_needs_count_on_every_numeric_hyperparameter():
    problems = problems_of(
        minimal(
            {"name": "grid"},
            hyperparameters={"a": {"type": "int", "minval": 0, "maxval": 3}, "g": {"b": {"type": "log", "minval": 0, "maxval": 1}},
                             "c": {"type": "categorical", "vals": [1]}, "d": {"type": "double", "minval": 0, "maxval": 1, "count": 2}},
        )
    )
    assert [p.path for p in problems] == ["hyperparameters.a.count", "hyperparameters.g.b.count"]


def test_config_error_is_a_value_error_listing_every_problem():
    with pytest.raises(ValueError) as caught:
        load_config(minimal({"max_trials": -1, "metric": 3}))
    text = str(caught.value)
    assert "2 problems" in text and "searcher.max_trials" in text and "searcher.metric" in text
    assert isinstance(caught.value, hpt_core.ConfigError)


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(str(tmp_path / "missing.yaml"))


# --- property: bad input never escapes as anything but ConfigError -------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
fields = st.sampled_from(["name", "metric", "max_length", "max_trials", "max_concurrent_trials", "mode",
                          "divisor", "max_rungs", "bracket_rungs", "stop_once", "smaller_is_better"])


@given(overrides=st.dictionaries(fields, json_values, max_size=4), hyperparameters=json_values)
@settings(max_examples=150, deadline=None)
def test_arbitrary_input_is_either_valid_or_a_config_error(overrides, hyperparameters):
    data = {"searcher": {"name": "adaptive_asha", "metric": "m", "max_length": 8, "max_trials": 4, **overrides},
            "hyperparameters": hyperparameters}
    try:
        config = load_config(data)
    except ConfigError as error:
        assert error.problems and all(isinstance(p.path, str) for p in error.problems)
    else:
        assert load_config(config.to_dict()).to_dict() == config.to_dict()


@given(minval=st.integers(-1000, 1000), width=st.integers(-5, 1000))
@settings(max_examples=80, deadline=None)
def test_int_bounds_are_accepted_exactly_when_minval_is_below_maxval(minval, width):
    data = minimal(hyperparameters={"n": {"type": "int", "minval": minval, "maxval": minval + width}})
    if width > 0:
        assert load_config(data).space.leaves()[0][1] == Int(minval, minval + width)
    else:
        assert paths_of(data) == ["hyperparameters.n"]


def test_an_empty_nested_group_reaches_the_trial_as_an_empty_mapping_as_in_determined():
    config = load_config(minimal(hyperparameters={"lr": 0.1, "extras": {}}))
    assert config.space.defaults() == {"extras": {}, "lr": 0.1}
    assert config.to_dict()["hyperparameters"]["extras"] == {"type": "const", "val": {}}


def test_a_problem_says_what_is_allowed_and_what_was_given():
    (problem,) = problems_of(minimal(hyperparameters={"w": {"type": {"a": 1}, "minval": 1, "maxval": 4}}))
    assert str(problem) == ("hyperparameters.w.type: unknown hyperparameter type; allowed: const, int, double, log, "
                            "categorical (got {'a': 1})")
    (problem,) = problems_of(minimal(hyperparameters={"lr": {"type": "log", "minval": -4, "maxval": -1,
                                                             "base": 1e308}}))
    assert str(problem) == ("hyperparameters.lr.base: `base ** minval` must be a positive finite float, "
                            "but got base=1e+308, minval=-4.0 (base ** minval = 0.0)")
    (problem,) = problems_of(minimal(max_time=10**400))
    assert problem.path == "max_time"
    assert problem.message == "must be a number within the range of a float (about ±1.8e308)"


def test_group_type_is_not_confused_with_nested_groups():
    config = load_config(minimal(hyperparameters={"g": {"inner": {"type": "int", "minval": 0, "maxval": 1}}}))
    assert isinstance(config.space.root.children["g"], Group)


@pytest.mark.parametrize("searcher, hyperparameters, path, hint", [
    ({"direction": "minimize"}, {}, "searcher.direction", "hpt says `smaller_is_better: true`"),
    ({"mode": "max"}, {}, "searcher.mode", "hpt says `smaller_is_better: false`"),
    ({"n_trials": 20}, {}, "searcher.n_trials", "hpt says `max_trials`"),
    ({"num_samples": 20}, {}, "searcher.num_samples", "hpt says `max_trials`"),
    ({}, {"lr": {"type": "loguniform", "minval": 1e-4, "maxval": 1}}, "hyperparameters.lr.type",
     "hpt says `type: log` with exponents as minval/maxval"),
    ({}, {"lr": {"type": "uniform", "minval": 0, "maxval": 1}}, "hyperparameters.lr.type", "`type: double`"),
    ({}, {"act": {"type": "choice", "vals": ["relu"]}}, "hyperparameters.act.type", "`type: categorical`"),
])
def test_habits_of_other_tools_get_a_hint_naming_what_hpt_calls_them(searcher, hyperparameters, path, hint):
    with pytest.raises(ConfigError) as raised:
        load_config({"searcher": {"name": "random", "metric": "loss", "max_length": 1, "max_trials": 2, **searcher},
                     "hyperparameters": hyperparameters})
    (problem,) = raised.value.problems
    assert problem.path == path and hint in problem.message
