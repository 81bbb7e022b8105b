"""Snapshots: the rows of a department table as op=r events, read in key order, chunk by chunk.

A chunk is read in the same database transaction as the change-log read that precedes it, and only once
the log reader has caught up with that transaction's view of the database. So the chunk shows each row
exactly as the changes already published left it; nothing changed between "snapshot" and "streaming" can
be missed. The snapshot's progress (the last key read) is part of the source position, committed with
each chunk, so a crash mid-snapshot resumes after the last chunk that reached Kafka.

The seq of an r event is the id of the last logged change of that key visible to the reading
transaction (0 if the row was never changed since install). Any later change of the key takes a larger
id, because it must wait for the row lock held until the previous change committed; so sinks, which
never let an older seq overwrite a newer one, order r events correctly against c/u/d events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from connectors.sources.changelog import ChangeLogConnection, Reader
from connectors.sources.ddl import row_json_expr, text_expr


@dataclass(slots=True)
class SnapshotRow:
    """One row read by a snapshot chunk (``key`` is "" for a row without one)."""

    sort_key: Any
    key: str
    row_json: str
    seq: int


class TableSnapshot:
    """Reads one table in chunks, in key order, with the r-event seq of each row.

    Args:
        db: the department database.
        table: the captured table.
        key_column: its business-key column (unique; used for keyset paging).
        pairs: (field, column) of every mapped column.
        changelog: the change-log table (for the seq lookup).
    """

    def __init__(
        self,
        db: ChangeLogConnection,
        table: str,
        key_column: str,
        pairs: Sequence[tuple[str, str]],
        changelog: str,
    ) -> None:
        key = f"t.{db.quote(key_column)}"
        ph = db.ph
        log = db.quote(changelog)
        seq = f"(SELECT max(c.id) FROM {log} c WHERE c.tbl = {ph} AND c.pk = {text_expr(db, key)})"  # noqa: S608 - identifiers are checked and quoted
        row = row_json_expr(db, "t", pairs)
        select = f"SELECT {key}, {text_expr(db, key)}, {row}, {seq} FROM {db.quote(table)} t"  # noqa: S608 - identifiers are checked and quoted
        self._first_sql = f"{select} WHERE {key} IS NOT NULL ORDER BY {key} LIMIT {ph}"
        self._null_sql = f"{select} WHERE {key} IS NULL LIMIT {ph}"
        self._next_sql = f"{select} WHERE {key} > {ph} ORDER BY {key} LIMIT {ph}"
        self._table = table

    def chunk(self, reader: Reader, after: Any, limit: int) -> list[SnapshotRow]:
        """Rows with a key greater than ``after`` (all from the first when None), at most ``limit``."""
        if after is None:
            rows = reader.rows(self._first_sql, (self._table, limit))
        else:
            rows = reader.rows(self._next_sql, (self._table, after, limit))
        return [SnapshotRow(_jsonable(r[0]), str(r[1]), str(r[2]), int(r[3] or 0)) for r in rows]

    def keyless(self, reader: Reader, limit: int) -> list[SnapshotRow]:
        """Rows whose key is NULL: keyset paging cannot reach them, yet they must not vanish silently
        (they are published as r changes without a key, so they are dead-lettered as missing_key)."""
        rows = reader.rows(self._null_sql, (self._table, limit))
        return [SnapshotRow(None, "", str(r[2]), 0) for r in rows]


def _jsonable(value: Any) -> Any:
    """A key value that survives the JSON position record (other types compare as text in SQL)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
