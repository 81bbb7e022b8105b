"""Checkpoints: signed chain heads kept by the auditor, outside Kafka, in files that are never rewritten.

A keyed chain shows an altered, dropped, reordered or invented entry, but not a cut tail: the chain simply
ends earlier. ``xhub audit checkpoint`` therefore verifies the audit and writes the head (seq, hash) of
every chain to a new file in a directory the auditor keeps; ``xhub audit verify --checkpoints DIR`` then
requires every checkpointed head to be in the log with the same hash (a cut tail or a rebuilt chain
fails), and every chain that had entries before a checkpoint to be in it (an invented chain fails).

Signature: HMAC-SHA256 with the hub's audit key (domain-separated from the entry hashes). The verifier
needs that key anyway to check the chains, so no second key has to be issued, kept and rotated; what the
signature defends against is a party who can write the checkpoint directory or the audit topic but does
not hold the key. It does not defend against the key holder itself: if auditors must not share the hub's
key, the upgrade is an Ed25519 key pair of the auditor (public key in the config).

Append-only: each checkpoint is a new file (``<hub>-<number>.json``, created exclusively, then made
read-only); it carries its number and the SHA-256 of the previous checkpoint file, so a removed or
replaced earlier checkpoint shows as a break in that sequence.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.audit.chain import GENESIS, canonical
from hub.audit.errors import CheckpointError

_DOMAIN = b"xhub-audit-checkpoint\x00"
_FILE = re.compile(r"^(?P<hub>[a-z][a-z0-9-]*)-(?P<number>\d{8})\.json$")


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a chain stood: its last seq and hash, and the offset of the audit record holding it."""

    chain: str
    seq: int
    hash: str
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One signed checkpoint file, read back and checked."""

    hub: str
    topic: str
    number: int
    written_ms: int
    end_offset: int  # the audit topic was read up to here: every chain with an entry before it is listed
    heads: tuple[ChainHead, ...]
    path: Path


def sign(key: bytes, body: dict[str, Any]) -> str:
    return hmac.new(key, _DOMAIN + canonical(body), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Heads:
    """What a checkpoint records: the audit topic read up to ``end_offset``, every chain's head there."""

    topic: str
    end_offset: int
    heads: tuple[ChainHead, ...]


def write_checkpoint(directory: Path, hub: str, heads: Heads, written_ms: int, key: bytes) -> Path:
    """Write the next checkpoint of ``hub`` into ``directory`` (created if absent); returns its path.

    Raises:
        CheckpointError: the directory's earlier checkpoints do not verify (never append to a broken
            sequence), or the next file exists already (another checkpoint was written at the same time).
    """
    directory.mkdir(parents=True, exist_ok=True)
    earlier, problems = read_checkpoints(directory, hub, key)
    if problems:
        raise CheckpointError(f"checkpoints of hub {hub} in {directory} do not verify: {problems[0]}")
    number = earlier[-1].number + 1 if earlier else 1
    previous = _file_digest(earlier[-1].path) if earlier else GENESIS
    body: dict[str, Any] = {
        "hub": hub,
        "topic": heads.topic,
        "end_offset": heads.end_offset,
        "number": number,
        "previous_sha256": previous,
        "written_ms": written_ms,
        "chains": [
            {"chain": h.chain, "seq": h.seq, "hash": h.hash, "offset": h.offset}
            for h in sorted(heads.heads, key=lambda h: h.chain)
        ],
    }
    signed = {**body, "signature": sign(key, body)}
    path = directory / f"{hub}-{number:08d}.json"
    try:
        with path.open("x", encoding="utf-8") as fh:  # exclusive: an existing checkpoint is never rewritten
            fh.write(json.dumps(signed, indent=2, sort_keys=True) + "\n")
    except FileExistsError as exc:
        raise CheckpointError(f"{path} exists already: another checkpoint was written meanwhile") from exc
    os.chmod(path, stat.S_IRUSR | stat.S_IRGRP)
    return path


def read_checkpoints(directory: Path, hub: str, key: bytes) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints of ``hub`` in ``directory`` in order, and what is wrong with them.

    A checkpoint counts only when its signature verifies; problems name the file: a bad signature, an
    unreadable file, a number missing from the sequence, a ``previous_sha256`` that is not the previous
    file's digest.
    """
    if not directory.is_dir():
        return [], [f"{directory} is not a directory of checkpoints"]
    found: list[Checkpoint] = []
    problems: list[str] = []
    files = sorted(
        (int(m["number"]), p)
        for p in directory.iterdir()
        if (m := _FILE.match(p.name)) is not None and m["hub"] == hub
    )
    previous: Checkpoint | None = None
    for number, path in files:
        checkpoint, problem = _read_one(path, hub, number, key)
        if checkpoint is None:
            problems.append(problem or f"{path}: unreadable")
            continue
        expected = previous.number + 1 if previous is not None else 1
        if number != expected:
            problems.append(f"{path}: checkpoint {number} follows {expected - 1}: checkpoints were removed")
        elif previous is not None and _previous_digest(path) != _file_digest(previous.path):
            problems.append(
                f"{path}: previous_sha256 is not the digest of {previous.path.name}: it was replaced"
            )
        found.append(checkpoint)
        previous = checkpoint
    return found, problems


def _read_one(path: Path, hub: str, number: int, key: bytes) -> tuple[Checkpoint | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        claimed = str(data.pop("signature"))
        heads = tuple(
            ChainHead(str(c["chain"]), int(c["seq"]), str(c["hash"]), c.get("offset")) for c in data["chains"]
        )
        checkpoint = Checkpoint(
            hub=str(data["hub"]),
            topic=str(data["topic"]),
            number=int(data["number"]),
            written_ms=int(data["written_ms"]),
            end_offset=int(data["end_offset"]),
            heads=heads,
            path=path,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"{path}: not a checkpoint ({type(exc).__name__})"
    if not hmac.compare_digest(sign(key, data), claimed):
        return None, f"{path}: signature does not verify with the hub's audit key (forged or altered)"
    if checkpoint.hub != hub or checkpoint.number != number:
        return None, f"{path}: signed for hub {checkpoint.hub} number {checkpoint.number}, not this file"
    return checkpoint, None


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _previous_digest(path: Path) -> str:
    return str(json.loads(path.read_text(encoding="utf-8")).get("previous_sha256"))
