"""`Storage`: the experiments, trials, metrics, checkpoints and searcher log of hpt, in one database.

Longer than hpt's ~400-line habit on purpose: it is the one class every part of hpt writes through,
each method a short transaction over the same engine, checks and row types; split by table, the
transactions that span tables (a trial's creation under its experiment's lock, deletion) would
be spread over files.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    Table,
    delete,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from hpt_core.storage import schema, statements
from hpt_core.storage.checks import (
    check_count,
    check_integer,
    check_json_object,
    check_optional_integer,
    check_optional_text,
    check_record_id,
    check_text,
    trial_changes,
)
from hpt_core.storage.engine import create_storage_engine
from hpt_core.storage.errors import RecordNotFound, SchemaVersionError
from hpt_core.storage.leases import acquire_lease, read_lease, release_lease, renew_lease
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
    parse_choice,
)
from hpt_core.storage.transactions import Batch, Transactions

_SCHEMA_LOCK_KEY = 0x6870745F736368  # "hpt_sch": serialises table creation on PostgreSQL


class Storage:
    """The database of hpt, usable from many threads (and, for SQLite files, many processes) at once.

    Every method opens its own connection and runs one short transaction, so a single Storage can be
    shared by the threads of a controller.

    >>> import tempfile
    >>> storage = Storage(f"sqlite:///{tempfile.mkdtemp()}/hpt.db")
    >>> experiment_id = storage.create_experiment(
    ...     name="digits", config={"searcher": {"name": "random"}}, model_dir=".", seed=1, secret="s")
    >>> trial_id = storage.create_trial(experiment_id, request_id=1, hparams={"lr": 0.1}, seed=7)
    >>> storage.add_metrics(trial_id, "validation", {"loss": 0.25}, batches=100, epochs=1)
    1
    >>> [record.metrics for record in storage.metrics(experiment_id=experiment_id)]
    [{'loss': 0.25}]
    >>> storage.close()
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = create_storage_engine(url)
        self._transactions = Transactions(self._engine)
        try:
            self._prepare_schema()
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def shown_url(self) -> str:
        """The storage's URL as it may be shown, its password hidden."""
        return make_url(self.url).render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Storage({self.shown_url!r})"

    def __enter__(self) -> Storage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection; the Storage must not be used afterwards."""
        self._engine.dispose()

    def reading(self) -> AbstractContextManager[Connection]:
        """A connection in one read transaction, for queries that no method here runs (`storage.queries`)."""
        return self._transactions.read()

    def batch(self) -> AbstractContextManager[Batch]:
        """Make this thread's writes until the block ends one transaction, committed once (`Batch.commit()`
        commits early): one event's writes cost one commit. Details in `hpt_core.storage.transactions`."""
        return self._transactions.batch()

    # experiments

    def create_experiment(
        self,
        *,
        name: str | None,
        config: dict[str, Any],
        model_dir: str,
        seed: int,
        secret: str,
        description: str = "",
    ) -> int:
        """Record a new ACTIVE experiment, with a new random `uuid`, and return its id (its folder is set by
        `set_experiment_dir`)."""
        values = {
            "name": check_optional_text(name, "name"),
            "description": check_text(description, "description"),
            "config": check_json_object(config, "config"),
            "state": ExperimentState.ACTIVE.value,
            "seed": check_integer(seed, "seed"),
            "secret": check_text(secret, "secret"),
            "model_dir": check_text(model_dir, "model_dir"),
            "experiment_dir": None,
            "searcher_state": None,
            "progress": 0.0,
            "created_at": _now(),
            "ended_at": None,
            "uuid": str(uuid.uuid4()),
        }
        with self._transactions.write() as connection:
            result = connection.execute(insert(schema.experiments).values(**values))
            return int(result.inserted_primary_key[0])

    def set_experiment_dir(self, experiment_id: int, experiment_dir: str) -> None:
        """Record the folder that holds the experiment's files."""
        self._update_experiment(experiment_id, experiment_dir=check_text(experiment_dir, "experiment_dir"))

    def get_experiment(self, experiment_id: int) -> ExperimentRecord:
        """The experiment with this id; RecordNotFound if there is none."""
        check_record_id(experiment_id, "experiment")
        with self._transactions.read() as connection:
            row = (
                connection.execute(select(schema.experiments).where(schema.experiments.c.id == experiment_id))
                .mappings()
                .first()
            )
        if row is None:
            raise RecordNotFound(f"experiment {experiment_id!r} does not exist")
        return ExperimentRecord.from_row(row)

    def list_experiments(self) -> list[ExperimentRecord]:
        """Every experiment, oldest first."""
        with self._transactions.read() as connection:
            rows = connection.execute(select(schema.experiments).order_by(schema.experiments.c.id)).mappings().all()
        return [ExperimentRecord.from_row(row) for row in rows]

    def set_experiment_state(self, experiment_id: int, state: str) -> None:
        """Move the experiment to `state`; terminal states set `ended_at`, the others clear it."""
        parsed = parse_choice(ExperimentState, state, "experiment state")
        ended_at = _now() if parsed.is_terminal else None
        self._update_experiment(experiment_id, state=parsed.value, ended_at=ended_at)

    def save_searcher_state(self, experiment_id: int, state: dict[str, Any], progress: float) -> None:
        """Store the search method's full state (plain JSON) and its progress in [0, 1]."""
        if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress must be a number in [0, 1], but got {progress!r}")
        self._update_experiment(
            experiment_id,
            searcher_state=check_json_object(state, "searcher_state"),
            progress=float(progress),
        )

    def _update_experiment(self, experiment_id: int, **values: Any) -> None:
        check_record_id(experiment_id, "experiment")
        with self._transactions.write() as connection:
            result = connection.execute(
                update(schema.experiments).where(schema.experiments.c.id == experiment_id).values(**values)
            )
            if result.rowcount == 0:
                raise RecordNotFound(f"experiment {experiment_id!r} does not exist")

    # leases (see `storage.leases`)

    def lease(self, experiment_id: int) -> LeaseRecord | None:
        """The experiment's lease, if a controller holds one (expired or not)."""
        with self._transactions.read() as connection:
            return read_lease(connection, experiment_id)

    def acquire_lease(self, experiment_id: int, *, token: str, host: str, pid: int, seconds: float,
                      replacing: str | None = None) -> LeaseRecord:
        """Take the experiment's lease for `seconds`, unless another holder's has not expired (LeaseHeld);
        `replacing` names the token of a holder the caller knows to be dead, whose lease it may take."""
        with self._transactions.write() as connection:
            _lock_experiment(connection, experiment_id)
            return acquire_lease(connection, experiment_id, token=check_text(token, "token"),
                                 host=check_text(host, "host"), pid=check_integer(pid, "pid"),
                                 seconds=seconds, replacing=replacing)

    def renew_lease(self, experiment_id: int, token: str, seconds: float) -> bool:
        """Extend the lease `token` holds to `seconds` from now; False if `token` no longer holds it."""
        with self._transactions.write() as connection:
            return renew_lease(connection, experiment_id, token, seconds)

    def release_lease(self, experiment_id: int, token: str) -> None:
        """Give up the lease `token` holds (nothing happens if it holds none)."""
        with self._transactions.write() as connection:
            release_lease(connection, experiment_id, token)

    # searcher event log

    def append_searcher_record(self, experiment_id: int, kind: str, payload: dict[str, Any]) -> int:
        """Append an event or operation to the experiment's searcher log; returns its seq (1, 2, ...)."""
        parsed = parse_choice(SearcherRecordKind, kind, "searcher record kind")
        payload = check_json_object(payload, "payload")
        with self._transactions.write() as connection:
            _lock_experiment(connection, experiment_id)
            return int(connection.execute(statements.APPEND_SEARCHER_RECORD, {
                "experiment": experiment_id, "record_kind": parsed.value, "record_payload": payload,
                "record_created_at": _now()}).scalar_one())

    def searcher_records(self, experiment_id: int, after: int = 0) -> list[SearcherRecord]:
        """The experiment's searcher log in order of seq (only the records after seq `after`, if given)."""
        records = schema.searcher_records
        query = (
            select(records)
            .where(records.c.experiment_id == experiment_id, records.c.seq > after)
            .order_by(records.c.seq)
        )
        with self._transactions.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [SearcherRecord.from_row(row) for row in rows]

    def save_snapshot(self, experiment_id: int, snapshot: dict[str, Any]) -> int:
        """Append `snapshot` (the state after every record before it) to the searcher log, dropping the
        previous one; returns its seq."""
        seq = self.append_searcher_record(experiment_id, SearcherRecordKind.SNAPSHOT, snapshot)
        records = schema.searcher_records
        with self._transactions.write() as connection:
            connection.execute(delete(records).where(
                records.c.experiment_id == experiment_id, records.c.kind == SearcherRecordKind.SNAPSHOT.value,
                records.c.seq < seq))
        return seq

    def latest_snapshot(self, experiment_id: int) -> SearcherRecord | None:
        """The experiment's latest snapshot record, if it has one."""
        records = schema.searcher_records
        query = (select(records)
                 .where(records.c.experiment_id == experiment_id, records.c.kind == SearcherRecordKind.SNAPSHOT.value)
                 .order_by(records.c.seq.desc()).limit(1))
        with self._transactions.read() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else SearcherRecord.from_row(row)

    # trials

    def create_trial(
        self,
        experiment_id: int,
        request_id: int,
        hparams: dict[str, Any],
        *,
        seed: int,
        parent_request_id: int | None = None,
    ) -> int:
        """Record a PENDING trial for a searcher request and return its id (unique across experiments)."""
        values = {
            "experiment_id": experiment_id,
            "request_id": check_integer(request_id, "request_id"),
            "hparams": check_json_object(hparams, "hparams"),
            "state": TrialState.PENDING.value,
            "end_reason": None,
            "restarts": 0,
            "parent_request_id": check_optional_integer(parent_request_id, "parent_request_id"),
            "seed": check_integer(seed, "seed"),
            "target_length": None,
            "length_done": 0,
            "length_trained": 0,
            "created_at": _now(),
            "started_at": None,
            "ended_at": None,
        }
        duplicate = ValueError(f"experiment {experiment_id!r} already has a trial with request_id {request_id!r}")
        with self._transactions.write() as connection:
            _lock_experiment(connection, experiment_id)
            existing = connection.execute(statements.TRIAL_OF_REQUEST,
                                          {"experiment": experiment_id, "request": request_id}).first()
            if existing is not None:
                raise duplicate
            try:
                result = connection.execute(statements.INSERT_TRIAL, values)
            except IntegrityError as error:
                raise duplicate from error
            return int(result.inserted_primary_key[0])

    def get_trial(self, trial_id: int) -> TrialRecord:
        """The trial with this id; RecordNotFound if there is none."""
        check_record_id(trial_id, "trial")
        return self._one_trial(schema.trials.c.id == trial_id, f"trial {trial_id!r} does not exist")

    def trial_by_request(self, experiment_id: int, request_id: int) -> TrialRecord:
        """The experiment's trial for this searcher request; RecordNotFound if there is none."""
        return self._one_trial(
            (schema.trials.c.experiment_id == experiment_id) & (schema.trials.c.request_id == request_id),
            f"experiment {experiment_id!r} has no trial with request_id {request_id!r}",
        )

    def list_trials(self, experiment_id: int) -> list[TrialRecord]:
        """The experiment's trials in order of request_id."""
        query = (
            select(schema.trials)
            .where(schema.trials.c.experiment_id == experiment_id)
            .order_by(schema.trials.c.request_id)
        )
        with self._transactions.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [TrialRecord.from_row(row) for row in rows]

    def update_trial(self, trial_id: int, **fields: Any) -> None:
        """Change some of a trial's fields (see TRIAL_UPDATABLE_FIELDS); RecordNotFound if there is none."""
        check_record_id(trial_id, "trial")
        values = trial_changes(fields)
        with self._transactions.write() as connection:
            if values:
                result = connection.execute(statements.update_trial(tuple(values)), {
                    "trial_id": trial_id, **{f"new_{column}": value for column, value in values.items()}})
                found = result.rowcount > 0
            else:
                found = (
                    connection.execute(select(schema.trials.c.id).where(schema.trials.c.id == trial_id)).first()
                    is not None
                )
            if not found:
                raise RecordNotFound(f"trial {trial_id!r} does not exist")

    def _one_trial(self, condition: Any, missing: str) -> TrialRecord:
        with self._transactions.read() as connection:
            row = connection.execute(select(schema.trials).where(condition)).mappings().first()
        if row is None:
            raise RecordNotFound(missing)
        return TrialRecord.from_row(row)

    # metrics

    def add_metrics(self, trial_id: int, kind: str, metrics: dict[str, Any], *, batches: int, epochs: int) -> int:
        """Record one report of `kind` ("training" or "validation") metrics; returns its id."""
        values = {
            "trial_id": trial_id,
            "kind": parse_choice(MetricKind, kind, "metric kind").value,
            "metrics": check_json_object(metrics, "metrics"),
            "batches": check_count(batches, "batches"),
            "epochs": check_count(epochs, "epochs"),
            "reported_at": _now(),
        }
        with self._transactions.write() as connection:
            _require_trial(connection, trial_id)
            result = connection.execute(insert(schema.metrics).values(**values))
            return int(result.inserted_primary_key[0])

    def add_reports(self, reports: Sequence[Report]) -> list[bool]:
        """Store many trials' reports in one transaction (a group commit), each once by (trial, attempt, seq):
        True for a report stored now, False for one stored before (a retry) or earlier in `reports`. Each
        trial's `length_trained` grows to the longest length among its reports, in the same transaction.
        A few statements whatever the number of reports: one commit is shared by every report."""
        rows = [_report_row(report) for report in reports]
        longest: dict[int, int] = {}
        for report in reports:
            longest[report.trial_id] = max(longest.get(report.trial_id, 0), check_count(report.length, "length"))
        keys = [(row["trial_id"], row["attempt"], row["seq"]) for row in rows]
        with self._transactions.write() as connection:
            seen = {tuple(row) for row in connection.execute(statements.STORED_REPORT_KEYS, {"keys": keys})}
            stored = []
            for key in keys:
                stored.append(key not in seen)
                seen.add(key)
            new_rows = [row for row, is_new in zip(rows, stored) if is_new]
            if new_rows:
                connection.execute(statements.INSERT_METRICS, new_rows)
            connection.execute(statements.GROW_LENGTH_TRAINED,
                               [{"trial": trial_id, "length": length} for trial_id, length in longest.items()])
        return stored

    def metrics(
        self,
        *,
        trial_id: int | None = None,
        experiment_id: int | None = None,
        kind: str | None = None,
    ) -> list[MetricRecord]:
        """Metric reports, oldest first, filtered by trial, experiment and kind when given."""
        table = schema.metrics
        query = select(table).order_by(table.c.id)
        if trial_id is not None:
            query = query.where(table.c.trial_id == trial_id)
        if experiment_id is not None:
            query = _of_experiment(query, table, experiment_id)
        if kind is not None:
            query = query.where(table.c.kind == parse_choice(MetricKind, kind, "metric kind").value)
        with self._transactions.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [MetricRecord.from_row(row) for row in rows]

    # checkpoints

    def add_checkpoint(
        self,
        trial_id: int,
        checkpoint_id: str,
        *,
        path: str,
        batches: int,
        epochs: int,
        length: int | None,
        metadata: dict[str, Any],
    ) -> CheckpointRecord:
        """Record a COMPLETED checkpoint of a trial; its id must be new (e.g. a uuid4 string). The trial's
        `length_trained` grows to `length` in the same transaction."""
        if check_text(checkpoint_id, "checkpoint_id") == "":
            raise ValueError("checkpoint_id must be a non-empty string, but got ''")
        values = {
            "id": checkpoint_id,
            "trial_id": trial_id,
            "batches": check_count(batches, "batches"),
            "epochs": check_count(epochs, "epochs"),
            "length": None if length is None else check_count(length, "length"),
            "metadata": check_json_object(metadata, "metadata"),
            "path": check_text(path, "path"),
            "state": CheckpointState.COMPLETED.value,
            "created_at": _now(),
        }
        duplicate = ValueError(f"a checkpoint with id {checkpoint_id!r} already exists")
        with self._transactions.write() as connection:
            _require_trial(connection, trial_id)
            if connection.execute(
                select(schema.checkpoints.c.id).where(schema.checkpoints.c.id == checkpoint_id)
            ).first():
                raise duplicate
            try:
                connection.execute(insert(schema.checkpoints).values(**values))
            except IntegrityError as error:
                raise duplicate from error
            if length is not None:
                _grow_length_trained(connection, trial_id, length)
            row = (
                connection.execute(select(schema.checkpoints).where(schema.checkpoints.c.id == checkpoint_id))
                .mappings()
                .one()
            )
        return CheckpointRecord.from_row(row)

    def get_checkpoint(self, checkpoint_id: str) -> CheckpointRecord:
        """The checkpoint with this id, deleted or not; RecordNotFound if there is none."""
        with self._transactions.read() as connection:
            row = (
                connection.execute(select(schema.checkpoints).where(schema.checkpoints.c.id == checkpoint_id))
                .mappings()
                .first()
            )
        if row is None:
            raise RecordNotFound(f"checkpoint {checkpoint_id!r} does not exist")
        return CheckpointRecord.from_row(row)

    def checkpoints(
        self,
        *,
        trial_id: int | None = None,
        experiment_id: int | None = None,
        include_deleted: bool = False,
    ) -> list[CheckpointRecord]:
        """Checkpoints in order of creation, filtered by trial and experiment when given."""
        table = schema.checkpoints
        query = select(table).order_by(table.c.created_at, table.c.id)
        if trial_id is not None:
            query = query.where(table.c.trial_id == trial_id)
        if experiment_id is not None:
            query = _of_experiment(query, table, experiment_id)
        if not include_deleted:
            query = query.where(table.c.state == CheckpointState.COMPLETED.value)
        with self._transactions.read() as connection:
            rows = connection.execute(query).mappings().all()
        return [CheckpointRecord.from_row(row) for row in rows]

    def latest_checkpoint(self, trial_id: int) -> CheckpointRecord | None:
        """The trial's checkpoint (not deleted) with the most batches, the newest among equals; or None."""
        with self._transactions.read() as connection:
            row = connection.execute(statements.LATEST_CHECKPOINT, {"trial_id": trial_id}).mappings().first()
        return None if row is None else CheckpointRecord.from_row(row)

    def mark_checkpoint_deleted(self, checkpoint_id: str) -> None:
        """Record that a checkpoint's files are gone; RecordNotFound if there is no such checkpoint."""
        with self._transactions.write() as connection:
            result = connection.execute(
                update(schema.checkpoints)
                .where(schema.checkpoints.c.id == checkpoint_id)
                .values(state=CheckpointState.DELETED.value)
            )
            if result.rowcount == 0:
                raise RecordNotFound(f"checkpoint {checkpoint_id!r} does not exist")

    def delete_experiment(self, experiment_id: int) -> None:
        """Remove every row of the experiment (its files are the caller's); RecordNotFound if there is none."""
        with self._transactions.write() as connection:
            _lock_experiment(connection, experiment_id)
            trial_ids = select(schema.trials.c.id).where(schema.trials.c.experiment_id == experiment_id)
            for table in (schema.metrics, schema.checkpoints):
                connection.execute(delete(table).where(table.c.trial_id.in_(trial_ids)))
            for table in (schema.searcher_records, schema.trials, schema.leases):
                connection.execute(delete(table).where(table.c.experiment_id == experiment_id))
            connection.execute(delete(schema.experiments).where(schema.experiments.c.id == experiment_id))

    # schema

    def _prepare_schema(self) -> None:
        """Create the tables of a new database, or bring an older layout up to this version."""
        if self._schema_is_current():
            return
        with self._transactions.write() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            version = _stored_schema_version(connection)
            if version is None:
                schema.metadata.create_all(connection)
                connection.execute(insert(schema.schema_version).values(version=SCHEMA_VERSION))
            elif version < SCHEMA_VERSION:
                _migrate(connection, version)

    def _schema_is_current(self) -> bool:
        with self._transactions.read() as connection:
            return _stored_schema_version(connection) == SCHEMA_VERSION


