"""Pure parts of the pg_logical source: the pgoutput decoder, JSON of column texts, WAL-held age, checks."""

from __future__ import annotations

import struct

import pytest

from connectors.errors import InstallError
from connectors.sources.pg_logical.pgoutput import (
    UNCHANGED_TOAST,
    Begin,
    Change,
    Commit,
    PgOutputError,
    Relation,
    Truncate,
    decode,
    format_lsn,
    parse_lsn,
)
from connectors.sources.pg_logical.server import ServerSettings, WalHeldTracker, check_server
from connectors.sources.pg_logical.source import _json_value, _RowPlan


def _tuple(*values: bytes | object | None) -> bytes:
    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is UNCHANGED_TOAST:
            out += b"u"
        else:
            assert isinstance(v, bytes)
            out += b"t" + struct.pack("!i", len(v)) + v
    return out


def test_begin_commit_and_timestamps() -> None:
    begin = decode(b"B" + struct.pack("!qqI", 0x1_0000_0010, 0, 77))
    assert begin == Begin(0x1_0000_0010, 946_684_800_000, 77)
    commit = decode(b"C" + struct.pack("!bqqq", 0, 100, 148, 1_000_000))
    assert commit == Commit(100, 148, 946_684_801_000)


def test_relation_and_row_changes() -> None:
    rel = decode(
        b"R"
        + struct.pack("!I", 16384)
        + b"public\0enrolee\0f"
        + struct.pack("!h", 2)
        + b"\x01id_number\0"
        + struct.pack("!Ii", 25, -1)
        + b"\x00score\0"
        + struct.pack("!Ii", 23, -1)
    )
    assert isinstance(rel, Relation)
    assert rel.qualified == "public.enrolee"
    assert [c.name for c in rel.columns] == ["id_number", "score"]
    assert rel.columns[0].is_key
    insert = decode(b"I" + struct.pack("!I", 16384) + b"N" + _tuple("键".encode(), b"5"))
    assert insert == Change(16384, "insert", ("键", "5"))
    update = decode(
        b"U" + struct.pack("!I", 16384) + b"O" + _tuple(b"a", b"1") + b"N" + _tuple(b"b", UNCHANGED_TOAST)
    )
    assert update == Change(16384, "update", ("b", UNCHANGED_TOAST), ("a", "1"), True)
    keyed = decode(b"U" + struct.pack("!I", 1) + b"N" + _tuple(b"b", None))
    assert keyed == Change(1, "update", ("b", None), None, False)
    delete = decode(b"D" + struct.pack("!I", 1) + b"K" + _tuple(b"a", None))
    assert delete == Change(1, "delete", None, ("a", None), False)
    truncate = decode(b"T" + struct.pack("!ibII", 2, 3, 10, 11))
    assert truncate == Truncate((10, 11), cascade=True, restart_identity=True)


def test_bad_messages_are_named() -> None:
    with pytest.raises(PgOutputError, match="unknown pgoutput message 'Z'"):
        decode(b"Z123")
    with pytest.raises(PgOutputError, match="malformed pgoutput message 'I'"):
        decode(b"I\0\0")
    with pytest.raises(PgOutputError, match="empty"):
        decode(b"")


def test_lsn_text_round_trip() -> None:
    assert format_lsn(0x16B3748) == "0/16B3748"
    assert parse_lsn("1/0") == 1 << 32
    assert parse_lsn(format_lsn(0xABCDEF0123)) == 0xABCDEF0123
    with pytest.raises(ValueError, match="not an LSN"):
        parse_lsn("12")


@pytest.mark.parametrize(
    ("text", "type_oid", "json_text"),
    [
        ("42", 23, "42"),
        ("1.5", 1700, "1.5"),
        ("NaN", 701, '"NaN"'),
        ("t", 16, "true"),
        ('{"a": 1}', 3802, '{"a": 1}'),
        ("2024-01-02 03:04:05", 1114, '"2024-01-02T03:04:05"'),
        ("2024-01-02 03:04:05.5+00", 1184, '"2024-01-02T03:04:05.5+00:00"'),
        ("1985-06-01", 1082, '"1985-06-01"'),
        ('he said "键"', 25, '"he said \\"键\\""'),
        (None, 25, "null"),
    ],
)
def test_column_texts_become_the_json_json_build_object_writes(
    text: str | None, type_oid: int, json_text: str
) -> None:
    assert _json_value(text, type_oid) == json_text


def test_row_plan_maps_fields_and_key() -> None:
    plan = _RowPlan([("id_number", 0, 25), ("score", 2, 23)], 0)
    assert plan.json(("K1", "ignored", "7")) == b'{"id_number":"K1","score":7}'
    assert plan.key(("K1", None, None)) == "K1"
    assert plan.key(None) is None


def test_wal_held_age_counts_from_the_first_sample_past_the_confirmed_position() -> None:
    wal = WalHeldTracker()
    wal.observe(current=1000, confirmed=1000, wal_status="reserved", now=0.0)
    assert (wal.bytes, wal.age_s) == (0, 0.0)
    wal.observe(current=5000, confirmed=1000, wal_status="reserved", now=10.0)
    wal.observe(current=9000, confirmed=1000, wal_status="reserved", now=20.0)
    assert wal.bytes == 8000
    assert wal.age_s == 10.0  # the WAL after 1000 existed by t=10
    wal.observe(current=9000, confirmed=6000, wal_status="extended", now=30.0)
    assert wal.bytes == 3000
    assert wal.age_s == 10.0  # the oldest held byte (6000) was written by t=20
    wal.observe(current=9000, confirmed=9000, wal_status="reserved", now=40.0)
    assert (wal.bytes, wal.age_s) == (0, 0.0)


def test_check_server_says_exactly_what_to_change() -> None:
    ok = ServerSettings("logical", 10, 10, True, "dept", "10GB")
    check_server(ok, "db")
    bad = ServerSettings("replica", 0, 10, False, "dept", "-1")
    with pytest.raises(InstallError) as caught:
        check_server(bad, "postgresql://h/db")
    message = str(caught.value)
    assert "ALTER SYSTEM SET wal_level = logical" in message
    assert "max_replication_slots is 0" in message
    assert 'ALTER ROLE "dept" REPLICATION' in message
    assert "type: sql_trigger" in message
