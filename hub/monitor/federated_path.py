"""A linked subscription's whole path across clusters, hop by hop (federation, issue 17 point 4). Pure.

A city subscription on a linked resource is served by a chain: the district hub delivers the resource to
the link's subscription at the district, the link carries it to the city cluster, the city hub delivers it
to the city subscriber. Each level measures its own hops on its own cluster (``xhub lag CITY --upstream
DISTRICT``); this joins them, hop by hop, following each linked resource's ``linked_from`` upward (so a
province's subscription has the district's and the city's hops before its own):

    hub (district)  the district hub's lag on its source topic, for the link's subscription
    link            the link's lag on the district's delivery topic (its position, kept in the city cluster)
    hub (city)      the city hub's lag on the link's source topic, for the city subscription
    subscriber      the city subscriber's lag on the city's delivery topic

Every hop's age counts from the source department's commit (a change keeps its commit time across hops),
so the largest age on the path is the end-to-end age of the oldest change not yet at the subscriber.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from hub.core import names
from hub.monitor.board import KindView, SubscriptionLag
from hub.monitor.status import Status, worst
from hub.monitor.text import format_seconds, text_table

HUB_HOP: Final = "hub"
LINK_HOP: Final = "link"
SUBSCRIBER_HOP: Final = "subscriber"

Links = Mapping[tuple[str, str], tuple[str, str]]
"""(hub, resource) -> (upstream hub, the link's subscription there): each linked resource's ``linked_from``,
for the hubs that serve it."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One hop of a linked path.

    Attributes:
        kind: ``hub``, ``link`` or ``subscriber``.
        name: the hub, the link's department (in the config it carries to) or the subscriber.
        subscription: the subscription the hop serves (a hub hop's), or None.
        topic: what the hop reads: the hub's source topic, the link's or the subscriber's delivery topic.
        view: its lag with status; None when it was not measured (``note`` says why).
        note: why it was not measured, if so.
    """

    kind: str
    name: str
    subscription: str | None
    topic: str
    view: KindView | None
    note: str = ""

    @property
    def status(self) -> Status:
        return Status.WARN if self.view is None else self.view.status

    @property
    def records(self) -> int | None:
        return None if self.view is None else self.view.records

    @property
    def seconds(self) -> float | None:
        return None if self.view is None else self.view.lag.lag_seconds

    @property
    def reason(self) -> str:
        return self.note if self.view is None else self.view.verdict.reason

    def to_json(self) -> dict[str, Any]:
        seconds = self.seconds
        who = {HUB_HOP: "hub", LINK_HOP: "department", SUBSCRIBER_HOP: "subscriber"}[self.kind]
        out: dict[str, Any] = {"hop": self.kind, who: self.name}
        if self.subscription is not None:
            out["subscription"] = self.subscription
        return out | {
            "topic": self.topic,
            "status": self.status.value,
            "reason": self.reason,
            "records": self.records,
            "seconds": None if seconds is None else round(seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class LinkedPath:
    """The hops of one subscription on a linked resource, from the first hub to its subscriber."""

    row: SubscriptionLag
    hops: tuple[Hop, ...]

    @property
    def status(self) -> Status:
        return worst([h.status for h in self.hops])

    @property
    def end_to_end_seconds(self) -> float | None:
        """Age of the oldest change not yet at the subscriber, from its source commit; 0.0 when nothing
        waits anywhere; None when a hop is not known and no known hop has anything waiting."""
        ages = [h.seconds for h in self.hops]
        known = [a for a in ages if a is not None]
        if known and (len(known) == len(ages) or max(known) > 0):
            return max(known)
        return None

    def to_json(self) -> dict[str, Any]:
        t = self.row.target
        seconds = self.end_to_end_seconds
        return {
            "hub": t.hub,
            "subscription": t.subscription,
            "subscriber": t.subscriber,
            "resource": t.resource,
            "status": self.status.value,
            "end_to_end_seconds": None if seconds is None else round(seconds, 3),
            "hops": [h.to_json() for h in self.hops],
        }


def linked_paths(
    rows: Sequence[SubscriptionLag], upstream: Mapping[tuple[str, str], SubscriptionLag], links: Links
) -> list[LinkedPath]:
    """The path of every row on a linked resource.

    Args:
        rows: the subscriptions of the hubs of the config given (the city's).
        upstream: the link subscriptions measured at the upstream hubs, by (hub, subscription); their
            subscriber lag is the link's (from its position).
        links: where each linked resource comes from.
    """
    return [
        LinkedPath(row, tuple(_hops(row, upstream, links, frozenset())))
        for row in rows
        if (row.target.hub, row.target.resource) in links
    ]


def _hops(
    row: SubscriptionLag,
    upstream: Mapping[tuple[str, str], SubscriptionLag],
    links: Links,
    seen: frozenset[tuple[str, str]],
) -> list[Hop]:
    t = row.target
    before: list[Hop] = []
    source = links.get((t.hub, t.resource))
    if source is not None and source not in seen:
        up = upstream.get(source)
        if up is None:
            hub, subscription = source
            note = f"hub {hub} is in none of the --upstream configs"
            topic = names.delivery_topic(hub, subscription)
            before = [Hop(LINK_HOP, t.owner, None, topic, None, note)]
        else:
            above = _hops(up, upstream, links, seen | {source})[:-1]  # its subscriber is the link
            before = [*above, Hop(LINK_HOP, t.owner, None, up.target.delivery_topic, up.subscriber)]
    return [
        *before,
        Hop(HUB_HOP, t.hub, t.subscription, t.source_topic, row.hub),
        Hop(SUBSCRIBER_HOP, t.subscriber, None, t.delivery_topic, row.subscriber),
    ]


def format_linked_paths(paths: Sequence[LinkedPath]) -> str:
    """The text section ``xhub lag --upstream`` prints: per linked subscription, one line per hop."""
    lines: list[str] = []
    for path in paths:
        t = path.row.target
        seconds = path.end_to_end_seconds
        if seconds is None:
            age = "end to end unknown (a hop is not measured)"
        elif seconds == 0 and all(h.records == 0 for h in path.hops):
            age = "nothing waiting"
        else:
            age = f"oldest waiting change {format_seconds(seconds)} after its source commit"
        lines += [
            "",
            f"LINKED   {t.hub}/{t.subscription} ({t.subscriber}, {t.resource}): {path.status.value}, {age}",
        ]
        table: list[tuple[str, ...]] = [("  HOP", "WHO", "READS", "STATUS", "WAITING", "AGE", "NOTE")]
        for hop in path.hops:
            records = hop.records
            note = hop.reason if hop.status is not Status.OK or hop.view is None else ""
            table.append(
                (
                    f"  {hop.kind}",
                    hop.name if hop.subscription is None else f"{hop.name}: {hop.subscription}",
                    hop.topic,
                    hop.status.value,
                    "?" if records is None else f"{records:,}",
                    format_seconds(hop.seconds),
                    note,
                )
            )
        lines += text_table(table, frozenset({4, 5}))
    return "\n".join(lines)