def _stored_schema_version(connection: Connection) -> int | None:
    """The database's schema version (None if it has no tables yet); raises if this code cannot use it."""
    if not inspect(connection).has_table(schema.schema_version.name):
        return None
    versions = connection.execute(select(schema.schema_version.c.version)).scalars().all()
    if len(versions) != 1:
        raise SchemaVersionError(
            f"the {schema.schema_version.name} table must hold exactly one row, but holds {len(versions)}: {versions!r}"
        )
    version = versions[0]
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the database has schema version {version}, but this hpt knows versions up to {SCHEMA_VERSION}; "
            "upgrade hpt to open it"
        )
    return version


def _migrate(connection: Connection, version: int) -> None:
    """Bring a layout of `version` up to SCHEMA_VERSION, one version at a time, keeping every row."""
    for step in _MIGRATIONS[version - 1:]:
        step(connection)
    connection.execute(update(schema.schema_version).values(version=SCHEMA_VERSION))


def _add_length_trained(connection: Connection) -> None:
    """trials.length_trained, which version 1 approximated by length_done."""
    connection.execute(text("ALTER TABLE trials ADD COLUMN length_trained BIGINT NOT NULL DEFAULT 0"))
    connection.execute(update(schema.trials).values(length_trained=schema.trials.c.length_done))


