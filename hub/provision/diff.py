"""Compare what the config asks for with what the cluster has: the changes `xhub plan` prints."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType

from hub.config.snapshot import read_snapshot_record, snapshot_digest, stamp_requests
from hub.core import names
from hub.core.kafka import read_last_value
from hub.core.replication import Replication
from hub.provision.acls import AclChanges
from hub.provision.desired import Desired, SchemaSpec, TopicSpec

DESCRIBE_BATCH = 1000  # topics per DescribeTopics / DescribeConfigs request
# Registry look-ups in flight at once: one request per subject, 12,600 subjects in a Pudong config.
REGISTRY_LOOKUPS = 8


class SchemaRegistrar(Protocol):
    """The registry operations plan/apply need (the HTTP client or the in-process store both fit)."""

    def subjects(self) -> list[str]: ...

    def latest(self, subject: str) -> dict[str, Any] | None: ...

    def incompatibilities(self, subject: str, schema: dict[str, Any]) -> list[str]: ...

    def register(self, subject: str, schema: dict[str, Any]) -> int: ...

    def register_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[int]: ...


@dataclass
class ClusterTopic:
    name: str
    partitions: int
    configs: dict[str, str]


@dataclass
class ClusterState:
    topics: dict[str, ClusterTopic] = field(default_factory=dict)
    snapshots: dict[str, str] = field(default_factory=dict)  # hub -> digest of the last applied snapshot
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)  # hub -> the last applied config


@dataclass
class TopicChange:
    action: str  # create | update | delete | drift
    topic: str
    detail: str
    spec: TopicSpec | None = None
    configs: dict[str, str] = field(default_factory=dict)
    partitions: int | None = None


@dataclass
class SchemaChange:
    action: str  # register | refuse
    subject: str
    detail: str
    spec: SchemaSpec


@dataclass
class ClusterChanges:
    """What apply would change on the cluster: topics, schemas and config snapshots (`xhub plan`)."""

    topics: list[TopicChange] = field(default_factory=list)
    schemas: list[SchemaChange] = field(default_factory=list)
    snapshots: dict[str, bytes] = field(default_factory=dict)  # hubs whose config snapshot changed
    unchanged_topics: int = 0
    unchanged_schemas: int = 0
    acls: AclChanges | None = None  # None: the cluster has no authorizer (hub.provision.acl_cluster)
    replication: Replication | None = None  # what new topics get on this cluster

    @property
    def empty(self) -> bool:
        acls = self.acls is not None and not self.acls.empty
        return not (self.topics or self.schemas or self.snapshots or acls)

    def to_json(self) -> dict[str, Any]:
        return {
            "topics": [{"action": c.action, "topic": c.topic, "detail": c.detail} for c in self.topics],
            "schemas": [{"action": c.action, "subject": c.subject, "detail": c.detail} for c in self.schemas],
            "configs": [
                {"action": "publish", "hub": hub, "digest": snapshot_digest(s)}
                for hub, s in self.snapshots.items()
            ],
            "acls": None if self.acls is None else self.acls.lines(),
            "replication": None
            if self.replication is None
            else {
                "factor": self.replication.factor,
                "min_insync_replicas": self.replication.min_insync,
                "brokers": self.replication.brokers,
            },
            "unchanged": {"topics": self.unchanged_topics, "schemas": self.unchanged_schemas},
            "changes": len(self.topics) + len(self.schemas) + len(self.snapshots),
        }

    def to_text(self) -> str:
        marks = {"create": "+", "update": "~", "delete": "-", "drift": "!", "register": "+", "refuse": "!"}
        lines = [f"{marks[c.action]} topic {c.topic}: {c.detail}" for c in self.topics]
        lines += [f"{marks[c.action]} schema {c.subject}: {c.detail}" for c in self.schemas]
        lines += [
            f"~ config of hub {hub}: new snapshot {snapshot_digest(s)}" for hub, s in self.snapshots.items()
        ]
        lines += self.acls.lines() if self.acls is not None else []
        lines.append(
            f"= {self.unchanged_topics} topics and {self.unchanged_schemas} schemas unchanged"
            + ("" if lines else "; nothing to do")
        )
        if self.replication is not None:
            lines.insert(0, f"= topics: {self.replication.describe()}")
        return "\n".join(lines)


def read_cluster_state(
    admin: KafkaAdminClient,
    consumer: KafkaConsumer,
    hubs: list[str],
    config_keys: Iterable[str] | None = None,
    relevant: Callable[[str], bool] | None = None,
) -> ClusterState:
    """Topics named xhub.* (and the registry topic) with partitions and non-default configs.

    ``config_keys``: read only these topic settings (those a config sets); None reads them all.
    ``relevant``: describe only the topics it accepts (a cluster may carry other configs' topics).
    """
    state = ClusterState()
    ours = [
        t
        for t in admin.list_topics()
        if (t.startswith(names.PREFIX + ".") or t == names.SCHEMAS_TOPIC)
        and (relevant is None or relevant(t))
    ]
    # Only the settings a config sets, in requests of DESCRIBE_BATCH topics: one request describing the
    # 13,000 topics of a Pudong config timed out (15 s) on a busy broker.
    keys = dict.fromkeys(sorted(config_keys)) if config_keys is not None else None
    for start in range(0, len(ours), DESCRIBE_BATCH):
        chunk = ours[start : start + DESCRIBE_BATCH]
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(chunk)}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n, keys) for n in chunk])
        for name in chunk:
            raw = _topic_configs(configs, name)
            state.topics[name] = ClusterTopic(name, described.get(name, 0), raw)
    for hub in hubs:
        topic = names.config_topic(hub)
        last = read_last_value(consumer, topic) if topic in state.topics else None
        if last:
            digest, config = read_snapshot_record(last)
            state.snapshots[hub] = digest
            state.applied[hub] = config
    return state


def _topic_configs(described: Any, name: str) -> dict[str, str]:
    """Flatten kafka-python's describe_configs answer to {key: value} for one topic."""
    by_type = described.get("topic", {}) if isinstance(described, dict) else {}
    entries = by_type.get(name, {})
    out: dict[str, str] = {}
    for key, data in entries.items():
        value = data.get("value") if isinstance(data, dict) else data
        if value is not None:
            out[key] = str(value)
    return out


def relevant_topics(desired: Desired, owners: set[str]) -> Callable[[str], bool]:
    """The topics a plan looks at: those the config asks for, and those of its departments and hubs."""
    return lambda topic: topic in desired.topics or _owned(topic, owners)


def _owned(topic: str, owners: set[str]) -> bool:
    """Whether ``topic`` belongs to a department or hub of this config (configs may share a cluster)."""
    parts = topic.split(".")
    return len(parts) >= 3 and parts[0] == names.PREFIX and parts[2] in owners


def compute_changes(  # noqa: PLR0912 - topics, schemas and snapshots in one pass
    desired: Desired,
    cluster: ClusterState,
    registry: SchemaRegistrar | None,
    owners: set[str] | None = None,
    *,
    now: datetime | None = None,
) -> ClusterChanges:
    """What apply would do. Never proposes a delete unless the topic is ours and no longer configured.

    ``now`` dates the share requests this apply publishes first (default: the clock).
    """
    plan = ClusterChanges()
    for name, spec in sorted(desired.topics.items()):
        have = cluster.topics.get(name)
        if have is None:
            conf = " ".join(f"{k}={v}" for k, v in sorted(spec.configs.items()))
            plan.topics.append(
                TopicChange(
                    "create", name, f"partitions={spec.partitions} {conf} ({spec.purpose})".strip(), spec
                )
            )
            continue
        changed = {k: v for k, v in spec.configs.items() if have.configs.get(k) != v}
        notes = [f"{k}: {have.configs.get(k, 'default')} -> {v}" for k, v in sorted(changed.items())]
        partitions = None
        if have.partitions < spec.partitions:
            partitions = spec.partitions
            notes.append(f"partitions: {have.partitions} -> {spec.partitions}")
        elif have.partitions > spec.partitions:
            plan.topics.append(
                TopicChange(
                    "drift",
                    name,
                    f"has {have.partitions} partitions, config asks {spec.partitions} "
                    "(Kafka cannot shrink a topic; left as is)",
                )
            )
        if notes:
            plan.topics.append(TopicChange("update", name, "; ".join(notes), spec, changed, partitions))
        else:
            plan.unchanged_topics += 1
    # A topic is a delete candidate only when its department or hub is one of ours.
    ours = {t for t in cluster.topics if _owned(t, owners or set())}
    for name in sorted(ours - set(desired.topics)):
        plan.topics.append(
            TopicChange("delete", name, "not in the config (apply removes it only with --allow-delete)")
        )
    if registry is not None:
        known = set(registry.subjects())  # a subject not there yet needs no look-up
        looked_up = [subject for subject in sorted(desired.schemas) if subject in known]
        with ThreadPoolExecutor(REGISTRY_LOOKUPS, thread_name_prefix="plan-registry") as pool:
            latests = dict(zip(looked_up, pool.map(registry.latest, looked_up), strict=True))
        for subject, sspec in sorted(desired.schemas.items()):
            latest = latests.get(subject)
            if latest is not None and _canonical(latest) == _canonical(sspec.schema):
                plan.unchanged_schemas += 1
                continue
            problems = registry.incompatibilities(subject, sspec.schema) if latest is not None else []
            if problems:
                plan.schemas.append(
                    SchemaChange("refuse", subject, "incompatible: " + "; ".join(problems), sspec)
                )
            else:
                plan.schemas.append(
                    SchemaChange(
                        "register", subject, "new subject" if latest is None else "new version", sspec
                    )
                )
    for hub, desired_snapshot in sorted(desired.snapshots.items()):
        # A share request is dated by the apply that first published it; later applies keep that date.
        snapshot = stamp_requests(desired_snapshot, cluster.applied.get(hub), now or datetime.now(UTC))
        if cluster.snapshots.get(hub) != snapshot_digest(snapshot):
            plan.snapshots[hub] = snapshot
    return plan


def _canonical(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
