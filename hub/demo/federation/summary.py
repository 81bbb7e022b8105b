"""The federated demo's result: what each court published, what climbed, what the credit centre's table
holds (with the provenance of each row), and the checks of issue 17's points that decide whether the
demo passed. Read while every process still runs: the trace decodes with the hubs' registries.
"""

from __future__ import annotations

import io
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from connectors.testing.kafka import Consumed, TopicReader
from connectors.testing.runtime import serde_for
from hub.config import load_config
from hub.config.validation import compile_config
from hub.core import names
from hub.core.columns import clip, pad
from hub.core.errors import ConfigError
from hub.core.provenance import Provenance, from_headers
from hub.demo.federation.configs import LINK_SUBSCRIPTION, write_yaml
from hub.demo.federation.harness import Federation, delivery_topic_of_link, link_source_name
from hub.demo.federation.parties import (
    CENTRE_FIELDS,
    CITY,
    DISTRICTS,
    centre_subscription,
    district_of_case,
    widening_grant,
)
from hub.demo.federation.table import SubscriberTable
from hub.demo.harness import say

Change = tuple[str, int]  # (business key, seq): one change of one record


class Check(NamedTuple):
    text: str
    ok: bool


@dataclass
class Observed:
    """What the topics and the table hold at the end. Per district (by its hub): the changes its court
    published, the deliveries its hub made to the link and where they end (partition -> last offset + 1)."""

    published: dict[str, dict[Change, dict[str, Any]]] = field(default_factory=dict)
    climbed: dict[str, set[Change]] = field(default_factory=dict)
    climbed_ends: dict[str, dict[int, int]] = field(default_factory=dict)
    at_city: list[Consumed] = field(default_factory=list)  # the city hub's deliveries to the credit centre
    receipts: list[Change] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def read_topics(fed: Federation, hub: str, topics: list[str], quiet_s: float = 2.0) -> list[Consumed]:
    """Every committed record of ``topics`` on ``hub``'s cluster, until ``quiet_s`` without new ones."""
    reader = TopicReader(fed.kafka(hub), topics, serde_for(fed.registry_url(hub)))
    try:
        return list(reader.read_quiet(quiet_s=quiet_s, timeout_s=120))
    finally:
        reader.close()


def observe(fed: Federation, table: SubscriberTable) -> Observed:
    seen = Observed()
    for d in DISTRICTS:
        court, link = names.source_topic(d.court, d.resource), delivery_topic_of_link(d)
        records = read_topics(fed, d.hub, [court, link])
        seen.published[d.hub] = {
            (r.value["key"], r.value["seq"]): r.value for r in records if r.value and r.topic == court
        }
        seen.climbed[d.hub] = {
            (r.value["key"], r.value["seq"]) for r in records if r.value and r.topic == link
        }
        ends = seen.climbed_ends.setdefault(d.hub, {})
        for r in records:
            if r.topic == link:
                ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    topics = [names.delivery_topic(CITY, centre_subscription(d)) for d in DISTRICTS]
    seen.at_city = read_topics(fed, CITY, topics)
    seen.receipts = table.receipts()
    seen.rows = table.records()
    return seen


def provenance_of(record: Consumed) -> Provenance | None:
    return from_headers(list(record.headers.items()))


# -- the checks -------------------------------------------------------------------------------------


def exactly_once(seen: Observed) -> list[Check]:
    """Point 1: per district, what the court published = what the district delivered to the link (its
    grant lets every change climb, narrowed) = what the credit centre applied, each change once."""
    twice = [c for c, n in Counter(seen.receipts).items() if n > 1]
    checks = []
    for d in DISTRICTS:
        published = set(seen.published[d.hub])
        applied = {c for c in seen.receipts if district_of_case(c[0]) == d}
        missing, extra = published - applied, applied - published
        checks.append(
            Check(
                f"exactly once, {d.hub}: the court published {len(published)} changes, the district hub "
                f"delivered {len(seen.climbed[d.hub])} to the link, the credit centre applied {len(applied)} "
                f"(missing {len(missing)}, not published {len(extra)})",
                bool(published) and published == seen.climbed[d.hub] == applied,
            )
        )
    checks.append(Check(f"no change applied twice at the city ({len(twice)} twice)", not twice))
    return checks


def link_positions(fed: Federation, seen: Observed) -> list[Check]:
    """Point 1: each link's position on its district's delivery topic is kept in the CITY cluster
    (``xhub.pos.<district hub>``, written in the transaction of the records it carried), and stands
    right after the last record the district delivered to it."""
    from connectors.runtime.positions import read_position

    checks = []
    for d in DISTRICTS:
        stored = read_position(
            fed.kafka(CITY), names.position_topic(d.hub), link_source_name(d), client_id="xhub-demo"
        )
        position = stored if isinstance(stored, dict) else {}  # {"topic": ..., "offsets": {"0": 812, ...}}
        offsets = {int(p): int(o) for p, o in (position.get("offsets") or {}).items()}
        checks.append(
            Check(
                f"the {d.hub} link's position, in the city cluster ({names.position_topic(d.hub)}): "
                f"{dict(sorted(offsets.items()))} = right after the last of the district's deliveries to it",
                position.get("topic") == delivery_topic_of_link(d)
                and bool(offsets)
                and offsets == seen.climbed_ends.get(d.hub),
            )
        )
    return checks


