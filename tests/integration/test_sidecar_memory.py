"""Memory stays flat: after warm-up, publishing many more batches retains nothing in our code."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path

from connectors.testing import SqlTriggerHarness
from connectors.testing.catalog import installed_sidecar
from connectors.testing.records import record
from connectors.testing.runtime import running_sidecar, shared_registry, wait_for
from hub.core.kafka_settings import KafkaSettings

OURS = ("*/connectors/*", "*/hub/*", "*/schemas/*")


def _write(db: Path, start: int, count: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO enrolee (id_number, name, gender, birth_date, score) VALUES (?, ?, ?, ?, ?)",
            [
                (r["id_number"], r["name"], r["gender"], r["birth_date"], r["score"])
                for r in (record(n) for n in range(start, start + count))
            ],
        )


def _ours(snapshot: tracemalloc.Snapshot) -> int:
    filtered = snapshot.filter_traces([tracemalloc.Filter(True, pattern) for pattern in OURS])
    return sum(stat.size for stat in filtered.statistics("filename"))


def test_memory_of_a_long_run_stays_flat(kafka: KafkaSettings, tmp_path: Path) -> None:
    harness = SqlTriggerHarness(tmp_path)
    harness.prepare()
    harness.close()
    registry = shared_registry()
    source = harness.source_config("src")
    source.update(snapshot=False, batch_size=50, poll_interval_ms=10)
    _, config = installed_sidecar(
        tmp_path, bootstrap=kafka.bootstrap_servers, registry_url=registry.url, source=source
    )
    db = tmp_path / "dept.db"
    tracemalloc.start(1)
    try:
        with running_sidecar(config) as sidecar:

            def published() -> float:
                value = sidecar.metrics.registry.get_sample_value(
                    "xhub_connector_published_total", {"resource": "PD-SOC-0001"}
                )
                return value or 0.0

            _write(db, 0, 2_000)
            assert wait_for(lambda: published() >= 2_000, timeout_s=60)
            warm = _ours(tracemalloc.take_snapshot())
            _write(db, 2_000, 8_000)  # 160 more transactions of 50
            assert wait_for(lambda: published() >= 10_000, timeout_s=60)
            after = _ours(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
    growth = after - warm
    print(f"retained by our code: {warm} bytes after warm-up, {after} at the end")
    assert growth < 256 * 1024, f"our code retained {growth} bytes over 8000 more changes"
