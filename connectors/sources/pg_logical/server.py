"""The department's PostgreSQL as the pg_logical source uses it: checks, publication, slots, WAL held back.

Two connections: psycopg 3 for ordinary SQL (install, snapshot reads, slot state), and psycopg2's
``LogicalReplicationConnection`` for the replication protocol (psycopg 3 has none yet), which streams
``pgoutput`` messages and takes the slot's confirmations.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from connectors.db import DatabaseAddress, quote_name
from connectors.errors import InstallError, MissingDependency
from connectors.sources.pg_logical.pgoutput import parse_lsn


def import_psycopg2_extras(what: str) -> Any:
    """psycopg2.extras (replication connections), an optional dependency like psycopg 3.

    Raises:
        MissingDependency: psycopg2 is not installed; the message names the extra.
    """
    try:
        import psycopg2.extras
    except ImportError as exc:
        raise MissingDependency(
            f"{what} needs the PostgreSQL replication protocol: pip install exchange-hub[postgres] ({exc})"
        ) from exc
    return psycopg2.extras


def replication_dsn(address: DatabaseAddress) -> str:
    """The source DSN for psycopg2 (it reads the same URL and keyword forms as psycopg 3)."""
    return address.target


@dataclass(frozen=True, slots=True)
class ServerSettings:
    wal_level: str
    max_replication_slots: int
    max_wal_senders: int
    can_replicate: bool
    user: str
    max_slot_wal_keep_size: str


def server_settings(conn: Any) -> ServerSettings:
    row = conn.execute(
        "SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int, "
        "current_setting('max_wal_senders')::int, "
        "(SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), current_user, "
        "current_setting('max_slot_wal_keep_size')"
    ).fetchone()
    return ServerSettings(str(row[0]), int(row[1]), int(row[2]), bool(row[3]), str(row[4]), str(row[5]))


def check_server(settings: ServerSettings, where: str) -> None:
    """Raise InstallError naming exactly what the DBA must change for logical decoding.

    Raises:
        InstallError: wal_level, slots, WAL senders or the replication privilege are missing.
    """
    problems: list[str] = []
    if settings.wal_level != "logical":
        problems.append(
            f"wal_level is {settings.wal_level}: run ALTER SYSTEM SET wal_level = logical; and restart "
            "PostgreSQL (or set wal_level = logical in postgresql.conf)"
        )
    if settings.max_replication_slots < 1:
        problems.append("max_replication_slots is 0: set it to at least 1 (restart needed)")
    if settings.max_wal_senders < 1:
        problems.append("max_wal_senders is 0: set it to at least 1 (restart needed)")
    if not settings.can_replicate:
        problems.append(
            f'role "{settings.user}" has no REPLICATION privilege: run ALTER ROLE "{settings.user}" '
            "REPLICATION; and allow it in pg_hba.conf (a line for database `replication` is not needed "
            "for logical decoding; the database's own line is)"
        )
    if problems:
        raise InstallError(
            f"{where} cannot be captured by logical decoding: "
            + "; ".join(problems)
            + ". Or use type: sql_trigger for this source."
        )


@dataclass(frozen=True, slots=True)
class SlotState:
    database: str | None
    plugin: str | None
    active_pid: int | None
    confirmed_flush: int | None
    current: int
    wal_status: str | None
    """reserved, extended, unreserved or lost (past max_slot_wal_keep_size)."""


def slot_state(conn: Any, slot: str) -> SlotState | None:
    """The slot's row of pg_replication_slots, with the server's current WAL position; None if absent."""
    row = conn.execute(
        "SELECT database, plugin, active_pid, confirmed_flush_lsn::text, pg_current_wal_lsn()::text, "
        "wal_status FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None:
        return None
    return SlotState(
        row[0],
        row[1],
        row[2],
        None if row[3] is None else parse_lsn(row[3]),
        parse_lsn(row[4]),
        row[5],
    )


def publication_tables(conn: Any, publication: str) -> list[str] | None:
    """schema.table of every table in the publication; None if it does not exist."""
    if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone() is None:
        return None
    rows = conn.execute(
        "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s", (publication,)
    ).fetchall()
    return [str(r[0]) for r in rows]


def qualified_table(conn: Any, table: str) -> tuple[int, str] | None:
    """(oid, schema.table) of ``table`` as the search path resolves it; None if it does not exist."""
    row = conn.execute(
        "SELECT c.oid, n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
        (quote_name(table),),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


@dataclass(frozen=True, slots=True)
class TableFacts:
    columns: dict[str, str]
    """column -> its SQL type (format_type)."""
    replica_identity: str
    """d (primary key), n (nothing), f (full), i (an index)."""
    identity_columns: list[str]
    toastable: list[str]
    """Columns whose values may be stored out of line (TOAST): variable-length types."""


def table_facts(conn: Any, oid: int) -> TableFacts:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typlen FROM pg_attribute a "
        "JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (oid,),
    ).fetchall()
    ident = conn.execute("SELECT relreplident FROM pg_class WHERE oid = %s", (oid,)).fetchone()[0]
    index_cols = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s AND "
        "(CASE %s WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END)",
        (oid, ident),
    ).fetchall()
    return TableFacts(
        {str(r[0]): str(r[1]) for r in rows},
        str(ident),
        [str(r[0]) for r in index_cols],
        [str(r[0]) for r in rows if int(r[2]) == -1],
    )


def drop_slot(conn: Any, slot: str, *, wait_s: float = 10.0) -> bool:
    """Drop the slot if it exists; waits for a just-killed sidecar's WAL sender to go away first.

    Raises:
        InstallError: the slot is still in use after ``wait_s`` (a sidecar runs: stop it first).
    """
    deadline = time.monotonic() + wait_s
    while True:
        state = slot_state(conn, slot)
        if state is None:
            return False
        if state.active_pid is None:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            return True
        if time.monotonic() > deadline:
            raise InstallError(
                f"replication slot {slot} is in use by process {state.active_pid}: stop the sidecar first"
            )
        time.sleep(0.2)


class WalHeldTracker:
    """How much WAL the slot holds back, and for how long the oldest of it has been waiting.

    The age is measured from our own samples of the server's WAL position: the oldest held byte was
    written before the first sample that lay past it, so the age is exact to one sampling interval.
    """

    def __init__(self, max_samples: int = 20_000) -> None:
        self._samples: deque[tuple[int, float]] = deque(maxlen=max_samples)
        self.bytes = 0
        self.age_s = 0.0
        self.wal_status: str | None = None

    def observe(self, current: int, confirmed: int | None, wal_status: str | None, now: float) -> None:
        self.wal_status = wal_status
        if confirmed is None:
            confirmed = current
        self.bytes = max(0, current - confirmed)
        samples = self._samples
        if not samples or samples[-1][0] < current:
            samples.append((current, now))
        # Drop samples whose WAL is confirmed, keeping the first one past the confirmed position.
        while len(samples) > 1 and samples[0][0] <= confirmed:
            samples.popleft()
        if self.bytes == 0 or not samples or samples[0][0] <= confirmed:
            self.age_s = 0.0
        else:
            self.age_s = max(0.0, now - samples[0][1])


def classify_keys(conn: Any, key_type: str, keys: Sequence[str], bounds: Sequence[str]) -> list[int]:
    """For each key (text), the index of the first bound it is <= to, in the column's own order
    (its type and collation), or len(bounds) when above all; the database compares, not Python."""
    if not keys:
        return []
    out = [len(bounds)] * len(keys)
    for index in range(len(bounds) - 1, -1, -1):
        row = conn.execute(
            f"SELECT array_agg(k::{key_type} <= %s::{key_type} ORDER BY n) "  # noqa: S608 - key_type comes from format_type
            "FROM unnest(%s::text[]) WITH ORDINALITY AS u(k, n)",
            (bounds[index], list(keys)),
        ).fetchone()
        for i, below in enumerate(row[0]):
            if below:
                out[i] = index
    return out
