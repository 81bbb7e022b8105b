"""Lag in seconds: the source commit time an event carries (``source.commit_ts_ms``).

Delivery envelopes carry the same field, so one reading serves both lags. An age from the commit time, not
interpolated from offset rates, never gives NaN or false alarms on idle topics.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from hub.core.errors import HubError
from hub.core.log import get_logger

log = get_logger("monitor.lag")


class Decoder(Protocol):
    """What reads an event envelope (``hub.core.registry.serde.AvroSerde``)."""

    def decode(self, data: bytes, reader_schema: dict[str, Any] | None = None) -> tuple[int, Any]: ...


def millis(value: Any) -> int | None:
    """Epoch millis of an Avro timestamp-millis value (fastavro gives a datetime, or an int)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return None


def source_commit_ms(event: Any) -> int | None:
    """``source.commit_ts_ms`` of a decoded envelope, or None when it has none."""
    if not isinstance(event, Mapping):
        return None
    source = event.get("source")
    return millis(source.get("commit_ts_ms")) if isinstance(source, Mapping) else None


class CommitTimes:
    """Source commit times of raw record values; an undecodable topic is logged once, not per record."""

    def __init__(self, decoder: Decoder | None) -> None:
        self.decoder = decoder
        self._undecodable: set[str] = set()

    def of(self, topic: str, value: bytes | None) -> int | None:
        """The commit time of the event in ``value``; None without a decoder or when it cannot be read."""
        if self.decoder is None or not value:
            return None
        try:
            _, event = self.decoder.decode(value)
        except HubError as exc:
            if topic not in self._undecodable:
                self._undecodable.add(topic)
                log.warning("lag_event_undecodable", topic=topic, error=f"{type(exc).__name__}: {exc}")
            return None
        return source_commit_ms(event)
