"""SIGKILL the sidecar again and again while a department table changes: every change exactly once.

The sidecar runs as a real process (``python -m connectors run``). Writers change the department table
(inserts, updates, deletes; on PostgreSQL from two threads whose transactions overlap and commit out of
id order, some rolled back). Meanwhile the sidecar is killed with SIGKILL five times and restarted. At
the end it is stopped with SIGTERM (exit 0), and the source topic, read with read_committed, must hold
exactly one event per committed change-log row (seq = its id, same op), and none of a rolled-back one.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connectors.testing import PostgresTriggerHarness, SqlTriggerHarness
from connectors.testing.catalog import installed_sidecar
from connectors.testing.kafka import TopicReader, events_of
from connectors.testing.records import RESOURCE, citizen_id, record
from connectors.testing.runtime import SidecarProcess, serde_for, shared_registry
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import source_topic

KILLS = 5
CHANGES_PER_WRITER = 2500
COLUMNS = "id_number, name, gender, birth_date, score"


class _Writer(threading.Thread):
    """Makes changes in small transactions: inserts, then updates and deletes of its own keys."""

    def __init__(self, connect: Any, placeholder: str, first: int, *, rollbacks: bool, seed: int) -> None:
        super().__init__(daemon=True)
        self.connect = connect
        self.ph = placeholder
        self.first = first
        self.rollbacks = rollbacks
        self.rng = random.Random(seed)
        self.done = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _run(self) -> None:
        conn = self.connect()
        ph = self.ph
        live: list[int] = []
        n = self.first
        while self.done < CHANGES_PER_WRITER:
            statements: list[tuple[str, tuple[Any, ...]]] = []
            live_before = list(live)
            for _ in range(self.rng.randint(1, 4)):
                choice = self.rng.random()
                if choice < 0.5 or len(live) < 5:
                    rec = record(n)
                    statements.append(
                        (
                            f"INSERT INTO enrolee ({COLUMNS}) VALUES ({ph}, {ph}, {ph}, {ph}, {ph})",
                            (rec["id_number"], rec["name"], rec["gender"], rec["birth_date"], rec["score"]),
                        )
                    )
                    live.append(n)
                    n += 1
                elif choice < 0.85:
                    k = self.rng.choice(live)
                    statements.append(
                        (f"UPDATE enrolee SET score = score + 1 WHERE id_number = {ph}", (citizen_id(k),))
                    )
                else:
                    k = live.pop(self.rng.randrange(len(live)))
                    statements.append((f"DELETE FROM enrolee WHERE id_number = {ph}", (citizen_id(k),)))
            rollback = self.rollbacks and self.rng.random() < 0.05
            for sql, params in statements:
                conn.execute(sql, params)
                if self.rollbacks:
                    time.sleep(self.rng.random() * 0.004)  # overlap with the other writer's transactions
            if rollback:
                conn.rollback()
                live = live_before
            else:
                conn.commit()
                self.done += len(statements)
            time.sleep(self.rng.random() * 0.014)  # spread the stream over the kills
        conn.close()


def _changelog(harness: SqlTriggerHarness, dsn: str | None) -> dict[int, str]:
    """Committed change-log rows: id -> op."""
    if dsn:
        import psycopg

        with psycopg.connect(dsn) as conn:
            rows = conn.execute("SELECT id, op FROM xhub_changelog WHERE tbl = 'enrolee'").fetchall()
    else:
        with sqlite3.connect(harness.workdir / "dept.db") as conn:
            rows = conn.execute("SELECT id, op FROM xhub_changelog WHERE tbl = 'enrolee'").fetchall()
    return {int(i): str(op).strip() for i, op in rows}


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_sigkill_during_a_stream_of_changes_loses_and_repeats_nothing(
    database: str, kafka: KafkaSettings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    dsn = str(request.getfixturevalue("pg_database")) if database == "postgres" else None
    harness: SqlTriggerHarness = (
        PostgresTriggerHarness(tmp_path, pg_dsn=dsn) if dsn else SqlTriggerHarness(tmp_path)
    )
    harness.prepare()
    harness.close()
    registry = shared_registry()
    source = harness.source_config("src")
    source.update(snapshot=False, batch_size=100, poll_interval_ms=20)
    dept, config = installed_sidecar(
        tmp_path, bootstrap=kafka.bootstrap_servers, registry_url=registry.url, source=source
    )

    if dsn:
        import psycopg

        def connect() -> Any:
            return psycopg.connect(dsn)

        writers = [
            _Writer(connect, "%s", 0, rollbacks=True, seed=1),
            _Writer(connect, "%s", 500_000, rollbacks=True, seed=2),
        ]
    else:

        def connect_sqlite() -> Any:
            return sqlite3.connect(tmp_path / "dept.db", timeout=30)

        writers = [_Writer(connect_sqlite, "?", 0, rollbacks=False, seed=3)]

    sidecar = SidecarProcess(config, tmp_path / "sidecar.log")
    rng = random.Random(7)
    published_at_kill: list[int] = []
    writing_at_kill: list[bool] = []
    sidecar.start()
    sidecar.wait_started()
    reader = TopicReader(kafka, [source_topic(dept, RESOURCE)], serde_for(registry.url))
    try:
        for writer in writers:
            writer.start()
        for _ in range(KILLS):
            # Each kill must hit a sidecar that is publishing again: on a loaded machine a restart can
            # take longer than any fixed window, so wait for new events first, then a random moment more.
            sidecar.wait_started()
            before = published_at_kill[-1] if published_at_kill else 0
            deadline = time.monotonic() + 60
            while len(reader.records) <= before and time.monotonic() < deadline:
                reader.poll()
            until = time.monotonic() + rng.uniform(0.5, 1.5)
            while time.monotonic() < until:
                reader.poll()
            published_at_kill.append(len(reader.records))
            writing_at_kill.append(any(w.is_alive() for w in writers))
            sidecar.kill()
            sidecar.start()
        for writer in writers:
            writer.join(60)
            assert writer.error is None, f"writer failed: {writer.error!r}"
            assert not writer.is_alive()
        committed = _changelog(harness, dsn)
        records = reader.read_until(lambda rs: len(rs) >= len(committed), timeout_s=40)
        sidecar.wait_started()
        assert sidecar.terminate() == 0, "SIGTERM must stop the sidecar cleanly"
        records = reader.read_quiet(quiet_s=1.0)
        reader.close()
    except BaseException:
        sidecar.kill()
        print((tmp_path / "sidecar.log").read_text(errors="replace")[-5000:])
        raise
    events = events_of(records, source_topic(dept, RESOURCE))
    seqs = Counter(e["seq"] for e in events)
    repeated = {s: c for s, c in seqs.items() if c > 1}
    assert not repeated, f"changes published more than once: {sorted(repeated)[:10]}"
    missing = sorted(set(committed) - set(seqs))
    assert not missing, f"{len(missing)} committed changes never published, e.g. {missing[:10]}"
    extra = sorted(set(seqs) - set(committed))
    assert not extra, f"published changes that never committed (rolled back?): {extra[:10]}"
    assert {e["seq"]: e["op"] for e in events} == committed
    assert sidecar.starts == KILLS + 1
    # The kills hit a live stream: the sidecar was publishing between them while writers were writing.
    assert sum(writing_at_kill) >= 3, f"writers alive at kills: {writing_at_kill}"
    assert all(b > a for a, b in itertools.pairwise(published_at_kill[:4])), published_at_kill
    assert sum(w.done for w in writers) >= CHANGES_PER_WRITER * len(writers)
