"""The statements a controller runs for every trial event, built once with named parameters.

SQLAlchemy builds, keys and looks up a statement each time one is made; a statement made once and run
with parameters skips that, about half of what a small statement costs. Values are given as
`{"name": value}` dicts under the parameter names below.
"""

from __future__ import annotations

import functools

from sqlalchemy import BindParameter, Column, Insert, Select, Update, bindparam, func, insert, select, tuple_, update

from hpt_core.storage import schema
from hpt_core.storage.states import CheckpointState

_experiments, _trials, _records = schema.experiments, schema.trials, schema.searcher_records
_metrics, _checkpoints = schema.metrics, schema.checkpoints

LOCK_EXPERIMENT: Select = (
    select(_experiments.c.id).where(_experiments.c.id == bindparam("experiment")).with_for_update()
)
"""The experiment's id, its row locked (PostgreSQL; SQLite writers already hold the database lock)."""



def _typed(name: str, column: Column) -> BindParameter:
    """A parameter carrying its column's type (JSON and time columns convert their values)."""
    return bindparam(name, type_=column.type)


APPEND_SEARCHER_RECORD: Insert = insert(_records).values(
    experiment_id=bindparam("experiment"),
    seq=select(func.coalesce(func.max(_records.c.seq), 0) + 1)
    .where(_records.c.experiment_id == bindparam("experiment"))
    .scalar_subquery(),
    kind=_typed("record_kind", _records.c.kind),
    payload=_typed("record_payload", _records.c.payload),
    created_at=_typed("record_created_at", _records.c.created_at),
).returning(_records.c.seq)
"""A record after the experiment `experiment`'s last one; returns its seq (run under LOCK_EXPERIMENT)."""

TRIAL_OF_REQUEST: Select = select(_trials.c.id).where(
    _trials.c.experiment_id == bindparam("experiment"), _trials.c.request_id == bindparam("request")
)

INSERT_TRIAL: Insert = insert(_trials)
"""Run with a value for every column but id."""

INSERT_METRICS: Insert = insert(_metrics)
"""Run with many rows, each a value for every column but id."""

STORED_REPORT_KEYS: Select = select(_metrics.c.trial_id, _metrics.c.attempt, _metrics.c.seq).where(
    tuple_(_metrics.c.trial_id, _metrics.c.attempt, _metrics.c.seq).in_(bindparam("keys", expanding=True))
)
"""Which of `keys`, (trial_id, attempt, seq) tuples, are stored."""

GROW_LENGTH_TRAINED: Update = (
    update(_trials)
    .where(_trials.c.id == bindparam("trial"), _trials.c.length_trained < bindparam("length"))
    .values(length_trained=bindparam("length"))
)

LATEST_CHECKPOINT: Select = (
    select(_checkpoints)
    .where(_checkpoints.c.trial_id == bindparam("trial_id"), _checkpoints.c.state == CheckpointState.COMPLETED.value)
    .order_by(_checkpoints.c.batches.desc(), _checkpoints.c.created_at.desc(), _checkpoints.c.id.desc())
    .limit(1)
)
"""The trial's checkpoint with the most batches, the newest among equals."""


@functools.cache
def update_trial(columns: tuple[str, ...]) -> Update:
    """Set these columns of the trial `trial_id`; each value is given as `new_<column>`."""
    return (
        update(_trials)
        .where(_trials.c.id == bindparam("trial_id"))
        .values({column: _typed(f"new_{column}", _trials.c[column]) for column in columns})
    )
