"""``type: postgres`` on a real PostgreSQL and a real broker: logical decoding when the server allows it,
triggers when it does not, and the choice kept once installed (the two keep different positions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors.sources import PostgresSourceConfig, choose_capture
from connectors.testing import PgLogicalHarness
from connectors.testing.catalog import installed_sidecar
from connectors.testing.kafka import TopicReader, events_of
from connectors.testing.records import RESOURCE, citizen_id, record
from connectors.testing.runtime import running_sidecar, serde_for, shared_registry
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import source_topic


@pytest.fixture
def harness(pg_logical_harness: PgLogicalHarness) -> PgLogicalHarness:
    return pg_logical_harness


def _auto_source(harness: PgLogicalHarness, **overrides: Any) -> dict[str, Any]:
    return {**harness.source_config("src"), "type": "postgres", "snapshot": False, **overrides}


def _insert_rows(conn: psycopg.Connection[Any], n: int) -> None:
    for i in range(n):
        rec = record(i)
        conn.execute(
            "INSERT INTO enrolee (id_number, name, gender, birth_date, score) VALUES (%s, %s, %s, %s, %s)",
            (rec["id_number"], rec["name"], rec["gender"], rec["birth_date"], rec["score"]),
        )


def _published_keys(kafka: KafkaSettings, dept: str, registry_url: str, n: int) -> list[str]:
    reader = TopicReader(kafka, [source_topic(dept, RESOURCE)], serde_for(registry_url))
    try:
        reader.read_until(lambda rs: len(rs) >= n, timeout_s=30)
        records = reader.read_quiet(quiet_s=1.0)
    finally:
        reader.close()
    return sorted(e["key"] for e in events_of(records, source_topic(dept, RESOURCE)))


def test_auto_takes_logical_decoding_when_the_server_allows_it_and_keeps_it(
    harness: PgLogicalHarness, kafka: KafkaSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = shared_registry()
    source = _auto_source(harness)
    dept, config = installed_sidecar(
        tmp_path, bootstrap=kafka.bootstrap_servers, registry_url=registry.url, source=source
    )
    out = capsys.readouterr().out
    assert 'source "src": capture pg_logical (the server allows logical decoding)' in out
    assert f"created replication slot {harness.slot}" in out
    choice = choose_capture(PostgresSourceConfig(**source))
    assert choice.config.type == "pg_logical"
    assert choice.reason == f"replication slot {harness.slot} is installed"

    dsn = str(harness.pg_dsn)
    with running_sidecar(config) as sidecar, psycopg.connect(dsn, autocommit=True) as conn:
        _insert_rows(conn, 3)
        assert _published_keys(kafka, dept, registry.url, 3) == sorted(citizen_id(n) for n in range(3))
        assert sidecar.status()["sources"]["src"]["kind"] == "pg_logical"
        no_trigger = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'enrolee'::regclass AND NOT tgisinternal"
        ).fetchone()
        assert no_trigger == (0,), "logical decoding writes nothing into the department's transactions"


def test_auto_takes_triggers_for_a_role_without_replication_and_keeps_them(
    harness: PgLogicalHarness,
    role_without_replication: str,
    kafka: KafkaSettings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn = str(harness.pg_dsn)
    role = role_without_replication
    registry = shared_registry()
    source = _auto_source(harness, database=dsn.replace("xhub@", f"{role}@"))
    dept, config = installed_sidecar(
        tmp_path, bootstrap=kafka.bootstrap_servers, registry_url=registry.url, source=source
    )
    out = capsys.readouterr().out
    assert 'source "src": capture sql_trigger (logical decoding not allowed:' in out
    assert f'ALTER ROLE "{role}" REPLICATION' in out, out
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'ALTER ROLE "{role}" REPLICATION')  # allowed now: the installed triggers stay
    choice = choose_capture(PostgresSourceConfig(**source))
    assert choice.config.type == "sql_trigger"
    assert choice.reason == "capture trigger xhub_capture is installed"

    with running_sidecar(config) as sidecar, psycopg.connect(dsn, autocommit=True) as conn:
        _insert_rows(conn, 3)
        assert _published_keys(kafka, dept, registry.url, 3) == sorted(citizen_id(n) for n in range(3))
        assert sidecar.status()["sources"]["src"]["kind"] == "sql_trigger"
        slots = conn.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (harness.slot,)
        ).fetchone()
        assert slots == (0,)
