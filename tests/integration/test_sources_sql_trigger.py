"""Trigger capture against real SQLite and PostgreSQL, without Kafka: install, triggers, polls, snapshots."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import InstallError
from connectors.sources import ResourceSpec, SqlTriggerSource, SqlTriggerSourceConfig
from connectors.testing import PostgresTriggerHarness, SqlTriggerHarness
from connectors.testing.records import KEY_FIELD, RESOURCE, SCHEMA, citizen_id, record

SPEC = ResourceSpec(RESOURCE, SCHEMA, KEY_FIELD, "citizen_id", {"employer_code": "credit_code"})


@pytest.fixture(params=["sqlite", "postgres"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlTriggerHarness]:
    if request.param == "postgres":
        h: SqlTriggerHarness = PostgresTriggerHarness(
            tmp_path, pg_dsn=str(request.getfixturevalue("pg_database"))
        )
    else:
        h = SqlTriggerHarness(tmp_path)
    h.prepare()
    yield h
    h.close()


def _source(h: SqlTriggerHarness, **overrides: Any) -> SqlTriggerSource:
    config = SqlTriggerSourceConfig.model_validate({**h.source_config("src"), **overrides})
    return SqlTriggerSource(config, resources={RESOURCE: SPEC}, base_dir=h.workdir)


def _poll_all(source: SqlTriggerSource, position: Any, limit: int = 100) -> tuple[list[Any], Any]:
    """Poll until the source has nothing more; return every change and the final position."""
    changes: list[Any] = []
    while True:
        polled = source.poll(position, limit, start_snapshot=False)
        if polled.batch is not None:
            changes.extend(polled.batch.changes)
        position = polled.position
        if not polled.more:
            return changes, position


def test_install_reports_what_it_created_and_is_idempotent(harness: SqlTriggerHarness) -> None:
    first = _source(harness).install()
    assert all(line.startswith("created ") for line in first), first
    kinds = " ".join(first)
    assert "table xhub_changelog" in kinds
    assert "trigger" in kinds
    second = _source(harness).install()
    assert all(line.startswith("unchanged ") for line in second), second
    assert len(second) == len(first)
    # A new mapping (the schema's note field now read from internal_flag) replaces the capture code.
    third = _source(harness, columns={"note": "internal_flag"}).install()
    assert any(line.startswith("replaced ") for line in third), third


def test_install_names_a_missing_column(harness: SqlTriggerHarness) -> None:
    with pytest.raises(InstallError, match=r'"nickname" \(field name\)'):
        _source(harness, columns={"name": "nickname"}).install()
    with pytest.raises(InstallError, match=r"enrolee_archive .* does not exist"):
        _source(harness, table="enrolee_archive").install()


def test_running_without_install_says_what_to_run(harness: SqlTriggerHarness) -> None:
    source = _source(harness)
    with pytest.raises(InstallError, match="xhub connector install"):
        source.open()
    source.close()


def test_triggers_log_inserts_updates_deletes_and_key_changes(harness: SqlTriggerHarness) -> None:
    source = _source(harness, snapshot=False)
    source.install()
    source.open()
    try:
        harness.insert(record(1))
        harness.update(record(1, score=7))
        harness.db.execute(
            "UPDATE enrolee SET id_number = ? WHERE id_number = ?", (citizen_id(2), citizen_id(1))
        )
        harness.delete(citizen_id(2))
        changes, _ = _poll_all(source, None)
    finally:
        source.close()
    assert [(c.op, c.key) for c in changes] == [
        ("c", citizen_id(1)),
        ("u", citizen_id(1)),
        ("d", citizen_id(1)),  # a key change is a delete of the old key ...
        ("c", citizen_id(2)),  # ... and an insert of the new one
        ("d", citizen_id(2)),
    ]
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs)
    update = json.loads(changes[1].data)
    assert update["score"] == 7
    assert "internal_flag" not in update, "columns outside the schema are not captured"
    assert set(update) == {f["name"] for f in SCHEMA["fields"]}
    assert changes[2].data is None


def test_first_start_snapshots_in_chunks_then_streams(harness: SqlTriggerHarness) -> None:
    source = _source(harness, snapshot=True)
    source.install()
    for n in range(25):
        harness.insert(record(n))
    harness.update(record(3, score=33))
    source.open()
    try:
        polled = source.poll(None, 10, start_snapshot=False)
        assert polled.batch is not None
        assert polled.more
        first = polled.batch.changes
        assert [c.op for c in first] == ["r"] * 10
        keys = [str(c.key) for c in first]
        assert keys == sorted(keys)
        # A change made during the snapshot is streamed before the next chunk, in the same batch.
        harness.update(record(24, score=2424))
        rest, position = _poll_all(source, polled.batch.position, limit=10)
    finally:
        source.close()
    r_events = first + [c for c in rest if c.op == "r"]
    assert sorted(c.key for c in r_events) == sorted(citizen_id(n) for n in range(25))
    three = next(c for c in r_events if c.key == citizen_id(3))
    assert json.loads(three.data)["score"] == 33
    assert three.seq > 0, "the r event of a changed row carries the seq of its last change"
    streamed = [c for c in rest if c.op == "u"]
    assert [c.key for c in streamed] == [citizen_id(24)]
    twenty_four = [c for c in rest if c.key == citizen_id(24)]
    assert [c.op for c in twenty_four] == ["u", "r"], "the chunk shows the row as the change left it"
    assert twenty_four[1].seq == twenty_four[0].seq
    assert position["snapshot"] is None


def test_snapshot_reports_rows_without_a_key(harness: SqlTriggerHarness) -> None:
    source = _source(harness, snapshot=True)
    source.install()
    harness.insert(record(1))
    harness.insert(record(2, id_number=None))
    source.open()
    try:
        changes, _ = _poll_all(source, None)
    finally:
        source.close()
    assert sorted((c.op, c.key or "") for c in changes) == [("r", ""), ("r", citizen_id(1))]


def test_prune_keeps_the_last_change_of_every_key(harness: SqlTriggerHarness) -> None:
    source = _source(harness, snapshot=False, changelog_retention_hours=0)
    source.install()
    source.prune_every_s = 0
    source.open()
    try:
        harness.insert(record(1))
        harness.update(record(1, score=2))
        harness.update(record(1, score=3))
        harness.insert(record(2))
        changes, position = _poll_all(source, None)
        source.after_commit(position)
    finally:
        source.close()
    assert len(changes) == 4
    if harness.pg_dsn:
        import psycopg

        with psycopg.connect(harness.pg_dsn) as conn:
            left = conn.execute("SELECT id, pk FROM xhub_changelog ORDER BY id").fetchall()
    else:
        with sqlite3.connect(harness.workdir / "dept.db") as conn:
            left = conn.execute("SELECT id, pk FROM xhub_changelog ORDER BY id").fetchall()
    assert [(i, pk) for i, pk in left] == [(changes[2].seq, citizen_id(1)), (changes[3].seq, citizen_id(2))]


def test_a_blob_in_a_captured_column_does_not_break_the_application(tmp_path: Path) -> None:
    h = SqlTriggerHarness(tmp_path)
    h.prepare()
    source = _source(h, snapshot=False)
    source.install()
    h.db.execute("INSERT INTO enrolee (id_number, name) VALUES (?, ?)", (citizen_id(1), b"\x00\xff"))
    source.open()
    try:
        changes, _ = _poll_all(source, None)
    finally:
        source.close()
        h.close()
    assert [c.op for c in changes] == ["c"]