def _add_report_keys(connection: Connection) -> None:
    """The (trial, attempt, seq) key of reports; older rows have none."""
    connection.execute(text("ALTER TABLE metrics ADD COLUMN attempt INTEGER"))
    connection.execute(text("ALTER TABLE metrics ADD COLUMN seq BIGINT"))
    connection.execute(text(f"CREATE UNIQUE INDEX {schema.REPORT_KEY_INDEX} ON metrics (trial_id, attempt, seq)"))


def _add_leases_and_experiment_uuids(connection: Connection) -> None:
    """The leases table (which replaces experiments.controller_pid), and a new uuid for every experiment.

    The folders of experiments made before keep their recorded paths (keyed by the experiment's id);
    only folders made from now on are keyed by the uuid.
    """
    connection.execute(text("ALTER TABLE experiments DROP COLUMN controller_pid"))
    connection.execute(text("ALTER TABLE experiments ADD COLUMN uuid VARCHAR(36) NOT NULL DEFAULT ''"))
    for experiment_id in connection.execute(select(schema.experiments.c.id)).scalars().all():
        connection.execute(update(schema.experiments).where(schema.experiments.c.id == experiment_id)
                           .values(uuid=str(uuid.uuid4())))
    for index in schema.experiments.indexes:
        index.create(connection)
    schema.leases.create(connection)


