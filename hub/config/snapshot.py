"""Config snapshots: what `xhub apply` publishes on xhub.cfg.<hub> and what a hub reads back.

A snapshot is the canonical JSON of everything one hub needs to enforce policy (departments, the
resources and schemas its subscriptions use, the subscriptions and the owners' grants answering them,
with the folder each grant was read from); secrets are never included. A record of
the topic wraps it with its digest and the time of the apply. Writing and reading both live here, so
`xhub apply` and the hub cannot disagree on the format.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from hub.config.loader import ConfigDir, Origin, problems_of
from hub.config.models import Department, Grant, HubsFile, HubSpec, Resource, Subscription
from hub.config.yaml_lines import LocatedYaml
from hub.core import names
from hub.core.errors import ConfigError, ConfigProblem


def config_snapshot(cfg: ConfigDir, hub: str) -> bytes:
    """Canonical JSON of everything ``hub`` needs to enforce policy. Secrets are never included."""
    subs = [s for s in cfg.subscriptions.values() if s.hub == hub]
    codes = sorted({s.resource for s in subs})
    body = {
        "hub": hub,
        "departments": {d.id: d.model_dump(mode="json") for d in cfg.departments.values()},
        "resources": {
            c: cfg.resources[c].model_dump(mode="json", by_alias=True) for c in codes if c in cfg.resources
        },
        "schemas": {c: cfg.schemas[c] for c in codes if c in cfg.schemas},
        "subscriptions": {s.id: s.model_dump(mode="json") for s in sorted(subs, key=lambda s: s.id)},
        "grants": {s.id: cfg.grants[s.id].model_dump(mode="json") for s in subs if s.id in cfg.grants},
        "grant_folders": {s.id: cfg.grant_folders.get(s.id, "") for s in subs if s.id in cfg.grants},
    }
    return _canonical(body)


def stamp_requests(snapshot: bytes, applied: Mapping[str, Any] | None, now: datetime) -> bytes:
    """``snapshot`` with every share request dated: the ``requested_at`` of each subscription to a
    conditional resource.

    The date is the one the last applied snapshot (``applied``) gave it; else the one the subscription
    states (a request filed before the hub kept track); else ``now``, the apply that publishes it first.
    So the request date is recorded by `xhub apply`, survives every later apply, and a re-apply of an
    unchanged config stays a no-op (same bytes, same digest).
    """
    body = json.loads(snapshot)
    before = (applied or {}).get("subscriptions", {})
    conditional = {c for c, r in body.get("resources", {}).items() if r.get("share") == "conditional"}
    for sid, sub in body.get("subscriptions", {}).items():
        if sub.get("resource") not in conditional:
            continue
        earlier = before.get(sid) or {}
        sub["requested_at"] = (
            earlier.get("requested_at") or sub.get("requested_at") or now.astimezone(UTC).isoformat()
        )
    return _canonical(body)


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def snapshot_digest(snapshot: bytes) -> str:
    """The short digest that names a snapshot (in plans, in the audit, on the hub's status)."""
    return hashlib.sha256(snapshot).hexdigest()[:16]


def snapshot_record(snapshot: bytes, applied_ts_ms: int) -> bytes:
    """The value of one xhub.cfg.<hub> record: digest, time of the apply and the config itself."""
    body = {
        "digest": snapshot_digest(snapshot),
        "applied_ts_ms": applied_ts_ms,
        "config": json.loads(snapshot),
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def read_snapshot_record(raw: bytes) -> tuple[str, dict[str, Any]]:
    """(digest, config) of one record of xhub.cfg.<hub>."""
    body = json.loads(raw)
    return body["digest"], body["config"]


def config_from_snapshot(snapshot: Mapping[str, Any], *, digest: str = "") -> ConfigDir:
    """The config of one hub as a snapshot carries it, ready for ``compile_config``.

    Problems are reported against ``xhub.cfg.<hub>`` (there are no lines in a snapshot), at the path of
    the offending entry, e.g. ``xhub.cfg.pudong@3f2a… at subscriptions.tax-debtors.masks.debtor_type``.

    Raises:
        ConfigError: an entry of the snapshot does not fit the config models (every such entry listed).
    """
    hub = str(snapshot.get("hub", ""))
    where = names.config_topic(hub) + (f"@{digest}" if digest else "")
    doc = LocatedYaml(where, snapshot, {})
    cfg = ConfigDir(root=Path(where), hubs_file=HubsFile(hubs=[HubSpec(name=hub)]))
    problems: list[ConfigProblem] = []

    def load(section: str, model: type[BaseModel], kind: str, into: dict[str, Any]) -> None:
        for ident, body in dict(snapshot.get(section, {})).items():
            origin = Origin(doc, (section, ident))
            try:
                into[ident] = model.model_validate(body)
            except ValidationError as exc:
                problems.extend(problems_of(exc, doc, origin.path))
                continue
            cfg.origins[(kind, ident)] = origin

    load("departments", Department, "department", cfg.departments)
    load("resources", Resource, "resource", cfg.resources)
    load("subscriptions", Subscription, "subscription", cfg.subscriptions)
    load("grants", Grant, "grant", cfg.grants)
    cfg.grant_folders.update({str(k): str(v) for k, v in dict(snapshot.get("grant_folders", {})).items()})
    cfg.schemas.update({code: dict(schema) for code, schema in dict(snapshot.get("schemas", {})).items()})
    if problems:
        raise ConfigError(problems)
    return cfg
