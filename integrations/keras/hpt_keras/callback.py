"""`HptCallback`: one Keras callback that makes `model.fit` an hpt trial.

How one `fit` call follows the search method: a search method raises a trial's target while it
trains (ASHA promotes it, PBT starts another round), but the `epochs` of `fit` is fixed when fit
starts. So inside an experiment `callback.epochs` is an upper bound (the most any trial may train:
that many epochs, or with lengths in batches that many batches, one epoch each at the least) and
the callback ends fit itself, with `model.stop_training`, when the trial is to pause or close;
outside an experiment it is the experiment file's length. A target in batches ends the epoch it
falls in early: Keras validates there, and if the trial goes on, the next epoch starts afresh.
"""

from __future__ import annotations

from typing import Any, Mapping

import keras

from hpt_core.context import LocalContext, TrialContext
from hpt_keras.checkpoints import WEIGHTS_FILE, load_training_state, save_training_state
from hpt_keras.metrics import split_logs


class _StopSetByHpt:
    """The true value HptCallback puts in `model.stop_training`.

    Any other true value there was put by another callback (EarlyStopping, TerminateOnNaN, the
    user's own), which hpt takes as the trial asking to stop, wherever the callbacks stand in the list.
    """

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "True (set by HptCallback)"


_STOP_SET_BY_HPT = _StopSetByHpt()


