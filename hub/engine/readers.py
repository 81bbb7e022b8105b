"""Source records are read as the catalog has them: the writer's schema resolved to the catalog schema.

A department may evolve its schema in a way the registry accepts (a new optional field, a new enum
symbol); its records then carry the new writer schema id. The plans of a hub are compiled from the
catalog schema (``PolicySet.schemas``), so a record decoded as written could hold a value no delivery
schema knows, and the delivery encode would fail. The hub therefore reads every source record with Avro
schema resolution to the change-event schema of the catalog resource its topic carries: fields the
catalog does not know are skipped, fields it added get their defaults, and a value that cannot be
resolved (a symbol the catalog's enum lacks) is an ``InvalidRecord`` of reason ``schema_mismatch``,
which becomes a dead letter while the stream goes on.

Logical types (dates, timestamps, decimals) are left as their Avro values (days, millis, bytes) when no
plan of the resource needs them converted: the hub re-encodes them unchanged, and fastavro's datetime /
date / Decimal round trip per value was a measured hot spot. Row filters read temporal fields as ISO text
from either form; a value mask on a logical field (a date generalised to its year, a pseudonym of a
date) or a filter on a decimal or uuid field needs the converted value, so its resource is read as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.core.envelope import change_event_schema
from hub.engine.policy_set import PolicySet
from hub.engine.provenance import wrong_department
from hub.engine.records import Serde
from hub.policy.plan import DeliveryPlan

__all__ = ["SourceReaders"]


class SourceReaders:
    """Decodes the records of each source topic with the catalog's reader schema of its resource.

    Args:
        serde: the worker's serde (it caches the resolution per writer schema id and reader schema).
        policies: the policy set in force; call :meth:`update` with each new one.
    """

    def __init__(self, serde: Serde, policies: PolicySet) -> None:
        self.serde = serde
        self._by_resource: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # code -> (catalog, reader)
        self._by_topic: dict[str, dict[str, Any] | None] = {}
        self._logical: dict[str, bool] = {}  # topic -> its records need logical types converted
        self.update(policies)

    def update(self, policies: PolicySet) -> None:
        """Follow a new policy set; reader schemas of unchanged resources stay the same objects (the
        serde caches by identity)."""
        kept: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for code, schema in policies.schemas.items():
            known = self._by_resource.get(code)
            kept[code] = known if known is not None and known[0] == schema else _reader(code, schema)
        self._by_resource = kept
        topics: dict[str, dict[str, Any] | None] = {}
        logical: dict[str, bool] = {}
        for topic, plans in policies.by_topic.items():
            entry = kept.get(plans[0].resource) if plans else None
            topics[topic] = entry[1] if entry is not None else None
            logical[topic] = entry is None or any(_needs_logical(entry[0], plan) for plan in plans)
        self._by_topic = topics
        self._logical = logical

    def reader_schema(self, topic: str) -> dict[str, Any] | None:
        """The change-event schema records of ``topic`` are read as (None: as written)."""
        return self._by_topic.get(topic)

    def decode(self, topic: str, value: bytes) -> dict[str, Any]:
        """The change event of one record of ``topic``, resolved to the catalog's schema.

        Raises:
            InvalidRecord: ``bad_wire_format``, ``unknown_schema_id``, ``schema_mismatch``,
                ``undecodable`` or ``wrong_department`` (the record goes to the dead letters).
            RegistryUnavailable: the writer schema could not be fetched (retry; the record is not at fault).
        """
        _, event = self.serde.decode(value, self._by_topic.get(topic), logical=self._logical.get(topic, True))
        wrong = wrong_department(topic, event)  # only the owner publishes its resource (live and backfill)
        if wrong is not None:
            raise wrong
        return event


def _reader(code: str, schema: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    catalog = dict(schema)
    return catalog, change_event_schema(code, catalog)


_TEMPORAL = frozenset(
    {
        "date",
        "time-millis",
        "time-micros",
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
    }
)


def _needs_logical(schema: Mapping[str, Any], plan: DeliveryPlan) -> bool:
    """Whether ``plan`` needs the logical values of records of ``schema`` (see the module's docstring)."""
    kinds = {f["name"]: _logical_type(f["type"]) for f in schema.get("fields", [])}
    for rule in plan.rules:
        if rule.mask is not None and rule.mask.kind != "drop" and kinds.get(rule.name) is not None:
            return True
    filtered = plan.row_filter.fields if plan.row_filter is not None else frozenset()
    return any(kinds.get(name) not in _TEMPORAL and kinds.get(name) is not None for name in filtered)


def _logical_type(avro: Any) -> str | None:
    """The logical type of a field's type (its non-null branch); "?" when nested types may hold one."""
    if isinstance(avro, list):
        found = {_logical_type(branch) for branch in avro if branch != "null"}
        found.discard(None)
        return found.pop() if len(found) == 1 else ("?" if found else None)
    if isinstance(avro, dict):
        logical = avro.get("logicalType")
        if isinstance(logical, str):
            return logical
        if avro.get("type") in {"record", "array", "map"}:
            return "?"  # values inside may be logical: count it as needing conversion when masked
        return None
    if isinstance(avro, str) and avro not in _PRIMITIVES:
        return "?"  # a named type defined elsewhere: it may be a record holding logical values
    return None


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
