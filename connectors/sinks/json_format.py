"""The JSON shape of a delivery, shared by the webhook and JSON-lines sinks.

    {"event_id", "subscription", "policy_version", "resource", "op", "key", "seq",
     "source_commit_ts_ms", "topic", "partition", "offset", "data"}

Avro values without a JSON type are written as: date/time/timestamp -> ISO 8601 text, decimal -> text,
bytes/fixed -> base64 text, uuid -> text.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Sequence
from typing import Any

from connectors.sinks.base import Delivery


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for the Python types fastavro decodes Avro logical types into."""
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def delivery_object(delivery: Delivery) -> dict[str, Any]:
    """The JSON object of one delivery (values still Python; serialize with ``json_default``)."""
    return {
        "event_id": delivery.event_id,
        "subscription": delivery.subscription,
        "policy_version": delivery.policy_version,
        "resource": delivery.resource,
        "op": delivery.op,
        "key": delivery.key,
        "seq": delivery.seq,
        "source_commit_ts_ms": delivery.source_commit_ts_ms,
        "topic": delivery.topic,
        "partition": delivery.partition,
        "offset": delivery.offset,
        "data": delivery.data,
    }


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as is (Chinese names stay readable in files)."""
    return json.dumps(value, default=json_default, ensure_ascii=False, separators=(",", ":"))


def delivery_lines(batch: Sequence[Delivery]) -> str:
    """One JSON object per line for every delivery of ``batch``, each line ending in a newline."""
    return "".join(dumps(delivery_object(d)) + "\n" for d in batch)
