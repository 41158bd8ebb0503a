"""Start from another trial's checkpoint: its weights and optimizer state, this trial's hyperparameters.

A PBT child (or an experiment with `searcher.source_trial_id`) begins where its parent's model was,
but with its own counters (epoch 0, step 0) and its own hyperparameters: the learning rate and
every other setting in the optimizer's parameter groups stay as this trial's `configure_optimizers`
made them, while the parent's optimizer state (e.g. momentum buffers) is taken over. Learning-rate
schedulers, loops and callbacks start afresh.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_weights_keeping_hyperparameters(trainer: Any, checkpoint_path: str | Path) -> None:
    """Load a Lightning checkpoint's weights and optimizer state into a Trainer set up for fitting.

    Call it once the optimizers exist (`on_fit_start`). Raises ValueError when the checkpoint's
    optimizers do not match this trial's.
    """
    checkpoint = trainer.strategy.load_checkpoint(checkpoint_path, weights_only=False)
    trainer.strategy.load_model_state_dict(checkpoint)
    optimizer_states = checkpoint.get("optimizer_states", [])
    if len(optimizer_states) != len(trainer.optimizers):
        raise ValueError(f"the checkpoint at {checkpoint_path} holds {len(optimizer_states)} optimizer states, but "
                         f"this trial's configure_optimizers made {len(trainer.optimizers)} optimizers")
    own_settings = [[_settings(group) for group in optimizer.param_groups] for optimizer in trainer.optimizers]
    trainer.strategy.load_optimizer_state_dict(checkpoint)
    for optimizer, settings in zip(trainer.optimizers, own_settings):
        for group, own in zip(optimizer.param_groups, settings):
            group.update(own)


def _settings(param_group: dict[str, Any]) -> dict[str, Any]:
    """A parameter group's hyperparameters (lr, momentum, weight_decay, betas, initial_lr, ...)."""
    return {name: value for name, value in param_group.items() if name != "params"}
