"""The pg_logical source on a real PostgreSQL (wal_level=logical) and a real broker: faults and edge cases.

- SIGKILL of the sidecar during a stream of overlapping transactions, and during the initial snapshot;
- a restart of PostgreSQL itself (a server of the test's own, from deploy/local/postgres.sh);
- key-changing updates, deletes, unchanged TOAST values, TRUNCATE, a transaction published whole;
- install: what it creates, what it says when the server or role cannot replicate; uninstall.

Ground truth is what the writers committed, per key and in order: the events of each key must replay it
exactly (nothing lost, nothing twice).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors.cli import install, uninstall
from connectors.errors import InstallError
from connectors.testing import PgLogicalHarness, assert_exactly_once
from connectors.testing.catalog import installed_sidecar
from connectors.testing.kafka import TopicReader, events_of
from connectors.testing.records import RESOURCE, citizen_id, record
from connectors.testing.runtime import (
    SidecarProcess,
    running_sidecar,
    serde_for,
    shared_registry,
    wait_for,
)
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import dead_letter_topic, source_topic

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = "id_number, name, gender, birth_date, score"


def _insert_sql() -> str:
    return f"INSERT INTO enrolee ({COLUMNS}) VALUES (%s, %s, %s, %s, %s)"


def _row(n: int) -> tuple[Any, ...]:
    rec = record(n)
    return (rec["id_number"], rec["name"], rec["gender"], rec["birth_date"], rec["score"])


class _Writer(threading.Thread):
    """Small transactions of inserts, updates (score + 1) and deletes on keys of its own; records the
    ops of every transaction that committed, per key."""

    def __init__(self, dsn: str, first: int, changes: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.first = first
        self.changes = changes
        self.rng = random.Random(seed)
        self.ops: dict[str, list[str]] = defaultdict(list)
        self.done = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        """Set when the kills are over: the writer then stops once it made ``changes`` changes."""

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _run(self) -> None:
        live: list[int] = []
        n = self.first
        with psycopg.connect(self.dsn) as conn:
            while self.done < self.changes or not self.stop.is_set():
                txn: list[tuple[str, str]] = []
                live_before = list(live)
                for _ in range(self.rng.randint(1, 4)):
                    choice = self.rng.random()
                    if choice < 0.5 or len(live) < 5:
                        conn.execute(_insert_sql(), _row(n))
                        txn.append((citizen_id(n), "c"))
                        live.append(n)
                        n += 1
                    elif choice < 0.85:
                        k = self.rng.choice(live)
                        conn.execute(
                            "UPDATE enrolee SET score = score + 1 WHERE id_number = %s", (citizen_id(k),)
                        )
                        txn.append((citizen_id(k), "u"))
                    else:
                        k = live.pop(self.rng.randrange(len(live)))
                        conn.execute("DELETE FROM enrolee WHERE id_number = %s", (citizen_id(k),))
                        txn.append((citizen_id(k), "d"))
                    time.sleep(self.rng.random() * 0.003)  # overlap with the other writer
                if self.rng.random() < 0.05:
                    conn.rollback()
                    live = live_before
                else:
                    conn.commit()
                    for key, op in txn:
                        self.ops[key].append(op)
                    self.done += len(txn)
                time.sleep(self.rng.random() * 0.01)


def _ops_by_key(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for e in events:
        out[e["key"]].append(e["op"])
    return out


def _source(harness: PgLogicalHarness, **overrides: Any) -> dict[str, Any]:
    source = harness.source_config("src")
    source.update(overrides)
    return source


@pytest.fixture
def harness(pg_logical_harness: PgLogicalHarness) -> PgLogicalHarness:
    return pg_logical_harness


@pytest.mark.slow
def test_sigkill_during_a_stream_loses_and_repeats_nothing(
    harness: PgLogicalHarness, kafka: KafkaSettings, tmp_path: Path
) -> None:
    registry = shared_registry()
    source = _source(harness, snapshot=False, batch_size=100, poll_interval_ms=20)
    dept, config = installed_sidecar(
        tmp_path, bootstrap=kafka.bootstrap_servers, registry_url=registry.url, source=source
    )
    dsn = str(harness.pg_dsn)
    writers = [_Writer(dsn, 0, 1200, seed=1), _Writer(dsn, 500_000, 1200, seed=2)]
    sidecar = SidecarProcess(config, tmp_path / "sidecar.log")
    rng = random.Random(5)
    kills_while_writing = 0
    sidecar.start()
    sidecar.wait_started(120)
    reader = TopicReader(kafka, [source_topic(dept, RESOURCE)], serde_for(registry.url))
    try:
        for w in writers:
            w.start()
        for _ in range(3):
            before = len(reader.records)
            deadline = time.monotonic() + 60
            while len(reader.records) <= before and time.monotonic() < deadline:
                reader.poll()
            until = time.monotonic() + rng.uniform(0.3, 1.2)
            while time.monotonic() < until:
                reader.poll()
            kills_while_writing += any(w.is_alive() for w in writers)
            sidecar.kill()
            sidecar.start()
            sidecar.wait_started(120)
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(120)
            assert w.error is None, f"writer failed: {w.error!r}"
        expected = {k: v for w in writers for k, v in w.ops.items()}
        total = sum(len(v) for v in expected.values())
        reader.read_until(lambda rs: len(rs) >= total, timeout_s=60)
        assert sidecar.terminate() == 0
        records = reader.read_quiet(quiet_s=1.0)
        reader.close()
    except BaseException:
        sidecar.kill()
        print((tmp_path / "sidecar.log").read_text(errors="replace")[-5000:])
        raise
    events = events_of(records, source_topic(dept, RESOURCE))
    assert_exactly_once(events)
    got = _ops_by_key(events)
    lost = [k for k in expected if got.get(k, []) != expected[k]]
    assert not lost, f"{len(lost)} keys differ, e.g. {lost[0]}: {got.get(lost[0])} != {expected[lost[0]]}"
    assert set(got) == set(expected), "events for keys no committed transaction changed"
    assert len(events) == total
    assert kills_while_writing == 3


@pytest.mark.slow
def test_sigkill_during_the_snapshot_loses_and_repeats_nothing(
    harness: PgLogicalHarness, kafka: KafkaSettings, tmp_path: Path
) -> None:
    dsn = str(harness.pg_dsn)
    rows = 3000
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(_insert_sql(), [_row(n) for n in range(rows)])
    registry = shared_registry()
    source = _source(harness, snapshot=True, batch_size=100, poll_interval_ms=20)
    dept, config = installed_sidecar(
        tmp_path, bootstrap=kafka.bootstrap_servers, registry_url=registry.url, source=source
    )
    updates: dict[str, int] = defaultdict(int)
    stop = threading.Event()

    def update_while_snapshotting() -> None:
        rng = random.Random(3)
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                n = rng.randrange(rows)
                conn.execute("UPDATE enrolee SET score = score + 1 WHERE id_number = %s", (citizen_id(n),))
                updates[citizen_id(n)] += 1
                time.sleep(0.002)

    updater = threading.Thread(target=update_while_snapshotting, daemon=True)
    sidecar = SidecarProcess(config, tmp_path / "sidecar.log")
    updater.start()
    sidecar.start()
    sidecar.wait_started(120)
    reader = TopicReader(kafka, [source_topic(dept, RESOURCE)], serde_for(registry.url))
    try:
        for kill_at in (600, 1500):
            _read_at_least(reader, kill_at, 60)
            sidecar.kill()  # mid-snapshot: rows after the last chunk in Kafka are read again later
            sidecar.start()
        reader.read_until(lambda rs: sum(1 for r in rs if r.value["op"] == "r") >= rows, timeout_s=90)
        time.sleep(0.5)
        stop.set()
        updater.join(10)
        with psycopg.connect(dsn) as conn:
            final: dict[str, int] = dict(conn.execute("SELECT id_number, score FROM enrolee").fetchall())
        total_updates = sum(updates.values())
        reader.read_until(lambda rs: len(rs) >= rows + 1, timeout_s=10)
        wait_for(lambda: _last_scores(reader) == final, timeout_s=60, interval_s=0.5)
        sidecar.wait_started(120)
        assert sidecar.terminate() == 0
        records = reader.read_quiet(quiet_s=1.0)
        reader.close()
    except BaseException:
        stop.set()
        sidecar.kill()
        print((tmp_path / "sidecar.log").read_text(errors="replace")[-5000:])
        raise
    events = events_of(records, source_topic(dept, RESOURCE))
    assert_exactly_once(events)
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_key[e["key"]].append(e)
    assert len(by_key) == rows
    for key, items in by_key.items():
        ops = [e["op"] for e in items]
        assert ops.count("r") == 1, f"{key}: {ops}"
        assert ops[0] == "r", f"{key}: a change before its snapshot row: {ops}"
        # Each update after the snapshot row arrives once, in order: scores r+1, r+2, ... final.
        scores = [e["data"]["score"] for e in items]
        assert scores == list(range(scores[0], scores[0] + len(scores))), f"{key}: {scores}"
        assert scores[-1] == final[key]
    published_updates = sum(len(v) - 1 for v in by_key.values())
    assert published_updates <= total_updates
    assert sidecar.starts == 3


def _read_at_least(reader: TopicReader, count: int, timeout_s: float) -> None:
    reader.read_until(lambda rs: len(rs) >= count, timeout_s=timeout_s)
    assert len(reader.records) >= count, f"only {len(reader.records)} of {count} records in {timeout_s} s"


def _last_scores(reader: TopicReader) -> dict[str, int]:
    reader.poll()
    out = {}
    for r in reader.records:
        out[r.value["key"]] = r.value["data"]["score"]
    return out


def test_key_change_delete_toast_truncate_and_whole_transactions(
    harness: PgLogicalHarness, kafka: KafkaSettings, tmp_path: Path
) -> None:
    dsn = str(harness.pg_dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Out of line and uncompressed: an update that does not touch it leaves it out of the WAL.
        conn.execute("ALTER TABLE enrolee ALTER COLUMN note SET STORAGE EXTERNAL")
    registry = shared_registry()
    source = _source(harness, snapshot=False, batch_size=10, max_record_bytes=65536)
    dept, config = installed_sidecar(
        tmp_path, bootstrap=kafka.bootstrap_servers, registry_url=registry.url, source=source
    )
    big_note = "长" * 3000  # 9 kB: TOASTed
    with running_sidecar(config), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_insert_sql(), _row(1))
        conn.execute("UPDATE enrolee SET note = %s WHERE id_number = %s", (big_note, citizen_id(1)))
        conn.execute("UPDATE enrolee SET score = 77 WHERE id_number = %s", (citizen_id(1),))
        conn.execute("UPDATE enrolee SET id_number = %s WHERE id_number = %s", (citizen_id(2), citizen_id(1)))
        conn.execute("DELETE FROM enrolee WHERE id_number = %s", (citizen_id(2),))
        with conn.transaction():  # 25 changes in one transaction, over a batch_size of 10
            for n in range(10, 35):
                conn.execute(_insert_sql(), _row(n))
        conn.execute("TRUNCATE enrolee")
        conn.execute(_insert_sql(), _row(40))
        reader = TopicReader(
            kafka, [source_topic(dept, RESOURCE), dead_letter_topic(dept)], serde_for(registry.url)
        )
        reader.read_until(lambda rs: len(rs) >= 6 + 25 + 1 + 1, timeout_s=30)
        records = reader.read_quiet(quiet_s=1.0)
        reader.close()
    # Keys spread over partitions: the commit order is the seq order (commit LSN, then index).
    events = sorted(events_of(records, source_topic(dept, RESOURCE)), key=lambda e: int(e["seq"]))
    dead = [r.value for r in records if r.topic == dead_letter_topic(dept)]
    ops = [(e["op"], e["key"][-4:]) for e in events]
    one, two = citizen_id(1)[-4:], citizen_id(2)[-4:]
    assert ops[:6] == [("c", one), ("u", one), ("u", one), ("d", one), ("c", two), ("d", two)], ops
    # The update that changed only the score still carries the unchanged TOASTed note.
    assert events[2]["data"]["score"] == 77
    assert events[2]["data"]["note"] == big_note
    assert events[4]["data"]["note"] == big_note
    batch = events[6:31]
    assert [e["key"] for e in batch] == [citizen_id(n) for n in range(10, 35)]
    assert len({e["seq"] >> 16 for e in batch}) == 1, "one commit LSN for the whole transaction"
    assert [d["reason"] for d in dead] == ["truncate"]
    assert "snapshot" in dead[0]["detail"]
    assert events[-1]["key"] == citizen_id(40)
    assert_exactly_once(events)


def test_install_creates_publication_slot_and_identity_and_uninstall_drops_them(
    harness: PgLogicalHarness, kafka: KafkaSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = shared_registry()
    _dept, config = installed_sidecar(
        tmp_path, bootstrap=kafka.bootstrap_servers, registry_url=registry.url, source=_source(harness)
    )
    out = capsys.readouterr().out
    assert "REPLICA IDENTITY FULL" in out
    assert f"created replication slot {harness.slot}" in out
    assert "created publication xhub_src" in out
    dsn = str(harness.pg_dsn)
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "SELECT plugin FROM pg_replication_slots WHERE slot_name = %s", (harness.slot,)
        ).fetchone() == ("pgoutput",)
        assert conn.execute("SELECT relreplident FROM pg_class WHERE relname = 'enrolee'").fetchone() == (
            "f",
        )
    assert install(config) == 0  # again: nothing new
    assert "kept replication slot" in capsys.readouterr().out
    assert uninstall(config) == 0
    out = capsys.readouterr().out
    assert f"dropped replication slot {harness.slot}" in out
    assert "dropped publication xhub_src" in out
    with psycopg.connect(dsn) as conn:
        assert (
            conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (harness.slot,)
            ).fetchone()
            is None
        )
        assert conn.execute("SELECT 1 FROM pg_publication WHERE pubname = 'xhub_src'").fetchone() is None


def test_install_names_the_missing_replication_privilege(
    harness: PgLogicalHarness, role_without_replication: str, kafka: KafkaSettings, tmp_path: Path
) -> None:
    role = role_without_replication
    source = _source(harness)
    source["database"] = str(harness.pg_dsn).replace("xhub@", f"{role}@")
    with pytest.raises(InstallError) as caught:
        installed_sidecar(
            tmp_path,
            bootstrap=kafka.bootstrap_servers,
            registry_url=shared_registry().url,
            source=source,
        )
    message = str(caught.value)
    assert f'ALTER ROLE "{role}" REPLICATION' in message


def test_healthz_and_metrics_report_the_wal_held_back(
    harness: PgLogicalHarness, kafka: KafkaSettings, tmp_path: Path
) -> None:
    import json
    import urllib.request

    source = _source(harness, snapshot=False, wal_check_interval_s=2.0, wal_warn_bytes=4_000_000)
    _dept, config = installed_sidecar(
        tmp_path, bootstrap=kafka.bootstrap_servers, registry_url=shared_registry().url, source=source
    )
    with psycopg.connect(str(harness.pg_dsn), autocommit=True) as conn:
        # WAL the slot must keep while the sidecar is down: it is held back until it runs again.
        conn.execute("CREATE TABLE other_work (x text)")
        conn.execute("INSERT INTO other_work SELECT repeat('x', 500) FROM generate_series(1, 20000)")
    with running_sidecar(config) as sidecar:
        assert sidecar.health is not None
        url = sidecar.health.url

        def status() -> dict[str, Any]:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as r:
                return dict(json.loads(r.read())["sources"]["src"])

        def metrics() -> str:
            with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
                return str(r.read().decode())

        assert wait_for(lambda: status().get("wal_status") is not None, timeout_s=20)
        first = status()
        assert first["slot"] == harness.slot
        assert "wal_held_bytes" in first
        assert "wal_held_age_s" in first
        assert first["wal_held_bytes"] > 8_000_000, first  # the 10 MB written while it was down
        assert any("holds back" in w for w in first["warnings"]), first
        assert 'xhub_connector_slot_wal_held_bytes{source="src"}' in metrics()
        # Running, the sidecar lets the slot move past WAL it has read (nothing of ours in it).
        assert wait_for(lambda: status()["wal_held_bytes"] < 1_000_000, timeout_s=30), status()
        assert not status()["warnings"]


# --- PostgreSQL restart, on a server of the test's own ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _own_postgres(tmp_path: Path, options: str = "") -> Iterator[tuple[str, dict[str, str]]]:
    home = Path(f"/tmp/xhub-pg-{os.getpid()}-{tmp_path.name[-12:]}")  # short: socket paths are limited
    env = dict(os.environ, XHUB_PG_PORT=str(_free_port()), XHUB_PG_HOME=str(home), XHUB_PG_OPTIONS=options)
    script = str(ROOT / "deploy" / "local" / "postgres.sh")
    subprocess.run(["bash", script, "up"], env=env, check=True, capture_output=True, timeout=120)
    dsn = subprocess.run(
        ["bash", script, "dsn"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        yield dsn, env
    finally:
        subprocess.run(["bash", script, "down"], env=env, capture_output=True, timeout=120, check=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A PostgreSQL server of this test only (it restarts it), from deploy/local/postgres.sh."""
    with _own_postgres(tmp_path) as server:
        yield server


