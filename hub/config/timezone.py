"""The timezone of naive datetimes in config files: every datetime is aware once loaded.

An integrator in Shanghai writes ``valid_from: 2026-12-01T08:00:00`` and means 08:00 Shanghai time,
not UTC. hubs.yaml names the zone (``timezone: Asia/Shanghai``, the default); the loader passes it to
pydantic as validation context, and :data:`ConfigTime` fields attach it to naive values. Models built
without that context (tests, snapshots read back by a hub) use :data:`DEFAULT_TIMEZONE`; snapshots hold
aware values, so for them the zone never matters. No model ever holds a naive datetime, so nothing can
compare a naive value with an aware one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, ValidationInfo

DEFAULT_TIMEZONE = "Asia/Shanghai"


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA zone name this machine knows (e.g. ``Asia/Shanghai``), else ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f'timezone "{name}" is not a known zone name (e.g. Asia/Shanghai, UTC)') from exc
    return name


def _aware(value: datetime, info: ValidationInfo) -> datetime:
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value
    context: Any = info.context
    name = context.get("timezone", DEFAULT_TIMEZONE) if isinstance(context, dict) else DEFAULT_TIMEZONE
    return value.replace(tzinfo=ZoneInfo(name))


ConfigTime = Annotated[datetime, AfterValidator(_aware)]
"""A datetime in a config file: a naive value is read in hubs.yaml's ``timezone``."""
