"""Field access, and the ISO-8601 text view of dates and times that expressions compare against."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from hub.policy.filters.row_filter import Getter, Record

_EPOCH_DATE = date(1970, 1, 1)
_EPOCH = datetime(1970, 1, 1)  # naive on purpose: Avro timestamps count from the UTC epoch
_MIDNIGHT = datetime(2000, 1, 1)  # only its time of day is used


def path_getter(top: str, rest: tuple[str, ...], temporal: str | None, *, generic: bool) -> Getter:
    """Read a field; ``generic`` (type unknown) presents any date/time object as ISO text.

    As in CEL, a field the record lacks is an error ("no such key", a ``KeyError``), not null; so is a
    member of a null or of a value that is not a record or map.
    """
    if rest:
        return _nested_getter(top, rest, temporal, generic=generic)
    if temporal is not None:
        return lambda r: iso(r[top], temporal)
    if generic:
        return lambda r: plain(r[top])
    return operator.itemgetter(top)


def _nested_getter(top: str, rest: tuple[str, ...], temporal: str | None, *, generic: bool) -> Getter:
    def get(r: Record) -> Any:
        v = r[top]
        for key in rest:
            if not isinstance(v, Mapping):
                raise TypeError(f'a {type(v).__name__} has no field "{key}"')
            v = v[key]
        if temporal is not None:
            return iso(v, temporal)
        return plain(v) if generic else v

    return get


def plain(v: Any) -> Any:
    """A value of unknown Avro type: date/time objects become ISO text, anything else is as is."""
    cls = v.__class__
    if cls is datetime:
        return _timestamp_text(v, local=v.tzinfo is None)
    if cls is date:
        return v.isoformat()
    if cls is time:
        return v.isoformat(timespec="milliseconds")
    return v


def iso(v: Any, temporal: str) -> Any:  # noqa: PLR0911 - one return per date/time form
    """ISO-8601 text of a date/time value, whether decoded by fastavro or left as Avro's int."""
    cls = v.__class__
    if v is None or cls is str:
        return v
    if cls is date:
        return v.isoformat()
    if isinstance(v, datetime):
        return _timestamp_text(v, local=temporal.startswith("local-"))
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, time):
        return v.isoformat(timespec="milliseconds")
    if isinstance(v, int) and not isinstance(v, bool):
        match temporal:
            case "date":
                return (_EPOCH_DATE + timedelta(days=v)).isoformat()
            case "timestamp-millis" | "local-timestamp-millis":
                return _timestamp_text(
                    _EPOCH + timedelta(milliseconds=v), local=temporal.startswith("local-")
                )
            case "timestamp-micros" | "local-timestamp-micros":
                return _timestamp_text(
                    _EPOCH + timedelta(microseconds=v), local=temporal.startswith("local-")
                )
            case "time-millis":
                return (_MIDNIGHT + timedelta(milliseconds=v)).time().isoformat(timespec="milliseconds")
            case _:
                return (_MIDNIGHT + timedelta(microseconds=v)).time().isoformat(timespec="milliseconds")
    raise TypeError(f"a {temporal} field holds a {type(v).__name__}")


def _timestamp_text(v: datetime, *, local: bool) -> str:
    if local:
        return v.replace(tzinfo=None).isoformat(timespec="milliseconds")
    if v.tzinfo is not None:
        v = v.astimezone(UTC).replace(tzinfo=None)
    return v.isoformat(timespec="milliseconds") + "Z"
