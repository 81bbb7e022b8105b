"""The sink base: progress of a batch, dead-letter targets, the JSON shape of a delivery."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import pytest

from connectors.sinks import Delivery, ListDeadLetters, PartitionProgress, progress_of
from connectors.sinks.json_format import delivery_lines
from connectors.sinks.webhook import WebhookSink, WebhookSinkConfig
from hub.core.errors import FatalError


def delivery(offset: int, partition: int = 0, data: dict[str, object] | None = None) -> Delivery:
    return Delivery(
        topic="t",
        partition=partition,
        offset=offset,
        key="k",
        op="u",
        seq=offset,
        event_id="e",
        policy_version=None,
        subscription="s",
        data=data,
        source_commit_ts_ms=0,
    )


def test_progress_spans_each_partition() -> None:
    batch = [delivery(5), delivery(7), delivery(2, partition=1), delivery(6)]
    assert sorted(progress_of(batch), key=lambda p: p.partition) == [
        PartitionProgress("t", 0, 5, 8),
        PartitionProgress("t", 1, 2, 3),
    ]
    assert delivery(3).origin == "t-0@3"


def test_a_sink_without_a_dead_letter_target_refuses_to_drop() -> None:
    sink = WebhookSink(WebhookSinkConfig(url="http://127.0.0.1:1/x"))
    with pytest.raises(FatalError, match="dead-letter"):
        sink.dead_letters.publish(delivery(1), "webhook_failed", "HTTP 500")
    collected = ListDeadLetters()
    sink.bind_dead_letters(collected)
    sink.dead_letters.publish(delivery(1), "webhook_failed", "HTTP 500", field="x")
    assert collected.items[0].field == "x"


def test_json_lines_carry_avro_logical_values_as_text() -> None:
    data: dict[str, object] = {
        "day": dt.date(2024, 2, 29),
        "at": dt.datetime(2024, 2, 29, 8, 0, tzinfo=dt.UTC),
        "money": decimal.Decimal("12.50"),
        "id": uuid.UUID(int=1),
        "raw": b"\xff",
        "name": "张三",
    }
    (line,) = delivery_lines([delivery(1, data=data)]).splitlines()
    assert "张三" in line  # not escaped
    assert json.loads(line)["data"] == {
        "day": "2024-02-29",
        "at": "2024-02-29T08:00:00+00:00",
        "money": "12.50",
        "id": "00000000-0000-0000-0000-000000000001",
        "raw": "/w==",
        "name": "张三",
    }
