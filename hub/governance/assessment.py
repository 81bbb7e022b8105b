"""The share-request part of the 考核 (assessment) of each department: how it answers the requests it gets.

Per owning department, from the share requests of a config (:mod:`hub.governance.requests`): requests
received, answered on time, answered late, refused (with the reason and legal basis of each refusal),
pending and overdue, and the median answer time in working days; and, for the whole config, the requests
filed and answered per month (the "requests over time" chart).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from hub.config.loader import ConfigDir
from hub.governance.requests import RequestList


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused request, as the owner's grant gives it."""

    subscription: str
    subscriber: str
    resource: str
    reason: str
    legal_basis: str
    reference: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "subscription": self.subscription,
            "subscriber": self.subscriber,
            "resource": self.resource,
            "reason": self.reason,
            "legal_basis": self.legal_basis,
            "reference": self.reference,
        }


@dataclass
class RequestFigures:
    """How one owning department answers the share requests it receives.

    ``on_time`` and ``late`` count answers (approved or refused); ``refused`` counts refusals among them.
    ``answer_days`` holds the working days each answer took.
    """

    received: int = 0
    on_time: int = 0
    late: int = 0
    refused: int = 0
    pending: int = 0
    overdue: int = 0
    answer_days: list[int] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def median_answer_days(self) -> float | None:
        return float(statistics.median(self.answer_days)) if self.answer_days else None

    @property
    def on_time_ratio(self) -> float | None:
        """Answered on time / requests whose due day has come (answered, or pending and overdue)."""
        due = self.on_time + self.late + self.overdue
        return self.on_time / due if due else None

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "answered_on_time": self.on_time,
            "answered_late": self.late,
            "refused": self.refused,
            "pending": self.pending,
            "overdue": self.overdue,
            "median_answer_working_days": self.median_answer_days,
            "on_time_ratio": None if self.on_time_ratio is None else round(self.on_time_ratio, 3),
            "refusals": [r.to_json() for r in self.refusals],
        }


def request_figures(cfg: ConfigDir, listing: RequestList) -> dict[str, RequestFigures]:
    """Owner id -> its figures, for every owner that received a request in ``listing``."""
    out: dict[str, RequestFigures] = {}
    for r in listing.requests:
        f = out.setdefault(r.owner.id, RequestFigures())
        f.received += 1
        if r.state == "pending":
            f.pending += 1
            f.overdue += int(r.overdue)
            continue
        if r.late:
            f.late += 1
        elif r.answered_at is not None and r.requested_at is not None:
            f.on_time += 1
        if r.working_days_taken is not None and r.working_days_taken >= 0:  # not an answer before the request
            f.answer_days.append(r.working_days_taken)
        if r.state == "refused":
            f.refused += 1
            grant = cfg.grants.get(r.subscription)
            f.refusals.append(
                Refusal(
                    r.subscription,
                    r.subscriber.id,
                    r.resource,
                    (grant.reason or "") if grant else "",
                    (grant.legal_basis or "") if grant else "",
                    r.reference,
                )
            )
    return out


def requests_by_month(listing: RequestList) -> list[dict[str, Any]]:
    """Per month (YYYY-MM, in order, gaps filled): requests filed, and answers given, that month."""
    filed: dict[str, int] = {}
    answered: dict[str, int] = {}
    for r in listing.requests:
        if r.requested_on is not None:
            key = r.requested_on.strftime("%Y-%m")
            filed[key] = filed.get(key, 0) + 1
        if r.answered_on is not None:
            key = r.answered_on.strftime("%Y-%m")
            answered[key] = answered.get(key, 0) + 1
    months = sorted({*filed, *answered})
    if not months:
        return []
    out = []
    year, month = (int(x) for x in months[0].split("-"))
    while f"{year:04d}-{month:02d}" <= months[-1]:
        key = f"{year:04d}-{month:02d}"
        out.append({"month": key, "filed": filed.get(key, 0), "answered": answered.get(key, 0)})
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out
