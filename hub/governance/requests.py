"""Share requests (共享申请) and their answer deadlines, read from a loaded config.

A subscription to a ``conditional`` resource is a request to the owning department, which must answer it
within ``answer_within_working_days`` working days (hubs.yaml; 10 by 国发〔2016〕51号) on the official
calendar (:mod:`hub.governance.calendar`). The answer is the owner's grant (``grants/<owner>/``): its
``decision`` is the state and its ``decided_at`` the day of the answer. The request is filed on the
subscription's ``requested_at``; a request without one has no deadline, and says so: none is invented.

Dates are days in the hub's timezone (hubs.yaml ``timezone``). Nothing here reads personal data or the
approver's name: a request names departments, a resource, dates and the answer's document number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from hub.catalog.model import ShareAttribute
from hub.config.loader import ConfigDir
from hub.config.models import Grant, Subscription
from hub.governance.calendar import reckon_due_date, reckon_working_days_between, uncovered_message

RequestState = Literal["pending", "approved", "refused"]

NO_REQUEST_DATE = (
    "requested_at unknown: no due date is reckoned (not applied yet: xhub apply dates a request when it "
    "first publishes it)"
)


@dataclass(frozen=True, slots=True)
class Party:
    """A department as a request names it: its id and its name in departments/."""

    id: str
    name: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class ShareRequest:
    """One share request and where its answer stands.

    Attributes:
        subscription: id of the subscription (the request).
        hub: the hub that would deliver it.
        subscriber: the requesting department.
        owner: the providing department, which answers.
        resource: catalog code of the resource; ``resource_name`` its name.
        requested_at: when it was filed (the subscription's ``requested_at``); None: unknown.
        requested_on: its day in the hub's timezone.
        due_on: the last day of the answer period; None when ``requested_at`` is unknown.
        state: pending (no grant), approved or refused (the grant's decision).
        answered_at: the grant's ``decided_at``; ``answered_on`` its day in the hub's timezone.
        working_days_taken: working days from the request to the answer, or to today while pending.
        working_days_left: while pending, working days from today to the due day (negative: overdue).
        late: answered after the due day, or pending past it.
        reference: document number of the answer.
        notes: why a figure is missing or doubtful (unknown filing date, dates out of order, expiry).
        uncovered_years: years outside the official calendar its figures were counted in (Mon-Fri).
    """

    subscription: str
    hub: str
    subscriber: Party
    owner: Party
    resource: str
    resource_name: str
    requested_at: datetime | None
    requested_on: date | None
    due_on: date | None
    state: RequestState
    answered_at: datetime | None
    answered_on: date | None
    working_days_taken: int | None
    working_days_left: int | None
    late: bool
    reference: str | None
    notes: tuple[str, ...]
    uncovered_years: tuple[int, ...]

    @property
    def overdue(self) -> bool:
        """Pending past its due day."""
        return self.state == "pending" and self.late

    def to_json(self) -> dict[str, Any]:
        return {
            "subscription": self.subscription,
            "hub": self.hub,
            "subscriber": self.subscriber.to_json(),
            "owner": self.owner.to_json(),
            "resource": {"code": self.resource, "name": self.resource_name},
            "requested_at": _iso(self.requested_at),
            "requested_on": _day(self.requested_on),
            "due_on": _day(self.due_on),
            "state": self.state,
            "answered_at": _iso(self.answered_at),
            "answered_on": _day(self.answered_on),
            "working_days_taken": self.working_days_taken,
            "working_days_left": self.working_days_left,
            "late": self.late,
            "overdue": self.overdue,
            "reference": self.reference,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class RequestList:
    """The share requests of a config as of ``today``, with the rule they were judged by.

    Attributes:
        today: the day judged (in ``timezone``).
        working_days: the answer period (hubs.yaml ``answer_within_working_days``).
        timezone: the hub's zone; every date is a day there.
        requests: the requests, by owner, then due day, then subscription.
        uncovered_years: years outside the official calendar that some figure depends on.
    """

    today: date
    working_days: int
    timezone: str
    requests: tuple[ShareRequest, ...]
    uncovered_years: tuple[int, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        """One message per year counted Monday to Friday, naming it."""
        return tuple(uncovered_message(year) for year in self.uncovered_years)

    def counts(self) -> dict[str, int]:
        reqs = self.requests
        return {
            "requests": len(reqs),
            "pending": sum(r.state == "pending" for r in reqs),
            "overdue": sum(r.overdue for r in reqs),
            "approved": sum(r.state == "approved" for r in reqs),
            "refused": sum(r.state == "refused" for r in reqs),
            "answered_late": sum(r.late and r.state != "pending" for r in reqs),
            "no_request_date": sum(r.requested_at is None for r in reqs),
        }

    def select(
        self, *, owner: str | None = None, subscriber: str | None = None, overdue: bool = False
    ) -> RequestList:
        """The same list keeping only the requests to ``owner``, from ``subscriber``, overdue ones."""
        kept = tuple(
            r
            for r in self.requests
            if (owner is None or r.owner.id == owner)
            and (subscriber is None or r.subscriber.id == subscriber)
            and (not overdue or r.overdue)
        )
        years = sorted({y for r in kept for y in r.uncovered_years})
        return RequestList(self.today, self.working_days, self.timezone, kept, tuple(years))

    def to_json(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "answer_within_working_days": self.working_days,
            "timezone": self.timezone,
            "counts": self.counts(),
            "warnings": list(self.warnings),
            "requests": [r.to_json() for r in self.requests],
        }


def share_requests(
    cfg: ConfigDir, today: date | None = None, *, filed: Mapping[str, datetime] | None = None
) -> RequestList:
    """Every active subscription of ``cfg`` to a conditional resource, as a share request.

    Args:
        cfg: a loaded config (``hub.config.load_config``).
        today: the day to judge pending requests by; None: today in the hub's timezone.
        filed: subscription id -> when `xhub apply` first published the request (the applied config
            snapshots, :mod:`hub.governance.applied`); they win over a date the subscription states.
    """
    dates = dict(filed or {})
    zone = ZoneInfo(cfg.hubs_file.timezone)
    judged = today if today is not None else datetime.now(zone).date()
    period = cfg.hubs_file.answer_within_working_days
    requests = [
        _request(cfg, sub, _Rule(judged, period, zone), dates.get(sub.id) or sub.requested_at)
        for sub in cfg.subscriptions.values()
        if sub.active and _conditional(cfg, sub)
    ]
    requests.sort(key=lambda r: (r.owner.id, r.due_on or date.max, r.subscription))
    years = sorted({y for r in requests for y in r.uncovered_years})
    return RequestList(judged, period, cfg.hubs_file.timezone, tuple(requests), tuple(years))


@dataclass(frozen=True, slots=True)
class _Rule:
    today: date
    working_days: int
    zone: ZoneInfo


def _conditional(cfg: ConfigDir, sub: Subscription) -> bool:
    resource = cfg.resources.get(sub.resource)
    return resource is not None and resource.share is ShareAttribute.CONDITIONAL


def _party(cfg: ConfigDir, dept: str) -> Party:
    known = cfg.departments.get(dept)
    return Party(dept, known.name if known is not None else dept)


def _request(cfg: ConfigDir, sub: Subscription, rule: _Rule, requested_at: datetime | None) -> ShareRequest:
    resource = cfg.resources[sub.resource]
    grant = cfg.grants.get(sub.id)
    state: RequestState = grant.decision if grant is not None else "pending"
    answered_at = grant.decided_at if grant is not None else None
    figures = _figures(requested_at, answered_at, state, rule)
    return ShareRequest(
        subscription=sub.id,
        hub=sub.hub,
        subscriber=_party(cfg, sub.subscriber),
        owner=_party(cfg, resource.owner),
        resource=resource.code,
        resource_name=resource.name,
        requested_at=requested_at,
        requested_on=_local_day(requested_at, rule.zone),
        due_on=figures.due_on,
        state=state,
        answered_at=answered_at,
        answered_on=_local_day(answered_at, rule.zone),
        working_days_taken=figures.taken,
        working_days_left=figures.left,
        late=figures.late,
        reference=grant.reference if grant is not None else None,
        notes=(*figures.notes, *_grant_notes(grant, rule)),
        uncovered_years=figures.uncovered_years,
    )


@dataclass(frozen=True, slots=True)
class _Figures:
    due_on: date | None = None
    taken: int | None = None
    left: int | None = None
    late: bool = False
    notes: tuple[str, ...] = ()
    uncovered_years: tuple[int, ...] = ()


def _figures(
    requested_at: datetime | None, answered_at: datetime | None, state: RequestState, rule: _Rule
) -> _Figures:
    """Due day, working days taken or left and lateness; nothing reckoned without a request date."""
    if requested_at is None:
        return _Figures(notes=(NO_REQUEST_DATE,))
    requested = requested_at.astimezone(rule.zone).date()
    due = reckon_due_date(requested, rule.working_days)
    years = set(due.uncovered_years)
    notes: list[str] = []
    if state == "pending":
        left = reckon_working_days_between(rule.today, due.value)
        years.update(left.uncovered_years)
        taken: int | None = None
        if requested > rule.today:
            notes.append(f"filed {requested}, after the day judged ({rule.today})")
        else:
            so_far = reckon_working_days_between(requested, rule.today)
            years.update(so_far.uncovered_years)
            taken = so_far.value
        late = rule.today > due.value
        return _Figures(due.value, taken, left.value, late, tuple(notes), tuple(sorted(years)))
    if answered_at is None:  # the cross-checks require decided_at; a config read unchecked may lack it
        notes.append("answered, but the grant gives no decided_at: lateness unknown")
        return _Figures(due.value, notes=tuple(notes), uncovered_years=tuple(sorted(years)))
    answered = answered_at.astimezone(rule.zone).date()
    spent = reckon_working_days_between(requested, answered)
    years.update(spent.uncovered_years)
    if answered < requested:
        notes.append(f"answered {answered}, before the request was filed ({requested}): check the dates")
    late = answered > due.value
    return _Figures(due.value, spent.value, None, late, tuple(notes), tuple(sorted(years)))


def _grant_notes(grant: Grant | None, rule: _Rule) -> tuple[str, ...]:
    if grant is None or grant.decision != "approved" or grant.valid_until is None:
        return ()
    until = grant.valid_until.astimezone(rule.zone).date()
    return (f"approval expired on {until}",) if until < rule.today else ()


def _local_day(value: datetime | None, zone: ZoneInfo) -> date | None:
    return value.astimezone(zone).date() if value is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None
