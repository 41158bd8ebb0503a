"""A Keras trial whose behaviour the tests choose through hyperparameters.

It trains a small dense classifier on part of scikit-learn's digits with `HptCallback`, and writes
what the model holds when fit starts and after each epoch (optimizer step count, learning rate,
a checksum of the weights) to $TRIAL_LOG as JSON lines, so the tests can follow a trial across
its processes (pauses, restarts, PBT children).
"""

import json
import os
import signal
import time

import keras
import numpy as np
from sklearn.datasets import load_digits

import hpt_core
from hpt_keras import HptCallback

ctx = hpt_core.init()
callback = HptCallback(ctx)
behaviour = ctx.get_hparam("behaviour", "normal")
attempt = int(os.environ.get("HPT_ATTEMPT", "0"))


def log(event, **fields):
    with open(os.environ["TRIAL_LOG"], "a") as handle:
        handle.write(json.dumps({"event": event, "trial_id": ctx.trial_id, "attempt": attempt, "time": time.time(),
                                 "backend": keras.backend.backend(), **fields}) + "\n")


def model_state(model):
    return {"iterations": int(model.optimizer.iterations.numpy()),
            "learning_rate": float(model.optimizer.learning_rate.numpy()),
            "weights_sum": float(sum(np.sum(weights, dtype=np.float64) for weights in model.get_weights()))}


class TrialLog(keras.callbacks.Callback):
    """Placed after HptCallback, so that what it sees when fit starts is the restored model."""

    def on_train_begin(self, logs=None):
        restore = ctx.restore and {"checkpoint_id": ctx.restore.checkpoint_id, "epochs": ctx.restore.epochs,
                                   "batches": ctx.restore.batches, "warm_start": ctx.restore.warm_start}
        log("train_begin", restore=restore, initial_epoch=callback.initial_epoch, fit_epochs=self.params["epochs"],
            **model_state(self.model))

    def on_epoch_begin(self, epoch, logs=None):
        log("epoch_begin", epoch=epoch)
        if behaviour == "die_once" and attempt == 1 and epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_epoch_end(self, epoch, logs=None):
        log("epoch_end", epochs=epoch + 1, **model_state(self.model))


class Diverging(keras.layers.Layer):
    """A layer that finds, once fit traces the model for training, that its hyperparameters cannot train."""

    def call(self, inputs, training=False):
        if training:
            raise hpt_core.InvalidHP("the loss diverges with these hyperparameters")
        return inputs


features, labels = load_digits(return_X_y=True)
features = (features / 16.0).astype("float32")
x_train, y_train, x_val, y_val = features[:512], labels[:512], features[512:768], labels[512:768]
if behaviour == "nan_loss":  # one NaN input: the first epoch's training loss is NaN
    x_train[0, 0] = np.nan

layers = [keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10, activation="softmax")]
model = keras.Sequential([keras.Input((64,)), *([Diverging()] if behaviour == "invalid_train" else []), *layers])
model.compile(optimizer=keras.optimizers.Adam(ctx.get_hparam("learning_rate", 0.01)),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
early_stopping = keras.callbacks.EarlyStopping("val_loss", patience=1, min_delta=10.0)  # stops after epoch 2
callbacks = [callback, TrialLog(), early_stopping] if behaviour == "early_stop" else [callback, TrialLog()]
model.fit(x_train, y_train, validation_data=(x_val, y_val), batch_size=64, epochs=callback.epochs,
          initial_epoch=callback.initial_epoch, callbacks=callbacks, verbose=0)
log("exit")
