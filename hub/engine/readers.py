"""Source records are read as the catalog has them: the writer's schema resolved to the catalog schema.

A department may evolve its schema in a way the registry accepts (a new optional field, a new enum
symbol); its records then carry the new writer schema id. The plans of a hub are compiled from the
catalog schema (``PolicySet.schemas``), so a record decoded as written could hold a value no delivery
schema knows, and the delivery encode would fail. The hub therefore reads every source record with Avro
schema resolution to the change-event schema of the catalog resource its topic carries: fields the
catalog does not know are skipped, fields it added get their defaults, and a value that cannot be
resolved (a symbol the catalog's enum lacks) is an ``InvalidRecord`` of reason ``schema_mismatch``,
which becomes a dead letter while the stream goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.core.envelope import change_event_schema
from hub.engine.policy_set import PolicySet
from hub.engine.provenance import wrong_department
from hub.engine.records import Serde

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
        for topic, plans in policies.by_topic.items():
            entry = kept.get(plans[0].resource) if plans else None
            topics[topic] = entry[1] if entry is not None else None
        self._by_topic = topics

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
        _, event = self.serde.decode(value, self._by_topic.get(topic))
        wrong = wrong_department(topic, event)  # only the owner publishes its resource (live and backfill)
        if wrong is not None:
            raise wrong
        return event


def _reader(code: str, schema: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    catalog = dict(schema)
    return catalog, change_event_schema(code, catalog)
