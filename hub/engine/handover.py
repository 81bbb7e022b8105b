"""Where each subscription stands on each source partition: live from an offset, or being backfilled.

A subscription joins a partition the main loop already reads at the *handover offset* M (the loop's
position when the plan first became deliverable). Until it is live, the main loop leaves it out; the
backfill serves it: first the current state as of M (the last event per key below M, as op "r"), then
the records from M up to the loop's position as they are (the catch-up), and when it reaches that
position the subscription becomes live there. Per key, the subscriber sees its state, then every later
change in order, each once.

The state of every subscription on a partition travels in the metadata of the hub group's committed
offset of that partition, so it is written in the same transaction as the deliveries it accounts for,
read back with the offsets (stable reads under read_committed), and fenced like them. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.audit.anchor import METADATA_KEY as AUDIT_KEY
from hub.engine.errors import HandoverStateError

FORMAT_VERSION = 1
# Kafka's default offset.metadata.max.bytes; a commit over it fails the transaction.
METADATA_MAX_BYTES = 4096
# Room kept for the audit anchor (chain id, seq, hash) and for offsets that grow a digit or two.
ANCHOR_RESERVE = 320


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


def establish(offset: int, log_start: int, *, backfill: bool) -> Handover:
    """Where a subscription that becomes deliverable at ``offset`` starts (nothing before: live at once)."""
    if not backfill or offset <= log_start:
        return Live(offset)
    return Backfilling(snapshot_end=offset, position=log_start)


def encode_metadata(state: Mapping[str, Handover], audit_anchor: list[Any] | None, *, where: str) -> str:
    """The committed-offset metadata of one partition: the subscriptions' state and the audit anchor.

    Raises:
        HandoverStateError: the metadata would exceed Kafka's ``offset.metadata.max.bytes``.
    """
    body = _body(state)
    subs = body["subs"]
    if audit_anchor is not None:
        body[AUDIT_KEY] = audit_anchor
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode("utf-8")) > METADATA_MAX_BYTES:
        raise HandoverStateError(
            f"{where}: the state of {len(subs)} subscriptions needs {len(text.encode('utf-8'))} bytes of "
            f"committed-offset metadata, over Kafka's offset.metadata.max.bytes ({METADATA_MAX_BYTES}); "
            "raise that broker setting or split the subscriptions of this resource across hubs"
        )
    return text


def fits(state: Mapping[str, Handover]) -> bool:
    """Whether ``state`` fits in the committed-offset metadata with room for the audit anchor.

    A subscription whose state would not fit is held back on that partition (the worker refuses it the
    records there as ``handover_state_full`` and alerts) instead of failing every commit of the worker.
    """
    text = json.dumps(_body(state), separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8")) + ANCHOR_RESERVE <= METADATA_MAX_BYTES


def _body(state: Mapping[str, Handover]) -> dict[str, Any]:
    subs: dict[str, Any] = {}
    for sid in sorted(state):
        h = state[sid]
        subs[sid] = h.offset if isinstance(h, Live) else [h.snapshot_end, h.position]
    return {"v": FORMAT_VERSION, "subs": subs}


def decode_metadata(text: str | None) -> tuple[PartitionState, list[Any] | None]:
    """(state, audit anchor) from committed-offset metadata; empty for none or a foreign format."""
    if not text:
        return {}, None
    try:
        body = json.loads(text)
    except ValueError:
        return {}, None
    if not isinstance(body, dict) or body.get("v") != FORMAT_VERSION:
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
    if not text:
        return False
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("v") == FORMAT_VERSION


def partition_progress(h: Backfilling, log_start: int) -> tuple[int, int]:
    """(done, total) source records of the snapshot part of one partition's backfill."""
    total = max(0, h.snapshot_end - log_start)
    done = max(0, min(h.position, h.snapshot_end) - log_start)
    return done, total


def progress_from_offsets(
    committed: Mapping[Any, Any], log_starts: Mapping[Any, int] | None = None
) -> dict[str, BackfillProgress]:
    """Backfill progress per subscription from a hub group's committed offsets (for ``xhub lag``).

    Args:
        committed: {TopicPartition: OffsetAndMetadata} of the group ``xhub-hub-<hub>``.
        log_starts: {TopicPartition: log start offset}; 0 where missing (compacted topics keep 0).

    Returns:
        Only subscriptions with a backfill under way ("delivering" or "catching_up"; a backfill that
        crashed mid-scan shows "delivering" at its committed position).
    """
    sums: dict[str, list[int]] = {}
    catching: dict[str, bool] = {}
    for tp, om in committed.items():
        state, _ = decode_metadata(getattr(om, "metadata", None))
        start = (log_starts or {}).get(tp, 0)
        for sid, h in state.items():
            if isinstance(h, Backfilling):
                done, total = partition_progress(h, start)
                acc = sums.setdefault(sid, [0, 0])
                acc[0] += done
                acc[1] += total
                catching[sid] = catching.get(sid, True) and h.catching_up
    return {
        sid: BackfillProgress(done, total, "catching_up" if catching[sid] else "delivering")
        for sid, (done, total) in sums.items()
    }
