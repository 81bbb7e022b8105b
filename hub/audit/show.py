"""Questions to the audit log: who received record K of resource R (and which fields), what did subscriber
S receive between T1 and T2. Pure: filter decoded entries, format them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.audit.chain import key_hash
from hub.audit.errors import AuditQueryError

KINDS = ("delivered", "refused", "policy_changed")


@dataclass(frozen=True)
class Query:
    """What to select; every given criterion must hold. Times are epoch millis, both ends included."""

    resource: str | None = None
    key_hash: str | None = None
    subscriber: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    kinds: tuple[str, ...] = KINDS

    def matches(self, entry: Mapping[str, Any]) -> bool:
        if entry.get("kind") not in self.kinds:
            return False
        if self.resource is not None and entry.get("resource") != self.resource:
            return False
        if self.key_hash is not None and entry.get("key_hash") != self.key_hash:
            return False
        if self.subscriber is not None and entry.get("subscriber") != self.subscriber:
            return False
        ts = int(entry.get("ts_ms") or 0)
        if self.since_ms is not None and ts < self.since_ms:
            return False
        return self.until_ms is None or ts <= self.until_ms


@dataclass(frozen=True, slots=True)
class Criteria:
    """What ``xhub audit show`` is asked, as given: a business key (not yet its hash), times as ISO text,
    epoch millis or datetimes, entry kinds (None: all). :func:`build_query` turns it into a :class:`Query`."""

    resource: str | None = None
    key: str | None = None
    subscriber: str | None = None
    since: str | int | datetime | None = None
    until: str | int | datetime | None = None
    kinds: Iterable[str] | None = None


def build_query(secret: bytes, criteria: Criteria) -> Query:
    """The query for ``criteria``; the business key becomes its keyed hash under ``secret``.

    Raises:
        AuditQueryError: a key without its resource, an unreadable time, or an unknown kind.
    """
    resource, key, kinds = criteria.resource, criteria.key, criteria.kinds
    if key is not None and resource is None:
        raise AuditQueryError("--key needs --resource: the audit keeps keyed hashes of (resource, key)")
    chosen = tuple(kinds) if kinds else KINDS
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise AuditQueryError(f"unknown entry kind {unknown[0]!r}: choose from {', '.join(KINDS)}")
    return Query(
        resource=resource,
        key_hash=key_hash(secret, resource, key) if key is not None and resource is not None else None,
        subscriber=criteria.subscriber,
        since_ms=parse_time(criteria.since, "since"),
        until_ms=parse_time(criteria.until, "until"),
        kinds=chosen,
    )


def parse_time(value: str | int | datetime | None, what: str) -> int | None:
    """Epoch millis from epoch millis, a datetime, or ISO 8601 text (without a zone: this machine's)."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        moment = value
    else:
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise AuditQueryError(
                f"--{what} {value!r}: give ISO 8601 (2026-11-22T09:30:00+08:00) or epoch millis"
            ) from exc
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_row(entry: Mapping[str, Any]) -> str:
    """One line per entry: when, what, to whom, which fields, under which policy, where it went."""
    parts = [
        iso(int(entry.get("ts_ms") or 0)),
        str(entry.get("kind")),
        f"subscriber={entry.get('subscriber')}",
        f"subscription={entry.get('subscription')}",
        f"resource={entry.get('resource')}",
    ]
    if entry.get("op"):
        parts.append(f"op={entry['op']}")
    if entry.get("kind") != "refused":
        parts.append("fields=" + ",".join(entry.get("fields") or []))
    parts.append(f"policy={entry.get('policy_version')}")
    if entry.get("delivered_topic"):
        parts.append(
            f"to={entry['delivered_topic']}-{entry.get('delivered_partition')}@{entry.get('delivered_offset')}"
        )
    if entry.get("event_id"):
        parts.append(f"event={entry['event_id']}")
    if entry.get("reason"):
        parts.append(f"reason={entry['reason']}")
    return "  ".join(parts)


def summarize(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """Per subscriber and subscription: deliveries, refusals and the fields disclosed."""
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        kind = entry.get("kind")
        if kind not in ("delivered", "refused"):
            continue
        acc = by.setdefault(
            (str(entry.get("subscriber")), str(entry.get("subscription"))),
            {"delivered": 0, "refused": 0, "fields": []},
        )
        acc[str(kind)] += 1
        for name in entry.get("fields") or []:
            if name not in acc["fields"]:
                acc["fields"].append(name)
    lines = []
    for (subscriber, subscription), acc in sorted(by.items()):
        line = f"{subscriber} ({subscription}): {acc['delivered']} delivered"
        if acc["refused"]:
            line += f", {acc['refused']} refused"
        if acc["fields"]:
            line += "; fields " + ",".join(acc["fields"])
        lines.append(line)
    return lines


def to_json(entry: Mapping[str, Any], offset: int) -> str:
    return json.dumps({"offset": offset, **entry}, ensure_ascii=False, sort_keys=True)
