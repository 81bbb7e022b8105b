"""Overdue share requests per owning department: what `xhub lag`, the metrics and the status page show.

A request is overdue while it is pending past its due day (:mod:`hub.governance.requests`). The monitor
shows the count per owner, because the owner is the one that must answer. A hub judges the subscriptions
and grants in force (the applied snapshot: its ``requested_at`` is the date `xhub apply` stamped), so the
count changes the moment an answering grant is applied, without a restart.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hub.config.loader import ConfigDir
from hub.config.models import Grant, Subscription
from hub.governance.requests import RequestList, ShareRequest, share_requests


@dataclass(frozen=True, slots=True)
class OverdueRequests:
    """The overdue share requests of a config on one day.

    Attributes:
        today: the day judged (in the hub's timezone).
        working_days: the answer period (hubs.yaml ``answer_within_working_days``).
        pending_by_owner: owner id -> pending requests (overdue included), for every owner that has
            received a request (0 too: a gauge drops to 0 when the owner answers, rather than vanishing).
        overdue_by_owner: owner id -> overdue requests, for the same owners.
        overdue: the overdue requests, oldest due day first.
        warnings: years counted Monday to Friday (outside the official calendar), named.
    """

    today: date
    working_days: int
    pending_by_owner: Mapping[str, int]
    overdue_by_owner: Mapping[str, int]
    overdue: tuple[ShareRequest, ...]
    warnings: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Overdue requests of every owner."""
        return len(self.overdue)

    def to_json(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "answer_within_working_days": self.working_days,
            "overdue": self.total,
            "pending_by_owner": dict(sorted(self.pending_by_owner.items())),
            "overdue_by_owner": dict(sorted(self.overdue_by_owner.items())),
            "requests": [_item(r) for r in self.overdue],
            "warnings": list(self.warnings),
        }

    def summary_line(self) -> str | None:
        """One line for a terminal summary (``xhub lag``); None when no request is overdue."""
        if not self.overdue:
            return None
        owners = ", ".join(f"{owner} {n}" for owner, n in sorted(self.overdue_by_owner.items()) if n)
        oldest = self.overdue[0]
        return (
            f"share requests overdue: {self.total} (by owner: {owners}); oldest {oldest.subscription} "
            f"due {oldest.due_on} — answer within {self.working_days} working days: "
            "xhub requests --overdue"
        )


def _item(r: ShareRequest) -> dict[str, Any]:
    return {
        "subscription": r.subscription,
        "subscriber": r.subscriber.id,
        "subscriber_name": r.subscriber.name,
        "owner": r.owner.id,
        "owner_name": r.owner.name,
        "resource": r.resource,
        "requested_on": r.requested_on.isoformat() if r.requested_on else None,
        "due_on": r.due_on.isoformat() if r.due_on else None,
        "working_days_late": -r.working_days_left if r.working_days_left is not None else None,
    }


def overdue_requests(listing: RequestList) -> OverdueRequests:
    """The overdue part of ``listing``, counted per owner."""
    pending = [r for r in listing.requests if r.state == "pending"]
    pending_by_owner = dict.fromkeys(sorted({r.owner.id for r in listing.requests}), 0)
    overdue_by_owner = dict(pending_by_owner)
    for r in pending:
        pending_by_owner[r.owner.id] += 1
        overdue_by_owner[r.owner.id] += int(r.overdue)
    late = sorted((r for r in pending if r.overdue), key=lambda r: (r.due_on or date.max, r.subscription))
    years = sorted({y for r in late for y in r.uncovered_years})
    listing_late = RequestList(listing.today, listing.working_days, listing.timezone, (), tuple(years))
    return OverdueRequests(
        listing.today,
        listing.working_days,
        pending_by_owner,
        overdue_by_owner,
        tuple(late),
        listing_late.warnings,
    )


def overdue_of_config(
    cfg: ConfigDir, today: date | None = None, *, filed: Mapping[str, datetime] | None = None
) -> OverdueRequests:
    """The overdue share requests of a config directory (``filed``: the dates apply stamped)."""
    return overdue_requests(share_requests(cfg, today, filed=filed))


class HubRequestWatch:
    """The overdue requests of one running hub, judged on the subscriptions and grants in force.

    Recomputed only when the policies change (another object) or the day does; thread-safe (the status
    page and /metrics are served from several threads).

    Args:
        cfg: the config the hub started with (catalog, departments, the answer period, the timezone).
        clock: now (tests); default the wall clock.
    """

    def __init__(self, cfg: ConfigDir, clock: Callable[[], datetime] | None = None) -> None:
        self.cfg = cfg
        self._zone = ZoneInfo(cfg.hubs_file.timezone)
        self._clock = clock or (lambda: datetime.now(self._zone))
        self._lock = threading.Lock()
        self._key: tuple[object, object, date] | None = None
        self._value: OverdueRequests | None = None

    def overdue(
        self, subscriptions: Mapping[str, Subscription], grants: Mapping[str, Grant]
    ) -> OverdueRequests:
        """The overdue requests among ``subscriptions`` (the hub's, as applied) under ``grants``."""
        today = self._clock().astimezone(self._zone).date()
        with self._lock:
            key = (subscriptions, grants, today)
            if self._value is not None and self._key is not None and _same(self._key, key):
                return self._value
            in_force = dataclasses.replace(self.cfg, subscriptions=dict(subscriptions), grants=dict(grants))
            self._value = overdue_of_config(in_force, today)
            self._key = key
            return self._value


def _same(a: tuple[object, object, date], b: tuple[object, object, date]) -> bool:
    return a[0] is b[0] and a[1] is b[1] and a[2] == b[2]
