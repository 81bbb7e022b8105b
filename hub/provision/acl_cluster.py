"""The cluster side of hub.provision.acls: read the ACLs and apply's ledger, create and remove ACLs.

Only for a cluster with an authorizer (hubs.yaml ``kafka.security_protocol`` SSL or SASL_SSL): a plaintext
broker has none, and plan/apply leave ACLs alone there.
"""

from __future__ import annotations

import contextlib
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import KafkaError, TopicAlreadyExistsError

from hub.core.errors import RetriableError
from hub.core.kafka_settings import KafkaSettings
from hub.provision.acls import LEDGER_TOPIC, AclChanges, AclSpec, LedgerEntry


def acls_managed(kafka: KafkaSettings) -> bool:
    """Whether plan/apply manage ACLs on this cluster (it authenticates clients)."""
    return kafka.security_protocol in ("SSL", "SASL_SSL")


def _key_of(acl: ACL) -> str:
    pattern = acl.resource_pattern
    return (
        f"{acl.principal}|{pattern.resource_type.name}|{pattern.pattern_type.name}|"
        f"{pattern.resource_name}|{acl.operation.name}"
    )


def acl_of(spec: AclSpec) -> ACL:
    """The kafka-python ACL that ``spec`` describes: to create, and to delete (an ``ACL`` is an
    ``ACLFilter`` that matches exactly itself)."""
    return ACL(
        principal=spec.principal,
        host="*",
        operation=ACLOperation[spec.operation],
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(
            ResourceType[spec.resource], spec.name, ACLResourcePatternType[spec.pattern]
        ),
    )


def cluster_acls(admin: KafkaAdminClient) -> set[str]:
    """The keys (AclSpec.key) of every ALLOW ACL the cluster has."""
    everything = ACLFilter(
        principal=None,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    found, error = admin.describe_acls(everything)
    if error is not None and getattr(error, "errno", None):
        raise RetriableError(f"Kafka refused to describe the ACLs: {error}")
    return {_key_of(a) for a in found}


def read_ledger(consumer: KafkaConsumer, admin: KafkaAdminClient) -> list[LedgerEntry]:
    """Which config holds which ACL that apply created (the compacted ``_xhub_acls``; empty if absent)."""
    if LEDGER_TOPIC not in admin.list_topics():
        return []
    tp = TopicPartition(LEDGER_TOPIC, 0)
    consumer.assign([tp])
    end = consumer.end_offsets([tp])[tp]
    consumer.seek_to_beginning(tp)
    ledger: dict[str, LedgerEntry] = {}
    deadline = time.monotonic() + 30
    while consumer.position(tp) < end and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for rec in records:
                key = rec.key.decode("utf-8")
                if rec.value is None:
                    ledger.pop(key, None)
                else:
                    ledger[key] = LedgerEntry.from_json(rec.value)
    return list(ledger.values())


def apply_acl_changes(admin: KafkaAdminClient, producer: KafkaProducer, changes: AclChanges) -> list[str]:
    """Create and remove ACLs, recording each in the ledger first (create) or last (remove)."""
    done: list[str] = []
    if not (changes.create or changes.remove or changes.ledger_put or changes.ledger_drop):
        return done
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(LEDGER_TOPIC, 1, 1, topic_configs={"cleanup.policy": "compact"})])
        # recorded before it exists: a crash in between leaves a ledger entry apply will remove (sent
        # together and waited for once: one round trip each made every apply of a config seconds slower)
        _record(producer, [(entry.key, entry.to_json()) for entry in changes.ledger_put])
        if changes.create:
            result = admin.create_acls([acl_of(s) for s in changes.create])
            if result.get("failed"):
                raise RetriableError(f"Kafka refused ACLs: {result['failed']}")
            done += [f"created acl {s.text()}" for s in changes.create]
        if changes.remove:
            admin.delete_acls([acl_of(s) for s in changes.remove])
            done += [f"removed acl {s.text()}" for s in changes.remove]
        _record(producer, [(key, None) for key in changes.ledger_drop])
        done += [
            f"released acl {s.text()} (kept for {', '.join(changes.holders[s.key])})"
            for s in changes.released
        ]
        producer.flush()
        _await_in_force(admin, changes)
    except KafkaError as exc:
        raise RetriableError(f"Kafka refused an ACL change: {type(exc).__name__}: {exc}") from exc
    return done


def _record(producer: KafkaProducer, entries: list[tuple[str, bytes | None]]) -> None:
    """Write ledger entries (None: a removal) and return once every one is acknowledged."""
    futures = [producer.send(LEDGER_TOPIC, key=key.encode(), value=value) for key, value in entries]
    producer.flush(timeout=30)
    for future in futures:
        future.get(timeout=30)


def _await_in_force(admin: KafkaAdminClient, changes: AclChanges, timeout_s: float = 30.0) -> None:
    """Return once the broker describes the ACLs as changed: the controller applies them to the brokers'
    authorizers a moment after it answers, and a plan made at once would propose them again."""
    created = {s.key for s in changes.create}
    removed = {s.key for s in changes.remove}
    deadline = time.monotonic() + timeout_s
    while True:
        present = cluster_acls(admin)
        if created <= present and not removed & present:
            return
        if time.monotonic() > deadline:
            raise RetriableError(
                f"the broker does not show {len(created - present)} created and "
                f"{len(removed & present)} removed ACLs as such after {timeout_s:.0f} s"
            )
        time.sleep(0.2)
