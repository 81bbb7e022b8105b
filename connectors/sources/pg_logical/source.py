"""Logical-decoding capture of a PostgreSQL table: the WAL through a replication slot, no triggers.

``xhub connector install`` checks the server (``wal_level = logical``, slots, WAL senders, the REPLICATION
privilege) and creates a publication for the table and a replication slot with the built-in ``pgoutput``
plugin. The department's writes then cost only the little extra WAL of ``wal_level = logical``; the
sidecar reads the slot over the replication protocol and publishes:

    c insert, u update, d delete, d + c an update that changes the business key, r snapshot rows

**Exactly once.** A batch holds whole source transactions, in commit order; its position,
``{"lsn": <end of the last commit published>, "snapshot": ..., "skip": ...}``, commits with its events in
one Kafka transaction. Only then is the slot told (``flush_lsn``) that the WAL up to there may go. After a
crash the slot streams again from its confirmed position, which is at or before the stored one, and every
transaction whose commit lies before the stored ``lsn`` is dropped: published once, never twice.

**seq** = commit LSN x 65536 + the event's number in its transaction (saturating at 65535), so a key's
changes ascend across and within transactions; snapshot rows take the snapshot's consistent LSN x 65536,
which lies between the transactions the snapshot shows and those it does not.

**Snapshot.** A temporary slot is created with ``EXPORT_SNAPSHOT``: its consistent point C and the
exported snapshot are exactly "everything committed before C". The rows are read under that snapshot in
key order, chunk by chunk (each chunk with its position, so a SIGKILL resumes after the last chunk in
Kafka), while streaming waits. Streaming then drops, for those keys, the transactions committed before C.
A crash mid-snapshot loses the exported snapshot: the next run takes a new one (C2) for the keys after the
last chunk, and remembers both ranges in ``skip`` (``[[last key of the range, C], ...]``), so each key
skips exactly what its own snapshot showed; the database compares keys, in the column's own order.

**Replica identity.** A delete carries only the table's replica identity. The catalog key needs to be in
it: install sets ``REPLICA IDENTITY FULL`` unless the business key is the primary key (or the identity
index) and no mapped column can be TOASTed; FULL also carries the old key of a key-changing update and
the old value of every unchanged TOAST column (an update not touching a large column does not repeat it
in the WAL; we take it from the old row). With ``replica_identity: keep`` a change that still lacks
either is dead-lettered (``missing_key``, ``unchanged_toast``) with what to set.

**TRUNCATE** is dead-lettered (reason ``truncate``, no key): which rows went is not in the WAL. Consumers
learn the table's state again from a snapshot: ``POST /snapshot`` or ``xhub connector run --snapshot``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from connectors.db import check_identifier, parse_dsn, quote_identifier, quote_name
from connectors.db.postgres import import_psycopg
from connectors.errors import ConfigError, InstallError, SourceUnavailable
from connectors.sources.base import Batch, Captured, Poll, PollingSource, Position, SourceConfigBase
from connectors.sources.pg_logical.pgoutput import (
    UNCHANGED_TOAST,
    Begin,
    Change,
    ColumnValue,
    Commit,
    Relation,
    Truncate,
    decode,
    format_lsn,
    parse_lsn,
)
from connectors.sources.pg_logical.server import (
    SlotState,
    TableFacts,
    WalHeldTracker,
    check_server,
    classify_keys,
    drop_slot,
    import_psycopg2_extras,
    publication_tables,
    qualified_table,
    server_settings,
    slot_state,
    table_facts,
)
from hub.core.envelope import now_ms
from hub.core.errors import InvalidRecord
from hub.core.log import get_logger

_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
_SNAPSHOT_NAME = re.compile(r"^[0-9A-F-]+$")
_SESSION = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=iso_8601 -c extra_float_digits=1"
"""The same text forms in the snapshot and the WAL stream: the type output functions follow these."""
SEQ_SHIFT = 16
_SEQ_INDEX_MAX = (1 << SEQ_SHIFT) - 1

# Type OIDs whose text form is already a JSON number, boolean or JSON value.
_INTS = {20, 21, 23, 26}
_FLOATS = {700, 701, 1700}
_BOOL = 16
_JSON = {114, 3802}
_TIMESTAMPS = {1114, 1184}


class PgLogicalSourceConfig(SourceConfigBase):
    """Logical-decoding capture of one PostgreSQL table (``wal_level = logical`` needed)."""

    type: Literal["pg_logical"] = "pg_logical"
    resource: str = Field(description="catalog code of the records in the table")
    database: SecretStr = Field(description="a postgresql:// DSN (a role with REPLICATION)")
    table: str = Field(description="the captured table, optionally schema.table")
    key_column: str | None = Field(
        default=None, description="column of the business key; default: the key field"
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="schema field -> table column, where they differ"
    )
    slot: str | None = Field(
        default=None, description="replication slot name (unique on the server); default xhub_<name>"
    )
    publication: str | None = Field(default=None, description="publication name; default xhub_<name>")
    replica_identity: Literal["full", "keep"] = Field(
        default="full",
        description="full: install sets REPLICA IDENTITY FULL where deletes or TOAST need it; keep: never",
    )
    poll_interval_ms: int = Field(default=200, ge=10, le=60_000)
    snapshot: bool = Field(default=True, description="publish existing rows as op=r on first start")
    wal_warn_bytes: int = Field(
        default=1 << 30, ge=0, description="/healthz warns when the slot holds back more WAL than this"
    )
    wal_warn_age_s: float = Field(
        default=3600.0, ge=0, description="/healthz warns when the oldest WAL held back is older"
    )
    wal_check_interval_s: float = Field(default=5.0, gt=0, le=3600)

    @field_validator("table", "key_column")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value, "identifier")

    @field_validator("slot", "publication")
    @classmethod
    def _slot_name(cls, value: str | None) -> str | None:
        if value is not None and not _SLOT_NAME.match(value):
            raise ValueError(f'"{value}" must be lowercase letters, digits or "_" (at most 63)')
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        for column in value.values():
            check_identifier(column, "column")
        return value

    @property
    def slot_name(self) -> str:
        return self.slot or "xhub_" + self.name.replace("-", "_")

    @property
    def publication_name(self) -> str:
        return self.publication or "xhub_" + self.name.replace("-", "_")

    def resource_codes(self) -> list[str]:
        return [self.resource]


@dataclass(slots=True)
class _Txn:
    begin: Begin
    changes: list[tuple[Change | Truncate, Relation | None]]


@dataclass(slots=True)
class _Snapshotting:
    """An exported snapshot imported into an open REPEATABLE READ transaction of this process."""

    conn: Any
    at: int


class PgLogicalSource(PollingSource):
    """Publishes the changes of one table, read from the WAL through a replication slot."""

    kind = "pg_logical"
    config: PgLogicalSourceConfig

    def __init__(self, config: PgLogicalSourceConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.poll_interval_s = config.poll_interval_ms / 1000
        self.spec = self.specs[config.resource]
        try:
            self.address = parse_dsn(config.database.get_secret_value(), base_dir=self.base_dir)
        except ValueError as exc:
            raise ConfigError(f'source "{config.name}": {exc}') from exc
        if self.address.dialect != "postgresql":
            raise ConfigError(
                f'source "{config.name}": pg_logical needs a postgresql:// database, not '
                f"{self.address.display}; use type: sql_trigger for SQLite"
            )
        self.what = f'source "{config.name}"'
        self.key_column = config.key_column or config.columns.get(self.spec.key_field, self.spec.key_field)
        self.slot = config.slot_name
        self.publication = config.publication_name
        self.wal = WalHeldTracker()
        self._conn: Any = None
        self._repl: Any = None
        self._cursor: Any = None
        self._snap: _Snapshotting | None = None
        self._oid = 0
        self._qualified = config.table
        self._facts: TableFacts | None = None
        self._pairs: list[tuple[str, str]] = []
        self._key_type = "text"
        self._relations: dict[int, Relation] = {}
        self._plans: dict[int, _RowPlan] = {}
        self._confirmed = 0
        self._next_wal_check = 0.0
        self.log = get_logger("source", source=config.name, kind=self.kind)

    @property
    def supports_snapshot(self) -> bool:
        return True

    # --- connections ------------------------------------------------------------------------------

    def _connect(self) -> Any:
        psycopg = import_psycopg(self.what)
        try:
            return psycopg.connect(self.address.target, autocommit=True, connect_timeout=10, options=_SESSION)
        except psycopg.Error as exc:
            raise SourceUnavailable(f"{self.what}: {self.address.display}: {exc}".strip()) from exc

    def _replication_connection(self) -> Any:
        extras = import_psycopg2_extras(self.what)
        import psycopg2

        try:
            return psycopg2.connect(
                self.address.target,
                connection_factory=extras.LogicalReplicationConnection,
                connect_timeout=10,
                options=_SESSION,
            )
        except psycopg2.Error as exc:
            raise SourceUnavailable(
                f"{self.what}: replication connection to {self.address.display}: {exc}".strip()
            ) from exc

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        import psycopg2

        return (import_psycopg(self.what).Error, psycopg2.Error, OSError)

    # --- install ----------------------------------------------------------------------------------

    def _mapping(self, facts: TableFacts) -> list[tuple[str, str]]:
        where = f"{self.what}: table {self.config.table} in {self.address.display}"
        return self.spec.column_pairs(set(facts.columns), self.config.columns, self.key_column, where)

    def _table(self, conn: Any) -> tuple[int, str, TableFacts]:
        found = qualified_table(conn, self.config.table)
        if found is None:
            raise InstallError(
                f"{self.what}: table {self.config.table} does not exist in {self.address.display}"
            )
        oid, qualified = found
        return oid, qualified, table_facts(conn, oid)

    def _needs_full_identity(self, facts: TableFacts, pairs: Sequence[tuple[str, str]]) -> str | None:
        """Why the table needs REPLICA IDENTITY FULL (None: it does not)."""
        if facts.replica_identity == "f":
            return None
        if facts.identity_columns != [self.key_column]:
            return f"business key {self.key_column} is not its replica identity (deletes must carry it)"
        toast = [c for _, c in pairs if c in facts.toastable and c != self.key_column]
        if toast:
            return f"column {', '.join(toast)} can be TOASTed (updates leave unchanged values out)"
        return None

    def install(self) -> list[str]:
        conn = self._connect()
        try:
            settings = server_settings(conn)
            check_server(settings, self.address.display)
            _oid, qualified, facts = self._table(conn)
            lines = [
                *self._install_identity(conn, qualified, facts),
                self._install_publication(conn, qualified),
                self._install_slot(conn),
            ]
            if settings.max_slot_wal_keep_size in ("-1", "-1MB"):
                lines.append(
                    "warning: max_slot_wal_keep_size is unlimited: a stopped sidecar's slot keeps all WAL; "
                    "set it (e.g. ALTER SYSTEM SET max_slot_wal_keep_size = '10GB') so it cannot fill "
                    "the disk"
                )
        except import_psycopg(self.what).Error as exc:
            raise InstallError(f"{self.what}: {self.address.display}: {exc}".strip()) from exc
        finally:
            conn.close()
        return [f"{line} in {self.address.display}" for line in lines]

    def _install_identity(self, conn: Any, qualified: str, facts: TableFacts) -> list[str]:
        why = self._needs_full_identity(facts, self._mapping(facts))
        if why is None:
            return []
        if self.config.replica_identity == "keep":
            return [f"kept replica identity of {qualified} ({why}; such changes are dead-lettered)"]
        conn.execute(f"ALTER TABLE {quote_name(qualified)} REPLICA IDENTITY FULL")
        return [f"altered table {qualified}: REPLICA IDENTITY FULL ({why})"]

    def _install_publication(self, conn: Any, qualified: str) -> str:
        pub = quote_identifier(self.publication)
        tables = publication_tables(conn, self.publication)
        if tables is None:
            conn.execute(f"CREATE PUBLICATION {pub} FOR TABLE {quote_name(qualified)}")
            return f"created publication {self.publication} for {qualified}"
        if qualified not in tables:
            conn.execute(f"ALTER PUBLICATION {pub} ADD TABLE {quote_name(qualified)}")
            return f"replaced publication {self.publication}: added {qualified}"
        return f"kept publication {self.publication}"

    def _install_slot(self, conn: Any) -> str:
        state = slot_state(conn, self.slot)
        if state is None:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self.slot,))
            return f"created replication slot {self.slot} (pgoutput)"
        database = conn.execute("SELECT current_database()").fetchone()[0]
        if state.plugin != "pgoutput" or state.database != database:
            raise InstallError(
                f"replication slot {self.slot} exists for {state.plugin} in database {state.database}: "
                "name another one with slot: in the source config"
            )
        return f"kept replication slot {self.slot}"

    def uninstall(self) -> list[str]:
        conn = self._connect()
        lines = []
        try:
            if drop_slot(conn, self.slot):
                lines.append(f"dropped replication slot {self.slot}")
            if publication_tables(conn, self.publication) is not None:
                conn.execute(f"DROP PUBLICATION {quote_identifier(self.publication)}")
                lines.append(f"dropped publication {self.publication}")
        finally:
            conn.close()
        return [f"{line} in {self.address.display}" for line in lines]

    # --- reading ----------------------------------------------------------------------------------

    def open(self) -> None:
        self._conn = self._connect()
        try:
            self._require_slot()
            self._oid, self._qualified, self._facts = self._table(self._conn)
            self._pairs = self._mapping(self._facts)
            self._key_type = self._facts.columns[self.key_column]
        except import_psycopg(self.what).Error as exc:
            self.close()
            raise SourceUnavailable(f"{self.what}: {exc}".strip()) from exc
        except BaseException:
            self.close()
            raise

    def _require_slot(self) -> None:
        if slot_state(self._conn, self.slot) is None:
            raise InstallError(
                f"{self.what}: replication slot {self.slot} is missing in {self.address.display}; "
                "run: xhub connector install --config FILE"
            )

    def close(self) -> None:
        self._end_snapshot()
        for conn in (self._repl, self._conn):
            if conn is not None:
                with contextlib.suppress(Exception):  # closing a broken connection must not raise
                    conn.close()
        self._repl = self._cursor = self._conn = None
        self._relations.clear()
        self._plans.clear()

    def poll(self, position: Position | None, limit: int, *, start_snapshot: bool) -> Poll:
        try:
            return self._poll(position, limit, start_snapshot=start_snapshot)
        except self._driver_errors() as exc:
            raise SourceUnavailable(f"{self.what}: {type(exc).__name__}: {exc}".strip()) from exc

    def _poll(self, position: Position | None, limit: int, *, start_snapshot: bool) -> Poll:
        self._check_wal()
        if position is None:
            state = slot_state(self._conn, self.slot)
            start = state.confirmed_flush if state and state.confirmed_flush else 0
            position = {"lsn": format_lsn(start), "snapshot": None, "skip": []}
            if self.config.snapshot:
                start_snapshot = True
        if start_snapshot:
            self._stop_stream()
            self._end_snapshot()
            self.log.info("snapshot_started", table=self.config.table)
            # Streaming waits for the snapshot; the new ranges then cover every key.
            position = {"lsn": position["lsn"], "snapshot": {"after": None, "at": None}, "skip": []}
        if position.get("snapshot") is not None:
            return self._snapshot_chunk(position, limit)
        return self._stream(position, limit)

    # --- snapshot ---------------------------------------------------------------------------------

    def _begin_snapshot(self) -> int:
        """Create a temporary slot exporting its snapshot, import that into a transaction; return C."""
        repl = self._replication_connection()
        try:
            cur = repl.cursor()
            name = f"xhub_snap_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            cur.execute(f"CREATE_REPLICATION_SLOT {name} TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT")
            _slot, consistent, snapshot_name, _plugin = cur.fetchone()
            if not _SNAPSHOT_NAME.match(str(snapshot_name)):
                raise SourceUnavailable(f"{self.what}: unexpected exported snapshot name")
            psycopg = import_psycopg(self.what)
            conn = psycopg.connect(
                self.address.target, autocommit=False, connect_timeout=10, options=_SESSION
            )
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_name}'")
        finally:
            repl.close()  # the temporary slot goes with it; the imported snapshot stays ours
        at = parse_lsn(str(consistent))
        self._snap = _Snapshotting(conn, at)
        return at

    def _end_snapshot(self) -> None:
        snap, self._snap = self._snap, None
        if snap is not None:
            with contextlib.suppress(Exception):  # closing a broken connection must not raise
                snap.conn.close()

    def _snapshot_chunk(self, position: dict[str, Any], limit: int) -> Poll:
        snapshot = dict(position["snapshot"])
        skip = [list(s) for s in position.get("skip") or []]
        if self._snap is None:
            if snapshot["at"] is not None and snapshot["after"] is not None:
                # Rows up to "after" were read under the snapshot at "at", in an earlier run.
                skip.append([snapshot["after"], snapshot["at"]])
            snapshot["at"] = format_lsn(self._begin_snapshot())
        assert self._snap is not None
        at = self._snap.at
        columns = ", ".join(f"t.{quote_identifier(c)}::text" for _, c in self._pairs)
        key = f"t.{quote_identifier(self.key_column)}"
        table = quote_name(self._qualified)
        after = snapshot["after"]
        select_rows = f"SELECT {key}::text, {columns} FROM {table} t"  # noqa: S608 - identifiers checked and quoted
        if after is None:
            sql = f"{select_rows} WHERE {key} IS NOT NULL ORDER BY {key} LIMIT %s"
            params: tuple[Any, ...] = (limit,)
        else:
            sql = f"{select_rows} WHERE {key} > %s::{self._key_type} ORDER BY {key} LIMIT %s"
            params = (after, limit)
        rows = self._snap.conn.execute(sql, params).fetchall()
        finished = len(rows) < limit
        if finished:
            keyless = f"SELECT NULL, {columns} FROM {table} t WHERE {key} IS NULL"  # noqa: S608 - identifiers checked and quoted
            rows += self._snap.conn.execute(keyless).fetchall()
        plan = self._snapshot_plan()
        read_ms = now_ms()
        seq = at << SEQ_SHIFT
        origin = f"{self._qualified} snapshot"
        changes = [
            Captured(
                self.spec.code,
                "r",
                seq,
                read_ms,
                origin,
                plan.json(row[1:]),
                None if row[0] is None else str(row[0]),
            )
            for row in rows
        ]
        if finished:
            self.log.info("snapshot_finished", table=self.config.table)
            skip.append([None, format_lsn(at)])
            self._end_snapshot()
            new_position = {"lsn": position["lsn"], "snapshot": None, "skip": skip}
        else:
            snapshot["after"] = str(rows[-1][0])
            new_position = {"lsn": position["lsn"], "snapshot": snapshot, "skip": skip}
        return Poll(Batch(changes, new_position), new_position, more=True)

    def _snapshot_plan(self) -> _RowPlan:
        assert self._facts is not None
        types = _type_oids(self._conn, [c for _, c in self._pairs], self._oid)
        return _RowPlan([(f, i, types[c]) for i, (f, c) in enumerate(self._pairs)], -1)

    # --- streaming --------------------------------------------------------------------------------

    def _start_stream(self, lsn: int) -> None:
        self._repl = self._replication_connection()
        self._cursor = self._repl.cursor()
        self._cursor.start_replication(
            slot_name=self.slot,
            decode=False,
            start_lsn=lsn,
            options={"proto_version": "1", "publication_names": self.publication},
        )
        self._confirmed = lsn

    def _stop_stream(self) -> None:
        repl, self._repl, self._cursor = self._repl, None, None
        if repl is not None:
            with contextlib.suppress(Exception):  # closing a broken connection must not raise
                repl.close()

    def _stream(self, position: dict[str, Any], limit: int) -> Poll:
        stored = parse_lsn(position["lsn"])
        skip = [list(s) for s in position.get("skip") or []]
        if self._cursor is None:
            self._start_stream(stored)
        # Everything read before this poll is published (or dropped): the slot may let it go.
        wal_end = int(self._cursor.wal_end or 0)
        self._confirm(max(self._confirmed, wal_end) if self._confirmed >= stored else stored)
        changes, lsn, whole = self._read(stored, limit, skip)
        if not whole:
            return Poll(None, position)  # stopping: the half-read transaction comes again after restart
        if skip and lsn > max(parse_lsn(at) for _, at in skip):
            skip = []  # past every snapshot: nothing left to drop
        new_position = {"lsn": format_lsn(lsn), "snapshot": None, "skip": skip}
        if changes:
            return Poll(Batch(changes, new_position), new_position, more=True)
        # _read waited the poll interval on the replication socket already, and wakes when a change
        # comes: a second, blind wait in the run loop would hold such a change back up to 200 ms more.
        return Poll(None, new_position if lsn != stored else position, more=True)

    def _read(self, lsn: int, limit: int, skip: list[list[Any]]) -> tuple[list[Captured], int, bool]:
        """Whole transactions after ``lsn``, until ``limit`` changes or a quiet poll interval.

        Returns:
            the changes, the end of the last commit read, and False when stopped mid-transaction.
        """
        cursor = self._cursor
        changes: list[Captured] = []
        txn: _Txn | None = None
        deadline = time.monotonic() + self.poll_interval_s
        while not self._stopping.is_set():
            message = cursor.read_message()
            if message is None:
                now = time.monotonic()
                # Publish what is complete as soon as the server has nothing more ready: a batch grows
                # by itself while the previous one is in Kafka, and a quiet table adds no wait.
                if txn is None and (changes or now >= deadline):
                    break
                # Inside a transaction we wait for its end: transactions are published whole.
                select.select([cursor], [], [], max(0.01, deadline - now) if txn is None else 1.0)
                continue
            decoded = decode(message.payload)
            if isinstance(decoded, Begin):
                txn = _Txn(decoded, [])
            elif isinstance(decoded, Relation):
                self._relations[decoded.oid] = decoded
                self._plans.pop(decoded.oid, None)
            elif isinstance(decoded, Change | Truncate) and txn is not None:
                oid = decoded.relation_oid if isinstance(decoded, Change) else 0
                txn.changes.append((decoded, self._relations.get(oid)))
            elif isinstance(decoded, Commit) and txn is not None:
                if txn.begin.final_lsn >= lsn:  # else published before a crash: drop it
                    changes.extend(self._transaction(txn, skip))
                    lsn = decoded.end_lsn
                txn = None
                if len(changes) >= limit:
                    break
        return changes, lsn, txn is None

    def _confirm(self, lsn: int) -> None:
        if self._cursor is not None and lsn > self._confirmed:
            self._cursor.send_feedback(write_lsn=lsn, flush_lsn=lsn, force=True)
            self._confirmed = lsn

    def after_commit(self, position: Position) -> None:
        # The transaction with these events and this position committed: the slot may move on.
        self._confirm(parse_lsn(position["lsn"]))

    def _transaction(self, txn: _Txn, skip: list[list[Any]]) -> list[Captured]:
        begin = txn.begin
        out: list[Captured] = []
        base = begin.final_lsn << SEQ_SHIFT
        for index, (change, relation) in enumerate(txn.changes):
            seq = base + min(index, _SEQ_INDEX_MAX)
            origin = f"wal {format_lsn(begin.final_lsn)}#{index}"
            if isinstance(change, Truncate):
                if self._oid in change.relation_oids:
                    out.append(self._truncated(seq, begin.commit_ts_ms, origin))
                continue
            if relation is None or change.relation_oid != self._oid:
                continue
            out.extend(self._row_events(change, relation, seq, begin.commit_ts_ms, origin))
        # Number the events (a key change makes two), so that d then c of one update keep their order.
        for number, event in enumerate(out):
            event.seq = base + min(number, _SEQ_INDEX_MAX)
        if skip:
            out = self._drop_snapshotted(out, begin.final_lsn, skip)
        return out

    def _drop_snapshotted(
        self, changes: list[Captured], final_lsn: int, skip: list[list[Any]]
    ) -> list[Captured]:
        """Drop the changes that the snapshot of their key already showed."""
        ats = [parse_lsn(at) for _, at in skip]
        if final_lsn >= max(ats):
            return changes
        bounds = [str(upto) for upto, _ in skip[:-1]]
        keyed = [c for c in changes if c.key is not None]
        ranges = classify_keys(self._conn, self._key_type, [str(c.key) for c in keyed], bounds)
        range_of = {id(c): r for c, r in zip(keyed, ranges, strict=True)}
        return [c for c in changes if final_lsn >= ats[range_of.get(id(c), len(ats) - 1)]]

    def _row_events(
        self, change: Change, relation: Relation, seq: int, commit_ms: int, origin: str
    ) -> list[Captured]:
        plan = self._plan(relation)
        code = self.spec.code
        if change.op == "delete":
            key = plan.key(change.old)
            if key is None:
                return [
                    self._rejected(seq, commit_ms, origin, "missing_key", self._identity_hint("a delete"))
                ]
            return [Captured(code, "d", seq, commit_ms, origin, None, key)]
        assert change.new is not None
        new = change.new
        missing = [relation.columns[i].name for i, v in enumerate(new) if v is UNCHANGED_TOAST]
        if missing:
            if change.old is not None and change.old_is_full:
                new = tuple(o if v is UNCHANGED_TOAST else v for v, o in zip(new, change.old, strict=True))
            elif any(c in missing for _, c in self._pairs):
                return [
                    self._rejected(
                        seq,
                        commit_ms,
                        origin,
                        "unchanged_toast",
                        f"column {', '.join(missing)} was not in the WAL (an unchanged TOAST value): "
                        f"ALTER TABLE {self._qualified} REPLICA IDENTITY FULL",
                    )
                ]
        key = plan.key(new)
        data = plan.json(new)
        if change.op == "insert":
            return [Captured(code, "c", seq, commit_ms, origin, data, key)]
        old_key = plan.key(change.old) if change.old is not None else key
        if change.old is not None and old_key is None and not change.old_is_full:
            old_key = key
        if old_key != key and old_key is not None:
            # The business key changed: the old key is gone, the new one appears (as triggers do).
            return [
                Captured(code, "d", seq, commit_ms, origin, None, old_key),
                Captured(code, "c", seq, commit_ms, origin, data, key),
            ]
        return [Captured(code, "u", seq, commit_ms, origin, data, key)]

    def _identity_hint(self, what: str) -> str:
        return (
            f"{what} without the business key {self.key_column}: ALTER TABLE {self._qualified} "
            "REPLICA IDENTITY FULL (or make the key the primary key)"
        )

    def _truncated(self, seq: int, commit_ms: int, origin: str) -> Captured:
        return self._rejected(
            seq,
            commit_ms,
            origin,
            "truncate",
            f"TRUNCATE of {self._qualified}: the deleted rows are not in the WAL; take a snapshot "
            "(POST /snapshot or xhub connector run --snapshot) to republish the table",
        )

    def _rejected(self, seq: int, commit_ms: int, origin: str, reason: str, detail: str) -> Captured:
        problem = InvalidRecord(reason, detail, original=detail.encode())
        return Captured(self.spec.code, "u", seq, commit_ms, origin, None, None, problem)

    def _plan(self, relation: Relation) -> _RowPlan:
        plan = self._plans.get(relation.oid)
        if plan is None:
            index = {c.name: (i, c.type_oid) for i, c in enumerate(relation.columns)}
            missing = [c for _, c in self._pairs if c not in index]
            if missing or self.key_column not in index:
                raise InstallError(
                    f"{self.what}: table {relation.qualified} lost column "
                    f"{', '.join(missing or [self.key_column])}: fix the table or the source config"
                )
            plan = _RowPlan([(f, *index[c]) for f, c in self._pairs], index[self.key_column][0])
            self._plans[relation.oid] = plan
        return plan

    # --- WAL held back ----------------------------------------------------------------------------

    def _check_wal(self) -> None:
        now = time.monotonic()
        if now < self._next_wal_check or self._conn is None:
            return
        self._next_wal_check = now + self.config.wal_check_interval_s
        state: SlotState | None = slot_state(self._conn, self.slot)
        if state is None:
            raise InstallError(
                f"{self.what}: replication slot {self.slot} was dropped in {self.address.display}; "
                "run: xhub connector install --config FILE (and a snapshot: changes in between are lost)"
            )
        self.wal.observe(state.current, state.confirmed_flush, state.wal_status, now)

    def health(self) -> dict[str, Any]:
        warnings = []
        if self.wal.bytes > self.config.wal_warn_bytes:
            warnings.append(f"slot {self.slot} holds back {self.wal.bytes} bytes of WAL")
        if self.wal.age_s > self.config.wal_warn_age_s:
            warnings.append(f"slot {self.slot} holds back WAL for {round(self.wal.age_s)} s")
        if self.wal.wal_status == "lost":
            warnings.append(f"slot {self.slot} lost WAL (max_slot_wal_keep_size): reinstall and snapshot")
        return {
            "slot": self.slot,
            "wal_held_bytes": self.wal.bytes,
            "wal_held_age_s": round(self.wal.age_s, 1),
            "wal_status": self.wal.wal_status,
            "warnings": warnings,
        }


class _RowPlan:
    """How to turn a row's column texts into the record's JSON, for one table description."""

    def __init__(self, fields: list[tuple[str, int, int]], key_index: int) -> None:
        self.fields = [(json.dumps(f, ensure_ascii=False), i, t) for f, i, t in fields]
        self.key_index = key_index

    def key(self, values: Sequence[ColumnValue] | None) -> str | None:
        if values is None or self.key_index < 0:
            return None
        value = values[self.key_index]
        return value if isinstance(value, str) else None

    def json(self, values: Sequence[ColumnValue]) -> bytes:
        parts = [f"{name}:{_json_value(values[i], type_oid)}" for name, i, type_oid in self.fields]
        return ("{" + ",".join(parts) + "}").encode("utf-8", "surrogateescape")


def _json_value(value: ColumnValue, type_oid: int) -> str:
    """The JSON of a column's text form, as json_build_object would write it."""
    if value is None or value is UNCHANGED_TOAST:
        return "null"
    assert isinstance(value, str)
    if type_oid in _INTS:
        return value
    if type_oid in _FLOATS:
        return value if value not in ("NaN", "Infinity", "-Infinity") else json.dumps(value)
    if type_oid == _BOOL:
        return "true" if value == "t" else "false"
    if type_oid in _JSON:
        return value
    if type_oid in _TIMESTAMPS:
        value = value.replace(" ", "T", 1)
        if type_oid == 1184 and re.search(r"[+-]\d\d$", value):
            value += ":00"
    return json.dumps(value, ensure_ascii=False)


def _type_oids(conn: Any, columns: list[str], table_oid: int) -> dict[str, int]:
    rows = conn.execute(
        "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s AND attname = ANY(%s)",
        (table_oid, columns),
    ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}
