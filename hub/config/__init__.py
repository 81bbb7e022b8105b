"""The config directory: models, loading with file:line errors, the one validation path, JSON Schema."""

from __future__ import annotations

from hub.config.loader import ConfigDir
from hub.config.models import (
    Department,
    Grant,
    HubSpec,
    Resource,
    Subscription,
    json_schema,
)
from hub.config.validation import CompiledConfig, compile_config, load_config

__all__ = [
    "CompiledConfig",
    "ConfigDir",
    "Department",
    "Grant",
    "HubSpec",
    "Resource",
    "Subscription",
    "compile_config",
    "json_schema",
    "load_config",
]
