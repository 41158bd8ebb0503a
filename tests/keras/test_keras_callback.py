"""HptCallback in one process, with the local context a script gets outside an experiment."""

import doctest
import importlib
import json

import numpy as np
import pytest

import hpt_core
from hpt_core import LocalContext, Restore

pytestmark = pytest.mark.filterwarnings(  # Keras's TensorFlow backend, converting its own tensors
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


@pytest.fixture
def hpt_keras(keras):
    return importlib.import_module("hpt_keras")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.random((64, 8), dtype=np.float32), rng.integers(0, 3, 64)  # 4 batches of 16


def build_model(keras, learning_rate=0.01):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    return model


def local_context(tmp_path, max_length=None, unit="epochs", restore=None):
    ctx = LocalContext({}, max_length, unit, tmp_path / "checkpoints")
    ctx.restore = restore
    return ctx


def fit(model, callback, data, callbacks=(), **kwargs):
    x, y = data
    arguments = {"epochs": callback.epochs, "initial_epoch": callback.initial_epoch, **kwargs}
    return model.fit(x, y, validation_data=(x, y), batch_size=16, verbose=0, callbacks=[callback, *callbacks],
                     **arguments)


def checkpoints(tmp_path):
    return sorted((tmp_path / "checkpoints").iterdir())


def saved_counters(checkpoint):
    description = json.loads((checkpoint / "hpt_checkpoint.json").read_text())
    return description["batches"], description["epochs"]


def start_recorder(keras):
    """A callback that records the model's weights and optimizer state when fit starts (after HptCallback's)."""

    class StartRecorder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            optimizer = self.model.optimizer
            self.weights = self.model.get_weights()
            self.iterations = int(optimizer.iterations.numpy())
            self.learning_rate = float(optimizer.learning_rate.numpy())

    return StartRecorder()


# --- outside an experiment ----------------------------------------------------------------------


def test_outside_an_experiment_fit_trains_the_files_length_reports_and_saves_one_checkpoint(
        hpt_keras, keras, data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "exp.yaml"
    config.write_text("searcher: {name: single, metric: val_loss, max_length: {epochs: 3}}\n"
                      "hyperparameters: {learning_rate: 0.02}\n")
    ctx = hpt_core.init(config=config)
    callback = hpt_keras.HptCallback(ctx)
    model = build_model(keras, ctx.get_hparam("learning_rate"))
    history = fit(model, callback, data)
    assert (callback.epochs, callback.initial_epoch, len(history.history["loss"])) == (3, 0, 3)
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[hpt local]")]
    assert [line.split(":")[0] for line in printed] == [
        f"[hpt local] validation after {4 * epoch} batches, {epoch} epochs" for epoch in (1, 2, 3)]
    (checkpoint,) = sorted((tmp_path / "hpt_checkpoints").iterdir())
    assert (checkpoint / hpt_keras.WEIGHTS_FILE).is_file()
    assert saved_counters(checkpoint) == (12, 3)


def test_a_length_in_batches_ends_fit_at_that_batch(hpt_keras, keras, data, tmp_path):
    ctx = local_context(tmp_path, max_length=6, unit="batches")
    callback = hpt_keras.HptCallback(ctx)
    model = build_model(keras)
    history = fit(model, callback, data)
    assert callback.epochs == 6  # fit needs 6 epochs at the most (a batch each), not a sentinel
    assert len(history.history["loss"]) == 2 and int(model.optimizer.iterations.numpy()) == 6
    (checkpoint,) = checkpoints(tmp_path)
    assert saved_counters(checkpoint) == (6, 2)


def test_without_any_length_the_callback_asks_for_default_epochs(hpt_keras, tmp_path):
    callback = hpt_keras.HptCallback(local_context(tmp_path, unit="batches"))
    with pytest.raises(ValueError, match=r"HptCallback\(ctx, default_epochs=N\)"):
        callback.epochs
    assert hpt_keras.HptCallback(local_context(tmp_path, unit="batches"), default_epochs=4).epochs == 4


def test_the_trial_seed_seeds_the_initial_weights(hpt_keras, keras, tmp_path):
    weights = []
    for _ in range(2):
        hpt_keras.HptCallback(local_context(tmp_path, max_length=1))
        weights.append(build_model(keras).get_weights())
    assert all(np.array_equal(first, second) for first, second in zip(*weights))


# --- stops by other callbacks -------------------------------------------------------------------


@pytest.mark.parametrize("early_stopping_first", [True, False])
def test_another_callbacks_stop_is_a_stop_request_with_a_checkpoint(hpt_keras, keras, data, tmp_path,
                                                                    early_stopping_first):
    ctx = local_context(tmp_path, max_length=6)
    callback = hpt_keras.HptCallback(ctx)
    early_stopping = keras.callbacks.EarlyStopping("val_loss", patience=1, min_delta=10.0)  # stops after epoch 2
    model = build_model(keras)
    x, y = data
    callbacks = [early_stopping, callback] if early_stopping_first else [callback, early_stopping]
    history = model.fit(x, y, validation_data=(x, y), batch_size=16, epochs=callback.epochs, verbose=0,
                        initial_epoch=callback.initial_epoch, callbacks=callbacks)
    assert len(history.history["loss"]) == 2
    assert ctx.stop_requested
    (checkpoint,) = checkpoints(tmp_path)
    assert saved_counters(checkpoint) == (8, 2)


def test_a_trial_told_to_stop_inside_an_epoch_checkpoints_at_once_and_does_not_count_that_epoch(
        hpt_keras, keras, data, tmp_path, capsys):
    ctx = local_context(tmp_path, max_length=3)
    callback = hpt_keras.HptCallback(ctx)
    model = build_model(keras)

    def cancel_after_batch_6(batch, logs):  # what SIGTERM or a lost controller does to a trial's context
        ctx.preempted = ctx.preempted or int(model.optimizer.iterations.numpy()) == 6

    x, y = data
    history = model.fit(x, y, validation_data=(x, y), batch_size=16, epochs=callback.epochs, verbose=0,
                        callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=cancel_after_batch_6), callback])
    assert len(history.history["loss"]) == 2  # Keras ended epoch 2 after its second batch
    printed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("[hpt local]")]
    assert printed == ["[hpt local] validation after 4 batches, 1 epochs"]  # none for the cut epoch
    (checkpoint,) = checkpoints(tmp_path)
    assert saved_counters(checkpoint) == (6, 1)  # epoch 2 is trained again on resume


