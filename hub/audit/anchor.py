"""Anchors: the (chain, seq, hash) a worker had reached, stored outside the audit topic.

A hash chain shows an altered, dropped or reordered entry, but not a cut tail: the chain simply ends
earlier. So each hub transaction that commits consumed offsets also stores its chain's head in the
committed offsets' metadata (in ``__consumer_offsets``, atomically with the audit entries). `xhub audit
verify` then checks that every anchor it finds is in the audit topic with the same hash. An anchor is as
fresh as the last commit of that partition by that chain; what is cut after the newest anchor can only
be caught against an external record of the chains' last seq/hash, which `verify` prints for operators
to keep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hub.audit.chain import AuditChain

METADATA_KEY = "audit"  # the key of the anchor in the committed offsets' JSON metadata


@dataclass(frozen=True, slots=True)
class Anchor:
    """A chain head recorded elsewhere; ``where`` says where (group, topic-partition)."""

    chain: str
    seq: int
    hash: str
    where: str


def anchor_value(chain: AuditChain) -> list[Any]:
    """What a transaction stores beside its offsets: the chain's head after its entries."""
    return [chain.chain, chain.seq, chain.last_hash]


def anchor_from_value(value: Any, where: str) -> Anchor | None:
    """Parse a stored anchor; None when absent, malformed, or of an empty chain."""
    if not isinstance(value, list) or len(value) != 3:
        return None
    chain, seq, digest = value
    if not isinstance(chain, str) or not isinstance(seq, int) or not isinstance(digest, str) or seq < 1:
        return None
    return Anchor(chain, seq, digest, where)


def anchor_from_metadata(text: str | None, where: str) -> Anchor | None:
    """The anchor inside committed-offset metadata written by a hub worker (JSON with ``audit``)."""
    if not text:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return anchor_from_value(body.get(METADATA_KEY), where) if isinstance(body, dict) else None
