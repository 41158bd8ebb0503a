"""Where hpt keeps experiments, trials, metrics, checkpoints and the searcher log.

SQLite (a file, the default) or PostgreSQL, chosen by a SQLAlchemy URL:

>>> import tempfile
>>> from hpt_core.storage import open_storage
>>> with open_storage(f"sqlite:///{tempfile.mkdtemp()}/hpt.db") as storage:
...     experiment_id = storage.create_experiment(name="demo", config={}, model_dir=".", seed=0, secret="s")
...     storage.get_experiment(experiment_id).state
'ACTIVE'
"""

from __future__ import annotations

from hpt_core.storage.checks import TRIAL_UPDATABLE_FIELDS
from hpt_core.storage.errors import LeaseHeld, RecordNotFound, SchemaVersionError
from hpt_core.storage.locations import (
    channel_file,
    default_storage_url,
    experiment_dir,
    hpt_home,
    notebook_folders,
    trial_log,
)
from hpt_core.storage.records import (
    CheckpointRecord,
    ExperimentRecord,
    LeaseRecord,
    MetricRecord,
    Report,
    SearcherRecord,
    TrialRecord,
)
from hpt_core.storage.schema import SCHEMA_VERSION
from hpt_core.storage.states import (
    CheckpointState,
    ExperimentState,
    MetricKind,
    SearcherRecordKind,
    TrialState,
)
from hpt_core.storage.store import Storage
from hpt_core.storage.transactions import Batch


def open_storage(url: str | None = None) -> Storage:
    """The Storage at `url`, or at `default_storage_url()` when None."""
    return Storage(default_storage_url() if url is None else url)


__all__ = [
    "SCHEMA_VERSION",
    "TRIAL_UPDATABLE_FIELDS",
    "Batch",
    "CheckpointRecord",
    "CheckpointState",
    "ExperimentRecord",
    "ExperimentState",
    "LeaseHeld",
    "LeaseRecord",
    "MetricKind",
    "MetricRecord",
    "RecordNotFound",
    "Report",
    "SchemaVersionError",
    "SearcherRecord",
    "SearcherRecordKind",
    "Storage",
    "TrialRecord",
    "TrialState",
    "channel_file",
    "default_storage_url",
    "experiment_dir",
    "hpt_home",
    "notebook_folders",
    "open_storage",
    "trial_log",
]