# --- resuming -----------------------------------------------------------------------------------


def train_and_checkpoint(hpt_keras, keras, data, tmp_path, epochs, learning_rate=0.01):
    """A first run of `epochs` epochs; returns its model and the Restore of its checkpoint."""
    callback = hpt_keras.HptCallback(local_context(tmp_path / "first", max_length=epochs))
    model = build_model(keras, learning_rate)
    fit(model, callback, data)
    (checkpoint,) = checkpoints(tmp_path / "first")
    batches, saved_epochs = saved_counters(checkpoint)
    return model, Restore("first", str(checkpoint), batches, saved_epochs, {}, warm_start=False)


def test_a_resumed_trial_continues_at_its_epoch_with_its_optimizer_state(hpt_keras, keras, data, tmp_path, capsys):
    first, restore = train_and_checkpoint(hpt_keras, keras, data, tmp_path, epochs=2)
    callback = hpt_keras.HptCallback(local_context(tmp_path, max_length=3, restore=restore))
    at_start = start_recorder(keras)
    history = fit(build_model(keras, learning_rate=0.5), callback, data, callbacks=[at_start])
    assert callback.initial_epoch == 2 and len(history.history["loss"]) == 1
    assert at_start.iterations == 8 and at_start.learning_rate == pytest.approx(0.01)
    assert all(np.array_equal(saved, loaded) for saved, loaded in zip(first.get_weights(), at_start.weights))
    assert "[hpt local] validation after 12 batches, 3 epochs" in capsys.readouterr().out


def test_a_warm_start_loads_the_parents_weights_and_keeps_its_own_learning_rate(hpt_keras, keras, data, tmp_path):
    parent, restore = train_and_checkpoint(hpt_keras, keras, data, tmp_path, epochs=2, learning_rate=0.01)
    warm = Restore(restore.checkpoint_id, restore.path, restore.batches, restore.epochs, {}, warm_start=True)
    callback = hpt_keras.HptCallback(local_context(tmp_path, max_length=1, restore=warm))
    at_start = start_recorder(keras)
    child = build_model(keras, learning_rate=0.03)
    history = fit(child, callback, data, callbacks=[at_start])
    assert callback.initial_epoch == 0 and len(history.history["loss"]) == 1
    assert at_start.learning_rate == pytest.approx(0.03)
    assert float(child.optimizer.learning_rate.numpy()) == pytest.approx(0.03)
    assert all(np.array_equal(saved, loaded) for saved, loaded in zip(parent.get_weights(), at_start.weights))


def test_resuming_without_initial_epoch_is_refused_with_the_fix(hpt_keras, keras, data, tmp_path):
    _, restore = train_and_checkpoint(hpt_keras, keras, data, tmp_path, epochs=2)
    callback = hpt_keras.HptCallback(local_context(tmp_path, max_length=3, restore=restore))
    with pytest.raises(ValueError, match=r"pass initial_epoch=callback.initial_epoch"):
        fit(build_model(keras), callback, data, initial_epoch=0)


def test_a_checkpoint_not_saved_by_hpt_keras_is_named_in_the_error(hpt_keras, keras, data, tmp_path):
    restore = Restore("other", str(tmp_path), 10, 1, {}, warm_start=False)
    callback = hpt_keras.HptCallback(local_context(tmp_path, max_length=2, restore=restore))
    with pytest.raises(FileNotFoundError, match="not saved by hpt_keras"):
        fit(build_model(keras), callback, data)


# --- docs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["hpt_keras.callback", "hpt_keras.checkpoints", "hpt_keras.metrics"])
def test_the_docstring_examples_run(keras, module):
    results = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert results.attempted > 0 and results.failed == 0
