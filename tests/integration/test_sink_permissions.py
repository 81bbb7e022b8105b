"""A department's sink goes on with the topics it may read while another has no READ (secure broker).

A subscription whose grant is not in force (a conditional share request waiting for its answer, a grant
revoked) has no READ on its delivery topic. The sidecar's static group member, back after a restart, was
given its last assignment, refused topic included: the committed-offset fetch failed the whole sink every
10 s, and the demo's transport department received nothing, not even its unconditional deliveries, until
psb answered (20 s). Here a department identity with READ on one topic and not (or no longer) on the
other: the first is applied, the second once READ is granted (again), and the first still when READ on
the second is revoked while the sink reads. Before the fix the sink applied nothing after the revoke
(TopicAuthorizationFailedError, 60 s).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from connectors.runtime.sink_loop import SinkLoop
from connectors.sinks import SqlSink, SqlSinkConfig
from hub.core.kafka import make_admin, make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import delivery_topic
from hub.provision.acl_cluster import acl_of
from hub.provision.acls import AclSpec
from hub.provision.credentials import issue
from hub.registry.server import RegistryServer
from tests.fixtures.hubkit import wait_for
from tests.integration.federation_support import secure_clusters
from tests.integration.sinks_support import Change, DeliveryProducer, licence, make_topic
from tests.integration.test_sinks_sql_loop import Running, caught_up


def _allow(principal: str, resource: str, name: str) -> list[AclSpec]:
    return [AclSpec(principal, resource, name, "LITERAL", operation) for operation in ("READ", "DESCRIBE")]


def test_a_topic_without_read_does_not_hold_back_the_others(
    kafka: KafkaSettings,
    memory_registry: RegistryServer,
    tmp_path: Path,
    unique_name: Callable[[str], str],
) -> None:
    needs = "this test needs the secure broker (mutual TLS and ACLs) that `make test` starts"
    assert secure_clusters(), needs
    assert kafka.ssl_cafile, needs
    granted, pending = delivery_topic("hub1", unique_name("lic")), delivery_topic("hub1", unique_name("per"))
    for topic in (granted, pending):
        make_topic(kafka, topic, partitions=1)
    dept, group = unique_name("dept"), unique_name("xhub-sink")
    creds = tmp_path / "credentials"
    creds.mkdir()
    for name in ("ca.pem", "ca.key"):  # the broker's CA issues the department's certificate
        shutil.copy2(Path(kafka.ssl_cafile).parent / name, creds / name)
    cert, key = issue(creds, dept)
    as_dept = KafkaSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        security_protocol="SSL",
        ssl_cafile=str(creds / "ca.pem"),
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    principal = f"User:{dept}"  # kafka.sh maps a certificate's CN to the principal
    admin = make_admin(kafka, "test-sink-permissions")
    acls = _allow(principal, "TOPIC", granted) + _allow(principal, "GROUP", group)
    later = _allow(principal, "TOPIC", pending)
    dsn = f"sqlite:///{tmp_path}/dept.db"
    producers = [DeliveryProducer(kafka, memory_registry.url, topic) for topic in (granted, pending)]
    instance = unique_name("inst")

    def sink_loop() -> SinkLoop:
        return SinkLoop(
            as_dept,
            memory_registry.url,
            [granted, pending],
            group,
            SqlSink(SqlSinkConfig(dsn=SecretStr(dsn), table="licences", applied_log_table="applied")),
            dept=dept,
            retry_initial_s=0.1,
            retry_max_s=1.0,
            # As the sidecar runs its sinks: a static member, given back its last assignment on return.
            consumer_overrides={"group_instance_id": instance, "session_timeout_ms": 60_000},
        )

    loop = sink_loop()
    running: Running | None = None
    try:
        admin.create_acls([acl_of(spec) for spec in acls])
        wait_for(lambda: _principal_sees(as_dept, granted), 30, "the department's READ in force")
        sent = producers[0].send([Change(f"K{n}", "c", n, licence(f"K{n}", n)) for n in range(5)])
        waiting = producers[1].send(
            [Change(f"P{n}", "c", 100 + n, licence(f"P{n}", 100 + n)) for n in range(3)]
        )
        running = Running(loop)
        wait_for(caught_up(dsn, granted, sent), 30, "the permitted topic's deliveries applied")
        assert loop.refused == {pending}, loop.refused
        assert running.thread.is_alive(), running.error
        admin.create_acls([acl_of(spec) for spec in later])  # the share request answered: READ
        wait_for(caught_up(dsn, pending, waiting), 60, "the newly permitted topic's deliveries applied")
        assert loop.refused == set()
        # Revoked while the sidecar was down: back, its static member is given the old assignment,
        # refused topic included (the demo's case: transport got nothing until psb answered).
        running.stop()
        admin.delete_acls([acl_of(spec) for spec in later])
        wait_for(lambda: not _principal_sees(as_dept, pending), 30, "the READ revoked")
        sent += producers[0].send([Change(f"K{n}", "u", n, licence(f"K{n}", n)) for n in range(5, 10)])
        waiting += producers[1].send([Change(f"P{n}", "u", n, licence(f"P{n}", n)) for n in range(103, 106)])
        loop = sink_loop()
        running = Running(loop)
        wait_for(caught_up(dsn, granted, sent), 60, "the permitted topic applied after the revoke")
        assert loop.refused == {pending}, loop.refused
        assert running.thread.is_alive(), running.error
        admin.create_acls([acl_of(spec) for spec in later])  # granted again
        wait_for(caught_up(dsn, pending, waiting), 60, "the re-granted topic's deliveries applied")
        # Revoked while the sink reads: it goes on with the other topic, and takes the revoked one up again
        # once READ is back. (``refused`` did not name the topic meanwhile in the runs here: no read was
        # refused, the topic just stopped coming; the README says so.)
        admin.delete_acls([acl_of(spec) for spec in later])
        wait_for(lambda: not _principal_sees(as_dept, pending), 30, "the READ revoked again")
        waiting += producers[1].send([Change(f"P{n}", "u", n, licence(f"P{n}", n)) for n in range(106, 109)])
        sent += producers[0].send([Change(f"K{n}", "u", n, licence(f"K{n}", n)) for n in range(10, 15)])
        wait_for(caught_up(dsn, granted, sent), 60, "the permitted topic applied after a revoke mid-read")
        assert running.thread.is_alive(), running.error
        admin.create_acls([acl_of(spec) for spec in later])
        wait_for(caught_up(dsn, pending, waiting), 60, "the revoked topic's deliveries applied once let in")
    finally:
        for producer in producers:
            producer.close()
        if running is not None:
            running.stop()
        admin.delete_acls([acl_of(spec) for spec in acls + later])
        admin.close()


def _principal_sees(settings: KafkaSettings, topic: str) -> bool:
    """Whether ``settings``' identity sees ``topic`` yet (ACLs take a moment to apply)."""
    consumer = make_consumer(settings, "test-acl-wait", group_id=None)
    try:
        return bool(consumer.partitions_for_topic(topic))
    finally:
        consumer.close()
