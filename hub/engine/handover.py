"""Where each subscription stands on each source partition: live from an offset, or being backfilled.

A subscription joins a partition the main loop already reads at the *handover offset* M (the loop's
position when the plan first became deliverable). Until it is live, the main loop leaves it out; the
backfill serves it: first the current state as of M (the last event per key below M, as op "r"), then
the records from M up to the loop's position as they are (the catch-up), and when it reaches that
position the subscription becomes live there. Per key, the subscriber sees its state, then every later
change in order, each once.

The state of every subscription on a partition lives in the hub's state store (hub/engine/state/), whose
changelog records go out in the same transaction as the deliveries they account for. The committed
offsets' metadata carries only the audit chain's head (a few dozen bytes, whatever the number of
subscriptions); offsets committed by an older hub, which kept the state there, are still read once, to
take it over. Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hub.audit.anchor import METADATA_KEY as AUDIT_KEY

# Version 1 carried the subscriptions' state too ("subs"); version 2 only the audit anchor.
FORMAT_VERSION = 2
FORMATS = (1, 2)


@dataclass(frozen=True, slots=True)
class Live:
    """The main loop serves the subscription from ``offset`` on."""

    offset: int


@dataclass(frozen=True, slots=True)
class Backfilling:
    """The backfill serves the subscription: state below ``snapshot_end``, then records up to the loop.

    ``position`` is the next offset the backfill reads: below ``snapshot_end`` it is in the snapshot
    (only the last event per key is sent, as op "r"); from ``snapshot_end`` on it is catching up.
    """

    snapshot_end: int
    position: int

    @property
    def catching_up(self) -> bool:
        return self.position >= self.snapshot_end


Handover = Live | Backfilling
PartitionState = dict[str, Handover]  # subscription id -> where it stands on one source partition


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """Backfill of one subscription, in source records examined (``xhub lag`` shows it).

    ``state``: "scanning" (finding the last event per key), "delivering" (sending the state as op "r"),
    "catching_up" (sending the records that arrived meanwhile), "waiting" (behind another backfill of
    this worker), or "done" (live everywhere this worker serves it).
    """

    done: int
    total: int
    state: str

    @property
    def records_done(self) -> int:
        """Source records of the snapshot examined so far."""
        return self.done

    @property
    def records_total(self) -> int:
        """Source records of the snapshot to examine (an upper bound of the rows sent: a compacted
        topic not yet cleaned holds several events per key)."""
        return self.total


def establish(offset: int, log_start: int, *, backfill: bool) -> Handover:
    """Where a subscription that becomes deliverable at ``offset`` starts (nothing before: live at once)."""
    if not backfill or offset <= log_start:
        return Live(offset)
    return Backfilling(snapshot_end=offset, position=log_start)


def encode_metadata(audit_anchor: list[Any] | None) -> str:
    """The committed-offset metadata of one partition: the audit anchor (fixed size)."""
    body: dict[str, Any] = {"v": FORMAT_VERSION}
    if audit_anchor is not None:
        body[AUDIT_KEY] = audit_anchor
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def decode_metadata(text: str | None) -> tuple[PartitionState, list[Any] | None]:
    """(state, audit anchor) from committed-offset metadata; empty for none or a foreign format.

    The state is only found in metadata written by a hub before the state store (version 1).
    """
    body = _body(text)
    if body is None:
        return {}, None
    state: PartitionState = {}
    for sid, value in (body.get("subs") or {}).items():
        if isinstance(value, int):
            state[str(sid)] = Live(value)
        elif isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
            state[str(sid)] = Backfilling(value[0], value[1])
    anchor = body.get(AUDIT_KEY)
    return state, anchor if isinstance(anchor, list) else None


def written_by_hub(text: str | None) -> bool:
    """Whether committed-offset metadata is in this module's format (not from a hub before backfill)."""
    return _body(text) is not None


def _body(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return body if isinstance(body, dict) and body.get("v") in FORMATS else None


def partition_progress(h: Backfilling, log_start: int) -> tuple[int, int]:
    """(done, total) source records of the snapshot part of one partition's backfill."""
    total = max(0, h.snapshot_end - log_start)
    done = max(0, min(h.position, h.snapshot_end) - log_start)
    return done, total