_MIGRATIONS = (_add_length_trained, _add_report_keys, _add_leases_and_experiment_uuids)
"""Step i brings a layout of version i + 1 to version i + 2."""


def _lock_experiment(connection: Connection, experiment_id: int) -> None:
    """Take the experiment's row lock (PostgreSQL; SQLite writers already hold the database lock)."""
    check_record_id(experiment_id, "experiment")
    row = connection.execute(statements.LOCK_EXPERIMENT, {"experiment": experiment_id}).first()
    if row is None:
        raise RecordNotFound(f"experiment {experiment_id!r} does not exist")


def _of_experiment(query: Select[Any], table: Table, experiment_id: int) -> Select[Any]:
    """`query` over `table` (which has a trial_id) narrowed to the trials of one experiment."""
    trials = schema.trials
    return query.join(trials, trials.c.id == table.c.trial_id).where(trials.c.experiment_id == experiment_id)


def _require_trial(connection: Connection, trial_id: int) -> None:
    check_record_id(trial_id, "trial")
    if connection.execute(select(schema.trials.c.id).where(schema.trials.c.id == trial_id)).first() is None:
        raise RecordNotFound(f"trial {trial_id!r} does not exist")


def _report_row(report: Report) -> dict[str, Any]:
    return {
        "trial_id": report.trial_id,
        "attempt": check_integer(report.attempt, "attempt"),
        "seq": check_count(report.seq, "seq"),
        "kind": parse_choice(MetricKind, report.kind, "metric kind").value,
        "metrics": check_json_object(report.metrics, "metrics"),
        "batches": check_count(report.batches, "batches"),
        "epochs": check_count(report.epochs, "epochs"),
        "reported_at": _now(),
    }


def _grow_length_trained(connection: Connection, trial_id: int, length: int) -> None:
    connection.execute(statements.GROW_LENGTH_TRAINED, {"trial": trial_id, "length": length})


def _now() -> datetime:
    return datetime.now(UTC)
