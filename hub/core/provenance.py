"""Provenance of a delivered change: where it was born and every hub it passed (issue 17, point 3).

A Kafka header, ``xhub.provenance``, rather than a field of the change event: the event schema of every
source and delivery topic stays as it is, and a hop adds to the header without re-encoding the value.
Its value is compact JSON, UTF-8::

    {"source": {"dept": "court", "system": "enforcement", "commit_ts_ms": 1760000000007,
                "event_id": "5f0c..."},
     "hops": [{"hub": "pudong", "policy_version": "8d03...", "chain": "xhub-hub-pudong-0", "seq": 42,
               "subscription": "city-debtors", "carried": "xhub.dlv.pudong.city-debtors-1@811"},
              {"hub": "city", "policy_version": "...", "chain": "xhub-hub-city-0", "seq": 7,
               "subscription": "centre-debtors"}]}

``source`` is the department's original change (a link makes itself the source department of the
city's copy, so the original is kept here); each hop names the hub, the policy version of the plan that
delivered it and the position of its audit entry (chain, seq), so ``xhub audit trace`` walks from a city
subscriber's record through each hub's audit to the source event. ``carried`` is the delivery record a
hub link read at the district. The header holds no record data (no personal fields): names, versions,
positions and the event id.

A header is what a writer claims: the trace checks every hop against that hub's audit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

PROVENANCE_HEADER = "xhub.provenance"
POLICY_HEADER = "xhub.policy_version"  # the policy version of the plan a delivery went out under
MAX_HOPS = 16  # a deeper tree is a loop or a forgery; the header stays small
MAX_BYTES = 8_192


@dataclass(frozen=True, slots=True)
class Hop:
    """One hub that delivered the change: its policy version and its audit entry (chain, seq)."""

    hub: str
    policy_version: str
    chain: str
    seq: int
    subscription: str
    carried: str | None = None  # the record a hub link read (topic-partition@offset), if one carried it

    def to_json(self) -> dict[str, Any]:
        # Written out, not dataclasses.asdict (which deep-copies): one of these per delivery.
        out: dict[str, Any] = {
            "hub": self.hub,
            "policy_version": self.policy_version,
            "chain": self.chain,
            "seq": self.seq,
            "subscription": self.subscription,
        }
        if self.carried is not None:
            out["carried"] = self.carried
        return out


@dataclass(frozen=True, slots=True)
class Provenance:
    """The department's original change and the hubs it passed, oldest first."""

    dept: str
    system: str
    commit_ts_ms: int
    event_id: str
    hops: tuple[Hop, ...] = field(default_factory=tuple)

    @classmethod
    def of_event(cls, event: Mapping[str, Any], commit_ts_ms: int) -> Provenance:
        """The provenance of a change event read at its department's source topic (no hop yet)."""
        source = event["source"]
        return cls(str(source["dept"]), str(source["system"]), commit_ts_ms, str(event["event_id"]))

    def with_hop(self, hop: Hop) -> Provenance:
        hops = (*self.hops, hop)[-MAX_HOPS:]
        return Provenance(self.dept, self.system, self.commit_ts_ms, self.event_id, hops)

    def carried_at(self, origin: str) -> Provenance:
        """This provenance with its last hop noting the record a hub link read (``origin``)."""
        if not self.hops:
            return self
        return replace(self, hops=(*self.hops[:-1], replace(self.hops[-1], carried=origin)))

    def to_json(self) -> dict[str, Any]:
        source = {"dept": self.dept, "system": self.system, "commit_ts_ms": self.commit_ts_ms}
        return {"source": {**source, "event_id": self.event_id}, "hops": [h.to_json() for h in self.hops]}

    def header(self) -> tuple[str, bytes]:
        """The Kafka header (name, value)."""
        text = json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return PROVENANCE_HEADER, text.encode("utf-8")


def from_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> Provenance | None:
    """The provenance a record's headers carry; None when absent or not readable as provenance."""
    for name, value in headers or ():
        if name == PROVENANCE_HEADER and value is not None:
            return parse(value)
    return None


def parse(raw: bytes) -> Provenance | None:
    """``raw`` as provenance, or None when it is not one (too long, not JSON, missing parts)."""
    if len(raw) > MAX_BYTES:
        return None
    try:
        doc = json.loads(raw.decode("utf-8"))
        source = doc["source"]
        hops = tuple(
            Hop(
                str(h["hub"]),
                str(h["policy_version"]),
                str(h["chain"]),
                int(h["seq"]),
                str(h["subscription"]),
                str(h["carried"]) if h.get("carried") is not None else None,
            )
            for h in doc["hops"][-MAX_HOPS:]
        )
        return Provenance(
            str(source["dept"]),
            str(source["system"]),
            int(source["commit_ts_ms"]),
            str(source["event_id"]),
            hops,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
