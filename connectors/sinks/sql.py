"""SqlSink: apply deliveries to a department table in SQLite or PostgreSQL, exactly once.

Guarantee: **exactly-once apply.** Each batch is one database transaction holding the row changes and
the consumed offsets (table ``xhub_offsets(topic, partition, next_offset)``); the sink loop seeks to
those offsets on every (re)assignment, so a crash at any point either committed the batch with its
offsets or neither. The offset write is conditional (the stored offset must not be beyond the batch's
first offset), so a zombie consumer or a retried batch whose first commit did land is refused with
``OffsetConflict`` instead of being applied twice.

Per key, an older ``seq`` never overwrites a newer one:

- insert/update/snapshot (``c``/``u``/``r``) is ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE
  table._xhub_seq < excluded._xhub_seq``;
- delete (``d``) removes the row if its seq is older and records the delete's seq in
  ``xhub_tombstones(table_name, key, seq)``; an upsert whose seq is not newer than the tombstone is
  ignored, so a late, older update never resurrects a deleted row. A newer upsert removes the tombstone.

Within one batch only the newest change per key is written (older ones would lose to it anyway).

Tables: one per subscription (``tables`` maps subscription -> table; else ``table``; else
``xhub_<subscription>``), created from the delivered Avro data schema when missing: the key column
(``key_column``, holding the envelope key, primary key), a column per data field (types in
``sql_types``), and ``_xhub_seq``, ``_xhub_op``, ``_xhub_event_id``, ``_xhub_policy_version``,
``_xhub_applied_at``, ``_xhub_source_commit_ms``. A field the table lacks is added with ``ALTER TABLE
ADD COLUMN`` (schema evolution); columns are never dropped or retyped. If ``key_column`` names a data
field, that column holds the envelope key (equal to the field unless the hub pseudonymised the key).

A row the database refuses (type, constraint) is dead-lettered with reason ``sink_rejected`` and the
rest of the batch is applied; dead letters are flushed before the transaction commits (at-least-once
for dead letters: a commit that fails after the flush repeats them). Database outages raise
``SinkUnavailable``; the connection is reopened on the next attempt.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.db import check_identifier, parse_dsn
from connectors.db import quote_identifier as quote
from connectors.sinks.base import Delivery, PartitionProgress, Sink, TopicPartitionKey, progress_of
from connectors.sinks.errors import (
    BAD_DATA_SCHEMA,
    NO_DATA,
    SINK_REJECTED,
    OffsetConflict,
    SinkConfigError,
    SinkUnavailable,
)
from connectors.sinks.sql_connection import ApplyConnection, Converter, chunks, open_apply_connection
from connectors.sinks.sql_types import FieldColumn, record_columns
from hub.core.log import get_logger

SEQ = "_xhub_seq"
OP = "_xhub_op"
EVENT_ID = "_xhub_event_id"
POLICY_VERSION = "_xhub_policy_version"
APPLIED_AT = "_xhub_applied_at"
SOURCE_COMMIT_MS = "_xhub_source_commit_ms"
META_COLUMNS = (SEQ, OP, EVENT_ID, POLICY_VERSION, APPLIED_AT, SOURCE_COMMIT_MS)
_META_PREFIX = "_xhub_"
_IN_CHUNK = 500


class SqlSinkConfig(BaseModel):
    """Config of an ``SqlSink`` (``type: sql`` in the sidecar's sink list)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["sql"] = "sql"
    dsn: SecretStr = Field(
        description="sqlite:///relative.db, sqlite:////absolute.db, a file path, or postgresql://user:pw@host/db"
    )
    table: str | None = Field(default=None, description="target table of every subscription not in tables")
    tables: dict[str, str] = Field(default_factory=dict, description="subscription -> target table")
    key_column: str = Field(default="xhub_key", description="primary-key column holding the envelope key")
    offsets_table: str = "xhub_offsets"
    tombstones_table: str = "xhub_tombstones"
    applied_log_table: str | None = Field(
        default=None,
        description="when set, one row per consumed delivery (topic, partition, offset, key, seq, op, "
        "event_id, applied_at), written in the same transaction: a receipt log",
    )
    create_tables: bool = Field(default=True, description="create a missing target table from the schema")
    add_columns: bool = Field(default=True, description="ALTER TABLE ADD COLUMN for new schema fields")

    @field_validator("table", "key_column", "offsets_table", "tombstones_table", "applied_log_table")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value, "table or column")

    @field_validator("tables")
    @classmethod
    def _identifiers(cls, value: dict[str, str]) -> dict[str, str]:
        for table in value.values():
            check_identifier(table, "table")
        return value

    @field_validator("dsn")
    @classmethod
    def _scheme(cls, value: SecretStr) -> SecretStr:
        parse_dsn(value.get_secret_value())  # the grammar only: the path is resolved when the sink opens
        return value


