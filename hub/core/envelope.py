"""The change event: one Avro value schema per source topic, generated from the resource schema.

    event_id (uuid), resource (catalog code), op (c/u/d/r), key (business key), seq (per key, monotonic at
    the source), source {dept, system, commit_ts_ms}, published_ts_ms, data (the record; null on delete)

The schema is derived, never hand-copied, so a resource schema change flows into its events. The Kafka
message key is the business key as UTF-8 (what compaction and per-key ordering need).
"""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import schemas

Op = Literal["c", "u", "d", "r"]
EVENT_NAMESPACE = "gov.xhub.event"


def change_event_schema(
    resource_code: str, resource_schema: dict[str, Any], *, name: str | None = None
) -> dict[str, Any]:
    """Build the change-event value schema of one resource.

    Args:
        resource_code: catalog code, e.g. ``PD-CRD-0001``; written into the schema's doc.
        resource_schema: the resource's Avro record schema (JSON dict).
        name: record name of the event; defaults to ``<ResourceName>Change``.
    """
    data_schema = copy.deepcopy(resource_schema)
    event_name = name or f"{data_schema['name']}Change"
    return {
        "type": "record",
        "name": event_name,
        "namespace": EVENT_NAMESPACE,
        "doc": f"Change event of resource {resource_code}: {resource_schema.get('doc', '')}".strip(),
        "fields": [
            {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "resource", "type": "string", "doc": "catalog code (一数一码)"},
            {"name": "op", "type": schemas.load("hub/op.avsc")},
            {"name": "key", "type": "string", "doc": "business key"},
            {"name": "seq", "type": "long", "doc": "per-key sequence, monotonic at the source"},
            {"name": "source", "type": schemas.load("hub/source_info.avsc")},
            {"name": "published_ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "data", "type": ["null", data_schema], "default": None},
        ],
    }


def key_bytes(key: str) -> bytes:
    """The Kafka message key of a business key."""
    return key.encode("utf-8")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class ChangeEvent:
    """One change of one record at its source, as carried on xhub.src.* topics."""

    resource: str
    op: Op
    key: str
    seq: int
    dept: str
    system: str
    commit_ts_ms: int
    data: dict[str, Any] | None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    published_ts_ms: int = field(default_factory=now_ms)

    def to_avro(self) -> dict[str, Any]:
        """The value to serialize with :func:`change_event_schema` (timestamps as int millis)."""
        return {
            "event_id": self.event_id,
            "resource": self.resource,
            "op": self.op,
            "key": self.key,
            "seq": self.seq,
            "source": {"dept": self.dept, "system": self.system, "commit_ts_ms": self.commit_ts_ms},
            "published_ts_ms": self.published_ts_ms,
            "data": self.data,
        }

    @classmethod
    def from_avro(cls, value: dict[str, Any]) -> ChangeEvent:
        """Rebuild from a decoded value. Accepts timestamps decoded as datetimes or as int millis."""
        source = value["source"]
        return cls(
            resource=value["resource"],
            op=value["op"],
            key=value["key"],
            seq=value["seq"],
            dept=source["dept"],
            system=source["system"],
            commit_ts_ms=_millis(source["commit_ts_ms"]),
            data=value["data"],
            event_id=str(value["event_id"]),
            published_ts_ms=_millis(value["published_ts_ms"]),
        )


def _millis(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000)
