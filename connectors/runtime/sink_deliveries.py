"""What a sink loop reads and what it cannot use: delivered bytes -> ``Delivery`` (``DeliveryDecoder``), and
dead letters to the department's xhub.dlq.<dept> (``KafkaDeadLetters``). Used by connectors.runtime.sink_loop.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from connectors.sinks.base import Delivery
from hub.core.dead_letters import NOT_A_CHANGE_EVENT, DeadLetter, DeadLetterEncoder
from hub.core.errors import InvalidRecord, RetriableError
from hub.core.kafka import ensure_topics, make_admin, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.core.registry.serde import AvroSerde

_DLQ_FLUSH_TIMEOUT_S = 30.0


def _millis(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


class DeliveryDecoder:
    """Delivered bytes -> ``Delivery``; the data schema is looked up once per writer schema id."""

    def __init__(self, serde: AvroSerde) -> None:
        self.serde = serde
        self._data_schemas: dict[int, dict[str, Any] | None] = {}

    def data_schema(self, schema_id: int) -> dict[str, Any] | None:
        if schema_id in self._data_schemas:
            return self._data_schemas[schema_id]
        writer = self.serde.client.get_schema(schema_id)
        found: dict[str, Any] | None = None
        if isinstance(writer, dict):
            for field in writer.get("fields", []):
                if field.get("name") != "data":
                    continue
                branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
                found = next((b for b in branches if isinstance(b, dict) and b.get("type") == "record"), None)
        self._data_schemas[schema_id] = found
        return found

    def decode(self, record: Any) -> Delivery:
        """Raises ``InvalidRecord`` (dead-letter it) or ``RetriableError`` (registry down: retry)."""
        raw: bytes = record.value
        schema_id, value = self.serde.decode(raw)
        try:
            source = value["source"]
            headers = {name: bytes(v) for name, v in (record.headers or []) if v is not None}
            subscription = _text(headers.get("xhub.subscription")) or record.topic.rsplit(".", 1)[-1]
            return Delivery(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=str(value["key"]),
                op=str(value["op"]),
                seq=int(value["seq"]),
                event_id=str(value["event_id"]),
                policy_version=_text(headers.get("xhub.policy_version")),
                subscription=subscription,
                data=value["data"],
                source_commit_ts_ms=_millis(source["commit_ts_ms"]),
                headers=headers,
                resource=str(value["resource"]),
                value=raw,
                schema_id=schema_id,
                data_schema=self.data_schema(schema_id),
            )
        except (KeyError, TypeError, ValueError) as exc:
            missing = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
            detail = f"schema id {schema_id} is not a change event"
            raise InvalidRecord(
                NOT_A_CHANGE_EVENT,
                f"{detail}: field {missing!r} missing" if missing else f"{detail} ({type(exc).__name__})",
                field=str(missing) if missing else None,
                original=raw,
            ) from exc


class KafkaDeadLetters:
    """Dead letters to xhub.dlq.<dept> (CONTRACTS.md): Avro ``DeadLetter`` with the original bytes.

    ``publish`` queues (async send); ``flush`` waits for every send and raises ``RetriableError`` when
    one failed, so callers commit nothing before their dead letters are stored.
    """

    def __init__(self, kafka: KafkaSettings, serde: AvroSerde, dept: str, client_id: str) -> None:
        self.kafka = kafka
        self.serde = serde
        self.dept = dept
        self._encoder = DeadLetterEncoder(dept, serde)
        self.topic = self._encoder.topic
        self.client_id = client_id
        self._producer: KafkaProducer | None = None
        self._pending: list[Any] = []
        self.published = 0
        """Dead letters acknowledged by the brokers (from decoding and from the sink)."""
        self._log = get_logger("sink_loop.dlq", topic=self.topic)

    def _ensure_producer(self) -> KafkaProducer:
        if self._producer is None:
            try:
                admin = make_admin(self.kafka, f"{self.client_id}-admin")
                try:
                    ensure_topics(admin, {self.topic: {}}, partitions=1)
                finally:
                    admin.close()
            except (KafkaError, RetriableError) as exc:
                # Creating topics may be the operator's job (ACLs); the send below tells if it exists.
                self._log.warning("dlq_topic_not_ensured", error=f"{type(exc).__name__}: {exc}")
            self._producer = make_producer(self.kafka, f"{self.client_id}-dlq")
        return self._producer

    def publish(self, delivery: Delivery, reason: str, detail: str, *, field: str | None = None) -> None:
        """Queue a dead letter for a decoded delivery a sink could not apply."""
        self.publish_raw(
            topic=delivery.topic,
            partition=delivery.partition,
            offset=delivery.offset,
            key=delivery.key.encode("utf-8"),
            value=delivery.value,
            reason=reason,
            detail=detail,
            field=field,
            resource=delivery.resource or None,
            subscription=delivery.subscription,
        )

    def publish_raw(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        reason: str,
        detail: str,
        field: str | None = None,
        resource: str | None = None,
        subscription: str | None = None,
    ) -> None:
        """Queue a dead letter for a record as read from Kafka."""
        origin = f"{topic}-{partition}@{offset}"
        letter = DeadLetter(
            owner=self.dept,
            reason=reason,
            detail=detail,
            origin=origin,
            original=value,
            field=field,
            resource=resource,
            subscription=subscription,
        )
        encoded = self._encoder.encode(letter)
        headers = letter.headers()
        try:
            future = self._ensure_producer().send(self.topic, key=key, value=encoded, headers=headers)
        except KafkaError as exc:
            raise RetriableError(
                f"dead letter to {self.topic} not sent: {type(exc).__name__}: {exc}"
            ) from exc
        self._pending.append(future)
        self._log.warning("record_dead_lettered", reason=reason, origin=origin, field=field)

    def flush(self) -> None:
        """Wait until every queued dead letter is acknowledged by the brokers."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        assert self._producer is not None
        try:
            self._producer.flush(timeout=_DLQ_FLUSH_TIMEOUT_S)
            for future in pending:
                future.get(timeout=_DLQ_FLUSH_TIMEOUT_S)
                self.published += 1
        except KafkaError as exc:
            raise RetriableError(
                f"dead letters to {self.topic} not acknowledged: {type(exc).__name__}: {exc}"
            ) from exc

    def close(self) -> None:
        """Flush what is queued (best effort) and close the producer."""
        if self._producer is not None:
            try:
                self._producer.close(timeout=10)
            except KafkaError as exc:
                self._log.warning("dlq_producer_close_failed", error=type(exc).__name__)
            self._producer = None