@dataclass(slots=True)
class _UpsertStatement:
    """The statement that upserts deliveries of one data schema into one table (built once per schema)."""

    table: str
    fields: list[str]
    converters: list[Converter | None]
    sql: str

    def rows(self, deliveries: Iterable[Delivery], applied_at: Any) -> list[list[Any]]:
        fields, converters = self.fields, self.converters
        out: list[list[Any]] = []
        for d in deliveries:
            data = d.data or {}
            row: list[Any] = [d.key]
            for name, convert in zip(fields, converters, strict=True):
                value = data.get(name)
                row.append(value if convert is None else convert(value))
            row.extend((d.seq, d.op, d.event_id, d.policy_version, applied_at, d.source_commit_ts_ms))
            out.append(row)
        return out


@dataclass(slots=True)
class _TableWork:
    """The newest change per key of one table in one batch."""

    winners: dict[str, Delivery] = field(default_factory=dict)
    upserts: dict[str, _UpsertStatement] = field(default_factory=dict)
    """event key -> its upsert statement, for the upsert winners."""


@dataclass(slots=True)
class _Work:
    tables: dict[str, _TableWork] = field(default_factory=dict)
    rejected: list[tuple[Delivery, str, str]] = field(default_factory=list)


class SqlSink(Sink):
    """Exactly-once apply of deliveries into SQLite or PostgreSQL tables (see the module docstring)."""

    stores_offsets = True

    def __init__(self, config: SqlSinkConfig) -> None:
        super().__init__()
        self.config = config
        self._db: ApplyConnection = open_apply_connection(config.dsn.get_secret_value())
        self._log = get_logger("sink.sql", target=self._db.where)
        self._columns: dict[str, set[str] | None] = {}
        self._upserts: dict[tuple[str, str], _UpsertStatement] = {}
        self._schema_keys: dict[int, tuple[dict[str, Any], str]] = {}
        self._table_names: dict[str, str] = {}
        self._ready = False
        q = self._db.param
        self._offsets = quote(config.offsets_table)
        self._tombs = quote(config.tombstones_table)
        # Every SQL text below is built from identifiers that quote() checked and quoted; values are
        # always parameters.
        self._offset_sql = (
            f'INSERT INTO {self._offsets} AS o ("topic", "partition", "next_offset", "updated_at") '  # noqa: S608 - identifiers checked and quoted by quote()
            f"VALUES ({q}, {q}, {q}, {q}) "
            f'ON CONFLICT ("topic", "partition") DO UPDATE SET "next_offset" = excluded."next_offset", '
            f'"updated_at" = excluded."updated_at" WHERE o."next_offset" <= {q}'
        )
        self._tomb_sql = (
            f'INSERT INTO {self._tombs} AS t ("table_name", "key", "seq", "deleted_at") '  # noqa: S608 - identifiers checked and quoted by quote()
            f"VALUES ({q}, {q}, {q}, {q}) "
            f'ON CONFLICT ("table_name", "key") DO UPDATE SET "seq" = excluded."seq", '
            f'"deleted_at" = excluded."deleted_at" WHERE t."seq" < excluded."seq"'
        )
        self._prune_sql = (
            f'DELETE FROM {self._tombs} WHERE "table_name" = {q} AND "key" = {q} AND "seq" < {q}'  # noqa: S608 - identifiers checked and quoted by quote()
        )
        self._log_sql = ""
        if config.applied_log_table:
            self._log_sql = (
                f"INSERT INTO {quote(config.applied_log_table)} "  # noqa: S608 - identifiers checked and quoted by quote()
                '("topic", "partition", "offset", "key", "seq", "op", "event_id", "applied_at") '
                f"VALUES ({', '.join([q] * 8)})"
            )

    # -- lifecycle ----------------------------------------------------------------------------------
    def open(self) -> None:
        """Connect and create the offsets, tombstones (and applied log) tables when missing.

        Raises:
            SinkUnavailable: the database does not answer.
        """
        if self._ready:
            return
        try:
            self._create_infrastructure()
        except self._db.driver_errors as exc:
            self._reset()
            raise SinkUnavailable(f"SQL sink {self._db.where}: {self._db.describe(exc)}") from exc
        self._ready = True

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
        self._ready = False

    def _reset(self) -> None:
        self._db.close()
        self._ready = False
        self._columns.clear()
        self._upserts.clear()

    def _create_infrastructure(self) -> None:
        big, ts = self._db.bigint, self._db.timestamp
        with self._db.transaction():
            self._db.lock_ddl()
            self._db.execute(
                f'CREATE TABLE IF NOT EXISTS {self._offsets} ("topic" TEXT NOT NULL, '
                f'"partition" INTEGER NOT NULL, "next_offset" {big} NOT NULL, "updated_at" {ts}, '
                'PRIMARY KEY ("topic", "partition"))'
            )
            self._db.execute(
                f'CREATE TABLE IF NOT EXISTS {self._tombs} ("table_name" TEXT NOT NULL, "key" TEXT NOT NULL, '
                f'"seq" {big} NOT NULL, "deleted_at" {ts}, PRIMARY KEY ("table_name", "key"))'
            )
            if self.config.applied_log_table:
                self._db.execute(
                    f"CREATE TABLE IF NOT EXISTS {quote(self.config.applied_log_table)} "
                    f'("topic" TEXT NOT NULL, "partition" INTEGER NOT NULL, "offset" {big} NOT NULL, '
                    f'"key" TEXT NOT NULL, "seq" {big} NOT NULL, "op" TEXT NOT NULL, "event_id" TEXT, '
                    f'"applied_at" {ts})'
                )

    # -- offsets --------------------------------------------------------------------------------------
    def committed_offsets(self, partitions: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """The stored next offsets of ``partitions`` (missing: never consumed into this database).

        Raises:
            SinkUnavailable: the database does not answer.
        """
        wanted = {(str(t), int(p)) for t, p in partitions}
        if not wanted:
            return {}
        self.open()
        topics = sorted({t for t, _ in wanted})
        condition, params = self._db.in_list('"topic"', topics)
        try:
            with self._db.transaction():
                rows = self._db.query(
                    f'SELECT "topic", "partition", "next_offset" FROM {self._offsets} WHERE {condition}',  # noqa: S608 - identifiers checked and quoted by quote()
                    params,
                )
        except self._db.driver_errors as exc:
            self._reset()
            raise SinkUnavailable(f"SQL sink {self._db.where}: {self._db.describe(exc)}") from exc
        found = {(str(t), int(p)): int(n) for t, p, n in rows}
        return {tp: n for tp, n in found.items() if tp in wanted}

    # -- writing --------------------------------------------------------------------------------------
    def write(self, batch: Sequence[Delivery], progress: Sequence[PartitionProgress] | None = None) -> None:
        """Apply ``batch`` and store ``progress`` in one transaction (see the module docstring).

        Raises:
            SinkUnavailable: the database failed; nothing of the batch was committed.
            OffsetConflict: the stored offsets are beyond this batch; nothing was applied.
        """
        spans = list(progress) if progress is not None else progress_of(batch)
        if not spans:
            return
        started = time.perf_counter()
        self.open()
        try:
            work = self._prepare(batch)
            try:
                with self._db.transaction():
                    rejected = self._apply(work, isolate=False)
                    self._finish(batch, spans, rejected)
            except self._db.driver_errors as exc:
                if self._db.classify(exc) != "row":
                    raise
                self._log.warning("batch_row_refused", records=len(batch), error=self._db.describe(exc))
                with self._db.transaction():
                    rejected = self._apply(work, isolate=True)
                    self._finish(batch, spans, rejected)
        except self._db.driver_errors as exc:
            self._reset()
            raise SinkUnavailable(f"SQL sink {self._db.where}: {self._db.describe(exc)}") from exc
        self._log.debug(
            "batch_applied", records=len(batch), ms=round((time.perf_counter() - started) * 1000, 1)
        )

    def _finish(
        self,
        batch: Sequence[Delivery],
        spans: Sequence[PartitionProgress],
        rejected: list[tuple[Delivery, str, str]],
    ) -> None:
        """Inside the batch transaction: the receipt log, the offsets, then the dead letters (flushed)."""
        if self._log_sql and batch:
            at = self._db.now()
            self._db.executemany(
                self._log_sql,
                [(d.topic, d.partition, d.offset, d.key, d.seq, d.op, d.event_id, at) for d in batch],
            )
        now = self._db.now()
        for span in spans:
            changed = self._db.execute(
                self._offset_sql, (span.topic, span.partition, span.next_offset, now, span.first_offset)
            )
            if changed == 0:
                q = self._db.param
                rows = self._db.query(
                    f'SELECT "next_offset" FROM {self._offsets} WHERE "topic" = {q} AND "partition" = {q}',  # noqa: S608 - identifiers checked and quoted by quote()
                    (span.topic, span.partition),
                )
                raise OffsetConflict(
                    span.topic, span.partition, int(rows[0][0]) if rows else None, span.first_offset
                )
        for delivery, reason, detail in rejected:
            self.dead_letters.publish(delivery, reason, detail)
        if rejected:
            self.dead_letters.flush()
            self._log.warning("deliveries_dead_lettered", records=len(rejected))

    def _table_for(self, subscription: str) -> str:
        table = self._table_names.get(subscription)
        if table is None:
            table = self.config.tables.get(subscription) or self.config.table
            if table is None:
                table = "xhub_" + re.sub(r"[^a-z0-9_]", "_", subscription.lower())[:57]
                quote(table)
            self._table_names[subscription] = table
        return table

    def _prepare(self, batch: Sequence[Delivery]) -> _Work:
        """Route deliveries to tables, keep the newest per key, and make sure each table can take them."""
        work = _Work()
        for d in batch:
            table = self._table_for(d.subscription)
            tw = work.tables.get(table)
            if tw is None:
                tw = work.tables[table] = _TableWork()
            if d.op != "d" and (d.data is None or d.data_schema is None):
                work.rejected.append((d, NO_DATA, f"op {d.op!r} without data or without its data schema"))
                continue
            previous = tw.winners.get(d.key)
            if previous is None or d.seq > previous.seq:
                tw.winners[d.key] = d
        for table, tw in work.tables.items():
            if table not in self._columns:
                self._columns[table] = self._read_columns(table)
            for key, d in list(tw.winners.items()):
                if d.op == "d" or d.data_schema is None:
                    continue
                try:
                    tw.upserts[key] = self._upsert_for(table, d.data_schema)
                except ValueError as exc:
                    del tw.winners[key]
                    work.rejected.append((d, BAD_DATA_SCHEMA, f"table {table}: {exc}"))
        return work

    def _apply(self, work: _Work, *, isolate: bool) -> list[tuple[Delivery, str, str]]:
        """Write every table's winners; with ``isolate``, one savepoint per row and refused rows set aside."""
        rejected = list(work.rejected)
        applied_at = self._db.now()
        for table, tw in work.tables.items():
            if not tw.winners:
                continue
            tombs = self._tombstones(table, list(tw.winners))
            live = [d for d in tw.winners.values() if (t := tombs.get(d.key)) is None or d.seq > t]
            if not isolate:
                self._apply_rows(table, live, tw.upserts, tombs, applied_at)
                continue
            for d in live:
                self._db.execute("SAVEPOINT xhub_row")
                try:
                    self._apply_rows(table, [d], tw.upserts, tombs, applied_at)
                except self._db.driver_errors as exc:
                    if self._db.classify(exc) != "row":
                        raise
                    self._db.execute("ROLLBACK TO SAVEPOINT xhub_row")
                    rejected.append((d, SINK_REJECTED, f"table {table}: {self._db.describe(exc)}"))
                self._db.execute("RELEASE SAVEPOINT xhub_row")
        return rejected

    def _apply_rows(
        self,
        table: str,
        deliveries: Sequence[Delivery],
        upserts: dict[str, _UpsertStatement],
        tombs: dict[str, int],
        applied_at: Any,
    ) -> None:
        q = self._db.param
        groups: dict[int, tuple[_UpsertStatement, list[Delivery]]] = {}
        deletes: list[Delivery] = []
        for d in deliveries:
            if d.op == "d":
                deletes.append(d)
                continue
            upsert = upserts[d.key]
            group = groups.get(id(upsert))
            if group is None:
                groups[id(upsert)] = (upsert, [d])
            else:
                group[1].append(d)
        for upsert, members in groups.values():
            self._db.executemany(upsert.sql, upsert.rows(members, applied_at))
        self._db.executemany(
            self._prune_sql, [(table, d.key, d.seq) for d in deliveries if d.op != "d" and d.key in tombs]
        )
        if deletes:
            if self._columns.get(table) is not None:
                key, seq = quote(self.config.key_column), quote(SEQ)
                self._db.executemany(
                    f"DELETE FROM {quote(table)} WHERE {key} = {q} AND {seq} < {q}",  # noqa: S608 - identifiers checked and quoted by quote()
                    [(d.key, d.seq) for d in deletes],
                )
            self._db.executemany(self._tomb_sql, [(table, d.key, d.seq, applied_at) for d in deletes])

    def _tombstones(self, table: str, keys: list[str]) -> dict[str, int]:
        q = self._db.param
        found: dict[str, int] = {}
        for part in chunks(keys, _IN_CHUNK):
            condition, params = self._db.in_list('"key"', part)
            rows = self._db.query(
                f'SELECT "key", "seq" FROM {self._tombs} WHERE "table_name" = {q} AND {condition}',  # noqa: S608 - identifiers checked and quoted by quote()
                [table, *params],
            )
            found.update((str(k), int(s)) for k, s in rows)
        return found

    # -- tables and upserts ---------------------------------------------------------------------------
    def _read_columns(self, table: str) -> set[str] | None:
        with self._db.transaction():
            return self._db.table_columns(table)

    def _schema_key(self, schema: dict[str, Any]) -> str:
        cached = self._schema_keys.get(id(schema))
        if cached is not None and cached[0] is schema:
            return cached[1]
        text = json.dumps(schema, sort_keys=True, default=str)
        self._schema_keys[id(schema)] = (schema, text)
        return text

    def _upsert_for(self, table: str, schema: dict[str, Any]) -> _UpsertStatement:
        """The upsert statement of ``schema`` into ``table``, creating or widening the table first.

        Raises:
            ValueError: the schema is not a usable record (the deliveries are dead-lettered).
            SinkConfigError: the table is missing and ``create_tables`` is off, or lacks the key column.
        """
        cache_key = (table, self._schema_key(schema))
        upsert = self._upserts.get(cache_key)
        if upsert is not None:
            return upsert
        key_column = self.config.key_column
        fields = [f for f in record_columns(schema) if f.name.lower() != key_column.lower()]
        seen: set[str] = set()
        for f in fields:
            lowered = f.name.lower()
            if lowered.startswith(_META_PREFIX):
                raise ValueError(f"field {f.name!r} uses the sink's reserved prefix {_META_PREFIX}")
            if lowered in seen:
                raise ValueError(f"fields named {f.name!r} differ only by case")
            seen.add(lowered)
        existing = self._columns.get(table)
        if existing is None:
            existing = self._create_table(table, fields)
        # Also after a create: a twin sink may have created the table first, from an older schema.
        existing = self._widen_table(table, fields, existing)
        self._columns[table] = existing
        usable = [f for f in fields if f.name.lower() in existing]
        upsert = self._build_upsert(table, usable)
        self._upserts[cache_key] = upsert
        return upsert

    def _create_table(self, table: str, fields: list[FieldColumn]) -> set[str]:
        if not self.config.create_tables:
            raise SinkConfigError(
                f"SQL sink {self._db.where}: table {table} does not exist and create_tables is off"
            )
        db = self._db
        columns = [f"{quote(self.config.key_column)} TEXT NOT NULL PRIMARY KEY"]
        columns += [f"{quote(f.name)} {db.column_type(f.kind)}" for f in fields]
        columns += [
            f"{quote(SEQ)} {db.bigint} NOT NULL",
            f"{quote(OP)} TEXT NOT NULL",
            f"{quote(EVENT_ID)} TEXT",
            f"{quote(POLICY_VERSION)} TEXT",
            f"{quote(APPLIED_AT)} {db.timestamp}",
            f"{quote(SOURCE_COMMIT_MS)} {db.bigint}",
        ]
        with db.transaction():
            db.lock_ddl()
            db.execute(f"CREATE TABLE IF NOT EXISTS {quote(table)} ({', '.join(columns)})")
            created = db.table_columns(table) or set()
        self._log.info("table_created", table=table, columns=len(created))
        return created

    def _widen_table(self, table: str, fields: list[FieldColumn], existing: set[str]) -> set[str]:
        if self.config.key_column.lower() not in existing:
            raise SinkConfigError(
                f"SQL sink {self._db.where}: table {table} has no key column {self.config.key_column}"
            )
        db = self._db
        meta_types = {SEQ: db.bigint, SOURCE_COMMIT_MS: db.bigint, APPLIED_AT: db.timestamp}
        # Added nullable: a column with NOT NULL and no default cannot be added to a filled table.
        missing_meta = [(m, meta_types.get(m, "TEXT")) for m in META_COLUMNS if m not in existing]
        missing = [(f.name, db.column_type(f.kind)) for f in fields if f.name.lower() not in existing]
        if not missing_meta and not (missing and self.config.add_columns):
            return existing
        with db.transaction():
            db.lock_ddl()
            for name, column_type in missing_meta + (missing if self.config.add_columns else []):
                db.add_column(table, name, column_type)
            widened = db.table_columns(table) or set()
        self._log.info(
            "table_columns_added", table=table, columns=[name for name, _ in missing_meta + missing]
        )
        return widened

    def _build_upsert(self, table: str, fields: list[FieldColumn]) -> _UpsertStatement:
        q = self._db.param
        key = quote(self.config.key_column)
        names = [key, *(quote(f.name) for f in fields), *(quote(m) for m in META_COLUMNS)]
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        sql = (
            f"INSERT INTO {quote(table)} AS x ({', '.join(names)}) VALUES ({', '.join([q] * len(names))}) "  # noqa: S608 - identifiers checked and quoted by quote()
            f"ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE x.{quote(SEQ)} < excluded.{quote(SEQ)}"
        )
        return _UpsertStatement(
            table, [f.name for f in fields], [self._db.converter(f.kind) for f in fields], sql
        )
