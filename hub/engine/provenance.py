"""Whose event is it: a source topic carries only events of the department that owns its resource.

``xhub.src.<dept>.<resource>`` is written by ``<dept>``'s sidecar (Kafka ACLs say so, when the broker
enforces them); the hub checks it again on every record, so an event that names another department as
its source (a misconfigured sidecar, or a party that could write the topic) is dead-lettered instead of
being delivered as that department's data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.core import names
from hub.core.errors import InvalidRecord

WRONG_DEPARTMENT = "wrong_department"
_SHOWN_MAX = 64  # characters of a claimed department quoted in the reason (it is the writer's text)


def topic_owner(topic: str) -> str | None:
    """The department that owns the resource of source topic ``topic`` (None: not a source topic)."""
    parts = topic.split(".")
    if len(parts) != 4 or parts[0] != names.PREFIX or parts[1] != "src":
        return None
    return parts[2]


def wrong_department(topic: str, event: Mapping[str, Any]) -> InvalidRecord | None:
    """Why ``event``, read from ``topic``, is not its owner's; None when its source is the owner."""
    owner = topic_owner(topic)
    source = event.get("source")
    claimed = source.get("dept") if isinstance(source, Mapping) else None
    if owner is None or claimed == owner:
        return None
    shown = str(claimed)[:_SHOWN_MAX]
    return InvalidRecord(
        WRONG_DEPARTMENT,
        f'event from department "{shown}" on topic {topic}, whose resource department "{owner}" owns',
        field="source.dept",
    )
