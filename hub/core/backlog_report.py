"""The sidecar's backlog report on ``xhub.backlog.<dept>``: what its sources have not published yet.

A sidecar writes a report when its figures change, and every ``every_s`` seconds (its heartbeat) while
they do not (``connectors.runtime.backlog``), key :data:`REPORT_KEY`
(no source name can take it: names start with a letter), JSON value::

    {"v": 1, "department": "court", "measured_ms": 1764748800000, "every_s": 30.0,
     "sources": {"court-db": {"kind": "sql_trigger", "state": "running", "rows": 12,
                              "oldest_commit_ms": 1764748790000, "snapshot": false, "error": null}}}

``rows`` counts the change-log (or outbox) rows committed in the department database but not yet
published to Kafka; ``oldest_commit_ms`` is the commit time of the oldest of them. A logical-decoding
source (``pg_logical``) has no change-log rows: its backlog is the WAL its replication slot holds back in
the department's server, ``wal_held_bytes`` and ``wal_held_age_s`` (absent for other kinds); ``warnings``
are the source's own (a slot over its configured thresholds, WAL lost). ``rows`` is null when
the sidecar could not count (no position yet, database down: ``error`` says which). ``snapshot`` is true
while a snapshot of the table is still being published.

The report travels through Kafka, like everything else between a department and the hub, so ``xhub lag``
and the hub's status page see the backlog of a sidecar on any machine without a network path to it; a
report that stops coming (the sidecar is down) shows as stale. Until then the last report holds: its
rows still wait, and their age grows. The format lives here because both sides,
the sidecar and the monitor, import only ``hub.core`` in common.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

REPORT_KEY = "#backlog"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class SourceBacklog:
    """One source's backlog at the time of the report."""

    kind: str
    state: str
    rows: int | None
    oldest_commit_ms: int | None = None
    snapshot: bool = False
    error: str | None = None
    resources: tuple[str, ...] = ()  # catalog codes the source publishes
    wal_held_bytes: int | None = None  # logical decoding: WAL the slot keeps on the department's server
    wal_held_age_s: float | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": self.kind,
            "resources": list(self.resources),
            "state": self.state,
            "rows": self.rows,
            "oldest_commit_ms": self.oldest_commit_ms,
            "snapshot": self.snapshot,
            "error": self.error,
        }
        if self.wal_held_bytes is not None:
            body["wal_held_bytes"] = self.wal_held_bytes
            body["wal_held_age_s"] = self.wal_held_age_s
        if self.warnings:
            body["warnings"] = list(self.warnings)
        return body


@dataclass(frozen=True, slots=True)
class BacklogReport:
    """One report of one sidecar."""

    department: str
    measured_ms: int
    every_s: float
    sources: dict[str, SourceBacklog] = field(default_factory=dict)

    def encode(self) -> bytes:
        body = {
            "v": FORMAT_VERSION,
            "department": self.department,
            "measured_ms": self.measured_ms,
            "every_s": self.every_s,
            "sources": {name: s.to_json() for name, s in sorted(self.sources.items())},
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_report(value: bytes | None) -> BacklogReport | None:
    """The report in ``value``; None for a tombstone, another format, or bytes that are not one."""
    if not value:
        return None
    try:
        body = json.loads(value)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("v") != FORMAT_VERSION:
        return None
    sources: dict[str, SourceBacklog] = {}
    raw_sources = body.get("sources")
    for name, raw in (raw_sources if isinstance(raw_sources, dict) else {}).items():
        if not isinstance(raw, dict):
            continue
        rows, oldest = raw.get("rows"), raw.get("oldest_commit_ms")
        wal_bytes, wal_age = raw.get("wal_held_bytes"), raw.get("wal_held_age_s")
        sources[str(name)] = SourceBacklog(
            str(raw.get("kind", "")),
            str(raw.get("state", "")),
            rows if isinstance(rows, int) and not isinstance(rows, bool) else None,
            oldest if isinstance(oldest, int) and not isinstance(oldest, bool) else None,
            raw.get("snapshot") is True,
            None if raw.get("error") is None else str(raw.get("error"))[:300],
            tuple(str(r) for r in raw.get("resources") or () if isinstance(r, str)),
            wal_bytes if isinstance(wal_bytes, int) and not isinstance(wal_bytes, bool) else None,
            float(wal_age) if isinstance(wal_age, int | float) and not isinstance(wal_age, bool) else None,
            tuple(str(w)[:300] for w in raw.get("warnings") or () if isinstance(w, str)),
        )
    measured, every = body.get("measured_ms"), body.get("every_s")
    if not isinstance(measured, int):
        return None
    return BacklogReport(
        str(body.get("department", "")),
        measured,
        float(every) if isinstance(every, int | float) else 5.0,
        sources,
    )
