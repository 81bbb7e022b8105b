"""``xhub report`` on the real broker: share ratio, subscriptions, deliveries, freshness, bad records."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from hub.core import names as topic_names
from hub.core.envelope import now_ms
from hub.core.kafka_settings import KafkaSettings
from hub.monitor.cli import report_command
from tests.integration.monitor_support import Exchange, running_exchange, wait_for

pytestmark = pytest.mark.kafka


@pytest.fixture
def exchange(kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with running_exchange(kafka, tmp_path, monkeypatch) as ex:
        yield ex


def test_report_per_department(exchange: Exchange) -> None:
    ex = exchange
    names = ex.names
    # Changes committed at the court 5 s before they are published: at least 5 s from commit to delivery.
    ex.publish_debtors(3, commit_ts_ms=now_ms() - 5000)
    # Bad data from the court: one record the hub cannot decode, one row its own sidecar refused.
    ex.publish_raw(topic_names.source_topic(names.court, "PD-CRD-0001"), b"\x01garbage")
    ex.publish_raw(
        topic_names.dead_letter_topic(names.court),
        b"dead letter body",
        [
            ("xhub.reason", b"bad_check_digit"),
            ("xhub.field", b"debtor_id"),
            ("xhub.origin", b"enforcement:cl-17"),
        ],
    )
    # A delivery the tax bureau's sink could not apply: its own problem, not the court's.
    ex.publish_raw(
        topic_names.dead_letter_topic(names.tax),
        b"dead letter body",
        [
            ("xhub.reason", b"sink_rejected"),
            ("xhub.origin", f"{topic_names.delivery_topic(names.hub, names.debtors)}-1@0".encode()),
        ],
    )

    def hub_done() -> bool:
        stats = ex.process.worker.stats
        with stats.lock:
            return (
                stats.subscriptions[names.debtors].delivered == 3
                and stats.undecodable == 1
                and stats.transactions > 1
            )

    wait_for("the hub to deliver and dead-letter", hub_done)

    def report() -> dict[str, Any] | None:
        out = io.StringIO()
        assert report_command(str(ex.config_dir), True, out=out) == 0
        doc: dict[str, Any] = json.loads(out.getvalue())
        court = next(d for d in doc["departments"] if d["department"] == names.court)
        # the audit entries are committed with the deliveries; the hub dead letter in the same transaction
        return doc if court["records_delivered"] == 3 and court["bad_records_sent"] == 2 else None

    doc = wait_for("the report to count the deliveries and bad records", report)
    depts = {d["department"]: d for d in doc["departments"]}
    assert set(depts) >= {names.court, names.amr, names.tax, names.transport}

    court = depts[names.court]
    assert court["resources"] == {"unconditional": 1, "conditional": 0, "not_shared": 0}
    assert court["share_ratio"] == 1.0
    assert court["subscriptions_served"] == 1
    assert court["subscriptions_held"] == 0
    assert court["freshness"]["samples"] == 3
    assert court["freshness"]["p50_seconds"] >= 5.0
    assert court["freshness"]["p99_seconds"] >= court["freshness"]["p50_seconds"]
    assert court["bad_records_by_reason"] == {"bad_check_digit": 1, "bad_wire_format": 1}
    assert court["records_not_applied"] == 0

    amr = depts[names.amr]
    assert amr["subscriptions_served"] == 1
    assert amr["records_delivered"] == 0
    assert amr["freshness"] == {"p50_seconds": None, "p99_seconds": None, "samples": 0}
    assert amr["bad_records_sent"] == 0

    tax = depts[names.tax]
    assert tax["resources_total"] == 0
    assert tax["share_ratio"] is None
    assert tax["subscriptions_held"] == 1
    assert tax["bad_records_sent"] == 0
    assert tax["records_not_applied"] == 1
    assert doc["audit_entries_read"] >= 3
    assert doc["undecodable_audit_entries"] == 0

    text = io.StringIO()
    assert report_command(str(ex.config_dir), False, out=text) == 0
    lines = text.getvalue().splitlines()
    assert lines[0].split()[:2] == ["DEPARTMENT", "RES"]
    court_line = next(ln for ln in lines if ln.startswith(names.court))
    assert "100%" in court_line
    assert f"  {names.court}: bad_check_digit 1, bad_wire_format 1" in lines