class HptCallback(keras.callbacks.Callback):
    """Reports each epoch's logs, trains to the search method's targets, checkpoints and resumes.

    - Each epoch: the training logs are reported, then the `val_*` logs as validation metrics
      (the searcher metric, e.g. `val_loss`, among them); at a target without validation data
      the training logs stand in, so a searcher metric such as `loss` works too.
    - At each target it hears what next: train on to the next target, or save a checkpoint and
      end fit (`model.stop_training`), so that the trial pauses or closes and the script exits.
    - Any other callback that stops training (EarlyStopping, TerminateOnNaN) asks the trial to
      stop (`context.set_stop_requested`): it checkpoints and ends COMPLETED.
    - A checkpoint holds the weights and the optimizer's state (`model.weights.h5`). A resumed
      trial loads it when fit starts and goes on from `initial_epoch`; a PBT child loads its
      parent's with its counters at 0 and keeps its own learning rate.
    - Creating the callback seeds Keras, NumPy and Python with the trial seed
      (`keras.utils.set_random_seed`): create it before building the model.

    In a trial script::

        ctx = hpt_core.init()
        callback = HptCallback(ctx)
        model = build_model(ctx.get_hparams())
        model.fit(x, y, validation_data=(x_val, y_val), epochs=callback.epochs,
                  initial_epoch=callback.initial_epoch, callbacks=[callback, keras.callbacks.EarlyStopping()])

    `default_epochs` is the number of epochs to train when the experiment file gives no length
    (`searcher.max_length`, or PBT's rounds). With a local context (what `hpt_core.init()` returns
    outside an experiment):

    >>> import tempfile, hpt_core, keras, numpy as np
    >>> from pathlib import Path
    >>> checkpoints = Path(tempfile.mkdtemp())
    >>> ctx = hpt_core.LocalContext({}, max_length=None, unit="epochs", checkpoint_root=checkpoints)
    >>> callback = HptCallback(ctx, default_epochs=2)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    >>> x, y = np.random.rand(32, 4), np.random.randint(0, 3, 32)
    >>> history = model.fit(x, y, validation_data=(x, y), epochs=callback.epochs,  # doctest: +ELLIPSIS
    ...                     initial_epoch=callback.initial_epoch, callbacks=[callback], batch_size=16, verbose=0)
    [hpt local] validation after 2 batches, 1 epochs: val_loss=...
    [hpt local] validation after 4 batches, 2 epochs: val_loss=...
    >>> len(history.history["loss"]), len(list(checkpoints.iterdir()))
    (2, 1)
    """

    def __init__(self, context: TrialContext | LocalContext, *, default_epochs: int | None = None) -> None:
        super().__init__()
        if default_epochs is not None and (isinstance(default_epochs, bool) or not isinstance(default_epochs, int)
                                           or default_epochs < 1):
            raise ValueError(f"default_epochs must be an integer >= 1, but got {default_epochs!r}")
        self.context = context
        self.default_epochs = default_epochs
        restore = context.restore
        resumes = restore is not None and not restore.warm_start
        self.initial_epoch: int = restore.epochs if resumes else 0
        self._batches = restore.batches if resumes else 0
        self._epochs = self.initial_epoch
        self._epoch_start_batches = self._batches
        self._first_epoch_seen = False
        self._cut_short = False
        self._last_checkpoint: tuple[int, int] | None = None
        keras.utils.set_random_seed(context.trial_seed)

    # --- what to pass to fit --------------------------------------------------------------------

    @property
    def epochs(self) -> int:
        """The `epochs` to pass to fit, which Keras's progress bar counts to: the experiment file's length.

        In an experiment that is the most any trial may train, and the callback ends fit at the
        trial's own target. A length in batches is that many epochs: each epoch trains one batch at
        the least, so fit never needs more (the bar counts to the length in steps).
        """
        context = self.context
        if context.max_length is not None:
            return context.max_length
        if self.default_epochs is not None:
            return self.default_epochs
        if isinstance(context, LocalContext):
            raise ValueError("no length to train to: run inside an experiment, name an experiment file with "
                             "HPT_CONFIG, or pass HptCallback(ctx, default_epochs=N)")
        raise ValueError("this experiment's search method gives no searcher.max_length, so fit has no number of "
                         "epochs to count to: set searcher.max_length, or pass HptCallback(ctx, default_epochs=N)")

    # --- Keras hooks ------------------------------------------------------------------------------

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._check_fit_epochs()
        restore = self.context.restore
        if restore is not None:
            load_training_state(self.model, restore.path, keep_learning_rate=restore.warm_start)

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if not self._first_epoch_seen and epoch != self.initial_epoch:
            raise ValueError(f"fit started at epoch {epoch}, but this trial goes on after epoch {self.initial_epoch}: "
                             "pass initial_epoch=callback.initial_epoch to fit")
        self._first_epoch_seen = True
        self._epoch_start_batches = self._batches

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._batches = self._epoch_start_batches + batch + 1
        if self._cut_short:
            return
        if self._must_stop_now():
            self._cut_short = True
            self._stop_training()
        elif self.context.unit == "batches" and self._target_reached():
            self._stop_training()

    def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._cut_short:  # the epoch was cut short to stop: its validation would not be reported
            self.model.stop_evaluating = True

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._cut_short:  # an unfinished epoch is trained again when the trial resumes
            return
        self._epochs = epoch + 1
        self._notice_stop_by_another_callback()
        context, batches, epochs = self.context, self._batches, self._epochs
        training, validation = split_logs(logs)
        context.report_training(training, batches=batches, epochs=epochs)
        reached = self._target_reached()
        if validation or reached:
            context.report_validation(validation or training, batches=batches, epochs=epochs)
        if reached or context.should_stop() or context.stop_requested:
            if not self._has_more_to_train():
                self._stop_training()  # the checkpoint is saved in on_train_end, once every epoch-end hook has run
                return
            if self.model.stop_training is _STOP_SET_BY_HPT:  # a target in batches ended this epoch early
                self.model.stop_training = False
        if not isinstance(context, LocalContext) and context.should_checkpoint():
            self._save_checkpoint()

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._notice_stop_by_another_callback()
        context = self.context
        if not isinstance(context, LocalContext) and self._has_more_to_train():
            raise RuntimeError(f"fit ended after {self._epochs} epochs, but this trial is to train to "
                               f"{context.target_length} {context.unit}: pass epochs=callback.epochs to fit")
        if isinstance(context, LocalContext) or context.should_checkpoint():
            self._save_checkpoint()

    # --- decisions --------------------------------------------------------------------------------

    def _length(self) -> int:
        return self._batches if self.context.unit == "batches" else self._epochs

    def _target_reached(self) -> bool:
        target = self.context.target_length
        return target is not None and self._length() >= target

    def _has_more_to_train(self) -> bool:
        """The trial goes on: no stop, and a target beyond what is done."""
        context = self.context
        if context.should_stop() or context.stop_requested:
            return False
        target = context.target_length
        return target is not None and target > self._length()

    def _must_stop_now(self) -> bool:
        """Stop inside an epoch: the trial is cancelled, paused, closed or lost its controller (not a stop request)."""
        context = self.context
        return bool(context.preempted) or (context.should_stop() and context.target_length is None)

    def _check_fit_epochs(self) -> None:
        context, fit_epochs = self.context, self.params.get("epochs")
        target = context.target_length
        if (not isinstance(context, LocalContext) and context.unit == "epochs" and target is not None
                and fit_epochs is not None and fit_epochs < target):
            raise ValueError(f"fit was given epochs={fit_epochs}, fewer than the {target} epochs this trial is to "
                             "train: pass epochs=callback.epochs to fit")

    # --- acting on the model ----------------------------------------------------------------------

    def _stop_training(self) -> None:
        if not self.model.stop_training:
            self.model.stop_training = _STOP_SET_BY_HPT

    def _notice_stop_by_another_callback(self) -> None:
        stop = self.model.stop_training
        if stop and stop is not _STOP_SET_BY_HPT and not self.context.stop_requested:
            self.context.set_stop_requested(True)

    def _save_checkpoint(self) -> None:
        position = (self._batches, self._epochs)
        if position == self._last_checkpoint:
            return
        metadata = {"framework": "keras", "weights": WEIGHTS_FILE}
        with self.context.save_checkpoint(batches=position[0], epochs=position[1], metadata=metadata) as path:
            save_training_state(self.model, path)
        self._last_checkpoint = position
