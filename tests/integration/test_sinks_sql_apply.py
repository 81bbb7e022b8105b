"""SqlSink against real SQLite and real PostgreSQL, without Kafka: what a batch does to the tables."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.sinks import Delivery, ListDeadLetters, OffsetConflict, SqlSink, SqlSinkConfig
from connectors.sinks.base import PartitionProgress
from tests.integration.sinks_support import LICENCE, LICENCE_V2, fetch, licence

TOPIC = "xhub.dlv.hub1.lic"


def run(dsn: str, sql: str) -> None:
    if dsn.startswith("sqlite:///"):
        with closing(sqlite3.connect(dsn[len("sqlite:///") :])) as conn:
            conn.execute(sql)
            conn.commit()
        return
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute(sql)


def delivery(
    key: str,
    op: str,
    seq: int,
    offset: int,
    *,
    data: dict[str, Any] | None = None,
    schema: dict[str, Any] = LICENCE,
    partition: int = 0,
    subscription: str = "lic",
) -> Delivery:
    if data is None and op != "d":
        data = licence(key, seq)
    return Delivery(
        topic=f"xhub.dlv.hub1.{subscription}",
        partition=partition,
        offset=offset,
        key=key,
        op=op,
        seq=seq,
        event_id=f"ev-{key}-{seq}",
        policy_version="pv-1",
        subscription=subscription,
        data=data,
        source_commit_ts_ms=1_700_000_000_000 + seq,
        resource="PD-LIC-0001",
        value=f"raw-{key}-{seq}".encode(),
        schema_id=1,
        data_schema=schema,
    )


def numbered(items: list[tuple[str, str, int]], start: int) -> list[Delivery]:
    return [delivery(k, op, seq, start + i) for i, (k, op, seq) in enumerate(items)]


@pytest.fixture
def sink(dsn: str) -> Iterator[tuple[SqlSink, ListDeadLetters]]:
    sink = SqlSink(SqlSinkConfig(dsn=SecretStr(dsn), table="lic", applied_log_table="applied"))
    dead = ListDeadLetters()
    sink.bind_dead_letters(dead)
    yield sink, dead
    sink.close()


def state(dsn: str) -> dict[str, tuple[Any, ...]]:
    rows = fetch(dsn, 'SELECT xhub_key, _xhub_seq, holder, _xhub_op FROM "lic" ORDER BY xhub_key')
    return {r[0]: tuple(r[1:]) for r in rows}


def test_newest_seq_wins_across_batches_and_deletes_stay_deleted(
    dsn: str, sink: tuple[SqlSink, ListDeadLetters]
) -> None:
    s, dead = sink
    first = numbered(
        [("L1", "c", 1), ("L2", "c", 2), ("L3", "c", 4), ("L4", "u", 5), ("L5", "d", 10), ("L6", "r", 6)], 0
    )
    s.write(first)
    second = numbered([("L1", "u", 3), ("L3", "d", 5), ("L4", "u", 3), ("L5", "c", 8), ("L2", "u", 9)], 6)
    s.write(second)

    assert state(dsn) == {
        "L1": (3, "持证人3", "u"),
        "L2": (9, "持证人9", "u"),
        "L4": (5, "持证人5", "u"),  # seq 3 arrived later and lost
        "L6": (6, "持证人6", "r"),
    }  # L3 deleted at seq 5; L5's seq-8 insert is older than its seq-10 delete: not resurrected
    tombs = dict(fetch(dsn, "SELECT key, seq FROM xhub_tombstones WHERE table_name = 'lic'"))
    assert tombs == {"L3": 5, "L5": 10}
    assert s.committed_offsets([(TOPIC, 0), (TOPIC, 1)]) == {(TOPIC, 0): 11}
    assert fetch(dsn, "SELECT COUNT(*) FROM applied") == [(11,)]
    assert dead.items == []

    # A newer insert after a delete brings the row back and drops the tombstone.
    s.write(numbered([("L3", "c", 12)], 11))
    assert state(dsn)["L3"] == (12, "持证人12", "c")
    assert dict(fetch(dsn, "SELECT key, seq FROM xhub_tombstones")) == {"L5": 10}


def test_one_batch_keeps_the_newest_change_per_key(dsn: str, sink: tuple[SqlSink, ListDeadLetters]) -> None:
    s, _ = sink
    s.write(
        numbered(
            [("K", "c", 1), ("K", "u", 2), ("K", "d", 3), ("K", "c", 4), ("J", "c", 1), ("J", "d", 2)], 0
        )
    )
    assert state(dsn) == {"K": (4, "持证人4", "c")}
    s.write(numbered([("J", "u", 1)], 6))  # a replayed, older change of a deleted key
    assert "J" not in state(dsn)


def test_a_batch_already_applied_is_refused_whole(dsn: str, sink: tuple[SqlSink, ListDeadLetters]) -> None:
    s, _ = sink
    batch = numbered([("A", "c", 1), ("B", "c", 2), ("C", "c", 3)], 0)
    s.write(batch)
    with pytest.raises(OffsetConflict) as caught:
        s.write([delivery("A", "u", 7, 2)])  # starts below the stored offset 3
    assert caught.value.stored == 3
    assert caught.value.first == 2
    assert state(dsn)["A"] == (1, "持证人1", "c")
    assert fetch(dsn, "SELECT COUNT(*) FROM applied") == [(3,)]
    # Offsets are per partition: another partition starts fresh.
    s.write([delivery("A", "u", 7, 0, partition=1)])
    assert s.committed_offsets([(TOPIC, 0), (TOPIC, 1)]) == {(TOPIC, 0): 3, (TOPIC, 1): 1}


def test_progress_covers_records_the_sink_never_saw(dsn: str, sink: tuple[SqlSink, ListDeadLetters]) -> None:
    s, _ = sink
    s.write([delivery("A", "c", 1, 0)], [PartitionProgress(TOPIC, 0, 0, 5)])  # 1..4 dead-lettered upstream
    s.write([], [PartitionProgress(TOPIC, 2, 10, 13)])
    assert s.committed_offsets([(TOPIC, 0), (TOPIC, 2)]) == {(TOPIC, 0): 5, (TOPIC, 2): 13}


def test_a_refused_row_is_dead_lettered_and_the_rest_applied(
    dsn: str, sink: tuple[SqlSink, ListDeadLetters]
) -> None:
    run(
        dsn,
        'CREATE TABLE "lic" (xhub_key TEXT PRIMARY KEY, licence_no TEXT, '
        "holder TEXT CONSTRAINT holder_ok CHECK (holder <> 'REFUSE'), "
        "_xhub_seq BIGINT NOT NULL, _xhub_op TEXT)",
    )
    s, dead = sink
    bad = delivery("B", "c", 2, 1, data={**licence("B", 2), "holder": "REFUSE"})
    s.write([delivery("A", "c", 1, 0), bad, delivery("C", "c", 3, 2)])
    assert set(state(dsn)) == {"A", "C"}
    assert [(d.delivery.key, d.reason) for d in dead.items] == [("B", "sink_rejected")]
    assert "REFUSE" not in dead.items[0].detail  # never the value
    assert "lic" in dead.items[0].detail
    assert s.committed_offsets([(TOPIC, 0)]) == {(TOPIC, 0): 3}
    # The table was widened with the fields and bookkeeping columns it lacked.
    assert fetch(dsn, "SELECT issued, status FROM lic WHERE xhub_key = 'A'")[0][1] == "OPEN"


def test_column_types_and_schema_evolution(dsn: str, sink: tuple[SqlSink, ListDeadLetters]) -> None:
    s, _ = sink
    s.write([delivery("A", "c", 3, 0)])
    s.write([delivery("B", "c", 4, 1, schema=LICENCE_V2, data=licence("B", 4, note="新字段"))])
    rows = fetch(
        dsn,
        "SELECT xhub_key, issued, capital, active, status, note, _xhub_source_commit_ms FROM lic ORDER BY 1",
    )
    a, b = rows
    issued = a[1] if isinstance(a[1], dt.date) else dt.date.fromisoformat(a[1])
    assert issued == dt.date(2020, 1, 4)
    assert a[2] == 4.5
    assert bool(a[3]) is False
    assert a[4] == "CLOSED"
    assert a[5] is None  # the row written before the column existed
    assert a[6] == 1_700_000_000_003
    assert b[5] == "新字段"


def test_key_column_may_be_a_data_field(dsn: str) -> None:
    sink = SqlSink(SqlSinkConfig(dsn=SecretStr(dsn), table="lic2", key_column="licence_no"))
    try:
        sink.write([delivery("A", "c", 1, 0), delivery("A", "u", 2, 1)])
    finally:
        sink.close()
    assert fetch(dsn, "SELECT licence_no, _xhub_seq FROM lic2") == [("A", 2)]


def test_upsert_without_data_is_dead_lettered(dsn: str, sink: tuple[SqlSink, ListDeadLetters]) -> None:
    s, dead = sink
    broken = delivery("A", "u", 1, 0)
    broken.data = None
    s.write([broken, delivery("B", "c", 1, 1)])
    assert [d.reason for d in dead.items] == ["no_data"]
    assert set(state(dsn)) == {"B"}


def test_tables_per_subscription(dsn: str) -> None:
    sink = SqlSink(SqlSinkConfig(dsn=SecretStr(dsn), tables={"tax-view": "tax_licences"}))
    try:
        sink.write(
            [
                delivery("A", "c", 1, 0, subscription="tax-view"),
                delivery("B", "c", 1, 0, subscription="housing-view"),
            ]
        )
    finally:
        sink.close()
    assert fetch(dsn, "SELECT xhub_key FROM tax_licences") == [("A",)]
    assert fetch(dsn, "SELECT xhub_key FROM xhub_housing_view") == [("B",)]


NESTED = {
    "type": "record",
    "name": "Case",
    "namespace": "gov.xhub.test",
    "fields": [
        {"name": "case_no", "type": "string"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {
            "name": "court",
            "type": [
                "null",
                {"type": "record", "name": "Court", "fields": [{"name": "name", "type": "string"}]},
            ],
        },
        {"name": "filed", "type": {"type": "array", "items": {"type": "int", "logicalType": "date"}}},
        {"name": "fee", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    ],
}


def test_complex_fields_are_stored_as_json(dsn: str) -> None:
    import decimal
    import json

    sink = SqlSink(SqlSinkConfig(dsn=SecretStr(dsn), table="cases"))
    data = {
        "case_no": "(2024)沪0115执1号",
        "tags": ["失信", "限高"],
        "court": {"name": "浦东法院"},
        "filed": [dt.date(2024, 1, 2)],
        "fee": decimal.Decimal("12.50"),
    }
    try:
        sink.write([delivery("C1", "c", 1, 0, data=data, schema=NESTED)])
    finally:
        sink.close()
    ((tags, court, filed, fee),) = fetch(dsn, "SELECT tags, court, filed, fee FROM cases")
    as_json = [v if isinstance(v, list | dict) else json.loads(v) for v in (tags, court, filed)]
    assert as_json == [["失信", "限高"], {"name": "浦东法院"}, ["2024-01-02"]]
    assert decimal.Decimal(str(fee)) == decimal.Decimal("12.50")
