"""``xhub audit trace``: from a disclosure at the last hub back through every hub's audit to the source.

For record K of resource R, the last hub's audit gives its deliveries (found by K's keyed hash, as in
``audit show``); each delivered record carries the ``xhub.provenance`` header (hub.core.provenance):
the source change and, per hub it passed, the audit entry (chain, seq) of that hop. The trace reads
each of those entries in that hub's own audit, on that hub's cluster, and checks that it is a delivery
of the same resource under the policy version the header names (and of the same key, when that hub's
secret is at hand); the first hub's entry names the source record, which is read and checked against
the header's source department, commit time and event id. A header is a claim; the audits are the
record: every step says whether they agree.

The walking is pure over a :class:`Hubs` reader (``trace_disclosure``); ``hub.audit.cli`` binds it to
the clusters of the config directories given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.audit.chain import key_hash
from hub.audit.show import iso
from hub.core.envelope import ChangeEvent
from hub.core.provenance import Hop, Provenance, from_headers


class Hubs(Protocol):
    """What the trace reads of the hubs it knows (None: that hub, entry or record is not reachable)."""

    def audit_entry(self, hub: str, chain: str, seq: int) -> dict[str, Any] | None: ...

    def record_at(
        self, hub: str, origin: str
    ) -> tuple[list[tuple[str, bytes]], dict[str, Any] | None] | None:
        """(headers, decoded value or None) of the record at ``topic-partition@offset`` on hub's cluster."""
        ...

    def secret(self, hub: str) -> bytes | None: ...


@dataclass
class Step:
    """One step of a trace: what was found, and whether the audit agrees with the header."""

    what: str  # "hop" or "source"
    hub: str
    text: str
    ok: bool
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "hub": self.hub,
            "text": self.text,
            "ok": self.ok,
            "problems": self.problems,
        }


@dataclass
class Trace:
    """The path of one delivery at the last hub, newest hop first, down to the source."""

    delivered: Mapping[str, Any]
    provenance: Provenance | None
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.provenance is not None and all(s.ok for s in self.steps)

    def lines(self) -> list[str]:
        e = self.delivered
        head = (
            f"{iso(int(e.get('ts_ms') or 0))} {e.get('subscriber')} <- {e.get('subscription')} "
            f"({e.get('resource')}, op {e.get('op')}) at {_delivered_at(e)}"
        )
        if self.provenance is None:
            return [
                head,
                "  no provenance header on the delivered record (delivered before provenance, or gone)",
            ]
        out = [head]
        for step in self.steps:
            mark = "ok" if step.ok else "MISMATCH"
            out.append(f"  {step.what} {step.hub}: {step.text} [{mark}]")
            out.extend(f"    - {problem}" for problem in step.problems)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "delivered": dict(self.delivered),
            "provenance": self.provenance.to_json() if self.provenance else None,
            "steps": [s.to_json() for s in self.steps],
            "ok": self.ok,
        }


def _delivered_at(entry: Mapping[str, Any]) -> str:
    return (
        f"{entry.get('delivered_topic')}-{entry.get('delivered_partition')}@{entry.get('delivered_offset')}"
    )


def trace_disclosure(hubs: Hubs, hub: str, entry: Mapping[str, Any], key: str) -> Trace:
    """The trace of one ``delivered`` audit entry of ``hub`` (found by key hash) for business ``key``."""
    record = hubs.record_at(hub, _delivered_at(entry))
    provenance = from_headers(record[0]) if record is not None else None
    trace = Trace(entry, provenance)
    if provenance is None or not provenance.hops:
        return trace
    resource = str(entry.get("resource"))
    *before, last = provenance.hops
    step = _hop_step(hubs, last, entry, resource, key)
    if (last.hub, last.chain, last.seq) != (hub, entry.get("chain"), entry.get("seq")):
        step.problems.append(f"the header's last hop is {last.hub} {last.chain}#{last.seq}, not this entry")
        step.ok = False
    trace.steps.append(step)
    found: Mapping[str, Any] | None = entry
    for hop in reversed(before):
        found = hubs.audit_entry(hop.hub, hop.chain, hop.seq)
        trace.steps.append(_hop_step(hubs, hop, found, resource, key))
    trace.steps.append(_source_step(hubs, provenance, found, key))
    return trace


def _hop_step(hubs: Hubs, hop: Hop, found: Mapping[str, Any] | None, resource: str, key: str) -> Step:
    where = f"audit {hop.chain}#{hop.seq}"
    if found is None:
        return Step(
            "hop", hop.hub, f"{where}: not found (hub not given, or entry missing)", False, ["not found"]
        )
    problems = []
    if found.get("kind") != "delivered":
        problems.append(f"entry is {found.get('kind')}, not delivered")
    if found.get("resource") != resource:
        problems.append(f"entry is of resource {found.get('resource')}, not {resource}")
    if found.get("policy_version") != hop.policy_version:
        problems.append(
            f"policy {found.get('policy_version')} in the audit, {hop.policy_version} in the header"
        )
    if found.get("subscription") != hop.subscription:
        problems.append(
            f"subscription {found.get('subscription')} in the audit, {hop.subscription} in the header"
        )
    if hop.carried is not None and _delivered_at(found) != hop.carried:
        problems.append(f"the link carried {hop.carried}, the audit entry delivered {_delivered_at(found)}")
    secret = hubs.secret(hop.hub)
    if secret is not None and found.get("key_hash") != key_hash(secret, resource, key):
        problems.append("the entry is of another key")
    text = (
        f"{where} delivered to {found.get('subscriber')} ({found.get('subscription')}) under policy "
        f"{found.get('policy_version')}, fields {','.join(found.get('fields') or [])}; "
        f"read from {found.get('source')}"
    )
    return Step("hop", hop.hub, text, not problems, problems)


def _source_step(hubs: Hubs, provenance: Provenance, first: Mapping[str, Any] | None, key: str) -> Step:
    first_hub = provenance.hops[0].hub
    origin = str(first.get("source")) if first is not None else None
    claimed = (
        f"{provenance.dept} event {provenance.event_id} committed {iso(provenance.commit_ts_ms)}"
        f" ({provenance.commit_ts_ms})"
    )
    if origin is None:
        return Step(
            "source", first_hub, f"{claimed}: the first hub's audit entry was not read", False, ["not read"]
        )
    record = hubs.record_at(first_hub, origin)
    value = record[1] if record is not None else None
    if value is None:
        return Step("source", first_hub, f"{claimed}: record {origin} not readable", False, ["not readable"])
    event = ChangeEvent.from_avro(value)
    problems = []
    if event.event_id != provenance.event_id or (
        first is not None and first.get("event_id") != event.event_id
    ):
        problems.append(f"event {event.event_id} at {origin}, {provenance.event_id} in the header")
    if event.dept != provenance.dept:
        problems.append(f"department {event.dept} at the source, {provenance.dept} in the header")
    if event.commit_ts_ms != provenance.commit_ts_ms:
        problems.append(
            f"commit time {event.commit_ts_ms} at the source, {provenance.commit_ts_ms} in the header"
        )
    if event.key != key:
        problems.append("the source event is of another key")
    text = (
        f"{event.dept} ({event.system}) event {event.event_id} op {event.op} "
        f"committed {iso(event.commit_ts_ms)} at {origin}"
    )
    return Step("source", first_hub, text, not problems, problems)
