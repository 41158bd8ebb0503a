"""Keras epoch logs split into the training and validation metrics that hpt records."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

VALIDATION_PREFIX = "val_"


def split_logs(logs: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training, validation) metrics of one epoch's logs; validation ones keep Keras's `val_` names.

    >>> split_logs({"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7})
    ({'loss': 0.5, 'accuracy': 0.8}, {'val_loss': 0.6, 'val_accuracy': 0.7})
    """
    training: dict[str, Any] = {}
    validation: dict[str, Any] = {}
    for name, value in (logs or {}).items():
        target = validation if name.startswith(VALIDATION_PREFIX) else training
        target[name] = plain_value(value)
    return training, validation


def plain_value(value: Any) -> Any:
    """A metric as plain JSON: a number for a scalar (a tensor's too), a nested list for anything larger.

    >>> plain_value(np.float32(0.5)), plain_value(np.array([1, 2]))
    (0.5, [1, 2])
    """
    array = np.asarray(value)
    return array.item() if array.size == 1 else array.tolist()
