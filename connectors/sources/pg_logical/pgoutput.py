"""A decoder of PostgreSQL's built-in ``pgoutput`` logical-decoding messages (protocol version 1).

The message formats are those of "Logical Replication Message Formats" in the PostgreSQL manual; version 1
(PostgreSQL 10+) is what every supported server speaks and what we ask for. Columns arrive in text
form (the type's output function), exactly what ``psql`` would print. Pure: no database, no I/O.

Why our own: the format is small and stable, and the two decoders on PyPI are an unmaintained 0.0.x
(pypgoutput, 2022) and a fresh 0.1 with a Rust extension (pgoutput-decoder); neither is worth a dependency
for about a hundred lines of struct unpacking.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Literal

PG_EPOCH_US = 946_684_800_000_000
"""2000-01-01 in microseconds since the Unix epoch: pgoutput timestamps count from there."""

UNCHANGED_TOAST = object()
"""A column value the server did not send: a TOASTed value the update did not change."""

ColumnValue = str | None | object
"""Text of a column, None for NULL, or ``UNCHANGED_TOAST``."""


class PgOutputError(ValueError):
    """A message that is not pgoutput protocol version 1."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    is_key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    """'R': the description of a table, sent before its first change in a session (and after DDL)."""

    oid: int
    namespace: str
    name: str
    replica_identity: str
    """d default (primary key), n nothing, f full, i index."""
    columns: tuple[Column, ...]

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.name}"


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    """The LSN of the transaction's commit record."""
    commit_ts_ms: int
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    """The end of the commit record: a restart from here starts after this transaction."""
    commit_ts_ms: int


@dataclass(frozen=True, slots=True)
class Change:
    """'I', 'U' or 'D' of one row.

    Attributes:
        relation_oid: the table.
        op: insert, update or delete.
        new: the row after the change (None on delete).
        old: the old key columns ('K', identity index or primary key) or the whole old row ('O',
            REPLICA IDENTITY FULL); None on insert, and on an update that kept the identity key.
        old_is_full: True when ``old`` is the whole old row.
    """

    relation_oid: int
    op: Literal["insert", "update", "delete"]
    new: tuple[ColumnValue, ...] | None
    old: tuple[ColumnValue, ...] | None = None
    old_is_full: bool = False


@dataclass(frozen=True, slots=True)
class Truncate:
    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True, slots=True)
class Other:
    """Origin, Type and logical messages: nothing a source publishes."""

    kind: str


Message = Begin | Commit | Relation | Change | Truncate | Other


@dataclass(slots=True)
class _Reader:
    data: bytes
    pos: int = 0
    _struct_cache: dict[str, struct.Struct] = field(default_factory=dict)

    def unpack(self, fmt: str) -> tuple[int, ...]:
        s = self._struct_cache.get(fmt)
        if s is None:
            s = self._struct_cache[fmt] = struct.Struct("!" + fmt)
        values = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return values

    def byte(self) -> str:
        value = chr(self.data[self.pos])
        self.pos += 1
        return value

    def string(self) -> str:
        end = self.data.index(b"\0", self.pos)
        value = self.data[self.pos : end].decode("utf-8", "surrogateescape")
        self.pos = end + 1
        return value

    def tuple_data(self) -> tuple[ColumnValue, ...]:
        (count,) = self.unpack("h")
        values: list[ColumnValue] = []
        data = self.data
        for _ in range(count):
            kind = chr(data[self.pos])
            self.pos += 1
            if kind in {"t", "b"}:
                (length,) = struct.unpack_from("!i", data, self.pos)
                self.pos += 4
                # surrogateescape: a value that is not UTF-8 still reaches the validator, which
                # dead-letters it with its bytes, instead of stopping the stream here.
                values.append(data[self.pos : self.pos + length].decode("utf-8", "surrogateescape"))
                self.pos += length
            elif kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED_TOAST)
            else:
                raise PgOutputError(f"unknown tuple column kind {kind!r} at byte {self.pos - 1}")
        return tuple(values)


def _ms(pg_us: int) -> int:
    return (pg_us + PG_EPOCH_US) // 1000


def _begin(r: _Reader) -> Message:
    final_lsn, ts, xid = r.unpack("qqI")
    return Begin(final_lsn, _ms(ts), xid)


def _commit(r: _Reader) -> Message:
    r.unpack("b")
    commit_lsn, end_lsn, ts = r.unpack("qqq")
    return Commit(commit_lsn, end_lsn, _ms(ts))


def _insert(r: _Reader) -> Message:
    (oid,) = r.unpack("I")
    if r.byte() != "N":
        raise PgOutputError("insert without a new tuple")
    return Change(oid, "insert", r.tuple_data())


def _update(r: _Reader) -> Message:
    (oid,) = r.unpack("I")
    marker = r.byte()
    old = None
    full = False
    if marker in ("K", "O"):
        old = r.tuple_data()
        full = marker == "O"
        marker = r.byte()
    if marker != "N":
        raise PgOutputError(f"update without a new tuple (marker {marker!r})")
    return Change(oid, "update", r.tuple_data(), old, full)


def _delete(r: _Reader) -> Message:
    (oid,) = r.unpack("I")
    marker = r.byte()
    if marker not in ("K", "O"):
        raise PgOutputError(f"delete without an old tuple (marker {marker!r})")
    return Change(oid, "delete", None, r.tuple_data(), marker == "O")


def _relation(r: _Reader) -> Message:
    (oid,) = r.unpack("I")
    namespace = r.string()
    name = r.string()
    identity = r.byte()
    (count,) = r.unpack("h")
    columns = []
    for _ in range(count):
        (flags,) = r.unpack("b")
        col_name = r.string()
        type_oid, _typmod = r.unpack("Ii")
        columns.append(Column(col_name, type_oid, bool(flags & 1)))
    return Relation(oid, namespace, name, identity, tuple(columns))


def _truncate(r: _Reader) -> Message:
    count, options = r.unpack("ib")
    oids = r.unpack("I" * count) if count else ()
    return Truncate(tuple(oids), bool(options & 1), bool(options & 2))


_DECODERS = {
    "B": _begin,
    "C": _commit,
    "I": _insert,
    "U": _update,
    "D": _delete,
    "R": _relation,
    "T": _truncate,
}


def decode(payload: bytes) -> Message:
    """One pgoutput message.

    Raises:
        PgOutputError: the payload is not a protocol-1 message (e.g. the slot uses another plugin).
    """
    if not payload:
        raise PgOutputError("empty pgoutput message")
    kind = chr(payload[0])
    if kind in ("O", "Y", "M"):
        return Other(kind)
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise PgOutputError(f"unknown pgoutput message {kind!r} (only protocol version 1 is read)")
    try:
        return decoder(_Reader(payload, 1))
    except (struct.error, IndexError, ValueError) as exc:
        if isinstance(exc, PgOutputError):
            raise
        raise PgOutputError(f"truncated or malformed pgoutput message {kind!r}: {exc}") from exc


def format_lsn(lsn: int) -> str:
    """``0/16B3748``, as PostgreSQL prints an LSN."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """The integer of an LSN printed as ``0/16B3748``.

    Raises:
        ValueError: ``text`` is not an LSN.
    """
    high, sep, low = text.partition("/")
    if not sep:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(high, 16) << 32) | int(low, 16)
