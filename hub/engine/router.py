"""Route one decoded source event through the plans of its topic: the per-record decision, no I/O.

For each plan the event ends as exactly one outcome: delivered, filtered, refused or dead-lettered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub.core.errors import InvalidRecord
from hub.policy.filters import FilterOutcome
from hub.policy.plan import DeliveryPlan


@dataclass(frozen=True, slots=True)
class Deliver:
    plan: DeliveryPlan
    key: str
    value: dict[str, Any]  # envelope with projected data, ready to encode with plan.delivery_schema
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Filtered:
    plan: DeliveryPlan
    error: bool = False  # the row filter was a CEL error on this record (no match; RowFilter.errors)


@dataclass(frozen=True, slots=True)
class Refused:
    plan: DeliveryPlan
    reason: str


@dataclass(frozen=True, slots=True)
class DeadLettered:
    plan: DeliveryPlan | None
    reason: str
    detail: str
    field: str | None


Outcome = Deliver | Filtered | Refused | DeadLettered


def route(event: Mapping[str, Any], plans: Sequence[DeliveryPlan], now_ms: int) -> list[Outcome]:
    """Apply every plan to one decoded change event."""
    outcomes: list[Outcome] = []
    data = event.get("data")
    op = event["op"]
    for plan in plans:
        refusal = plan.refusal_at(now_ms)
        if refusal is not None:
            outcomes.append(Refused(plan, refusal))
            continue
        try:
            # A delete carries no data to filter: it goes to every subscriber that may see the resource,
            # so a row that left the filter's scope earlier is still removed downstream.
            if data is not None and plan.row_filter is not None:
                verdict = plan.row_filter.evaluate(data)
                if verdict is not FilterOutcome.MATCH:
                    outcomes.append(Filtered(plan, error=verdict is FilterOutcome.ERROR))
                    continue
            projected = plan.project(data) if data is not None else None
        except InvalidRecord as exc:
            outcomes.append(DeadLettered(plan, exc.reason, exc.detail, exc.field))
            continue
        key = plan.delivered_key(event["key"])
        value = {
            "event_id": event["event_id"],
            "resource": event["resource"],
            "op": op,
            "key": key,
            "seq": event["seq"],
            "source": event["source"],
            "published_ts_ms": event["published_ts_ms"],
            "data": projected,
        }
        outcomes.append(Deliver(plan, key, value, tuple(plan.fields) if projected is not None else ()))
    return outcomes
