"""The hyperparameters of an experiment's (normalised) config as flat columns: dotted names, types, ranges.

>>> columns = hyperparameter_columns({"lr": {"type": "log", "minval": -4.0, "maxval": -1.0, "base": 10.0},
...                                    "optimizer": {"name": {"type": "categorical", "vals": ["adam", "sgd"]}}})
>>> [(column["name"], column["type"], column["path"]) for column in columns]
[('lr', 'log', ['lr']), ('optimizer.name', 'categorical', ['optimizer', 'name'])]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpt_core.space import PATH_SEPARATOR

_RANGE_FIELDS = ("minval", "maxval", "base", "vals", "val", "count")


def hyperparameter_columns(hyperparameters: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One entry per hyperparameter (nested groups flattened, sorted by name): name, path, type and its range."""
    columns: list[dict[str, Any]] = []
    for key in sorted(hyperparameters):
        node = hyperparameters[key]
        path = (*prefix, key)
        if isinstance(node, Mapping) and isinstance(node.get("type"), str):
            columns.append({"name": PATH_SEPARATOR.join(path), "path": list(path), "type": node["type"],
                            **{field: node[field] for field in _RANGE_FIELDS if field in node}})
        elif isinstance(node, Mapping):
            columns += hyperparameter_columns(node, path)
        else:
            columns.append({"name": PATH_SEPARATOR.join(path), "path": list(path), "type": "const", "val": node})
    return columns
