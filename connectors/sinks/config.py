"""The sink configs as one discriminated union (``type: sql | webhook | jsonl``) and ``build_sink``.

The sidecar config lists its sinks as ``SinkConfig`` values; pydantic picks the model by ``type``.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

from pydantic import Field, TypeAdapter

from connectors.sinks.base import Sink
from connectors.sinks.jsonl import JsonlSink, JsonlSinkConfig
from connectors.sinks.sql import SqlSink, SqlSinkConfig
from connectors.sinks.webhook import WebhookSink, WebhookSinkConfig

SinkConfig: TypeAlias = Annotated[
    SqlSinkConfig | WebhookSinkConfig | JsonlSinkConfig, Field(discriminator="type")
]
"""Any sink's config, told apart by its ``type`` field."""

SINK_CONFIG_ADAPTER: TypeAdapter[SinkConfig] = TypeAdapter(SinkConfig)
"""Validates a plain mapping (``SINK_CONFIG_ADAPTER.validate_python({...})``) into a sink config."""


def build_sink(config: SinkConfig) -> Sink:
    """The sink a config describes (not opened yet: the sink loop opens it).

    Raises:
        MissingDependency: the sink needs an optional library that is not installed.
        SinkConfigError: the config cannot work (e.g. an unsupported DSN).
    """
    if isinstance(config, SqlSinkConfig):
        return SqlSink(config)
    if isinstance(config, WebhookSinkConfig):
        return WebhookSink(config)
    return JsonlSink(config)