def policy(fed: Federation, seen: Observed, courts_clear_id: dict[str, str]) -> list[Check]:
    """Point 2: narrowed at each level, the district's mask kept, the city unable to widen it."""
    columns = {c for row in seen.rows[:1] for c in row if not c.startswith("_xhub") and c != "xhub_key"}
    ids = [str(r.get("debtor_id")) for r in seen.rows]
    leaked = [case for case, clear in courts_clear_id.items() if clear in ids]
    names_clear = [str(r.get("debtor_name")) for r in seen.rows if r.get("debtor_name")]
    checks = [
        Check(
            f"narrowed: the credit centre's table has {sorted(columns)}; the obligation stayed at the "
            "districts (not in the link's subscription), the publication date at the city (not in the "
            "centre's)",
            bool(columns) and columns <= set(CENTRE_FIELDS) and "obligation" not in columns,
        ),
        Check(
            "masked at the district stays masked: debtor IDs at the city look like "
            f"{ids[0] if ids else '?'}; "
            f"{len(leaked)} of the {len(courts_clear_id)} IDs the courts hold in clear appear at the city",
            bool(ids) and all("*" in i for i in ids) and not leaked and bool(courts_clear_id),
        ),
        Check(
            f"names in clear by the grants of both levels, e.g. {names_clear[0] if names_clear else '?'}",
            bool(names_clear) and all("*" not in n for n in names_clear),
        ),
    ]
    refused = _widening_refused(fed)
    checks.append(
        Check(f"the city cannot widen: xhub validate refuses {refused or 'NOTHING'}", refused is not None)
    )
    return checks


def _widening_refused(fed: Federation) -> str | None:
    """The error validation gives a city grant that puts the district-masked ID in clear (on a copy)."""
    copy = fed.workdir / "city-widening"
    shutil.copytree(fed.roots[CITY], copy)
    district = DISTRICTS[0]
    write_yaml(copy / "grants" / district.hub / "credit.yaml", {"grants": [widening_grant(district)]})
    try:
        compile_config(load_config(copy))
    except ConfigError as exc:
        return str(exc).splitlines()[-1].strip()
    return None


def _millis(value: Any) -> int:
    """Epoch milliseconds of a decoded ``timestamp-millis`` (a datetime) or of the raw number."""
    return round(value.timestamp() * 1000) if isinstance(value, datetime) else int(value)


def provenance(seen: Observed) -> Check:
    """Point 3: every delivery at the city names the court, its commit time and both hubs in order."""
    bad = 0
    for record in seen.at_city:
        event, prov = record.value, provenance_of(record)
        d = district_of_case(event["key"])
        source = seen.published[d.hub].get((event["key"], event["seq"]))
        if (
            prov is None
            or source is None
            or (prov.dept, prov.commit_ts_ms) != (d.court, _millis(source["source"]["commit_ts_ms"]))
            or [h.hub for h in prov.hops] != [d.hub, CITY]
        ):
            bad += 1
    return Check(
        f"provenance: {len(seen.at_city) - bad} of {len(seen.at_city)} deliveries at the city name their "
        "court, its commit time and the hubs [district, city] (xhub.provenance)",
        bool(seen.at_city) and bad == 0,
    )


def terms_current(copied: dict[str, str], seen: Observed) -> Check:
    """Point 2: the city's copy of each district's published terms (``copied``: district hub -> the
    policy version in the copy) is what that district delivered under (the first hop of every record)."""
    used: dict[str, set[str]] = {d.hub: set() for d in DISTRICTS}
    for record in seen.at_city:
        prov = provenance_of(record)
        if prov is not None and prov.hops:
            used.setdefault(prov.hops[0].hub, set()).add(prov.hops[0].policy_version)
    shown = ", ".join(f"{hub} {version}" for hub, version in sorted(copied.items()))
    return Check(
        f"linked resources: the city's copies of the districts' published terms (policy {shown}) are "
        "the policies the districts delivered under",
        all(used.get(d.hub) == {copied.get(d.hub)} for d in DISTRICTS),
    )


