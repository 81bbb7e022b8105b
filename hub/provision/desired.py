"""The state a config directory asks for: topics with their configs, schemas, per-hub config snapshots.

Pure: no I/O. The snapshot is what hub workers follow for live policy changes (topic xhub.cfg.<hub>).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import schemas
from hub.config.loader import ConfigDir
from hub.config.snapshot import config_snapshot
from hub.config.validation import compile_config
from hub.core import names
from hub.core.envelope import change_event_schema
from hub.core.replication import Replication

# Re-exported for callers that predate hub.config.snapshot (the hub's process wiring).
__all__ = ["Desired", "SchemaSpec", "TopicSpec", "desired_state"]

DAY_MS = 24 * 3600 * 1000
# A delivery topic is read by one subscriber's sidecar, in order: one partition carries it unless the
# subscription asks for more (delivery.partitions). At Pudong's 10,000 subscriptions the hub's source
# partition count here would triple a cluster's partitions for nothing (README: "How much one hub carries").
DELIVERY_PARTITIONS = 1


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str]
    purpose: str


@dataclass(frozen=True)
class SchemaSpec:
    subject: str
    schema: dict[str, Any]
    purpose: str


@dataclass
class Desired:
    topics: dict[str, TopicSpec] = field(default_factory=dict)
    schemas: dict[str, SchemaSpec] = field(default_factory=dict)
    snapshots: dict[str, bytes] = field(default_factory=dict)  # hub -> canonical JSON of its config

    def add_topic(self, spec: TopicSpec) -> None:
        self.topics.setdefault(spec.name, spec)

    def add_schema(self, spec: SchemaSpec) -> None:
        self.schemas.setdefault(spec.subject, spec)


COMPACTED = {"cleanup.policy": "compact"}


def desired_state(cfg: ConfigDir, replication: Replication | None = None) -> Desired:
    """Everything `apply` would create or update for ``cfg``.

    ``replication``: the cluster's (hub.core.replication); its min.insync.replicas goes on every topic.

    The delivery schemas come from ``compile_config``, the check a hub runs on what apply publishes: a
    config a hub would refuse never reaches the cluster.

    Raises:
        ConfigError: ``cfg`` does not validate (every problem with file and line).
    """
    compiled = compile_config(cfg)
    out = Desired()
    partitions = max((h.partitions for h in cfg.hubs.values()), default=3)
    dead_letter = schemas.load("hub/dead_letter.avsc")
    out.add_topic(TopicSpec(names.SCHEMAS_TOPIC, 1, dict(COMPACTED), "schema registry storage"))
    for dept in cfg.departments.values():
        dlq = names.dead_letter_topic(dept.id)
        out.add_topic(TopicSpec(dlq, 1, {"retention.ms": str(30 * DAY_MS)}, f"dead letters of {dept.id}"))
        out.add_schema(SchemaSpec(f"{dlq}-value", dead_letter, f"dead letters of {dept.id}"))
        out.add_topic(
            TopicSpec(names.position_topic(dept.id), 1, dict(COMPACTED), f"source positions of {dept.id}")
        )
        out.add_topic(
            TopicSpec(names.backlog_topic(dept.id), 1, dict(COMPACTED), f"backlog reports of {dept.id}")
        )
    for code, res in cfg.resources.items():
        src = names.source_topic(res.owner, code)
        out.add_topic(TopicSpec(src, partitions, dict(COMPACTED), f"changes of {code} ({res.share.value})"))
        schema = cfg.schemas.get(code)
        if schema is not None:
            out.add_schema(
                SchemaSpec(f"{src}-value", change_event_schema(code, schema), f"change events of {code}")
            )
    for hub in cfg.hubs.values():
        dlq = names.dead_letter_topic(hub.name)
        out.add_topic(
            TopicSpec(
                names.audit_topic(hub.name), 1, {"retention.ms": "-1"}, f"disclosure audit of {hub.name}"
            )
        )
        out.add_topic(
            TopicSpec(dlq, 1, {"retention.ms": str(30 * DAY_MS)}, f"dead letters of hub {hub.name}")
        )
        out.add_schema(SchemaSpec(f"{dlq}-value", dead_letter, f"dead letters of hub {hub.name}"))
        out.add_topic(
            TopicSpec(names.config_topic(hub.name), 1, dict(COMPACTED), f"applied config of {hub.name}")
        )
        # The hub's state store changelog: one partition per source partition number (state.changelog).
        out.add_topic(
            TopicSpec(
                names.state_topic(hub.name), hub.partitions, dict(COMPACTED), f"state store of {hub.name}"
            )
        )
        out.snapshots[hub.name] = config_snapshot(cfg, hub.name)
    for sid, sub in cfg.subscriptions.items():
        dlv = names.delivery_topic(sub.hub, sid)
        retention = sub.delivery.retention_ms if sub.delivery.retention_ms is not None else 7 * DAY_MS
        out.add_topic(
            TopicSpec(
                dlv,
                sub.delivery.partitions or DELIVERY_PARTITIONS,
                {"retention.ms": str(retention)},
                f"deliveries of {sid} to {sub.subscriber}",
            )
        )
        schema = compiled.delivery_schema(sid)
        if schema is not None:
            out.add_schema(SchemaSpec(f"{dlv}-value", schema, f"deliveries of {sid}"))
    if replication is not None and replication.topic_configs():
        out.topics = {
            name: replace(spec, configs={**replication.topic_configs(), **spec.configs})
            for name, spec in out.topics.items()
        }
    return out
