"""The hyperparameter space: sampling, grid, perturbation, defaults and flattening."""

import collections
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpt_core.space import Categorical, Const, Double, Group, Int, Log, Space, flatten, round_half_away


def rng(seed=0):
    return np.random.default_rng(seed)


# --- rounding -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected", [(0.5, 1), (1.5, 2), (2.5, 3), (-0.5, -1), (-2.5, -3), (2.4, 2), (-2.4, -2), (3.0, 3)]
)
def test_round_half_away_from_zero(value, expected):
    assert round_half_away(value) == expected


# --- grid -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hp, points",
    [
        (Int(0, 10, count=3), [0, 5, 10]),
        (Int(0, 3, count=3), [0, 2, 3]),  # 1.5 rounds away from zero to 2
        (Int(1, 4, count=2), [1, 4]),
        (Int(2, 3, count=1), [3]),  # midpoint 2.5 -> 3 (Python's round would give 2)
        (Int(-3, -2, count=1), [-3]),  # midpoint -2.5 -> -3
        (Int(0, 2, count=10), [0, 1, 2]),  # count clamped to maxval - minval + 1
        (Int(0, 9, count=4), [0, 3, 6, 9]),
        (Double(0.0, 1.0, count=5), [0.0, 0.25, 0.5, 0.75, 1.0]),
        (Double(-1.0, 1.0, count=1), [0.0]),
        (Double(0.0, 1.0, count=1000), None),  # doubles are never clamped: 1000 points
        (Log(-3, -1, count=3), [1e-3, 1e-2, 1e-1]),
        (Log(1, 3, base=2, count=3), [2.0, 4.0, 8.0]),
        (Log(-4, 0, count=1), [1e-2]),
        (Categorical(["b", "a", "c"]), ["b", "a", "c"]),
        (Const({"x": 1}), [{"x": 1}]),
    ],
)
def test_grid_points_per_type(hp, points):
    grid = hp.grid()
    if points is None:
        assert len(grid) == 1000 and grid[0] == 0.0 and grid[-1] == 1.0
    else:
        assert grid == pytest.approx(points) if not isinstance(hp, (Categorical, Const)) else grid == points


def test_grid_is_row_major_over_sorted_names_first_name_slowest():
    space = Space({"b": Categorical(["x", "y"]), "a": Int(1, 2, count=2)})
    assert space.grid() == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]


def test_grid_expands_nested_groups_to_one_axis_per_leaf():
    space = Space({"z": 0.5, "g": Group({"y": Categorical(["p", "q"]), "x": Int(0, 1, count=2)})})
    assert space.names == ["g.x", "g.y", "z"]
    assert space.grid() == [
        {"g": {"x": 0, "y": "p"}, "z": 0.5},
        {"g": {"x": 0, "y": "q"}, "z": 0.5},
        {"g": {"x": 1, "y": "p"}, "z": 0.5},
        {"g": {"x": 1, "y": "q"}, "z": 0.5},
    ]
    assert space.grid_size() == 4


# --- sampling -------------------------------------------------------------------------------------


def test_int_sampling_includes_both_ends():
    values = collections.Counter(Int(1, 3).sample(generator) for generator in [rng()] for _ in range(3000))
    assert set(values) == {1, 2, 3}
    assert all(800 < count < 1200 for count in values.values())


def test_double_sampling_stays_in_half_open_range():
    generator = rng(1)
    values = [Double(-1.0, 1.0).sample(generator) for _ in range(2000)]
    assert all(-1.0 <= value < 1.0 for value in values)
    assert min(values) < -0.95 and max(values) > 0.95


def test_log_sampling_is_uniform_in_the_exponent():
    generator = rng(2)
    values = [Log(-4, 0, base=10).sample(generator) for _ in range(4000)]
    assert all(1e-4 <= value <= 1.0 for value in values)
    exponents = np.log10(values)
    below = np.mean(exponents < -2)
    assert 0.45 < below < 0.55  # half of the exponent range, not half of the value range


def test_categorical_sampling_is_uniform_over_vals():
    generator = rng(3)
    counts = collections.Counter(Categorical(["a", "b", "c", "d"]).sample(generator) for _ in range(4000))
    assert set(counts) == {"a", "b", "c", "d"}
    assert all(850 < count < 1150 for count in counts.values())


def test_a_seed_reproduces_a_sample_whatever_the_order_names_were_written_in():
    forward = Space({"a": Int(0, 100), "b": Double(0, 1), "g": Group({"x": Log(-3, 0), "y": Int(0, 9)})})
    backward = Space({"g": Group({"y": Int(0, 9), "x": Log(-3, 0)}), "b": Double(0, 1), "a": Int(0, 100)})
    assert forward.sample(rng(42)) == backward.sample(rng(42))
    assert forward.sample(rng(42)) != forward.sample(rng(43))


def test_sample_is_nested_like_the_space_and_constants_keep_their_value():
    space = Space({"model": Group({"layers": Int(1, 3), "act": Const("relu")}), "lr": Const(0.1)})
    sample = space.sample(rng())
    assert sample["model"]["act"] == "relu" and sample["lr"] == 0.1 and 1 <= sample["model"]["layers"] <= 3


# --- defaults -------------------------------------------------------------------------------------


