"""searcher.points_to_evaluate: chosen configurations are tried first, in order; names they leave out are sampled."""

import pytest

from hpt_core import ConfigError, create_searcher, load_config
from hpt_core.searchers import Create

SPACE = {
    "lr": {"type": "log", "minval": -4, "maxval": -1},
    "units": {"type": "int", "minval": 8, "maxval": 64},
    "optimizer": {"name": {"type": "categorical", "vals": ["sgd", "adam"]}, "momentum": 0.9},
}
POINTS = [{"lr": 0.01, "units": 32, "optimizer": {"name": "adam"}}, {"units": 16}, {"optimizer.name": "sgd"}]


def creates(operations):
    return [operation for operation in operations if isinstance(operation, Create)]


def searcher_config(name, **fields):
    base = {"random": {"max_length": 4, "max_trials": 5},
            "adaptive_asha": {"max_length": 16, "max_trials": 8, "mode": "aggressive"},
            "pbt": {"population_size": 4, "num_rounds": 2, "length_per_round": 1}}[name]
    return {"searcher": {"name": name, "metric": "loss", "points_to_evaluate": POINTS, **base, **fields},
            "hyperparameters": SPACE}


@pytest.mark.parametrize("method", ["random", "adaptive_asha", "pbt"])
def test_points_are_the_first_trials_in_order_and_missing_names_are_sampled(method):
    first, second, third, *rest = creates(create_searcher(searcher_config(method)).initial_operations())
    assert first.hparams == {"lr": 0.01, "units": 32, "optimizer": {"name": "adam", "momentum": 0.9}}
    assert second.hparams["units"] == 16 and 1e-4 <= second.hparams["lr"] <= 0.1
    assert second.hparams["optimizer"]["name"] in ("sgd", "adam") and second.hparams["optimizer"]["momentum"] == 0.9
    assert third.hparams["optimizer"]["name"] == "sgd" and 8 <= third.hparams["units"] <= 64
    assert [c.request_id for c in (first, second, third)] == [1, 2, 3]


def test_random_samples_after_the_points_run_out():
    searcher = create_searcher(searcher_config("random", max_concurrent_trials=1))
    (first,) = creates(searcher.initial_operations())
    hparams = [first.hparams]
    for request_id in range(1, 5):
        searcher.on_validation_completed(request_id, 0.5, 4)
        (created,) = creates(searcher.on_trial_closed(request_id))
        hparams.append(created.hparams)
    assert hparams[0]["lr"] == 0.01 and hparams[1]["units"] == 16 and hparams[2]["optimizer"]["name"] == "sgd"
    assert len({repr(h) for h in hparams}) == 5


def test_points_survive_a_state_round_trip():
    import json

    searcher = create_searcher(searcher_config("random", max_concurrent_trials=1))
    searcher.initial_operations()
    restored = create_searcher(searcher_config("random", max_concurrent_trials=1))
    restored.load_state_dict(json.loads(json.dumps(searcher.state_dict())))
    searcher.on_validation_completed(1, 0.5, 4)
    restored.on_validation_completed(1, 0.5, 4)
    assert searcher.on_trial_closed(1) == restored.on_trial_closed(1)


@pytest.mark.parametrize("point, path", [
    ({"lr": 0.5}, "searcher.points_to_evaluate.0.lr"),
    ({"units": 7}, "searcher.points_to_evaluate.0.units"),
    ({"units": 16.5}, "searcher.points_to_evaluate.0.units"),
    ({"optimizer": {"name": "rmsprop"}}, "searcher.points_to_evaluate.0.optimizer.name"),
    ({"optimizer": {"momentum": 0.5}}, "searcher.points_to_evaluate.0.optimizer.momentum"),
    ({"layers": 3}, "searcher.points_to_evaluate.0.layers"),
    ({"optimizer": "adam"}, "searcher.points_to_evaluate.0.optimizer"),
])
def test_points_are_validated_against_the_space(point, path):
    with pytest.raises(ConfigError) as caught:
        load_config({"searcher": {"name": "random", "metric": "loss", "max_length": 4, "max_trials": 2,
                                  "points_to_evaluate": [point]}, "hyperparameters": SPACE})
    assert [problem.path for problem in caught.value.problems] == [path]


def test_grid_refuses_points_to_evaluate():
    with pytest.raises(ConfigError) as caught:
        load_config({"searcher": {"name": "grid", "metric": "loss", "max_length": 4,
                                  "points_to_evaluate": [{"x": 1}]},
                     "hyperparameters": {"x": {"type": "int", "minval": 0, "maxval": 2, "count": 3}}})
    assert [problem.path for problem in caught.value.problems] == ["searcher.points_to_evaluate"]
