"""Where a hub link stands on the district's delivery topic: the next offset to read, per partition.

The position travels as the source position of the sidecar runtime, so it is written to
``xhub.pos.<dept>`` in the CITY cluster in the same Kafka transaction as the records carried: after a
crash the link resumes exactly after the last records that reached the city. The district cluster keeps
no trace of the link's progress (no consumer group), so the link needs no write access there.

A partition absent from the position has never been read: the link reads it from its beginning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.core.errors import ConfigError, FatalError


@dataclass(frozen=True, slots=True)
class LinkPosition:
    """The next offset to read per partition of ``topic`` (the district delivery topic)."""

    topic: str
    offsets: Mapping[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, stored: Any, topic: str, *, source: str) -> LinkPosition:
        """The position a source committed (None: never committed), checked against its topic.

        Raises:
            ConfigError: the stored position is on another topic (the source now names another
                subscription or hub): carrying on would skip or repeat records, so an operator decides.
            FatalError: the stored value is not a link position (someone else wrote under this key).
        """
        if stored is None:
            return cls(topic)
        if not isinstance(stored, dict) or not isinstance(stored.get("offsets"), dict):
            raise FatalError(f'source "{source}": stored position is not a hub link position')
        if stored.get("topic") != topic:
            raise ConfigError(
                f'source "{source}" stored its position on topic {str(stored.get("topic"))[:200]}, but its '
                f"config now names {topic}: give the source a new name to start that topic from its "
                "beginning, or restore the old hub and subscription"
            )
        try:
            offsets = {int(p): int(o) for p, o in stored["offsets"].items()}
        except (TypeError, ValueError) as exc:
            raise FatalError(f'source "{source}": stored offsets are not numbers') from exc
        return cls(topic, offsets)

    def to_json(self) -> dict[str, Any]:
        """The JSON the runtime stores (partition numbers as strings: JSON object keys)."""
        return {"topic": self.topic, "offsets": {str(p): o for p, o in sorted(self.offsets.items())}}

    def advanced(self, read: Mapping[int, int]) -> LinkPosition:
        """This position after the records up to ``read`` (partition -> last offset read) were carried."""
        offsets = dict(self.offsets)
        for partition, last in read.items():
            offsets[partition] = max(offsets.get(partition, 0), last + 1)
        return LinkPosition(self.topic, offsets)
