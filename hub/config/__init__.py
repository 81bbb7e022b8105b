"""The config directory: models, loading with file:line errors, cross-checks, JSON Schema."""

from __future__ import annotations

from hub.config.loader import ConfigDir, load_config
from hub.config.models import (
    Approval,
    Department,
    HubSpec,
    Resource,
    Subscription,
    json_schema,
)

__all__ = [
    "Approval",
    "ConfigDir",
    "Department",
    "HubSpec",
    "Resource",
    "Subscription",
    "json_schema",
    "load_config",
]
