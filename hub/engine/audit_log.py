"""The worker's disclosure audit: entries built in one place, hash-chained, sent in the open transaction.

Every delivery, refusal and policy change of a subscription becomes one entry of the worker's chain,
keyed (HMAC) with the hub's audit key. The entries of a transaction are appended to the chain one by one
and sent as ONE Kafka record of ``xhub.audit.<hub>`` (an ``AuditBatch``, keyed by the chain; split only
when it would outgrow a Kafka request): a record per entry cost the hub a third of its throughput. An
aborted transaction restores the chain (see transaction.py), so the committed entries stay gap-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kafka import KafkaProducer

import schemas
from hub.audit.chain import AuditChain, check_key, key_hash
from hub.core import names
from hub.core.envelope import now_ms
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.engine.records import Serde, SourceEvent
from hub.policy.plan import DeliveryPlan

log = get_logger("engine")

MAX_BATCH_ENTRIES = 1000  # entries per audit record: well under Kafka's 1 MB request at ~400 bytes each
MAX_BATCH_BYTES = 900_000  # an encoded batch above this is split (long field lists, many subscriptions)


class AuditLog:
    """Builds and sends the audit entries of one worker (chain = its transactional id)."""

    def __init__(
        self, hub: str, transactional_id: str, serde: Serde, secret: bytes, *, audit_key: bytes
    ) -> None:
        self.hub = hub
        self.topic = names.audit_topic(hub)
        self.chain = AuditChain(transactional_id, check_key(audit_key, f"hub {hub}"))
        self._serde = serde
        self._secret = secret
        self._subject = f"{self.topic}-value"
        self._schema = schemas.load("hub/audit_batch.avsc")
        self._log = log.bind(hub=hub)

    def resume(self, kafka: KafkaSettings) -> None:
        """Continue the chain from its last committed entry in the audit topic."""
        from hub.audit.reader import last_entry_of_chain

        found = last_entry_of_chain(kafka, self.topic, self.chain.chain, self._serde)
        if found is not None:
            self.chain.restore((int(found["seq"]), str(found["hash"])))
        self._log.info("audit_chain_resumed", chain=self.chain.chain, seq=self.chain.seq)

    # -- entries -----------------------------------------------------------------------------------
    def delivered(
        self, plan: DeliveryPlan, source: SourceEvent, fields: Sequence[str], at: tuple[str, int, int]
    ) -> dict[str, Any]:
        """A delivery, once its (topic, partition, offset) ``at`` is known."""
        entry = self._entry("delivered", plan, now_ms(), source)
        entry["fields"] = list(fields)
        entry["delivered_topic"], entry["delivered_partition"], entry["delivered_offset"] = at
        return entry

    def refused(self, plan: DeliveryPlan, source: SourceEvent, reason: str) -> dict[str, Any]:
        entry = self._entry("refused", plan, source.now, source)
        entry["reason"] = reason
        return entry

    def policy_changed(
        self, plan: DeliveryPlan, now: int, fields: Iterable[str], reason: str
    ) -> dict[str, Any]:
        entry = self._entry("policy_changed", plan, now, None)
        entry["fields"] = list(fields)
        entry["reason"] = reason
        return entry

    def _entry(self, kind: str, plan: DeliveryPlan, now: int, source: SourceEvent | None) -> dict[str, Any]:
        event = source.event if source is not None else None
        return {
            "kind": kind,
            "ts_ms": now,
            "hub": self.hub,
            "subscription": plan.subscription,
            "subscriber": plan.subscriber,
            "resource": plan.resource,
            "policy_version": plan.version,
            "event_id": source.event_id if source is not None else None,
            "key_hash": key_hash(self._secret, plan.resource, event["key"]) if event else None,
            "op": event["op"] if event else None,
            "fields": [],
            "delivered_topic": None,
            "delivered_partition": None,
            "delivered_offset": None,
            "source": source.record.origin if source is not None else None,
            "reason": None,
        }

    # -- sending -----------------------------------------------------------------------------------
    def send(self, producer: KafkaProducer, entries: Iterable[dict[str, Any]]) -> None:
        """Append ``entries`` to the chain and send them as one record (inside the caller's transaction)."""
        chained = [self.chain.append(entry) for entry in entries]
        for start in range(0, len(chained), MAX_BATCH_ENTRIES):
            self._send_batch(producer, chained[start : start + MAX_BATCH_ENTRIES])

    def _send_batch(self, producer: KafkaProducer, entries: list[dict[str, Any]]) -> None:
        batch = {"chain": self.chain.chain, "first_seq": entries[0]["seq"], "entries": entries}
        value = self._serde.encode(self._subject, self._schema, batch)
        if len(value) > MAX_BATCH_BYTES and len(entries) > 1:
            half = len(entries) // 2
            self._send_batch(producer, entries[:half])
            self._send_batch(producer, entries[half:])
            return
        producer.send(self.topic, key=self.chain.chain.encode(), value=value)
