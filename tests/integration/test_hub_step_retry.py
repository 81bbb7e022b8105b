"""A hub step that fails as in ``make chaos`` is read again and delivered once (issue 18), on a real broker.

Run 2 of ``make chaos`` lost rows while the hub logged one failed step: its offsets unanswered (then
``transaction_aborted``, ``producer_reopened``), resp. its commit unanswered and found not made. The loss
turned out to be the court sidecar's (the rows never reached the source topic: see
test_transaction_lost_send.py), and these two failures of the hub's step are harmless: the step aborts,
the batch is read again from its first record with a fresh producer and delivered once. Injected at the
step's two calls that did not answer (hub.engine.transaction), with the offsets really sent first in the
first case, so a transactional offset commit is pending at the group coordinator when the producer is
replaced.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError
from kafka.producer.future import FutureProduceResult, FutureRecordMetadata

from hub.app import start_hub
from hub.core import names
from hub.core.kafka_settings import KafkaSettings
from hub.demo.generator import make_faker
from hub.engine import emitter, transaction
from tests.fixtures.hubkit import (
    Publisher,
    apply_config,
    assert_each_delivered_once,
    delivered_counts,
    first_debtors_consumed,
    publish_debtors,
    wait_for,
)


@pytest.mark.parametrize("unanswered", ["offsets", "commit"])
def test_a_step_unanswered_is_read_again_and_delivered_once(
    kafka: KafkaSettings,
    demo_config: tuple[Path, dict[str, str]],
    kafka_registry: str,
    monkeypatch: pytest.MonkeyPatch,
    unanswered: str,
) -> None:
    root, renames = demo_config
    cfg = apply_config(root)
    hub_name = renames["pudong"]
    armed, failed = threading.Event(), threading.Event()
    send_offsets, commit = transaction.send_offsets_within, transaction.commit_transaction_within

    def offsets_unanswered(producer: Any, offsets: Any, group: Any, timeout_s: float) -> None:
        send_offsets(producer, offsets, group, timeout_s)  # sent: pending at the group coordinator
        if unanswered == "offsets" and armed.is_set() and not failed.is_set():
            failed.set()
            raise KafkaTimeoutError("injected: the offsets were not answered")

    def commit_unanswered(producer: Any, timeout_s: float) -> None:
        if unanswered == "commit" and armed.is_set() and not failed.is_set():
            failed.set()
            raise KafkaTimeoutError("injected: the commit was not answered (and not made)")
        commit(producer, timeout_s)

    monkeypatch.setattr(transaction, "send_offsets_within", offsets_unanswered)
    monkeypatch.setattr(transaction, "commit_transaction_within", commit_unanswered)
    hub = start_hub(cfg, hub_name)
    fake = make_faker(18)
    publisher = Publisher(cfg, kafka_registry, "PD-CRD-0001")
    sent: list[str] = []

    try:
        sent += first_debtors_consumed(hub, publisher, fake, 30)
        armed.set()
        sent += publish_debtors(publisher, fake, 20)  # the step carrying (some of) these fails
        wait_for(failed.is_set, 60, "the injected failure")
        sent += publish_debtors(publisher, fake, 30)
        topic = names.delivery_topic(hub_name, "tax-debtors")
        got = delivered_counts(kafka, kafka_registry, topic, expect=80, timeout=90)
    finally:
        publisher.close()
        hub.close()
    assert_each_delivered_once(sent, got)


def test_deliveries_never_acknowledged_are_read_again_with_a_fresh_producer(
    kafka: KafkaSettings,
    demo_config: tuple[Path, dict[str, str]],
    kafka_registry: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run 3 of ``make chaos`` (kill of the hub's transaction coordinator): a batch of deliveries waited
    for the coordinator until kafka-python's 120 s delivery timeout. The step now gives its deliveries
    ``DELIVERY_WAIT_S`` (2 s here); here three deliveries never get an answer, as a batch held back by a
    dead coordinator: the step is read again with a fresh producer and every event delivered once."""
    root, renames = demo_config
    cfg = apply_config(root)
    hub_name = renames["pudong"]
    topic = names.delivery_topic(hub_name, "tax-debtors")
    armed = threading.Event()
    held: list[FutureRecordMetadata] = []
    send = KafkaProducer.send

    def unanswered_send(producer: KafkaProducer, to: str, *args: Any, **kwargs: Any) -> Any:
        if to == topic and armed.is_set() and len(held) < 3:
            held.append(FutureRecordMetadata(FutureProduceResult(None), 0, -1, None, 0, 0, -1))
            return held[-1]  # never answered, never written
        return send(producer, to, *args, **kwargs)

    monkeypatch.setattr(emitter, "DELIVERY_WAIT_S", 2.0)
    monkeypatch.setattr(KafkaProducer, "send", unanswered_send)
    hub = start_hub(cfg, hub_name)
    fake = make_faker(20)
    publisher = Publisher(cfg, kafka_registry, "PD-CRD-0001")
    sent: list[str] = []
    try:
        sent += first_debtors_consumed(hub, publisher, fake, 20)
        armed.set()
        sent += publish_debtors(publisher, fake, 20)
        wait_for(lambda: len(held) == 3, 60, "three deliveries held")
        # Within a minute: before, each held delivery was waited for 30 s, after a 130 s flush bound.
        got = delivered_counts(kafka, kafka_registry, topic, expect=40, timeout=60)
    finally:
        publisher.close()
        hub.close()
    assert_each_delivered_once(sent, got)
    assert hub.worker.stats.aborted_transactions >= 1, "the step with the held deliveries was not aborted"
