"""Topic names: "xhub." + family + parts (DESIGN.md). One place builds them, so no one mistypes one."""

from __future__ import annotations

import re

PREFIX = "xhub"
SCHEMAS_TOPIC = "_xhub_schemas"
_PART = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _join(family: str, *parts: str) -> str:
    for part in parts:
        if not _PART.match(part):
            raise ValueError(f"topic part {part!r} must be lowercase letters, digits, '-' or '_'")
    return ".".join((PREFIX, family, *parts))


def source_topic(dept: str, resource: str) -> str:
    """Change events of ``resource`` published by department ``dept`` (compacted by business key)."""
    return _join("src", dept, resource.lower())


def delivery_topic(hub: str, subscription: str) -> str:
    """Projected, masked events for one subscription, written by ``hub``."""
    return _join("dlv", hub, subscription)


def audit_topic(hub: str) -> str:
    """The hash-chained disclosure audit of ``hub``."""
    return _join("audit", hub)


def dead_letter_topic(owner: str) -> str:
    """Dead letters of a department sidecar or a hub (both are named owners)."""
    return _join("dlq", owner)


def position_topic(dept: str) -> str:
    """Source positions of a department sidecar, written in the same transaction as its events."""
    return _join("pos", dept)


def owner_of(topic: str) -> str | None:
    """The department or hub an ``xhub.<family>.<owner>[.<more>]`` topic belongs to (None: not ours)."""
    parts = topic.split(".")
    return parts[2] if len(parts) >= 3 and parts[0] == PREFIX else None


def backlog_topic(dept: str) -> str:
    """Backlog reports of a department sidecar (rows not yet published, their age): read by the hubs that
    serve its resources and by operators. Not on ``xhub.pos``: a position can hold a business key."""
    return _join("backlog", dept)


def config_topic(hub: str) -> str:
    """Config snapshots applied to ``hub`` (``xhub apply``); hub workers follow it for live policy changes."""
    return _join("cfg", hub)


def state_topic(hub: str) -> str:
    """Compacted changelog of ``hub``'s state store, written in the same transaction as its deliveries."""
    return _join("state", hub)


# Consumer groups and transactional ids. Kafka ACLs are granted on these names (by prefix), so they are
# built here, beside the topic names, and nowhere else.


def hub_group(hub: str) -> str:
    """The consumer group shared by all workers of ``hub``."""
    return f"{PREFIX}-hub-{hub}"


def hub_transactional_id(hub: str, worker_id: int) -> str:
    """The transactional id (and static group instance id) of one hub worker."""
    return f"{hub_group(hub)}-{worker_id}"


def hub_backfill_transactional_id(hub: str, worker_id: int) -> str:
    """The transactional id of one hub worker's backfill task (its own producer, beside the worker's)."""
    return f"{hub_transactional_id(hub, worker_id)}-backfill"


def source_transactional_id(dept: str, source: str) -> str:
    """The transactional id of one source of a department sidecar (fences a second copy of it)."""
    return f"{PREFIX}-src-{dept}-{source}"


def sink_group(dept: str, sink: str) -> str:
    """The default consumer group of one sink of a department sidecar."""
    return f"{PREFIX}-sink-{dept}-{sink}"


def sink_instance_id(dept: str, sink: str) -> str:
    """The static group-instance id of one sink of a department sidecar.

    A sidecar restarted after a crash rejoins under this id and gets its partitions back at once, instead
    of waiting until the group gives up on the dead member (its session timeout) and rebalances.
    """
    return f"{sink_group(dept, sink)}-member"


def registry_transactional_id(topic: str) -> str:
    """The transactional id shared by every registry writer of ``topic`` (only winners reach the log)."""
    return f"{PREFIX}-registry-{topic}"
