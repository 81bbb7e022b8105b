"""Verify the keyed hash chains of an audit log. Pure: give it (offset, entry) pairs in log order.

Per chain (one per hub worker) the entries must run seq 1, 2, 3 ... without a gap, each entry's
``prev_hash`` must be the previous entry's ``hash``, and each ``hash`` must be the HMAC recomputed with
the hub's audit key. What breaks is reported where it breaks, as one of:

- ``altered``: an entry's content no longer matches its keyed hash (edited, or rebuilt by someone
  without the key), or an entry was rewritten with a fresh hash (then its successor's ``prev_hash`` no
  longer matches), or an anchor's or checkpoint's hash differs;
- ``missing``: seqs absent from the chain (an entry dropped; or the head of the chain gone);
- ``reordered``: an entry appears after a later entry of its chain (or twice);
- ``undecodable``: a record that is not an audit batch at all;
- ``truncated``: an anchor (the chain head stored with the hub's committed offsets) or a checkpoint names
  a seq the log does not reach, i.e. the tail of the chain was cut;
- ``unknown_chain``: a chain whose name is not one of the hub's workers;
- ``invented``: a chain with entries before a checkpoint's end offset that the checkpoint does not list;
- ``checkpoint``: a checkpoint file that does not verify (signature, sequence).

Memory stays small: per chain the last seq and hash, the open gaps, and the hashes at anchored seqs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.audit.anchor import Anchor
from hub.audit.chain import GENESIS, EntryHasher
from hub.audit.checkpoint import Checkpoint

MAX_REPORTED = 1000  # problems kept in full; more are counted


@dataclass(frozen=True, slots=True)
class Problem:
    """One break in the audit log: what, where (topic offset, chain, seq) and why."""

    kind: (
        str  # altered | missing | reordered | undecodable | truncated | unknown_chain | invented | checkpoint
    )
    offset: int | None
    chain: str | None
    seq: int | None
    detail: str

    def __str__(self) -> str:
        where = [f"offset {self.offset}" if self.offset is not None else None]
        if self.chain is not None:
            where.append(f"chain {self.chain}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        places = ", ".join(w for w in where if w)
        return f"{self.kind} at {places}: {self.detail}" if places else f"{self.kind}: {self.detail}"


@dataclass
class ChainSummary:
    """What verify saw of one chain; ``last_seq``/``last_hash`` are the anchor to record externally."""

    chain: str
    entries: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    last_hash: str = GENESIS
    last_offset: int | None = None
    anchored_seq: int | None = None  # the newest anchor checked against this chain
    checkpointed_seq: int | None = None  # the newest checkpointed head checked against this chain
    first_offset: int | None = None


@dataclass
class VerifyReport:
    entries: int = 0
    chains: dict[str, ChainSummary] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0  # beyond MAX_REPORTED
    anchors_checked: int = 0
    checkpoints_checked: int = 0
    end_offset: int = 0  # where the log was read to (set by the reader; a checkpoint records it)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.more_problems

    def first_break(self) -> Problem | None:
        """The earliest problem in log order (anchors, which have no offset, last)."""
        if not self.problems:
            return None
        return min(self.problems, key=lambda p: (p.offset is None, p.offset or 0))


@dataclass
class _ChainState:
    summary: ChainSummary
    expect: int = 1
    last_hash: str = GENESIS
    last_offset: int | None = None
    # [first missing seq, last missing seq, offset of the entry after, offset of the entry before or -1]
    gaps: list[list[int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Expectations:
    """What the log is checked against besides itself.

    Attributes:
        anchors: chain heads the hub stored with its committed offsets (see anchor.py).
        checkpoints: the auditor's signed checkpoints (see checkpoint.py), already read and verified.
        checkpoint_problems: what was wrong with the checkpoint files (each becomes a problem).
        known_chain: whether a chain name is one of the hub's workers (None: any name).
    """

    anchors: Sequence[Anchor] = ()
    checkpoints: Sequence[Checkpoint] = ()
    checkpoint_problems: Sequence[str] = ()
    known_chain: Callable[[str], bool] | None = None


class _Verifier:
    def __init__(self, key: bytes, expect: Expectations) -> None:
        self.entry_hash = EntryHasher(key)
        self.expect = expect
        self.report = VerifyReport()
        self.chains: dict[str, _ChainState] = {}
        self.anchors: dict[tuple[str, int], list[Anchor]] = {}
        for anchor in expect.anchors:
            self.anchors.setdefault((anchor.chain, anchor.seq), []).append(anchor)
        for checkpoint in expect.checkpoints:
            where = f"checkpoint {checkpoint.path.name}"
            for head in checkpoint.heads:
                self.anchors.setdefault((head.chain, head.seq), []).append(
                    Anchor(head.chain, head.seq, head.hash, where)
                )
        self.anchor_hashes: dict[tuple[str, int], str] = {}

    def problem(self, kind: str, offset: int | None, chain: str | None, seq: int | None, detail: str) -> None:
        if len(self.report.problems) < MAX_REPORTED:
            self.report.problems.append(Problem(kind, offset, chain, seq, detail))
        else:
            self.report.more_problems += 1

    def feed(self, offset: int, entry: Mapping[str, Any] | None) -> None:
        self.report.entries += 1
        if entry is None:
            self.problem("undecodable", offset, None, None, "not an audit entry (cannot be decoded)")
            return
        chain, seq, claimed = entry.get("chain"), entry.get("seq"), entry.get("hash")
        if not isinstance(chain, str) or not isinstance(seq, int) or not isinstance(claimed, str):
            self.problem("undecodable", offset, None, None, "entry lacks chain, seq or hash")
            return
        state = self.chains.get(chain)
        if state is None:
            state = self.chains[chain] = _ChainState(ChainSummary(chain, first_offset=offset))
            self.report.chains[chain] = state.summary
            known = self.expect.known_chain
            if known is not None and not known(chain):
                self.problem(
                    "unknown_chain", offset, chain, seq, "no worker of this hub writes a chain so named"
                )
        prev = str(entry.get("prev_hash", ""))
        if self.entry_hash(prev, dict(entry)) != claimed:
            self.problem(
                "altered", offset, chain, seq, "content does not match the entry's keyed hash (audit key)"
            )
        if (chain, seq) in self.anchors:
            self.anchor_hashes[(chain, seq)] = claimed
        self._link(state, offset, seq, prev, claimed)
        summary = state.summary
        summary.entries += 1
        if summary.first_seq is None:
            summary.first_seq = seq

    def _link(self, state: _ChainState, offset: int, seq: int, prev: str, claimed: str) -> None:
        chain = state.summary.chain
        if seq == state.expect:
            if prev != state.last_hash:
                if state.last_offset is None:
                    self.problem(
                        "altered", offset, chain, seq, "the first entry does not start from the genesis hash"
                    )
                else:
                    self.problem(
                        "altered",
                        state.last_offset,
                        chain,
                        seq - 1,
                        f"its hash is not the prev_hash that seq {seq} (offset {offset}) recorded: "
                        "the entry was rewritten",
                    )
            self._advance(state, offset, seq, claimed)
        elif seq > state.expect:
            before = state.last_offset if state.last_offset is not None else -1
            state.gaps.append([state.expect, seq - 1, offset, before])
            self._advance(state, offset, seq, claimed)
        else:
            for gap in state.gaps:
                if gap[0] <= seq <= gap[1]:
                    self.problem(
                        "reordered",
                        offset,
                        chain,
                        seq,
                        f"comes after seq {state.expect - 1} (offset {state.last_offset}); "
                        "its place is earlier",
                    )
                    self._fill(state, gap, seq)
                    return
            self.problem(
                "reordered", offset, chain, seq, f"seq {seq} appears again (after seq {state.expect - 1})"
            )

    @staticmethod
    def _fill(state: _ChainState, gap: list[int], seq: int) -> None:
        state.gaps.remove(gap)
        if gap[0] < seq:
            state.gaps.append([gap[0], seq - 1, gap[2], gap[3]])
        if seq < gap[1]:
            state.gaps.append([seq + 1, gap[1], gap[2], gap[3]])

    @staticmethod
    def _advance(state: _ChainState, offset: int, seq: int, claimed: str) -> None:
        state.expect = seq + 1
        state.last_hash = claimed
        state.last_offset = offset
        summary = state.summary
        summary.last_seq, summary.last_hash, summary.last_offset = seq, claimed, offset

    def finish(self) -> VerifyReport:
        for chain, state in self.chains.items():
            for first, last, offset, before in sorted(state.gaps):
                which = f"seq {first}" if first == last else f"seqs {first}..{last}"
                if before < 0:
                    where = f"before offset {offset} (the head of the chain)"
                else:
                    where = f"between offset {before} (seq {first - 1}) and offset {offset} (seq {last + 1})"
                self.problem("missing", offset, chain, first, f"{which} absent {where}")
        for (chain, seq), anchors in sorted(self.anchors.items()):
            for anchor in anchors:
                self._check_anchor(chain, seq, anchor)
        self._check_checkpoints()
        return self.report

    def _check_checkpoints(self) -> None:
        for problem in self.expect.checkpoint_problems:
            self.problem("checkpoint", None, None, None, problem)
        if not self.expect.checkpoints:
            return
        self.report.checkpoints_checked = len(self.expect.checkpoints)
        newest = max(self.expect.checkpoints, key=lambda c: c.end_offset)
        listed = {head.chain for head in newest.heads}
        for chain, state in sorted(self.chains.items()):
            first = state.summary.first_offset
            if chain not in listed and first is not None and first < newest.end_offset:
                self.problem(
                    "invented",
                    first,
                    chain,
                    None,
                    f"has entries before offset {newest.end_offset}, but checkpoint {newest.path.name} "
                    "(which read the log up to there) does not list it",
                )

    def _check_anchor(self, chain: str, seq: int, anchor: Anchor) -> None:
        self.report.anchors_checked += 1
        state = self.chains.get(chain)
        found = self.anchor_hashes.get((chain, seq))
        if state is None or state.summary.last_seq < seq:
            reached = state.summary.last_seq if state is not None else 0
            self.problem(
                "truncated",
                None,
                chain,
                seq,
                f"{anchor.where} records seq {seq}, but the chain ends at seq {reached}: its tail was cut",
            )
        elif found is None:
            self.problem(
                "missing", None, chain, seq, f"{anchor.where} records seq {seq}, which is not in the log"
            )
        elif found != anchor.hash:
            self.problem("altered", None, chain, seq, f"hash differs from the one {anchor.where} records")
        else:
            summary = state.summary
            if anchor.where.startswith("checkpoint "):
                summary.checkpointed_seq = max(summary.checkpointed_seq or 0, seq)
            else:
                summary.anchored_seq = max(summary.anchored_seq or 0, seq)


def verify_entries(
    items: Iterable[tuple[int, Mapping[str, Any] | None]],
    *,
    key: bytes,
    expect: Expectations | None = None,
) -> VerifyReport:
    """Check every chain in ``items`` ((topic offset, decoded entry or None), in log order).

    Args:
        items: the audit log in order; None for a record that could not be decoded.
        key: the hub's audit key (the chains' HMAC key).
        expect: anchors, checkpoints and the hub's chain names, checked against the log.
    """
    verifier = _Verifier(key, expect or Expectations())
    for offset, entry in items:
        verifier.feed(offset, entry)
    return verifier.finish()
