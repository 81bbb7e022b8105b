"""From a captured change to Kafka records: validate, build the change event, encode; or dead-letter it.

Everything per resource is prepared once (topic, subject, event schema, validator); per change there is
one validation walk, one Avro encoding and a few dictionary lookups.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.runtime.publisher import OutRecord
from connectors.sources.base import Captured, ResourceSpec
from connectors.validation import RecordValidator
from hub.core.dead_letters import DeadLetter, DeadLetterEncoder
from hub.core.envelope import ChangeEvent, change_event_schema, key_bytes
from hub.core.errors import InvalidRecord
from hub.core.names import source_topic
from hub.core.registry.serde import AvroSerde

UNKNOWN_RESOURCE = "unknown_resource"
MISSING_KEY = "missing_key"


@dataclass(slots=True)
class _Output:
    code: str
    topic: str
    subject: str
    schema: dict[str, Any]
    validator: RecordValidator
    key_field: str


class EventBuilder:
    """Turns the captured changes of one source into change-event and dead-letter records.

    Args:
        dept: the department id (source.dept of every event, owner of dead letters).
        system: the business system (source.system of every event).
        resources: the resources this source publishes.
        serde: encoder bound to the schema registry.
        max_record_bytes: larger records are dead-lettered as oversize.
    """

    def __init__(
        self,
        *,
        dept: str,
        system: str,
        resources: Mapping[str, ResourceSpec],
        serde: AvroSerde,
        max_record_bytes: int,
    ) -> None:
        self.dept = dept
        self.system = system
        self.serde = serde
        self.dead_letters = DeadLetterEncoder(dept, serde)
        self._outputs: dict[str, _Output] = {}
        for code, spec in resources.items():
            topic = source_topic(dept, code)
            self._outputs[code] = _Output(
                code=code,
                topic=topic,
                subject=f"{topic}-value",
                schema=change_event_schema(code, spec.schema),
                validator=RecordValidator(
                    spec.schema,
                    spec.key_field,
                    spec.key_format,
                    max_bytes=max_record_bytes,
                    checks=spec.checks,
                ),
                key_field=spec.key_field,
            )

    def topics(self) -> list[str]:
        """The source topics this builder writes."""
        return [o.topic for o in self._outputs.values()]

    def prepare(self) -> None:
        """Register the event and dead-letter schemas now, so a registry problem shows at start-up."""
        for out in self._outputs.values():
            self.serde.schema_id(out.subject, out.schema)
        self.serde.schema_id(self.dead_letters.subject, self.dead_letters.schema)

    def event(self, change: Captured) -> OutRecord:
        """The change event record of ``change``.

        Raises:
            InvalidRecord: the change is bad (it is to be dead-lettered).
            RetriableError: the registry did not answer.
        """
        if change.rejected is not None:
            raise change.rejected
        out = self._outputs.get(change.resource)
        if out is None:
            raise InvalidRecord(
                UNKNOWN_RESOURCE,
                f'{change.origin}: resource "{change.resource[:64]}" is not published by this source',
                field="resource",
            )
        data: dict[str, Any] | None
        if change.op == "d":
            key = change.key
            if not key:
                raise InvalidRecord(
                    MISSING_KEY, f"{change.origin}: delete without a business key", field=out.key_field
                )
            data = None
        else:
            raw = change.data
            if isinstance(raw, bytes | bytearray):
                data = out.validator.validate_json_bytes(bytes(raw))
            elif raw is None:
                raise InvalidRecord(
                    "missing_field", f"{change.origin}: op {change.op} without a record", field=None
                )
            else:
                data = out.validator.validate(raw)
            key = str(data[out.key_field])
        event = ChangeEvent(
            resource=out.code,
            op=change.op,
            key=key,
            seq=change.seq,
            dept=self.dept,
            system=self.system,
            commit_ts_ms=change.commit_ts_ms,
            data=data,
        )
        value = self.serde.encode(out.subject, out.schema, event.to_avro())
        out.validator.check_encoded_size(value)
        return OutRecord(out.topic, key_bytes(key), value, list(change.headers) or None)

    def dead_letter(self, change: Captured, problem: InvalidRecord) -> OutRecord:
        """The dead-letter record of a bad change: reason, detail, field, origin and the original bytes."""
        original = change.original
        if original is None:
            original = problem.original if problem.original is not None else _original_of(change)
        resource = change.resource if change.resource in self._outputs else (change.resource[:64] or None)
        letter = DeadLetter(
            owner=self.dept,
            reason=problem.reason,
            detail=problem.detail,
            origin=change.origin,
            original=original,
            field=problem.field,
            resource=resource,
        )
        encoded = self.dead_letters.encode(letter)
        return OutRecord(self.dead_letters.topic, None, encoded, letter.headers())


def _original_of(change: Captured) -> bytes:
    data = change.data
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if data is None:
        return json.dumps({"op": change.op, "key": change.key}, ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
    return json.dumps(data, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
