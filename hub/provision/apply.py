"""Carry out the changes: create and update topics, register schemas, publish config snapshots. Idempotent."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from hub.config.signing import signed_snapshot_record
from hub.config.snapshot import snapshot_digest
from hub.core import names
from hub.core.errors import FatalError, RetriableError
from hub.core.log import get_logger
from hub.provision.desired import TopicSpec
from hub.provision.diff import ClusterChanges, SchemaRegistrar

log = get_logger("provision")

# Topics per CreateTopics request: one request per topic took 0.05 s each, 10 minutes for a Pudong apply.
CREATE_BATCH = 500
REGISTER_BATCH = 1000  # schemas per registration (one Kafka transaction with the built-in registry)


@dataclass
class ApplyResult:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def apply_changes(  # noqa: PLR0912 - one branch per kind of change
    plan: ClusterChanges,
    admin: KafkaAdminClient,
    producer: KafkaProducer,
    registry: SchemaRegistrar | None,
    *,
    allow_delete: bool = False,
    replication_factor: int = 1,
    signer: Ed25519PrivateKey | None = None,
) -> ApplyResult:
    """Apply ``plan``. Deletes only with ``allow_delete``; refuses incompatible schemas (FatalError).

    ``signer``: the apply role's key, which signs every config snapshot published (required when the
    plan publishes one: hubs install only signed configs; checked before anything is changed).
    """
    result = ApplyResult()
    if plan.snapshots and signer is None:
        raise FatalError("config snapshots to publish but no signing key: hubs would refuse them")
    refused = [c for c in plan.schemas if c.action == "refuse"]
    if refused:
        raise FatalError(
            "schemas refused by the registry: " + "; ".join(f"{c.subject}: {c.detail}" for c in refused)
        )
    creates = [c.spec for c in plan.topics if c.action == "create" and c.spec is not None]
    for start in range(0, len(creates), CREATE_BATCH):
        _create_topics(admin, creates[start : start + CREATE_BATCH], replication_factor)
        result.done.extend(f"created topic {spec.name}" for spec in creates[start : start + CREATE_BATCH])
    for change in plan.topics:
        try:
            if change.action == "create":
                continue  # created above, in batches
            if change.action == "update":
                if change.configs:
                    admin.alter_configs(
                        [ConfigResource(ConfigResourceType.TOPIC, change.topic, configs=change.configs)]
                    )
                if change.partitions:
                    admin.create_partitions({change.topic: change.partitions})
                result.done.append(f"updated topic {change.topic}: {change.detail}")
            elif change.action == "delete":
                if allow_delete:
                    admin.delete_topics([change.topic])
                    result.done.append(f"deleted topic {change.topic}")
                else:
                    result.skipped.append(
                        f"kept topic {change.topic} (not in config; pass --allow-delete to remove)"
                    )
            else:
                result.skipped.append(f"drift on {change.topic}: {change.detail}")
        except KafkaError as exc:
            raise RetriableError(
                f"Kafka refused the change to topic {change.topic}: {type(exc).__name__}: {exc}"
            ) from exc
    if registry is not None:
        for start in range(0, len(plan.schemas), REGISTER_BATCH):
            batch = plan.schemas[start : start + REGISTER_BATCH]
            ids = registry.register_many([(c.subject, c.spec.schema) for c in batch])
            result.done.extend(
                f"registered schema {c.subject} (id {i})" for c, i in zip(batch, ids, strict=True)
            )
    for hub, snapshot in plan.snapshots.items():
        digest = snapshot_digest(snapshot)
        assert signer is not None  # checked above, before any change
        value = signed_snapshot_record(snapshot, int(time.time() * 1000), signer)
        producer.send(names.config_topic(hub), key=hub.encode(), value=value).get(timeout=30)
        result.done.append(f"published config of hub {hub} ({digest})")
    producer.flush()
    for line in result.done:
        log.info("apply_step", step=line)
    return result


def _create_topics(admin: KafkaAdminClient, specs: list[TopicSpec], replication_factor: int) -> None:
    """Create ``specs`` in one request; a topic created meanwhile (by another apply) is what was wanted.

    Raises:
        RetriableError: Kafka refused a topic (each refused topic named with its error).
    """
    new = [NewTopic(s.name, s.partitions, replication_factor, topic_configs=s.configs) for s in specs]
    try:
        answer = admin.create_topics(new, raise_errors=False)
    except KafkaError as exc:
        raise RetriableError(
            f"Kafka refused to create {len(specs)} topics ({specs[0].name} ...): {type(exc).__name__}: {exc}"
        ) from exc
    refused = []
    for topic in answer.get("topics", []):
        error = for_code(int(topic.get("error_code", 0)))
        if topic.get("error_code", 0) and error is not TopicAlreadyExistsError:
            refused.append(
                f"{topic.get('name')}: {error.__name__} {topic.get('error_message') or ''}".strip()
            )
    if refused:
        raise RetriableError(f"Kafka refused to create {len(refused)} topics: " + "; ".join(refused))
