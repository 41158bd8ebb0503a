"""The tables hpt keeps, and the version of their layout."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from hpt_core.storage.column_types import PortableJSON, UTCDateTime

SCHEMA_VERSION = 4
"""The layout version this code writes; a database with a newer one is refused."""

REPORT_KEY_INDEX = "uq_metrics_trial_attempt_seq"

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=True),
    Column("description", Text, nullable=False),
    Column("config", PortableJSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("secret", Text, nullable=False),
    Column("model_dir", Text, nullable=False),
    Column("experiment_dir", Text, nullable=True),
    Column("searcher_state", PortableJSON, nullable=True),
    Column("progress", Float, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("uuid", String(36), nullable=False),
    Index("uq_experiments_uuid", "uuid", unique=True),
)

trials = Table(
    "trials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False),
    Column("request_id", BigInteger, nullable=False),
    Column("hparams", PortableJSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("end_reason", Text, nullable=True),
    Column("restarts", Integer, nullable=False),
    Column("parent_request_id", BigInteger, nullable=True),
    Column("seed", BigInteger, nullable=False),
    Column("target_length", BigInteger, nullable=True),
    Column("length_done", BigInteger, nullable=False),
    Column("length_trained", BigInteger, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("ended_at", UTCDateTime, nullable=True),
    UniqueConstraint("experiment_id", "request_id", name="uq_trials_experiment_request"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trial_id", Integer, ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("metrics", PortableJSON, nullable=False),
    Column("batches", BigInteger, nullable=False),
    Column("epochs", BigInteger, nullable=False),
    Column("reported_at", UTCDateTime, nullable=False),
    Column("attempt", Integer, nullable=True),
    Column("seq", BigInteger, nullable=True),
    Index("ix_metrics_trial_kind", "trial_id", "kind"),
    Index(REPORT_KEY_INDEX, "trial_id", "attempt", "seq", unique=True),
)
"""A report sent over the channel carries (trial, attempt, seq) and is kept once whatever the retries; rows
without them (written by an older hpt, or by `Storage.add_metrics`) are never taken as repeats."""

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("id", Text, primary_key=True),
    Column("trial_id", Integer, ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
    Column("batches", BigInteger, nullable=False),
    Column("epochs", BigInteger, nullable=False),
    Column("length", BigInteger, nullable=True),
    Column("metadata", PortableJSON, nullable=False),
    Column("path", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_checkpoints_trial", "trial_id"),
)

searcher_records = Table(
    "searcher_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("payload", PortableJSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("experiment_id", "seq", name="uq_searcher_records_experiment_seq"),
)

leases = Table(
    "leases",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("token", Text, nullable=False),
    Column("host", Text, nullable=False),
    Column("pid", BigInteger, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
"""Who runs each experiment: one row per experiment that a controller holds (see `storage.leases`)."""