def test_install_on_a_server_without_logical_wal_says_what_to_set(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    with _own_postgres(tmp_path, "-c wal_level=replica") as (dsn, _env):
        h = PgLogicalHarness(tmp_path, pg_dsn=dsn)
        h.prepare()
        h.db.close()
        with pytest.raises(InstallError) as caught:
            installed_sidecar(
                tmp_path,
                bootstrap=kafka.bootstrap_servers,
                registry_url=shared_registry().url,
                source=_source(h),
            )
    message = str(caught.value)
    assert "wal_level is replica" in message
    assert "ALTER SYSTEM SET wal_level = logical" in message
    assert "restart" in message


@pytest.mark.slow
def test_postgres_restart_during_a_stream_loses_and_repeats_nothing(
    own_postgres: tuple[str, dict[str, str]], kafka: KafkaSettings, tmp_path: Path
) -> None:
    dsn, env = own_postgres
    h = PgLogicalHarness(tmp_path, pg_dsn=dsn)
    h.prepare()
    registry = shared_registry()
    source = _source(h, snapshot=False, batch_size=50, poll_interval_ms=20)
    dept, config = installed_sidecar(
        tmp_path, bootstrap=kafka.bootstrap_servers, registry_url=registry.url, source=source
    )
    h.db.close()
    committed: list[str] = []
    stop = threading.Event()

    def insert_forever() -> None:
        n = 0
        while not stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
                    while not stop.is_set():
                        conn.execute(_insert_sql(), _row(n))
                        committed.append(citizen_id(n))
                        n += 1
                        time.sleep(0.003)
            except psycopg.Error:
                n += 1  # the insert in flight may or may not have committed: the table tells
                time.sleep(0.2)

    script = str(ROOT / "deploy" / "local" / "postgres.sh")
    writer = threading.Thread(target=insert_forever, daemon=True)
    sidecar = SidecarProcess(config, tmp_path / "sidecar.log")
    sidecar.start()
    sidecar.wait_started(120)
    reader = TopicReader(kafka, [source_topic(dept, RESOURCE)], serde_for(registry.url))
    try:
        writer.start()
        for _ in range(2):
            _read_at_least(reader, len(reader.records) + 100, 60)
            subprocess.run(["bash", script, "down"], env=env, check=True, capture_output=True, timeout=60)
            time.sleep(1.0)
            subprocess.run(["bash", script, "up"], env=env, check=True, capture_output=True, timeout=60)
        _read_at_least(reader, len(reader.records) + 100, 90)
        stop.set()
        writer.join(10)
        with psycopg.connect(dsn) as conn:
            in_table = {str(r[0]) for r in conn.execute("SELECT id_number FROM enrolee").fetchall()}
        reader.read_until(lambda rs: len(rs) >= len(in_table), timeout_s=90)
        assert sidecar.terminate() == 0
        records = reader.read_quiet(quiet_s=1.0)
        reader.close()
    except BaseException:
        stop.set()
        sidecar.kill()
        print((tmp_path / "sidecar.log").read_text(errors="replace")[-5000:])
        raise
    finally:
        uninstall(config)
    events = events_of(records, source_topic(dept, RESOURCE))
    assert_exactly_once(events)
    keys = [e["key"] for e in events]
    assert len(keys) == len(set(keys)), "an insert published twice"
    assert set(keys) == in_table
    assert set(committed) <= in_table
    assert '"source_retry"' in (tmp_path / "sidecar.log").read_text(), "the restarts were not noticed"
