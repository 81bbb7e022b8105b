"""Keyed hash chains of audit entries. Pure: the engine writes them, `xhub audit verify` re-checks them.

Each writer (hub worker) keeps its own chain, identified by its transactional id; entries carry the chain,
a gap-free sequence number and the previous entry's hash. Altering, dropping or reordering any entry breaks
the chain at that point. The hash is an HMAC-SHA256 under the hub's audit key: whoever can write the audit
topic but does not hold the key cannot rebuild a chain (say, without one disclosure) or invent one that
verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from hub.core import names
from hub.core.errors import ConfigError

GENESIS = "0" * 64
MIN_KEY_BYTES = 16  # an HMAC key shorter than this is guessable; the hub refuses it


def check_key(key: bytes, where: str) -> bytes:
    """``key`` if it is long enough to be an audit key; ``where`` names its source in the error."""
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{where}: the audit key must be at least {MIN_KEY_BYTES} bytes")
    return key


def is_worker_chain(hub: str, chain: str) -> bool:
    """Whether ``chain`` is the transactional id of a worker of ``hub`` or of a worker's backfill task
    (the only writers of its audit)."""
    prefix = f"{names.hub_group(hub)}-"
    number = chain.removeprefix(prefix).removesuffix("-backfill")
    return (
        chain.startswith(prefix)
        and number.isdigit()
        and chain
        in {
            names.hub_transactional_id(hub, int(number)),
            names.hub_backfill_transactional_id(hub, int(number)),
        }
    )


def canonical(body: dict[str, Any]) -> bytes:
    """The bytes a hash or signature covers: sorted-key compact JSON, UTF-8."""
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def entry_hash(key: bytes, prev_hash: str, entry: dict[str, Any]) -> str:
    """HMAC-SHA256 under the audit ``key`` of the previous hash and the entry without its own hash."""
    return EntryHasher(key)(prev_hash, entry)


class EntryHasher:
    """:func:`entry_hash` for one key, keyed once (the HMAC's key schedule is not redone per entry)."""

    __slots__ = ("_mac",)

    def __init__(self, key: bytes) -> None:
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def __call__(self, prev_hash: str, entry: dict[str, Any]) -> str:
        body = {k: v for k, v in entry.items() if k != "hash"}
        mac = self._mac.copy()
        mac.update(prev_hash.encode("ascii"))
        mac.update(canonical(body))
        return mac.hexdigest()


def key_hash(secret: bytes, resource: str, key: str) -> str:
    """Keyed hash of a business key: an auditor with the key can find it; a reader cannot reverse it."""
    return hmac.digest(secret, f"{resource}\x00{key}".encode(), "sha256").hex()  # one-shot, in C


@dataclass
class AuditChain:
    """The writing end of one chain. ``append`` fills chain, seq, prev_hash and hash."""

    chain: str
    key: bytes = field(repr=False)
    seq: int = 0
    last_hash: str = GENESIS
    _hash: EntryHasher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._hash = EntryHasher(self.key)

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        full = {**entry, "chain": self.chain, "seq": self.seq + 1, "prev_hash": self.last_hash}
        full["hash"] = self._hash(self.last_hash, full)
        self.seq += 1
        self.last_hash = full["hash"]
        return full

    def snapshot(self) -> tuple[int, str]:
        return self.seq, self.last_hash

    def restore(self, state: tuple[int, str]) -> None:
        """Roll back to ``state`` (after an aborted transaction, whose entries never became visible)."""
        self.seq, self.last_hash = state
