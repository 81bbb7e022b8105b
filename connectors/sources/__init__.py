"""Sources: capture department changes and hand them to the runtime to publish.

``SqlTriggerSource`` (triggers + change-log table, SQLite and PostgreSQL), ``PgLogicalSource``
(PostgreSQL's WAL through a replication slot, no triggers; ``type: postgres`` takes it whenever the
server allows it, triggers otherwise: ``postgres_capture``), ``OutboxSource`` (an outbox table the
application writes), ``HttpPushSource`` (a local JSON endpoint) and ``HubLinkSource`` (a district hub's
deliveries, carried into the city cluster), each with its pydantic config beside it. ``build_source``
makes one from its config; the mapping is explicit, no plugin discovery by import side effects.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import Field

from connectors.sources.base import (
    Batch,
    Captured,
    Poll,
    PollingSource,
    Position,
    PublishResult,
    Rejection,
    ResourceSpec,
    Source,
    SourceConfigBase,
    SourceContext,
)
from connectors.sources.http_push import HttpPushSource, HttpPushSourceConfig
from connectors.sources.hub_link import HubLinkSource, HubLinkSourceConfig
from connectors.sources.outbox import OutboxSource, OutboxSourceConfig
from connectors.sources.pg_logical import PgLogicalSource, PgLogicalSourceConfig
from connectors.sources.postgres_capture import PostgresSourceConfig, choose_capture
from connectors.sources.sql_trigger import SqlTriggerSource, SqlTriggerSourceConfig
from hub.core.log import get_logger

SourceConfig = Annotated[
    SqlTriggerSourceConfig
    | PgLogicalSourceConfig
    | PostgresSourceConfig
    | OutboxSourceConfig
    | HttpPushSourceConfig
    | HubLinkSourceConfig,
    Field(discriminator="type"),
]
"""Any source config, told apart by its ``type`` key."""


def build_source(
    config: SourceConfigBase, *, resources: Mapping[str, ResourceSpec], base_dir: Path | None = None
) -> Source:
    """Make the source a config describes (``type: postgres`` asks the server which capture it gets)."""
    if isinstance(config, PostgresSourceConfig):  # before PgLogicalSourceConfig: it is one of those
        choice = choose_capture(config, base_dir=base_dir)
        get_logger("source", source=config.name).info(
            "capture_chosen", kind=choice.config.type, reason=choice.reason
        )
        config = choice.config
    if isinstance(config, SqlTriggerSourceConfig):
        return SqlTriggerSource(config, resources=resources, base_dir=base_dir)
    if isinstance(config, PgLogicalSourceConfig):
        return PgLogicalSource(config, resources=resources, base_dir=base_dir)
    if isinstance(config, OutboxSourceConfig):
        return OutboxSource(config, resources=resources, base_dir=base_dir)
    if isinstance(config, HttpPushSourceConfig):
        return HttpPushSource(config, resources=resources, base_dir=base_dir)
    if isinstance(config, HubLinkSourceConfig):
        return HubLinkSource(config, resources=resources, base_dir=base_dir)
    raise TypeError(f"no source for config type {type(config).__name__}")


__all__ = [
    "Batch",
    "Captured",
    "HttpPushSource",
    "HttpPushSourceConfig",
    "HubLinkSource",
    "HubLinkSourceConfig",
    "OutboxSource",
    "OutboxSourceConfig",
    "PgLogicalSource",
    "PgLogicalSourceConfig",
    "Poll",
    "PollingSource",
    "Position",
    "PostgresSourceConfig",
    "PublishResult",
    "Rejection",
    "ResourceSpec",
    "Source",
    "SourceConfig",
    "SourceConfigBase",
    "SourceContext",
    "SqlTriggerSource",
    "SqlTriggerSourceConfig",
    "build_source",
    "choose_capture",
]
