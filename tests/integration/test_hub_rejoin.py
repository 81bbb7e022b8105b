"""A hub worker's consumer group rejoin that outlives the poll which started it (issue 18).

The same kafka-python 3.0.12 trap as the sinks' (tests/integration/test_sink_rejoin.py,
hub/core/group_join.py): a rejoin the leader starts because a source topic's metadata changed stops
being "needed" once it has performed the assignment, before its SyncGroup is answered; when the poll that
started it returns first, no later poll awaits it and the worker stays REBALANCING with the partitions it
had. Here the worker polls in 5 ms slices, so the rejoin that adding partitions to a source topic causes
always outlives its poll: the changes published to the new partitions must still be delivered.
"""

from __future__ import annotations

import dataclasses
import threading
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
    first_debtors_consumed,
    publish_debtors,
    wait_for,
)


def test_hub_takes_new_source_partitions_although_its_rejoin_outlives_the_poll(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]], kafka_registry: str
) -> None:
    root, renames = demo_config
    cfg = apply_config(root)
    hub_name = renames["pudong"]
    hub = start_hub(cfg, hub_name, start_thread=False)
    # A poll shorter than any rejoin (the default is 100 ms; a loaded machine's rejoin takes longer).
    hub.worker.options = dataclasses.replace(hub.worker.options, batch_max_ms=5)
    thread = threading.Thread(target=hub.worker.run, name="hub-worker", daemon=True)
    thread.start()
    hub.thread = thread
    fake = make_faker(19)
    publisher = Publisher(cfg, kafka_registry, "PD-CRD-0001")
    sent: list[str] = []

    try:
        sent += first_debtors_consumed(hub, publisher, fake, 10)
        admin = make_admin(kafka, "test-hub-rejoin")
        try:
            admin.create_partitions({publisher.topic: 6})  # the source topics have 3
        finally:
            admin.close()
        publisher.close()  # a producer of its own sees the new partitions at once
        publisher = Publisher(cfg, kafka_registry, "PD-CRD-0001")
        wait_for(lambda: len(publisher.producer.partitions_for(publisher.topic)) == 6, 30, "six partitions")
        sent += publish_debtors(
            publisher, fake, 60
        )  # keys over all six partitions; the hub sees the new ones within its metadata max age
        topic = names.delivery_topic(hub_name, "tax-debtors")
        got = delivered_counts(kafka, kafka_registry, topic, expect=len(sent), timeout=90)
    finally:
        publisher.close()
        hub.close()
    assert_each_delivered_once(sent, got)
