"""`xhub apply` dates share requests in the snapshot it publishes, keeps the date, and `xhub requests`
reads it back from the cluster (real broker)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.cli import main
from hub.config import load_config
from hub.config.snapshot import read_snapshot_record
from hub.core import names
from hub.core.kafka import make_consumer, read_last_value
from hub.core.kafka_settings import KafkaSettings
from hub.governance.applied import applied_request_dates
from hub.provision.session import provision_session
from tests.unit.test_request_stamps import undated


def _applied(kafka: KafkaSettings, hub: str) -> tuple[str, dict[str, object]]:
    consumer = make_consumer(kafka, "test-requests", group_id=None)
    try:
        raw = read_last_value(consumer, names.config_topic(hub))
    finally:
        consumer.close()
    assert raw is not None, f"nothing applied on {names.config_topic(hub)}"
    return read_snapshot_record(raw)


def test_apply_dates_a_request_once_and_xhub_requests_reads_it_back(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, renames = demo_config
    hub = renames["pudong"]
    undated(root)  # housing-persons states no filing date: apply dates it
    cfg = load_config(root)
    before = datetime.now(UTC)
    with provision_session(cfg) as session:
        session.apply()
    digest, config = _applied(kafka, hub)
    subs = config["subscriptions"]
    assert isinstance(subs, dict)
    stamped = datetime.fromisoformat(subs["housing-persons"]["requested_at"])
    assert before <= stamped <= datetime.now(UTC)
    assert subs["tax-debtors"]["requested_at"] is None  # unconditional: not a request

    # A second apply of the same config publishes nothing new: the date stays.
    with provision_session(load_config(root)) as session:
        plan, _ = session.apply()
    assert hub not in plan.snapshots
    assert _applied(kafka, hub)[0] == digest
    assert applied_request_dates(load_config(root))["housing-persons"] == stamped

    code = main(["requests", str(root), "--json", "--subscriber", renames["housing"]])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    row = next(r for r in out["requests"] if r["subscription"] == "housing-persons")
    assert datetime.fromisoformat(row["requested_at"]) == stamped
