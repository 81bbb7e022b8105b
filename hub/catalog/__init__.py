"""The data catalog (政务信息资源目录): share attributes, field classes, resource codes, change events."""

from __future__ import annotations

from hub.catalog.codes import CLASSIFICATION_CODES, parse_resource_code
from hub.catalog.model import FieldClass, ShareAttribute
from hub.core.envelope import ChangeEvent, change_event_schema, key_bytes

__all__ = [
    "CLASSIFICATION_CODES",
    "ChangeEvent",
    "FieldClass",
    "ShareAttribute",
    "change_event_schema",
    "key_bytes",
    "parse_resource_code",
]
