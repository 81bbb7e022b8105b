"""Pure parts of the sidecar runtime: backoff, position partitioning and encoding, HTTP answers."""

from __future__ import annotations

import json
import random
import threading

import pytest
from kafka.partitioner.default import DefaultPartitioner

from connectors.runtime.positions import _decode, encode_position, partition_for
from connectors.runtime.retry import Backoff
from connectors.sources.base import PublishResult, Rejection
from connectors.sources.http_push import HttpPushSource, _answer
from hub.core.errors import FatalError
from hub.core.names import source_transactional_id as transactional_id


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial_s=0.5, max_s=8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    caps = [min(8.0, 0.5 * 2**i) for i in range(8)]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True)), delays
    assert max(delays) <= 8.0
    backoff.reset()
    assert backoff.next_delay() <= 0.5
    assert backoff.next_delay(hint=5.0) == 5.0, "an error's retry_after is a floor"


def test_backoff_wait_returns_early_when_stopped() -> None:
    stop = threading.Event()
    stop.set()
    assert Backoff(initial_s=60, max_s=60).wait(stop) is False


class _Cluster:
    """The three questions kafka-python's partitioner asks of its cluster metadata."""

    def __init__(self, partitions: int) -> None:
        self.partitions = set(range(partitions))

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions


@pytest.mark.parametrize("key", [b"src", b"hukou", b"\xe4\xb8\xad", b"a" * 100])
@pytest.mark.parametrize("partitions", [1, 3, 12])
def test_position_partition_is_the_default_partitioner_choice(key: bytes, partitions: int) -> None:
    expected = DefaultPartitioner().partition("t", key, key, None, None, _Cluster(partitions))
    assert partition_for(key, partitions) == expected


def test_position_records_round_trip_and_reject_foreign_values() -> None:
    value = encode_position({"log": {"id": 42}, "snapshot": None}, 1_700_000_000_000)
    assert json.loads(value) == {
        "position": {"log": {"id": 42}, "snapshot": None},
        "ts_ms": 1_700_000_000_000,
    }
    assert _decode(value, "xhub.pos.d", "src") == {"log": {"id": 42}, "snapshot": None}
    assert _decode(None, "xhub.pos.d", "src") is None, "a tombstone resets the source"
    with pytest.raises(FatalError, match=r'position of source "src" on xhub.pos.d'):
        _decode(b"not json", "xhub.pos.d", "src")


def test_http_answers_map_rejections_to_status_codes() -> None:
    assert _answer(PublishResult(3, [])) == (202, {"accepted": 3})
    oversize = Rejection(0, "oversize", None, "too big")
    assert _answer(PublishResult(0, [oversize]))[0] == 413
    utf8 = Rejection(0, "invalid_utf8", None, "byte 3")
    assert _answer(PublishResult(0, [utf8]))[0] == 400
    bad = Rejection(1, "bad_id_check_digit", "id_number", 'field "id_number": check digit')
    status, body = _answer(PublishResult(2, [bad, oversize]))
    assert status == 422
    assert body["accepted"] == 2
    assert body["rejected"][0] == {
        "index": 1,
        "reason": "bad_id_check_digit",
        "field": "id_number",
        "detail": 'field "id_number": check digit',
    }


def test_http_batches_are_split_into_records_with_their_own_originals() -> None:
    assert HttpPushSource._split(b'{"a": 1}') == [b'{"a": 1}']
    assert HttpPushSource._split(b' [{"a": 1}, {"b": "\xe4\xb8\xad"}]') == [
        b'{"a": 1}',
        b'{"b": "\xe4\xb8\xad"}',
    ]
    assert HttpPushSource._split(b"[not json") == [b"[not json"], "the validator names what is wrong"
    assert HttpPushSource._split(b"[\xff]") == [b"[\xff]"]


def test_transactional_ids_are_stable_per_department_and_source() -> None:
    assert transactional_id("psb", "hukou") == "xhub-src-psb-hukou"


def test_backlog_reports_go_out_when_a_figure_changes_or_a_heartbeat_is_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from connectors.runtime import backlog as backlog_module
    from connectors.runtime.backlog import BacklogReporter
    from connectors.runtime.metrics import SidecarMetrics
    from hub.core.backlog_report import BacklogReport, SourceBacklog
    from hub.core.kafka_settings import KafkaSettings

    clock = [100.0]
    monkeypatch.setattr(backlog_module.time, "monotonic", lambda: clock[0])
    reporter = BacklogReporter(
        "amr", KafkaSettings(bootstrap_servers="unused:9092"), [], SidecarMetrics(), heartbeat_s=30.0
    )
    figures = [SourceBacklog("sql_trigger", "running", 0)]
    sent: list[BacklogReport] = []
    monkeypatch.setattr(reporter, "measure", lambda: BacklogReport("amr", 1, 30.0, {"db": figures[0]}))
    monkeypatch.setattr(reporter, "report", sent.append)

    reporter._step()
    clock[0] += 5
    reporter._step()  # unchanged: nothing written
    assert len(sent) == 1
    figures[0] = SourceBacklog("sql_trigger", "running", 4, 1000)
    reporter._step()  # changed: written at once
    clock[0] += 29
    reporter._step()
    assert len(sent) == 2
    clock[0] += 1
    reporter._step()  # a heartbeat
    assert [r.sources["db"].rows for r in sent] == [0, 4, 4]
    assert all(r.every_s == 30.0 for r in sent)
