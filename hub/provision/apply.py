"""Carry out the changes: create and update topics, register schemas, publish config snapshots. Idempotent."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from hub.config.signing import signed_snapshot_record
from hub.config.snapshot import snapshot_digest
from hub.core import names
from hub.core.errors import FatalError, RetriableError
from hub.core.log import get_logger
from hub.provision.diff import ClusterChanges, SchemaRegistrar

log = get_logger("provision")


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
    for change in plan.topics:
        try:
            if change.action == "create" and change.spec is not None:
                spec = change.spec
                # created meanwhile by another apply: the goal is reached all the same
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(
                        [NewTopic(spec.name, spec.partitions, replication_factor, topic_configs=spec.configs)]
                    )
                result.done.append(f"created topic {spec.name}")
            elif change.action == "update":
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
        for schema_change in plan.schemas:
            schema_id = registry.register(schema_change.subject, schema_change.spec.schema)
            result.done.append(f"registered schema {schema_change.subject} (id {schema_id})")
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
