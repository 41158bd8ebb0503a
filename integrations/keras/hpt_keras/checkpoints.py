"""A Keras model's training state in a checkpoint directory: its weights and its optimizer's variables.

The state is one `model.weights.h5` file (Keras's own weights format, which also holds the
optimizer's variables once the optimizer is built), so it works for any model, subclassed ones
included, on every backend. To use a checkpoint after the search, build the model as the trial
script does and load the file::

    model = build_model(hparams)
    model.load_weights(f"{checkpoint_path}/model.weights.h5")
"""

from __future__ import annotations

from pathlib import Path

import keras

WEIGHTS_FILE = "model.weights.h5"


def save_training_state(model: keras.Model, directory: str | Path) -> Path:
    """Write the model's weights and optimizer variables into `directory`; returns the file written.

    >>> import tempfile, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> save_training_state(model, tempfile.mkdtemp()).name
    'model.weights.h5'
    """
    path = Path(directory) / WEIGHTS_FILE
    model.save_weights(path)
    return path


def load_training_state(model: keras.Model, directory: str | Path, *, keep_learning_rate: bool) -> None:
    """Load what `save_training_state` wrote into a built, compiled model (building its optimizer first).

    With `keep_learning_rate`, the optimizer keeps the learning rate it was compiled with instead
    of the saved one: a PBT child's own hyperparameters win over its parent's checkpoint.

    >>> import tempfile, keras
    >>> def build(learning_rate):
    ...     model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    ...     model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    ...     return model
    >>> directory = tempfile.mkdtemp()
    >>> _ = save_training_state(build(0.1), directory)
    >>> child = build(0.5)
    >>> load_training_state(child, directory, keep_learning_rate=True)
    >>> round(float(child.optimizer.learning_rate.numpy()), 3)
    0.5
    """
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {directory} has no {WEIGHTS_FILE}: it was not saved by hpt_keras")
    if not model.built:
        raise ValueError(f"the model {model.name!r} must be built before fit to resume from a checkpoint: "
                         "give it a keras.Input, or call model.build(input_shape) before fit")
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    compiled_learning_rate = _learning_rate_value(optimizer) if keep_learning_rate else None
    model.load_weights(path)
    if compiled_learning_rate is not None:
        optimizer.learning_rate = compiled_learning_rate


def _learning_rate_value(optimizer: keras.optimizers.Optimizer | None) -> float | None:
    """The optimizer's learning rate when it is a variable (a schedule is not saved, so it needs no keeping)."""
    if optimizer is None:
        return None
    learning_rate = optimizer.learning_rate
    return float(learning_rate.numpy()) if isinstance(learning_rate, keras.Variable) else None
