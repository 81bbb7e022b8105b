"""Hash chains of audit entries. Pure: the engine writes the entries, `xhub audit verify` re-checks them.

Each writer (hub worker) keeps its own chain, identified by its transactional id; entries carry the chain,
a gap-free sequence number and the previous entry's hash. Altering, dropping or reordering any entry breaks
the chain at that point.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    """sha256 over the previous hash and the canonical JSON of the entry without its own hash."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def key_hash(secret: bytes, resource: str, key: str) -> str:
    """Keyed hash of a business key: an auditor with the key can find it; a reader cannot reverse it."""
    return hmac.new(secret, f"{resource}\x00{key}".encode(), hashlib.sha256).hexdigest()


@dataclass
class AuditChain:
    """The writing end of one chain. ``append`` fills chain, seq, prev_hash and hash."""

    chain: str
    seq: int = 0
    last_hash: str = GENESIS

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        full = {**entry, "chain": self.chain, "seq": self.seq + 1, "prev_hash": self.last_hash}
        full["hash"] = entry_hash(self.last_hash, full)
        self.seq += 1
        self.last_hash = full["hash"]
        return full

    def snapshot(self) -> tuple[int, str]:
        return self.seq, self.last_hash

    def restore(self, state: tuple[int, str]) -> None:
        """Roll back to ``state`` (after an aborted transaction, whose entries never became visible)."""
        self.seq, self.last_hash = state
