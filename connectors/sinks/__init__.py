"""Sinks: apply deliveries (xhub.dlv.<hub>.<subscription>) to a department's systems.

``SqlSink`` (SQLite, PostgreSQL; exactly once), ``WebhookSink`` (at least once, idempotency keys) and
``JsonlSink`` (exactly once in its file). Each module's docstring states its guarantee. The sink loop
(``connectors.runtime.sink_loop``) feeds them decoded ``Delivery`` batches.
"""

from __future__ import annotations

from connectors.sinks.base import (
    DeadLetters,
    Delivery,
    ListDeadLetters,
    ListedDeadLetter,
    PartitionProgress,
    Sink,
    progress_of,
)
from connectors.sinks.config import SINK_CONFIG_ADAPTER, SinkConfig, build_sink
from connectors.sinks.errors import MissingDependency, OffsetConflict, SinkConfigError, SinkUnavailable
from connectors.sinks.jsonl import JsonlSink, JsonlSinkConfig
from connectors.sinks.sql import SqlSink, SqlSinkConfig
from connectors.sinks.webhook import WebhookSink, WebhookSinkConfig

__all__ = [
    "SINK_CONFIG_ADAPTER",
    "DeadLetters",
    "Delivery",
    "JsonlSink",
    "JsonlSinkConfig",
    "ListDeadLetters",
    "ListedDeadLetter",
    "MissingDependency",
    "OffsetConflict",
    "PartitionProgress",
    "Sink",
    "SinkConfig",
    "SinkConfigError",
    "SinkUnavailable",
    "SqlSink",
    "SqlSinkConfig",
    "WebhookSink",
    "WebhookSinkConfig",
    "build_sink",
    "progress_of",
]
