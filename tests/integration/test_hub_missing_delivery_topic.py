"""A subscription whose delivery topic does not exist must not hold up the hub's other deliveries.

Before its first delivery the hub looks up each plan's delivery topic outside any transaction
(``Emitter.prepare``). kafka-python's metadata lookup of a topic that does not exist blocks for the
producer's ``max_block_ms`` (60 s) and fails, and the hub did it again on every pass that had something to
reconcile, so one missing topic held every delivery for a minute at a time (seen in the scaling bench: its
10,000 idle subscriptions are loaded, not applied, so their topics do not exist). The hub now asks the
cluster which topics exist first and leaves the missing ones for a later pass. The brokers here do not
create topics on demand (``auto.create.topics.enable=false``, as in deployment).
"""

from __future__ import annotations

from pathlib import Path

from hub.app import start_hub
from hub.core import names
from hub.core.kafka import make_admin
from hub.core.kafka_settings import KafkaSettings
from hub.demo.generator import make_faker
from tests.fixtures.hubkit import (
    Publisher,
    apply_config,
    assert_each_delivered_once,
    delivered_counts,
    publish_debtors,
)

# Well inside the 60 s one lookup of a missing topic used to block for; generous for a loaded machine.
DELIVERED_WITHIN_S = 40


def test_a_missing_delivery_topic_does_not_hold_up_the_other_subscriptions(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]], kafka_registry: str
) -> None:
    root, renames = demo_config
    cfg = apply_config(root)
    hub_name = renames["pudong"]
    gone = names.delivery_topic(hub_name, "tax-entities")  # another resource's subscription (PD-ENT-0001)
    admin = make_admin(kafka, "test-missing-topic")
    try:
        admin.delete_topics([gone])
    finally:
        admin.close()
    publisher = Publisher(cfg, kafka_registry, "PD-CRD-0001")
    hub = start_hub(cfg, hub_name)
    try:
        sent = publish_debtors(publisher, make_faker(23), 10)
        topic = names.delivery_topic(hub_name, "tax-debtors")
        got = delivered_counts(kafka, kafka_registry, topic, expect=len(sent), timeout=DELIVERED_WITHIN_S)
    finally:
        publisher.close()
        hub.close()
    assert_each_delivered_once(sent, got)