def test_defaults_without_an_explicit_default():
    space = Space(
        {
            "i": Int(0, 5),  # midpoint 2.5 rounds away from zero -> 3
            "d": Double(0.0, 1.0),
            "l": Log(-4, -2),  # midpoint exponent -3
            "c": Categorical(["sgd", "adam"]),
            "k": Const(7),
        }
    )
    defaults = space.defaults()
    assert defaults["i"] == 3 and defaults["d"] == 0.5 and defaults["c"] == "sgd" and defaults["k"] == 7
    assert defaults["l"] == pytest.approx(1e-3)


def test_explicit_defaults_win():
    space = Space({"i": Int(0, 5, default=1), "c": Categorical(["a", "b"], default="b"), "l": Log(-4, -2, default=0.005)})
    assert space.defaults() == {"c": "b", "i": 1, "l": 0.005}


# --- perturbation ---------------------------------------------------------------------------------


def test_perturb_without_resampling_multiplies_by_one_minus_or_plus_factor():
    space = Space({"units": Int(1, 100), "dropout": Double(0.0, 1.0), "lr": Log(-5, 0), "act": Categorical(["a", "b"]), "k": 3})
    parent = {"units": 10, "dropout": 0.5, "lr": 0.01, "act": "a", "k": 3}
    seen = collections.defaultdict(set)
    generator = rng(5)
    for _ in range(200):
        child = space.perturb(parent, generator, resample_probability=0.0, perturb_factor=0.2)
        for name, value in child.items():
            seen[name].add(round(value, 12) if isinstance(value, float) else value)
    assert seen["units"] == {8, 12}  # floor(10 * 0.8) and ceil(10 * 1.2)
    assert seen["dropout"] == {0.4, 0.6}
    assert seen["lr"] == {0.008, 0.012}  # log hyperparameters move in value space
    assert seen["act"] == {"a"} and seen["k"] == {3}


def test_perturb_int_floors_on_decrease_and_ceils_on_increase():
    generator = rng(6)
    outcomes = {Space({"n": Int(1, 10)}).perturb({"n": 3}, generator, 0.0, 0.2)["n"] for _ in range(100)}
    assert outcomes == {2, 4}  # floor(2.4) = 2, ceil(3.6) = 4


def test_perturb_clamps_to_the_range():
    space = Space({"n": Int(1, 10), "p": Double(0.0, 1.0), "lr": Log(-3, -1)})
    generator = rng(7)
    for _ in range(100):
        child = space.perturb({"n": 10, "p": 1.0, "lr": 0.1}, generator, 0.0, 0.5)
        assert child["n"] in (5, 10) and child["p"] in (0.5, 1.0)
        assert child["lr"] == pytest.approx(0.05) or child["lr"] == pytest.approx(0.1)


def test_perturb_moves_down_and_up_about_equally_often():
    generator = rng(8)
    ups = sum(Space({"p": Double(0.0, 10.0)}).perturb({"p": 1.0}, generator, 0.0, 0.1)["p"] > 1.0 for _ in range(2000))
    assert 900 < ups < 1100


def test_resampling_draws_from_the_distribution_and_a_group_as_a_whole():
    space = Space({"g": Group({"a": Int(0, 1000), "b": Int(0, 1000)}), "c": Categorical(list(range(50)))})
    generator = rng(9)
    parent = {"g": {"a": 500, "b": 500}, "c": 0}
    children = [space.perturb(parent, generator, resample_probability=1.0, perturb_factor=0.0) for _ in range(50)]
    assert any(child["c"] != 0 for child in children)
    assert all(space.contains(child) for child in children)
    assert len({child["g"]["a"] for child in children}) > 40  # resampled, not perturbed by factor 0


@given(seed=st.integers(0, 2**32 - 1), probability=st.floats(0, 1), factor=st.floats(0, 1))
@settings(max_examples=60, deadline=None)
def test_perturbed_values_always_stay_in_range(seed, probability, factor):
    space = Space({"n": Int(-5, 5), "p": Double(-1.0, 2.0), "lr": Log(-3, 1, base=2), "g": Group({"c": Categorical([1, 2])})})
    generator = rng(seed)
    parent = space.sample(generator)
    for _ in range(5):
        parent = space.perturb(parent, generator, probability, factor)
        assert space.contains(parent)


# --- flattening ----------------------------------------------------------------------------------


def test_flatten_uses_dotted_names_and_keeps_odd_characters():
    nested = {"optimizer": {"lr": 0.1, "β-1 (momentum)": 0.9}, "<img src=x>": "a"}
    assert flatten(nested) == {"<img src=x>": "a", "optimizer.lr": 0.1, "optimizer.β-1 (momentum)": 0.9}


def test_space_contains_checks_names_and_ranges():
    space = Space({"n": Int(1, 3), "g": Group({"c": Categorical(["a", "b"])})})
    assert space.contains({"n": 2, "g": {"c": "a"}})
    assert not space.contains({"n": 4, "g": {"c": "a"}})
    assert not space.contains({"n": 2, "g": {"c": "z"}})
    assert not space.contains({"n": 2})
    assert not space.contains({"n": True, "g": {"c": "a"}})
    assert math.isclose(Log(-2, 0).low, 0.01)
