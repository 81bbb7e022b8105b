"""One record of a district delivery topic -> the change the link publishes in the city cluster.

A delivery is a change event (DESIGN.md) projected and masked for the link's subscription. The link
keeps what makes the event the same change: its op, key and seq (so a sink's "an older seq never
overwrites a newer" still holds per key) and the source commit time of the department's original change
(so end-to-end lag counts from that commit, not from the hop). The city event's ``source.dept`` is the
link's department: the city hub accepts on ``xhub.src.<dept>.*`` only events of ``<dept>``. The original
department, its event and the district hop stay in the ``xhub.provenance`` header the district hub
wrote, carried on with the delivery record's position added (``hub.core.provenance``).

Whatever cannot be carried keeps its original Kafka bytes for the dead-letter topic: values that do not
decode with the district registry, values that are not change events, and events whose key is not the
record's key field (a pseudonymised key cannot be compacted as the city's business key).
"""

from __future__ import annotations

from typing import Any

from connectors.sources.base import Captured
from hub.core.dead_letters import NOT_A_CHANGE_EVENT
from hub.core.envelope import now_ms
from hub.core.errors import InvalidRecord
from hub.core.provenance import from_headers
from hub.core.registry.serde import AvroSerde

KEY_MISMATCH = "key_mismatch"
"""Dead-letter reason: the delivered key is not the value of the record's key field."""
_OPS = frozenset("cudr")


def origin_of(record: Any) -> str:
    """Where a record came from, as dead letters name it: ``topic-partition@offset``."""
    return f"{record.topic}-{record.partition}@{record.offset}"


def captured_of(record: Any, serde: AvroSerde, *, resource: str, key_field: str) -> Captured | None:
    """The change one delivered record carries; None for a Kafka tombstone (nothing to carry).

    Args:
        record: a kafka-python ``ConsumerRecord`` of the district delivery topic.
        serde: decodes with the district's schema registry.
        resource: the catalog code the link publishes (names dead letters of undecodable records).
        key_field: the business-key field of that resource.

    Raises:
        RegistryUnavailable: the district registry did not answer (retry; the record is not at fault).
    """
    raw: bytes | None = record.value
    if raw is None:
        return None
    origin = origin_of(record)
    try:
        # Logical types stay Avro values (dates as days, timestamps as millis): passed on, not read.
        _, value = serde.decode(raw, logical=False)
        change = _change(value, raw, origin, key_field)
    except InvalidRecord as problem:
        return Captured(resource, "u", 0, now_ms(), origin, rejected=problem, original=bytes(raw))
    provenance = from_headers(record.headers)
    if provenance is not None:
        change.headers = (provenance.carried_at(origin).header(),)
    return change


def _change(value: Any, raw: bytes, origin: str, key_field: str) -> Captured:
    try:
        op, key, seq = value["op"], str(value["key"]), int(value["seq"])
        commit_ts_ms = int(value["source"]["commit_ts_ms"])
        resource, data = str(value["resource"]), value["data"]
    except (KeyError, TypeError, ValueError) as exc:
        missing = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
        raise InvalidRecord(
            NOT_A_CHANGE_EVENT,
            f"{origin}: not a change event" + (f": field {missing!r} missing" if missing else ""),
            field=str(missing) if missing else None,
        ) from exc
    if op not in _OPS or not isinstance(data, dict | None):
        raise InvalidRecord(NOT_A_CHANGE_EVENT, f"{origin}: not a change event (op or data)", field="op")
    if op == "d":
        return Captured(resource, "d", seq, commit_ts_ms, origin, key=key, original=raw)
    if data is None:
        raise InvalidRecord(NOT_A_CHANGE_EVENT, f"{origin}: op {op} without a record", field="data")
    held = data.get(key_field)
    if held is None or str(held) != key:
        raise InvalidRecord(
            KEY_MISMATCH,
            f'{origin}: the delivered key is not the record\'s key field "{key_field}" '
            "(a pseudonymised or withheld key cannot be the city's business key)",
            field=key_field,
        )
    return Captured(resource, op, seq, commit_ts_ms, origin, data=data, key=key, original=raw)
