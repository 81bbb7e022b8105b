"""The hub's admin port on a running hub: /metrics, /api/status, /healthz, /readyz, the page's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.core import names
from hub.core.kafka_settings import KafkaSettings
from tests.integration.monitor_support import Exchange, running_exchange, wait_for

pytestmark = pytest.mark.kafka


@pytest.fixture
def exchange(kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with running_exchange(kafka, tmp_path, monkeypatch) as ex:
        yield ex


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/metrics parsed by prometheus_client: sample name -> sorted labels -> value."""
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def value(
    metrics: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str
) -> float | None:
    return metrics.get(name, {}).get(tuple(sorted(labels.items())))


def test_metrics_parse_and_carry_the_per_subscription_series(exchange: Exchange) -> None:
    ex = exchange
    hub, debtors, licences = ex.names.hub, ex.names.debtors, ex.names.licences
    subscriber = ex.subscriber(debtors)
    subscriber.start()
    try:
        ex.publish_debtors(3)
        # a record the hub cannot decode: dead-lettered, and counted against the court that sent it
        ex.publish_raw(names.source_topic(ex.names.court, "PD-CRD-0001"), b"not avro")

        def settled() -> dict[str, Any] | None:
            m = scrape(ex.admin_url)
            ok = (
                value(m, "xhub_records_delivered_total", hub=hub, subscription=debtors) == 3
                and value(
                    m, "xhub_subscription_lag_records", hub=hub, subscription=debtors, kind="subscriber"
                )
                == 0
                and value(m, "xhub_subscription_lag_records", hub=hub, subscription=debtors, kind="hub") == 0
                and value(
                    m, "xhub_dead_letters_total", hub=hub, department=ex.names.court, reason="bad_wire_format"
                )
                == 1
            )
            return m if ok else None

        m = wait_for("the metrics to show 3 deliveries, no lag and the dead letter", settled)
    finally:
        subscriber.stop()

    for sub in (debtors, licences):
        for kind in ("hub", "subscriber"):
            assert value(m, "xhub_subscription_lag_records", hub=hub, subscription=sub, kind=kind) == 0
            assert value(m, "xhub_subscription_lag_seconds", hub=hub, subscription=sub, kind=kind) == 0
            assert (
                value(m, "xhub_subscription_status", hub=hub, subscription=sub, kind=kind, status="OK") == 1
            )
            assert (
                value(m, "xhub_subscription_status", hub=hub, subscription=sub, kind=kind, status="STOP") == 0
            )
    for outcome in ("filtered", "refused"):
        assert value(m, f"xhub_records_{outcome}_total", hub=hub, subscription=debtors) == 0
    assert value(m, "xhub_subscription_consumers", hub=hub, subscription=debtors, kind="subscriber") == 1
    assert value(m, "xhub_records_consumed_total", hub=hub) == 4
    assert value(m, "xhub_records_undecodable_total", hub=hub) == 1
    assert value(m, "xhub_records_dead_lettered_total", hub=hub, subscription=debtors) == 1
    assert value(m, "xhub_worker_ready", hub=hub) == 1
    transactions = value(m, "xhub_transactions_total", hub=hub)
    assert transactions is not None
    assert transactions >= 1
    assert value(m, "xhub_transaction_duration_seconds_count", hub=hub) == transactions
    assert value(m, "xhub_transaction_duration_seconds_bucket", hub=hub, le="+Inf") == transactions
    assert value(m, "xhub_delivery_latency_seconds_count", hub=hub) == 3
    assert value(m, "xhub_monitor_refresh_errors_total", hub=hub) == 0
    assert value(m, "xhub_monitor_last_refresh_timestamp_seconds", hub=hub) is not None


def test_status_json_health_and_page_files(exchange: Exchange) -> None:
    ex = exchange
    url = ex.admin_url
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    ready = httpx.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text

    ex.publish_debtors(2)

    def measured() -> dict[str, Any] | None:
        doc: dict[str, Any] = httpx.get(f"{url}/api/status", timeout=10).json()
        rows = {r["subscription"]: r for r in doc["subscriptions"]}
        row = rows.get(ex.names.debtors)
        if row is None or row["delivered"] != 2 or not row["subscriber_lag"]:
            return None
        # nobody reads the deliveries: the subscriber lag is 2 records (and some seconds)
        return doc if row["subscriber_lag"]["lag_records"] == 2 else None

    doc = wait_for("/api/status to show 2 waiting deliveries", measured)
    assert doc["hub"] == ex.names.hub
    assert doc["ready"] is True
    assert doc["error"] is None
    rows = {r["subscription"]: r for r in doc["subscriptions"]}
    debtors = rows[ex.names.debtors]
    assert debtors["owner"] == ex.names.court
    assert debtors["subscriber"] == ex.names.tax
    assert debtors["subscriber_name"] == "税务局 (tax)"
    assert debtors["subscriber_lag"]["lag_seconds"] >= 0
    assert debtors["hub_lag"]["lag_records"] == 0
    idle = rows[ex.names.licences]
    assert idle["status"] == "OK"
    assert idle["subscriber_lag"]["lag_seconds"] == 0.0
    assert {d["department"] for d in doc["dead_letters"]} >= {ex.names.court, ex.names.amr}
    assert doc["totals"]["delivered"] == 2

    page = httpx.get(f"{url}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/status.js">' in page.text
    assert httpx.get(f"{url}/status.js", timeout=10).status_code == 200
    assert httpx.get(f"{url}/status.css", timeout=10).status_code == 200
    assert httpx.get(f"{url}/nothing-here", timeout=10).status_code == 404
