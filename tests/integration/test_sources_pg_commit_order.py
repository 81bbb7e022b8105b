"""PostgreSQL transactions that commit out of id order: trigger capture must not lose the late one.

A BIGSERIAL id is taken at insert time. Transaction T1 inserts first (smaller id) but commits after T2
(larger id). A reader remembering "last id published" would skip T1's row for ever; ours reads by
snapshot windows and publishes it when it commits.
"""

from __future__ import annotations

import functools
import json
import uuid
from pathlib import Path

import psycopg

from connectors.cli import install
from connectors.db import parse_dsn
from connectors.sources import OutboxSource, OutboxSourceConfig, ResourceSpec
from connectors.sources.changelog import LogSpec, PostgresChangeLogConnection
from connectors.testing import PostgresTriggerHarness
from connectors.testing.catalog import write_catalog, write_connector_config
from connectors.testing.kafka import Consumed, TopicReader, events_of
from connectors.testing.records import KEY_FIELD, RESOURCE, SCHEMA, citizen_id, record
from connectors.testing.runtime import running_sidecar, serde_for, shared_registry
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import source_topic

COLUMNS = "id_number, name, gender, birth_date, score"


def _insert(conn: psycopg.Connection[tuple[object, ...]], n: int) -> None:
    rec = record(n)
    conn.execute(
        f"INSERT INTO enrolee ({COLUMNS}) VALUES (%s, %s, %s, %s, %s)",
        (rec["id_number"], rec["name"], rec["gender"], rec["birth_date"], rec["score"]),
    )


def _at_least(n: int, records: list[Consumed]) -> bool:
    return len(records) >= n


def _prepared(tmp_path: Path, dsn: str, dept: str, bootstrap: str) -> Path:
    harness = PostgresTriggerHarness(tmp_path, pg_dsn=dsn)
    harness.prepare()
    harness.close()
    registry = shared_registry()
    catalog = write_catalog(tmp_path / "config", dept, bootstrap=bootstrap, registry_url=registry.url)
    source = harness.source_config("src")
    source["snapshot"] = False
    config = write_connector_config(
        tmp_path / "connector.yaml",
        dept=dept,
        catalog=catalog,
        bootstrap=bootstrap,
        registry_url=registry.url,
        sources=[source],
    )
    assert install(config) == 0
    return config


def test_reader_publishes_a_row_whose_transaction_commits_after_a_later_id(
    pg_database: str, tmp_path: Path
) -> None:
    _prepared(tmp_path, pg_database, "torder", "unused:9092")  # no Kafka here: the reader alone
    db = PostgresChangeLogConnection(parse_dsn(pg_database), what="test")
    spec = LogSpec("xhub_changelog", "id, pk", "tbl = %s", ("enrolee",))
    t1 = psycopg.connect(pg_database)
    t2 = psycopg.connect(pg_database)
    try:
        with db.read() as r:
            pos = db.log_start()
            rows, pos, _ = db.log_read(r, spec, pos, 100)
            assert rows == []
        _insert(t1, 1)  # T1 takes id 1 and stays open
        _insert(t2, 2)  # T2 takes id 2 and commits first
        t2.commit()
        with db.read() as r:
            rows, pos, caught_up = db.log_read(r, spec, pos, 100)
        assert [row[1] for row in rows] == [citizen_id(2)]
        assert caught_up
        naive_last_id = max(row[0] for row in rows)
        t1.commit()
        with db.read() as r:
            rows, pos, _ = db.log_read(r, spec, pos, 100)
            naive = r.rows("SELECT id FROM xhub_changelog WHERE id > %s", (naive_last_id,))
        assert [row[1] for row in rows] == [citizen_id(1)], "the late committer must be read now"
        assert rows[0][0] < naive_last_id
        assert naive == [], "an id > last reader would never see it"
        with db.read() as r:
            rows, pos, _ = db.log_read(r, spec, pos, 100)
        assert rows == [], "and nothing is read twice"
    finally:
        t1.close()
        t2.close()
        db.close()


def test_sidecar_publishes_out_of_order_commits_exactly_once(
    pg_database: str, tmp_path: Path, kafka: KafkaSettings
) -> None:
    dept = f"t{uuid.uuid4().hex[:10]}"
    config = _prepared(tmp_path, pg_database, dept, kafka.bootstrap_servers)
    serde = serde_for(shared_registry().url)
    topic = source_topic(dept, RESOURCE)
    slow = psycopg.connect(pg_database)
    fast = psycopg.connect(pg_database, autocommit=True)
    try:
        with running_sidecar(config):
            reader = TopicReader(kafka, [topic], serde)
            # Ten rounds: a slow transaction takes an id, a fast one takes the next ids and commits,
            # the sidecar publishes those, then the slow one commits.
            for round_ in range(10):
                _insert(slow, 100 + round_)
                for k in range(3):
                    _insert(fast, 200 + round_ * 10 + k)
                published_before = 3 * (round_ + 1) + round_
                reader.read_until(functools.partial(_at_least, published_before))
                slow.commit()
            records = reader.read_until(lambda rs: len(rs) >= 40)
            records = reader.read_quiet(quiet_s=1.0)
            reader.close()
    finally:
        slow.close()
        fast.close()
    events = events_of(records, topic)
    keys = sorted(e["key"] for e in events)
    expected = sorted(
        [citizen_id(100 + r) for r in range(10)]
        + [citizen_id(200 + r * 10 + k) for r in range(10) for k in range(3)]
    )
    assert keys == expected, "every row once, the late committers included"
    assert all(e["op"] == "c" for e in events)
    # The late committers were published after rows with larger ids: commit order, not id order.
    late = next(e for e in events if e["key"] == citizen_id(100))
    assert any(e["seq"] > late["seq"] for e in events[: events.index(late)])


def test_outbox_rows_committed_out_of_id_order_are_all_read(pg_database: str, tmp_path: Path) -> None:
    spec = ResourceSpec(RESOURCE, SCHEMA, KEY_FIELD, "citizen_id", {})
    config = OutboxSourceConfig(name="ob", resources=[RESOURCE], database=pg_database)
    source = OutboxSource(config, resources={RESOURCE: spec}, base_dir=tmp_path)
    assert any("created table xhub_outbox" in line for line in source.install())
    t1 = psycopg.connect(pg_database)
    t2 = psycopg.connect(pg_database)
    sql = "INSERT INTO xhub_outbox (resource, op, key, payload_json) VALUES (%s, 'c', %s, %s)"
    source.open()
    try:
        t1.execute(sql, (RESOURCE, citizen_id(1), json.dumps(record(1))))
        t2.execute(sql, (RESOURCE, citizen_id(2), json.dumps(record(2))))
        t2.commit()
        first = source.poll(None, 100, start_snapshot=False)
        assert first.batch is not None
        assert [c.key for c in first.batch.changes] == [citizen_id(2)]
        t1.commit()
        second = source.poll(first.position, 100, start_snapshot=False)
        assert second.batch is not None
        assert [c.key for c in second.batch.changes] == [citizen_id(1)]
        assert second.batch.changes[0].seq < first.batch.changes[0].seq
        assert source.poll(second.position, 100, start_snapshot=False).batch is None
    finally:
        source.close()
        t1.close()
        t2.close()