def traces(fed: Federation, seen: Observed) -> list[Check]:
    """Point 3: `xhub audit trace --upstream` of one key per district walks to the court's event."""
    from hub.audit.trace_command import trace_command

    checks = []
    for d in DISTRICTS:
        keys = [e.value["key"] for e in seen.at_city if district_of_case(e.value["key"]) == d]
        if not keys:
            checks.append(Check(f"trace {d.hub}: no delivery to trace", False))
            continue
        key = Counter(keys).most_common(1)[0][0]  # a key with several changes: a longer walk
        out = io.StringIO()
        found = trace_command(
            str(fed.roots[CITY]), CITY, d.resource, key, upstream=[str(fed.roots[d.hub])], out=out
        )
        say(out.getvalue().rstrip())
        ok = bool(found) and all(t.ok and len([s for s in t.steps if s.what == "hop"]) == 2 for t in found)
        checks.append(
            Check(
                f"xhub audit trace of a {d.hub} case at the city: {len(found)} deliveries, each walked "
                "to the court's event",
                ok,
            )
        )
    return checks


def lag_per_hop(fed: Federation) -> Check:
    """Point 4: nothing waits on any hop: the court's change log (its sidecar's backlog), the district
    hub, the link, the city hub, the credit centre's sidecar."""
    parts = []
    ok = True
    for d in DISTRICTS:
        doc = fed.status(d.hub)
        court = [s for s in (doc.get("path") or {}).get("sources", []) if s.get("department") == d.court]
        subs = [s for s in doc.get("subscriptions", []) if s.get("subscription") == LINK_SUBSCRIPTION]
        hub_lag = (subs[0].get("hub_lag") or {}).get("lag_records") if subs else None
        court_rows = court[0].get("rows") if court else None
        parts.append(f"{d.court} log {court_rows}, {d.hub} hub {hub_lag}")
        ok = ok and hub_lag == 0 and court_rows == 0
    city = fed.status(CITY)
    links = [s for s in (city.get("path") or {}).get("sources", []) if s.get("kind") == "hub_link"]
    for link in sorted(links, key=lambda s: str(s.get("department"))):
        parts.append(f"link {link.get('department')} {link.get('rows')} ({link.get('status')})")
        ok = ok and link.get("rows") == 0 and link.get("status") == "OK"
    for s in city.get("subscriptions", []):
        hub_lag = (s.get("hub_lag") or {}).get("lag_records")
        sub_lag = (s.get("subscriber_lag") or {}).get("lag_records")
        parts.append(f"city {s.get('subscription')} hub {hub_lag} centre {sub_lag}")
        ok = ok and hub_lag == 0 and sub_lag == 0
    return Check(
        "lag per hop (records waiting): " + ", ".join(parts) + "; the city's status page lists both links",
        ok and len(links) == len(DISTRICTS),
    )


# -- what the user sees ---------------------------------------------------------------------------


WIDTHS = (24, 10, 21, 12, 30, 16)  # terminal columns of the table's cells


def print_table(seen: Observed, shown: int = 12) -> None:
    """The credit centre's merged table, newest rows first, each with where it came from."""
    by_change = {(r.value["key"], r.value["seq"]): provenance_of(r) for r in seen.at_city if r.value}
    rows = sorted(seen.rows, key=lambda r: str(r.get("_xhub_applied_at") or ""), reverse=True)
    counts = Counter(district_of_case(str(r["xhub_key"])).hub for r in seen.rows)
    say(f"\n== the credit centre's merged list: {len(rows)} debtors ({dict(counts)}), newest first ==")
    head = ("case", "name", "debtor id", "status", "from (source dept @ commit)", "via hubs")
    say("   " + "".join(pad(h, w) for h, w in zip(head, WIDTHS, strict=True)) + f"{'age':>8}")
    for row in rows[:shown]:
        prov = by_change.get((str(row["xhub_key"]), int(row["_xhub_seq"])))
        commit = int(row.get("_xhub_source_commit_ms") or 0)
        applied = datetime.fromisoformat(str(row["_xhub_applied_at"])).replace(tzinfo=UTC).timestamp() * 1000
        source = (
            "?"
            if prov is None
            else f"{prov.dept} @{datetime.fromtimestamp(commit / 1000, UTC):%H:%M:%S.%f}"[:-3]
        )
        via = "?" if prov is None else " -> ".join(h.hub for h in prov.hops)
        cells = [str(row.get(c) or "") for c in ("case_no", "debtor_name", "debtor_id", "performance_status")]
        cells[1] = clip(cells[1], WIDTHS[1] - 1)  # an entity's name is long
        line = "".join(pad(c, w) for c, w in zip([*cells, source, via], WIDTHS, strict=True))
        say(f"   {line}{(applied - commit) / 1000:>7.1f}s")


def report(checks: list[Check], wall_s: float, workdir: str) -> bool:
    say("\n== summary ==")
    for check in checks:
        say(f"  [{'ok' if check.ok else 'FAILED'}] {check.text}")
    passed = bool(checks) and all(c.ok for c in checks)
    say(
        f"federated demo {'passed' if passed else 'FAILED'} in {wall_s:.0f} s; "
        f"logs and databases in {workdir}"
    )
    return passed
