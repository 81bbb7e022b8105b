"""A sink's consumer group rejoin that outlives the poll which started it (issue 18).

kafka-python 3.0.12 runs a rejoin as a task, awaited by ``poll`` only while ``need_rejoin()`` is true.
A rejoin the leader starts because the topic's metadata changed stops being "needed" as soon as it has
performed the assignment (``_assignment_snapshot`` catches up), before its SyncGroup is answered: when
the poll that started it returns first, no later poll awaits it, and the member stays REBALANCING for
good with the partitions it had (hub/core/group_join.py). Here the sink polls in 5 ms slices, so the
rejoin that adding partitions to its delivery topic causes always outlives its poll: the deliveries to
the new partitions must still be applied.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from connectors.runtime.sink_loop import SinkLoop
from connectors.sinks import SqlSink, SqlSinkConfig
from hub.core.kafka import STATIC_MEMBER_SESSION_TIMEOUT_MS, make_admin
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import delivery_topic
from hub.registry.server import RegistryServer
from tests.fixtures.hubkit import wait_for
from tests.integration.sinks_support import Change, DeliveryProducer, licence, make_topic
from tests.integration.test_sinks_sql_loop import Running, caught_up


def test_sink_takes_new_partitions_although_its_rejoin_outlives_the_poll(
    kafka: KafkaSettings, memory_registry: RegistryServer, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    topic = delivery_topic("hub1", unique_name("lic"))
    dsn = f"sqlite:///{tmp_path}/dept.db"
    make_topic(kafka, topic, partitions=1)
    producer = DeliveryProducer(kafka, memory_registry.url, topic)
    loop = SinkLoop(
        kafka,
        memory_registry.url,
        topic,
        unique_name("g"),
        SqlSink(SqlSinkConfig(dsn=SecretStr(dsn), table="licences", applied_log_table="applied")),
        dept=unique_name("dept"),
        poll_timeout_ms=5,  # a poll shorter than any rejoin (in the sidecar: 500 ms, on a loaded machine)
        retry_initial_s=0.1,
        retry_max_s=1.0,
        # As the sidecar configures its sinks: static membership.
        consumer_overrides={
            "group_instance_id": unique_name("inst"),
            "session_timeout_ms": STATIC_MEMBER_SESSION_TIMEOUT_MS,
        },
    )
    running = Running(loop)
    try:
        sent = producer.send([Change(f"K{n}", "c", n, licence(f"K{n}", n)) for n in range(5)])
        wait_for(caught_up(dsn, topic, sent), 60, "deliveries to the first partition applied")
        admin = make_admin(kafka, "test-rejoin")
        try:
            admin.create_partitions({topic: 3})
        finally:
            admin.close()
        producer.close()  # a producer of its own sees the new partitions at once
        producer = DeliveryProducer(kafka, memory_registry.url, topic)
        wait_for(lambda: len(producer.producer.partitions_for(topic)) == 3, 30, "three partitions seen")
        # Keys over every partition; the sink sees the new ones within metadata_max_age_ms (10 s).
        sent += producer.send([Change(f"N{n}", "c", 100 + n, licence(f"N{n}", 100 + n)) for n in range(30)])
        assert {s.partition for s in sent} == {0, 1, 2}
        wait_for(caught_up(dsn, topic, sent), 60, "deliveries to the added partitions applied")
    finally:
        producer.close()
        running.stop()
