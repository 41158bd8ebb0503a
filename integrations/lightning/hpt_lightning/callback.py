"""`HptCallback`: the hooks that make a Lightning Trainer an hpt trial, in one process or under DDP.

`HptCallback(ctx)` makes the callback class of the Lightning package the program imported, as
`pathlib.Path(...)` makes a `PosixPath`: `LightningHptCallback` (a `lightning.pytorch.Callback`) or
`PytorchLightningHptCallback` (a `pytorch_lightning.Callback`), both importable from hpt_lightning.

>>> import torch, hpt_core, lightning.pytorch as L
>>> from torch.utils.data import DataLoader, TensorDataset
>>> class Tiny(L.LightningModule):
...     def __init__(self, lr):
...         super().__init__()
...         self.layer, self.lr = torch.nn.Linear(2, 1), lr
...     def training_step(self, batch, batch_idx):
...         return torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
...     def validation_step(self, batch, batch_idx):
...         self.log("val_loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]))
...     def configure_optimizers(self):
...         return torch.optim.SGD(self.parameters(), lr=self.lr)
>>> data = DataLoader(TensorDataset(torch.randn(16, 2), torch.randn(16, 1)), batch_size=8)
>>> ctx = hpt_core.init()                                   # outside an experiment: a local context
>>> hpt = HptCallback(ctx)
>>> isinstance(hpt, L.Callback), type(hpt).__name__
(True, 'LightningHptCallback')
>>> trainer = L.Trainer(max_epochs=1, callbacks=[hpt], logger=False, enable_checkpointing=False,
...                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
>>> trainer.fit(Tiny(lr=ctx.get_hparam("lr", 0.1)), data, data, ckpt_path=hpt.ckpt_path)  # doctest: +ELLIPSIS
[hpt local] validation after 2 batches, 1 epochs: val_loss=...
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar

from hpt_core.context import Context, Restore, TrialContext, init
from hpt_core.errors import InvalidHP
from hpt_lightning import packages, trainer_internals
from hpt_lightning.metrics import logged_since
from hpt_lightning.warm_start import load_weights_keeping_hyperparameters

CHECKPOINT_FILE = "model.ckpt"
"""The file each hpt checkpoint directory holds: a full Lightning checkpoint (`trainer.save_checkpoint`)."""

_Answer = TypeVar("_Answer")


@dataclass(frozen=True)
class Decision:
    """What the controller told global rank 0 at a validation, as every rank receives it."""

    stop: bool
    checkpoint: bool
    target: int | None


class HptCallback:
    """Reports a Lightning Trainer's metrics to hpt, trains to the length hpt asks for, checkpoints and resumes.

    Add it to the Trainer's callbacks and pass its `ckpt_path` to `fit`::

        ctx = hpt_core.init()
        hpt = HptCallback(ctx)
        trainer = Trainer(max_epochs=20, callbacks=[hpt, EarlyStopping("val_loss")])
        trainer.fit(model, datamodule, ckpt_path=hpt.ckpt_path)

    Inside an experiment:

    - after each validation (not the sanity check) it reports the metrics that validation logged
      (the searcher metric among them), and at the end of each epoch (and at a target inside an
      epoch) the training metrics logged in that epoch, each with the batches and epochs trained;
    - the search method sets the length: the Trainer's `max_epochs`, `max_steps`, `min_epochs`
      and `min_steps` are lifted, a validation is run at each target (an epoch's end, or right
      after the target batch) and the Trainer then goes on to the next target or stops
      gracefully (`trainer.should_stop`) after a checkpoint, so the trial can pause, resume or end;
    - a stop asked for by another callback (Lightning's `EarlyStopping`, anything that sets
      `trainer.should_stop`) becomes `ctx.set_stop_requested(True)`: the trial checkpoints and
      ends COMPLETED;
    - checkpoints are `trainer.save_checkpoint` files (`CHECKPOINT_FILE`) in the experiment's
      checkpoint storage, written when the `checkpoint_policy` asks and always before the trial
      pauses or ends; a warm start (a PBT child) loads its parent's weights and optimizer state
      in `on_fit_start` and keeps its own hyperparameters;
    - SIGTERM (hpt cancelling the trial) stops the Trainer gracefully instead of Lightning's
      exception; training is seeded with `ctx.trial_seed`; an `hpt_core.InvalidHP` raised in
      the user's code is reported at once;
    - under DDP every rank reads the metrics (reading metrics logged with `sync_dist=True` or
      torchmetrics objects is a collective), global rank 0 alone talks to the controller, and its
      decisions reach every rank once per validation, so all ranks stop at the same batch.

    Outside an experiment (a local context) it only prints the validation metrics: the Trainer
    trains as it would without it.
    """

    package: ClassVar[str]
    """The Lightning package whose `Callback` this class is (set by each package's subclass)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "HptCallback":
        if cls is HptCallback:
            cls = packages.callback_class(packages.imported_packages()[0])
        return super().__new__(cls)

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self._ctx: Context | None = ctx
        self._in_experiment = isinstance(ctx, TrialContext)
        self.restore: Restore | None = ctx.restore
        self._unit = ctx.unit
        self._trial_seed = ctx.trial_seed
        self._reset_run_state()

    @property
    def ckpt_path(self) -> str | None:
        """What to pass to `Trainer.fit(ckpt_path=...)`: this trial's own latest checkpoint when it resumes.

        A restarted trial, or one promoted after a pause, continues from its last epoch and step.
        None for a fresh trial and for a warm start (a PBT child), whose parent's weights the
        callback loads itself, with counters at zero.
        """
        if self.restore is None or self.restore.warm_start:
            return None
        return str(Path(self.restore.path) / CHECKPOINT_FILE)

    # --- Lightning hooks ----------------------------------------------------------------------

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            return
        packages.check_one_package(trainer, trainer.callbacks)
        self._reset_run_state()
        if not self._in_experiment:
            return
        _require_validation_each_epoch(trainer)
        packages.module(self.package).seed_everything(self._trial_seed, workers=True, verbose=False)
        trainer_internals.lift_length_limits(trainer)
        if trainer.is_global_zero:
            self._context()  # a worker of `ddp_spawn` makes its own context here
            handler = signal.getsignal(signal.SIGTERM)
            self._sigterm_handler = handler if handler is not None else signal.SIG_DFL
        else:
            self._sigterm_handler = signal.SIG_IGN  # rank 0 decides, and tells every rank

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not self._in_experiment or self.restore is None:
            return
        if self.restore.warm_start:
            load_weights_keeping_hyperparameters(trainer, Path(self.restore.path) / CHECKPOINT_FILE)
        elif trainer.ckpt_path is None:
            raise ValueError(f"this trial resumes from its checkpoint {self.restore.checkpoint_id}, but fit was not "
                             "given it: call `trainer.fit(..., ckpt_path=hpt_callback.ckpt_path)`")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._batches = trainer_internals.batches_trained(trainer)
        self._epochs = trainer.current_epoch
        if self._in_experiment:
            trainer_internals.take_over_sigterm(self._sigterm_handler)
            self._target = self._on_rank_zero(trainer, lambda: self._context().target_length)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._metrics_at_epoch_start = _read_metrics(trainer)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._batches = trainer_internals.batches_trained(trainer)
        self._epochs = trainer.current_epoch + int(trainer.is_last_batch)
        if not self._in_experiment or self._stopping:
            return
        if trainer.world_size == 1 and self._context().should_stop():
            self._stop(trainer)  # heard at once in one process; under DDP at the next validation
        elif self._target_reached(trainer):
            if not trainer.is_last_batch:
                self._report_training(trainer)  # at an epoch's end, on_train_epoch_end reports the whole epoch
            if not trainer.should_stop:
                trainer_internals.validate_after_this_batch(trainer)
                self._forcing_validation = True

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if not _validating_while_fitting(trainer):
            return
        if self._forcing_validation:
            trainer_internals.go_on_after_validation(trainer)
            self._forcing_validation = False
        self._metrics_before_validation = _read_metrics(trainer)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not _validating_while_fitting(trainer):
            return
        metrics = logged_since(self._metrics_before_validation, _read_metrics(trainer))
        self._validation_names |= metrics.keys()
        if not self._in_experiment:
            if trainer.is_global_zero:
                self._context().report_validation(metrics, batches=self._batches, epochs=self._epochs)
            return

        def report() -> Decision:
            ctx = self._context()
            self._hear_stop_requests(trainer)
            ctx.report_validation(metrics, batches=self._batches, epochs=self._epochs)
            return Decision(ctx.should_stop(), ctx.should_checkpoint(), ctx.target_length)

        decision = self._on_rank_zero(trainer, report)
        self._target = decision.target
        if decision.stop:
            self._stop(trainer)
        if decision.checkpoint and not trainer.is_last_batch:
            self._save(trainer)  # mid-epoch: the state resumes right after this batch
        elif decision.checkpoint:
            self._checkpoint_due = True  # at the epoch's end, once the epoch is counted

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._report_training(trainer)
        if self._checkpoint_due and not self._stopping:
            self._save(trainer)  # a trial that stops saves in on_train_end, after every epoch-end hook

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._in_experiment:
            return

        def checkpoint_needed() -> bool:
            self._hear_stop_requests(trainer)
            return self._context().should_checkpoint() and self._checkpointed_at != self._batches

        if self._on_rank_zero(trainer, checkpoint_needed):
            self._save(trainer)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self._in_experiment and isinstance(exception, InvalidHP):
            self._context().report_invalid_hp(str(exception))

    # --- decisions ----------------------------------------------------------------------------

    def _target_reached(self, trainer: Any) -> bool:
        """Whether the batch just trained reached the target (every rank holds the target rank 0 was given)."""
        if self._target is None:
            return False
        if self._unit == "batches":
            return self._batches >= self._target
        return trainer.is_last_batch and self._epochs >= self._target

    def _hear_stop_requests(self, trainer: Any) -> None:
        """Another callback (EarlyStopping, ...) stopping the Trainer asks hpt to end the trial (rank 0 only)."""
        if trainer.should_stop and not self._stopping:
            self._context().set_stop_requested(True)

    def _stop(self, trainer: Any) -> None:
        trainer.should_stop = True
        self._stopping = True
        self._forcing_validation = False

    # --- reports and checkpoints (every rank calls these at the same points) ----------------------

    def _report_training(self, trainer: Any) -> None:
        """The training metrics logged since the epoch began, reported by rank 0 (once per batch count)."""
        if self._training_reported_at == self._batches:
            return
        self._training_reported_at = self._batches
        logged = logged_since(self._metrics_at_epoch_start, _read_metrics(trainer))
        metrics = {name: value for name, value in logged.items() if name not in self._validation_names}
        if metrics and trainer.is_global_zero:
            self._context().report_training(metrics, batches=self._batches, epochs=self._epochs)

    def _save(self, trainer: Any) -> None:
        """A checkpoint in hpt's storage: every rank calls `save_checkpoint` into the directory rank 0 made."""
        self._checkpoint_due = False
        self._checkpointed_at = self._batches
        if trainer.is_global_zero:
            with self._context().save_checkpoint(batches=self._batches, epochs=self._epochs) as directory:
                trainer.strategy.broadcast(str(directory), src=0)
                trainer.save_checkpoint(directory / CHECKPOINT_FILE, weights_only=False)
        else:
            directory = trainer.strategy.broadcast(None, src=0)
            trainer.save_checkpoint(Path(directory) / CHECKPOINT_FILE, weights_only=False)

    # --- plumbing -----------------------------------------------------------------------------

    def _context(self) -> Context:
        if self._ctx is None:  # unpickled in a `ddp_spawn` worker: the trial's context is made anew
            self._ctx = init()
        return self._ctx

    @staticmethod
    def _on_rank_zero(trainer: Any, ask: Callable[[], _Answer]) -> _Answer:
        """`ask()` on global rank 0, its answer on every rank (one broadcast)."""
        return trainer.strategy.broadcast(ask() if trainer.is_global_zero else None, src=0)

    def _reset_run_state(self) -> None:
        self._batches = 0
        self._epochs = 0
        self._target: int | None = None
        self._forcing_validation = False
        self._stopping = False
        self._checkpoint_due = False
        self._checkpointed_at: int | None = None
        self._training_reported_at: int | None = None
        self._metrics_at_epoch_start: dict[str, Any] = {}
        self._metrics_before_validation: dict[str, Any] = {}
        self._validation_names: set[str] = set()
        self._sigterm_handler: Any = signal.SIG_DFL

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for `ddp_spawn`: a trial's context holds a connection, and the worker makes its own."""
        return {"_ctx": None if isinstance(self._ctx, TrialContext) else self._ctx,
                "_in_experiment": self._in_experiment, "restore": self.restore, "_unit": self._unit,
                "_trial_seed": self._trial_seed}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_run_state()


def _read_metrics(trainer: Any) -> dict[str, Any]:
    """A copy of `trainer.callback_metrics`. Call on every rank at the same point: reading reduces the metrics
    logged with `sync_dist=True` and computes torchmetrics objects, collectives that every rank must join."""
    return dict(trainer.callback_metrics)


def _validating_while_fitting(trainer: Any) -> bool:
    return trainer.state.fn == "fit" and not trainer.sanity_checking


def _require_validation_each_epoch(trainer: Any) -> None:
    """hpt reads the searcher metric from validations, run at each target: at least each epoch."""
    if not trainer.enable_validation:
        raise ValueError("HptCallback reports the searcher metric from validation, but this Trainer does not validate: "
                         "give `fit` validation data and the LightningModule a `validation_step` (with "
                         f"limit_val_batches > 0, got {trainer.limit_val_batches})")
    if trainer.check_val_every_n_epoch not in (1, None):
        raise ValueError("inside an experiment hpt validates at the end of any epoch the search method asks for: "
                         "`Trainer(check_val_every_n_epoch=...)` must be 1 or None, but got "
                         f"{trainer.check_val_every_n_epoch}")
