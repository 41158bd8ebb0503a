"""The Lightning behaviours hpt relies on that Lightning's public API does not promise, all in one place.

Each was checked on Lightning 2.6.6, in `lightning.pytorch` and `pytorch_lightning` alike (the
version the `lightning` extra pins), and each is exercised by tests/lightning: check them again
before moving the pin. Everything else the callback does goes through documented Trainer
attributes and hooks (`callback_metrics`, `should_stop`, `is_last_batch`, `strategy.broadcast`,
`save_checkpoint`, ...).
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def batches_trained(trainer: Any) -> int:
    """Training batches run in this fit so far, counting those before a resume.

    Lightning 2.6.6 keeps the count in `fit_loop.epoch_loop.total_batch_idx` (restored from
    checkpoints); `trainer.global_step` counts optimizer steps instead, fewer under gradient
    accumulation.
    """
    return trainer.fit_loop.epoch_loop.total_batch_idx + 1


def lift_length_limits(trainer: Any) -> None:
    """Let the search method alone end training: no `max_epochs`, `max_steps`, `min_epochs` or `min_steps`.

    Lightning 2.6.6 reads the limits from the fit loop (`fit_loop.max_epochs`, `min_epochs`,
    `epoch_loop.max_steps`, `min_steps`), where `fit` has copied them before the `setup` hooks run.
    """
    trainer.fit_loop.max_epochs = -1
    trainer.fit_loop.min_epochs = 0
    trainer.fit_loop.epoch_loop.max_steps = -1
    trainer.fit_loop.epoch_loop.min_steps = None


def validate_after_this_batch(trainer: Any) -> None:
    """Make the Trainer validate right after the batch that has just ended (call in `on_train_batch_end`).

    Lightning 2.6.6 validates after a batch that sets `trainer.should_stop`, wherever the epoch
    stands (`_TrainingEpochLoop._should_check_val_fx`), as it does for `EarlyStopping`. Pair with
    `go_on_after_validation`, or the Trainer stops after that validation.
    """
    trainer.should_stop = True


def go_on_after_validation(trainer: Any) -> None:
    """Undo `validate_after_this_batch` once the validation has begun (call in `on_validation_start`).

    Lightning 2.6.6 reads `should_stop` again only after the validation, so training goes on.
    """
    trainer.should_stop = False


def take_over_sigterm(handler: Any) -> None:
    """Put `handler` back as the SIGTERM handler (call in `on_train_start`).

    Lightning 2.6.6 installs its own handler in `fit`, after `on_fit_start` and before
    `on_train_start`; under DDP it broadcasts from inside the handler, and then `fit` raises
    `SIGTERMException`. hpt's handler (installed by `hpt_core.init`) asks the trial to stop
    gracefully instead. Lightning puts the handler it found back when `fit` ends.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
