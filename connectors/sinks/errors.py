"""Errors of the sinks, grouped by what the sink loop should do about them.

- ``SinkUnavailable`` (retriable): the target (database, web application, disk) did not answer or
  refused the batch as a whole for a transient reason; the loop retries the same batch with backoff.
- ``OffsetConflict`` (retriable): the sink's offset store shows that another process (a zombie member
  of the consumer group, or an earlier attempt whose commit outcome was unknown) already applied past
  the start of this batch; the loop drops the batch and re-seeks to the stored offsets.
- ``SinkConfigError``: a sink config (table name, URL, path) is unusable.
- ``MissingDependency`` (from ``connectors.errors``, shared with the sources): an optional driver is not
  installed; the message names the extra to install.

Reason codes a sink dead-letters with (``xhub.reason`` header on xhub.dlq.<dept>) are listed below.
"""

from __future__ import annotations

from typing import Final

from connectors.errors import MissingDependency
from hub.core.errors import ConfigError, RetriableError

WEBHOOK_FAILED: Final = "webhook_failed"
"""The application did not accept the POST after the last retry (5xx, 408, 429 or no connection)."""
WEBHOOK_REJECTED: Final = "webhook_rejected"
"""The application answered 4xx (other than 408/429): retrying the same body cannot succeed."""
SINK_REJECTED: Final = "sink_rejected"
"""The database refused one row (type, constraint); the rest of the batch was applied."""
NO_DATA: Final = "no_data"
"""An insert, update or snapshot row arrived without ``data`` (or without its data schema)."""
BAD_DATA_SCHEMA: Final = "bad_data_schema"
"""The delivered data schema cannot be a table: not a record, or field names unusable as columns."""


__all__ = [
    "BAD_DATA_SCHEMA",
    "NO_DATA",
    "SINK_REJECTED",
    "WEBHOOK_FAILED",
    "WEBHOOK_REJECTED",
    "MissingDependency",
    "OffsetConflict",
    "SinkConfigError",
    "SinkUnavailable",
]


class SinkConfigError(ConfigError):
    """A sink's configuration cannot work (bad identifier, unsupported DSN, unwritable path)."""


class SinkUnavailable(RetriableError):  # noqa: N818 - reads as the state of the target, by design
    """The sink's target is unreachable or failed transiently; retry the same batch later."""


class OffsetConflict(RetriableError):  # noqa: N818 - reads as the state of the offset store
    """The offset store is ahead of this batch: another writer applied it (or part of it) already.

    Args:
        topic: the topic of the partition in conflict.
        partition: the partition number.
        stored: the next offset the store holds.
        first: the first offset of the batch that was refused.
    """

    def __init__(self, topic: str, partition: int, stored: int | None, first: int) -> None:
        super().__init__(
            f"offset store of {topic}-{partition} is at {stored}, ahead of this batch starting at "
            f"{first}: another writer applied it; re-seeking",
            retry_after=0.0,
        )
        self.topic = topic
        self.partition = partition
        self.stored = stored
        self.first = first
