"""Lightning's logged metrics as the plain numbers hpt stores, and which of them a stretch of training logged.

>>> import torch
>>> scalar_metrics({"val_loss": torch.tensor(0.25), "step": 3, "confusion": torch.zeros(2, 2), "name": "a"})
{'val_loss': 0.25, 'step': 3.0}
>>> loss, before_validation = torch.tensor(1.0), torch.tensor(2.0)
>>> logged_since({"loss": loss, "val_loss": before_validation}, {"loss": loss, "val_loss": torch.tensor(0.5)})
{'val_loss': 0.5}
"""

from __future__ import annotations

from numbers import Real
from typing import Any, Mapping


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scalar entries (one-element tensors, numbers) as floats; anything else is left out."""
    scalars = {}
    for name, value in metrics.items():
        if hasattr(value, "numel") and hasattr(value, "item"):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, Real):
            scalars[str(name)] = float(value)
    return scalars


def logged_since(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of `after` logged since `before` was read: new names, or names holding another object.

    Both are copies of `trainer.callback_metrics`, one mapping for training and validation alike:
    Lightning puts a new tensor there for each value it logs or reduces, and leaves the others as
    they were (a metric logged in the previous epoch keeps its old value until logged again).
    """
    return scalar_metrics({name: value for name, value in after.items()
                           if name not in before or before[name] is not value})
