"""``xhub lag`` shows the whole path: a sidecar's unpublished change-log rows (real sidecar, real SQLite and
PostgreSQL, real broker), a running backfill with its total and ETA (real hub), the state store's restore.

The sidecar's backlog reaches ``xhub lag`` the way it reaches an operator anywhere: in the sidecar's report
on ``xhub.backlog.<dept>`` (``connectors.runtime.backlog``), read through Kafka.
"""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from connectors.cli import install
from connectors.config import LoadedConnector, load_connector_config
from connectors.runtime.sidecar import Sidecar
from connectors.testing import SqlTriggerHarness
from connectors.testing.catalog import write_catalog, write_connector_config
from connectors.testing.records import record
from connectors.testing.runtime import shared_registry, wait_capturing
from hub.core.kafka_settings import KafkaSettings
from hub.monitor.cli import Sampling, lag_command
from hub.monitor.status import Rules
from tests.integration.monitor_support import (
    Exchange,
    add_late_subscription,
    admin_server,
    running_exchange,
    wait_for,
)

pytestmark = pytest.mark.kafka


@pytest.fixture(params=["sqlite", "postgres"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlTriggerHarness]:
    pg = request.getfixturevalue("pg_database") if request.param == "postgres" else None
    h = SqlTriggerHarness(tmp_path, pg_dsn=pg)
    h.prepare()
    try:
        yield h
    finally:
        h.close()


@contextmanager
def sidecar_running(loaded: LoadedConnector) -> Iterator[Sidecar]:
    """A sidecar in a thread, reporting its backlog every 0.3 s."""
    sidecar = Sidecar(loaded, install_signals=False, backlog_every_s=0.3)
    thread = threading.Thread(target=sidecar.run, name="sidecar", daemon=True)
    thread.start()
    assert sidecar.ready.wait(30), "the sidecar did not start"
    try:
        wait_capturing(sidecar)
        yield sidecar
    finally:
        sidecar.stop()
        thread.join(60)
        assert not thread.is_alive(), "the sidecar did not stop"


def lag_json(config_dir: Path) -> dict[str, Any]:
    out = io.StringIO()
    lag_command(str(config_dir), "testhub", Rules(), json_out=True, sampling=Sampling(samples=1), out=out)
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def source_row(doc: dict[str, Any], dept: str) -> dict[str, Any] | None:
    rows = [s for s in doc["path"]["sources"] if s["department"] == dept and s["source"] == "src"]
    return rows[0] if rows else None


def _get(url: str) -> str:
    """The body, whatever the status (/healthz answers 503 while a source is stopped)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode("utf-8"))


def _metric(text: str, name: str, source: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and f'source="{source}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} of {source} not in /metrics")


def test_unpublished_change_log_rows_show_in_lag_with_their_age_until_published(
    tmp_path: Path, kafka: KafkaSettings, harness: SqlTriggerHarness
) -> None:
    registry = shared_registry()
    dept, subscriber = f"t{uuid.uuid4().hex[:10]}", f"s{uuid.uuid4().hex[:10]}"
    root = write_catalog(
        tmp_path / "config",
        dept,
        bootstrap=kafka.bootstrap_servers,
        registry_url=registry.url,
        subscriber=subscriber,
    )
    config = write_connector_config(
        tmp_path / "connector.yaml",
        dept=dept,
        catalog=root,
        bootstrap=kafka.bootstrap_servers,
        registry_url=registry.url,
        sources=[harness.source_config("src")],
    )
    assert install(config) == 0
    loaded = load_connector_config(config)
    subscription = f"{subscriber}-enrolees"

    with sidecar_running(loaded) as first:
        for n in range(3):
            harness.insert(record(n))
        wait_for(
            "the three rows published",
            lambda: (
                first.backlog
                and first.backlog.latest.get("src")
                and first.backlog.latest["src"].rows == 0
                and _published(first) == 3
            ),
        )
        drained = wait_for("lag to read a report of 0 rows", lambda: _rows_is(root, dept, 0))
        assert drained["status"] == "OK"
        assert drained["kind"] == "sql_trigger"
        assert drained["resources"] == ["PD-SOC-0001"]

        # The publisher stops (the source's runner ends); the sidecar and its reports go on.
        runner = first.runners[0]
        runner.stop()
        assert runner.join(30)
        for n in range(3, 7):
            harness.insert(record(n))
        waiting = wait_for(
            "lag to show 4 unpublished rows at least 1 s old",
            lambda: (row := _rows_is(root, dept, 4)) is not None and row["oldest_seconds"] >= 1.0 and row,
        )
        assert waiting["stale"] is False
        assert waiting["state"] == "stopped"
        assert "4 rows not published" in waiting["reason"]

        assert first.health is not None
        health = json.loads(_get(f"{first.health.url}/healthz"))
        assert health["sources"]["src"]["backlog"]["rows"] == 4
        metrics = _get(f"{first.health.url}/metrics")
        assert _metric(metrics, "xhub_connector_source_backlog_rows", "src") == 4
        assert _metric(metrics, "xhub_connector_source_backlog_oldest_seconds", "src") >= 1.0

        doc = lag_json(root)
        item = next(s for s in doc["subscriptions"] if s["subscription"] == subscription)
        assert item["source_backlog"]["rows"] == 4
        assert item["source_backlog"]["oldest_seconds"] >= 1.0
        assert item["drained"] is False
        assert doc["path"]["drained"] is False
        assert any(r.startswith("sources not yet published") for r in doc["path"]["not_drained"])

        text = io.StringIO()
        lag_command(str(root), "testhub", Rules(), sampling=Sampling(samples=1), out=text)
        line = next(x for x in text.getvalue().splitlines() if x.startswith(dept))
        assert " src " in line
        assert " 4 " in line
        assert "rows not published" in line

    # A new sidecar publishes what the stopped one left; its report says 0 again.
    with sidecar_running(loaded) as second:
        wait_for("the seven rows published", lambda: _published(second) >= 4)
        row = wait_for("lag to read 0 rows again", lambda: _rows_is(root, dept, 0))
        assert row["oldest_seconds"] == 0.0
        assert row["state"] == "running"


def _published(sidecar: Sidecar) -> int:
    total = 0
    for metric in sidecar.metrics.published.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                total += int(sample.value)
    return total


def _rows_is(root: Path, dept: str, rows: int) -> dict[str, Any] | None:
    row = source_row(lag_json(root), dept)
    return row if row is not None and row["rows"] == rows else None


@pytest.fixture
def exchange(kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Exchange]:
    with running_exchange(kafka, tmp_path, monkeypatch) as ex:
        yield ex


def status(ex: Exchange) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_get(f"{ex.admin_url}/api/status"))
    return doc


def item_of(doc: dict[str, Any], subscription: str) -> dict[str, Any] | None:
    return next((s for s in doc["subscriptions"] if s["subscription"] == subscription), None)


def test_a_running_backfill_shows_records_done_of_total_and_an_eta(exchange: Exchange) -> None:
    ex = exchange
    admin = admin_server(ex)
    admin.interval, admin.max_share = 0.3, 1.0  # samples often enough to see a short backfill run
    for _ in range(3):
        ex.publish_debtors(2000)
    stats = ex.process.worker.stats
    wait_for("the hub to read the 6,000 events", lambda: stats.consumed >= 6000, timeout=120)
    late = add_late_subscription(ex)

    def running() -> dict[str, Any] | None:
        item = item_of(status(ex), late)
        b = item["backfill"] if item else None
        ok = b and b["state"] != "done" and b["records_total"] and b["eta_seconds"] is not None
        return b if ok else None

    seen = wait_for(
        "the status page to show the backfill running with an ETA", running, timeout=120, every=0.3
    )
    # done == total while still running is real: the last chunk is read, its commit not yet made
    assert 0 <= seen["records_done"] <= seen["records_total"]
    assert seen["records_total"] >= 6000  # every source record below the handover offset is examined
    assert seen["per_second"] > 0

    text = io.StringIO()
    lag_command(
        str(ex.config_dir), ex.names.hub, Rules(), sampling=Sampling(samples=1), out=text, admin=ex.admin_url
    )
    lines = text.getvalue().splitlines()
    header = next(i for i, x in enumerate(lines) if x.startswith("BACKFILL"))
    row = next(x for x in lines[header:] if x.startswith(late))
    assert "ETA" in lines[header]
    assert row.split()[1] in {"scanning", "delivering", "catching_up", "waiting", "done"}

    done = wait_for(
        "the backfill to finish",
        lambda: (b := (item_of(status(ex), late) or {}).get("backfill")) and b["state"] == "done" and b,
        timeout=180,
    )
    assert done["records_done"] == done["records_total"]
    assert done["eta_seconds"] == 0.0
    metrics = _get(f"{ex.admin_url}/metrics")
    assert f'xhub_backfill_running{{hub="{ex.names.hub}",subscription="{late}"}} 0.0' in metrics
    labels = f'hub="{ex.names.hub}",subscription="{late}"'
    assert f"xhub_backfill_records_done{{{labels}}} {float(done['records_done'])}" in metrics


def test_restore_progress_set_on_the_workers_stats_shows_on_the_status_document_lag_and_metrics(
    exchange: Exchange,
) -> None:
    # The state store (another branch) sets these under the lock; here the test does, on the real worker.
    ex = exchange
    stats = ex.process.worker.stats
    with stats.lock:
        stats.restore_partitions_total = 6
        stats.restore_partitions_done = 2
        stats.restore_records_total = 90_000
        stats.restore_records_done = 30_000
    first = wait_for(
        "the restore on /api/status", lambda: status(ex)["path"]["restore"]["running"] and status(ex)
    )
    with stats.lock:
        stats.restore_records_done = 45_000
        stats.restore_partitions_done = 3

    def with_eta() -> dict[str, Any] | None:
        r: dict[str, Any] = status(ex)["path"]["restore"]
        return r if r["records_done"] == 45_000 and r["eta_seconds"] is not None else None

    restore = wait_for("the restore's rate and ETA", with_eta)
    assert first["path"]["drained"] is False
    assert any(r.startswith("state store restoring") for r in first["path"]["not_drained"])
    assert restore["partitions_total"] == 6
    assert restore["partitions_done"] == 3
    assert restore["records_total"] == 90_000
    assert restore["eta_seconds"] > 0

    metrics = _get(f"{ex.admin_url}/metrics")
    hub = ex.names.hub
    assert f'xhub_state_restore_running{{hub="{hub}"}} 1.0' in metrics
    assert f'xhub_state_restore_partitions_restored{{hub="{hub}"}} 3.0' in metrics
    assert f'xhub_state_restore_records_expected{{hub="{hub}"}} 90000.0' in metrics

    text = io.StringIO()
    lag_command(str(ex.config_dir), hub, Rules(), sampling=Sampling(samples=1), out=text, admin=ex.admin_url)
    assert f"RESTORE  {hub}: restoring 3/6 partitions, 45,000 / 90,000 records, ETA" in text.getvalue()

    with stats.lock:
        stats.restore_partitions_done = 6
        stats.restore_records_done = 90_000
    wait_for("the restore done", lambda: not status(ex)["path"]["restore"]["running"])
    text = io.StringIO()
    lag_command(
        str(ex.config_dir), hub, Rules(), sampling=Sampling(samples=1), out=text
    )  # admin from hubs.yaml: 0
    assert f"RESTORE  {hub}: unknown" in text.getvalue()
