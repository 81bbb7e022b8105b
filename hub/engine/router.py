"""Route one decoded source event through the plans of its topic: the per-record decision, no I/O.

For each plan the event ends as exactly one outcome: delivered, filtered, refused or dead-lettered.

A filtered subscription's view stays true when the caller says which keys the subscriber holds
(``holds``, from the state store): a row that leaves the filter's scope goes out as a delete (op "d",
reason "out of scope"), a row that enters it goes out as the row, and a delete reaches only the
subscriptions that hold the key. Without ``holds``, a delete reaches every filtered subscription.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    reason: str | None = None  # why a row is deleted downstream although the source did not delete it


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
Holds = Callable[[DeliveryPlan], bool]  # whether the plan's subscriber holds the event's key now

OUT_OF_SCOPE = "out of scope"


def route(
    event: Mapping[str, Any], plans: Sequence[DeliveryPlan], now_ms: int, holds: Holds | None = None
) -> list[Outcome]:
    """Apply every plan to one decoded change event (``holds``: see the module's docstring)."""
    outcomes: list[Outcome] = []
    data = event.get("data")
    for plan in plans:
        refusal = plan.refusal_at(now_ms)
        if refusal is not None:
            outcomes.append(Refused(plan, refusal))
            continue
        op, reason = event["op"], None
        scoped = holds if plan.row_filter is not None else None
        try:
            if data is None:
                if scoped is not None and not scoped(plan):
                    outcomes.append(Filtered(plan))  # a key the subscriber never got: nothing to delete
                    continue
            elif plan.row_filter is not None:
                verdict = plan.row_filter.evaluate(data)
                if verdict is not FilterOutcome.MATCH:
                    if scoped is None or not scoped(plan):
                        outcomes.append(Filtered(plan, error=verdict is FilterOutcome.ERROR))
                        continue
                    op, reason = "d", OUT_OF_SCOPE  # it held the row: take it back
            projected = plan.project(data) if data is not None and reason is None else None
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
        fields = tuple(plan.fields) if projected is not None else ()
        outcomes.append(Deliver(plan, key, value, fields, reason))
    return outcomes
