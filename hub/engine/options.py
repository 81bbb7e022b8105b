"""What a hub worker is told at start (``xhub run`` builds it from hubs.yaml and the environment), and
where its local state stores live."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hub.config.signing import SnapshotVerifier


@dataclass
class WorkerOptions:
    hub: str
    worker_id: int = 0
    batch_max_records: int = 500
    batch_max_ms: int = 100
    transaction_timeout_ms: int = 30000
    follow_config: bool = True  # follow xhub.cfg.<hub> for live policy changes
    backfill_chunk_records: int | None = None  # records per backfill transaction (default 4 batches)
    # Most deliveries per transaction: a source topic read by thousands of subscriptions is read a few
    # records at a time, so a transaction stays far inside transaction_timeout_ms.
    batch_max_deliveries: int = 2000
    # Where a partition the hub group never committed starts: "state" = at its end, each subscription
    # getting what is there through its backfill (op "r"); "replay" = at its beginning, every retained
    # event going through the main loop as it is (benchmarks of the main loop, or a full history).
    first_start: Literal["state", "replay"] = "state"
    # Where the local state stores live (one SQLite file per owned source partition); default
    # $XHUB_STATE_DIR, else <temp>/xhub-state. Losing it costs a restore from the changelog, nothing else.
    state_dir: str | None = None
    state_partitions: int = 3  # partitions of xhub.state.<hub> when the worker has to create it
    audit_key: bytes = field(default=b"", repr=False)  # the HMAC key of the audit chain (never logged)
    # The apply role's public keys: applied configs are installed only when signed by one of them
    # (None: the keys of XHUB_CONFIG_PUBLIC_KEY; see hub.config.signing).
    config_verifier: SnapshotVerifier | None = None


def state_directory(options: WorkerOptions) -> Path:
    """The directory of one worker's state stores."""
    base = (
        options.state_dir
        or os.environ.get("XHUB_STATE_DIR")
        or str(Path(tempfile.gettempdir()) / "xhub-state")
    )
    return Path(base) / options.hub / str(options.worker_id)
