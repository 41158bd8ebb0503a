"""Lightning's logged metrics as the plain numbers hpt stores.

>>> import torch
>>> scalar_metrics({"val_loss": torch.tensor(0.25), "step": 3, "confusion": torch.zeros(2, 2), "name": "a"})
{'val_loss': 0.25, 'step': 3.0}
>>> validation_names({"loss": 1, "val_loss": 2}, {"loss": 1})
{'val_loss'}
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


def validation_names(after: Mapping[str, Any], before: Mapping[str, Any]) -> set[str]:
    """Names a validation run logged: new in `after`, or holding another object than in `before`.

    Lightning keeps one `callback_metrics` mapping for training and validation; a validation run
    replaces the values it logs with new objects and leaves the others as they were.
    """
    return {name for name, value in after.items() if name not in before or before[name] is not value}
