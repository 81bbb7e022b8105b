"""The hub's cost per record: one worker, in this process, over records newly published to PD-ENT-0001."""

from __future__ import annotations

import threading
import time
from typing import Any

from hub.app import start_hub
from hub.config.loader import ConfigDir
from tests.bench.common import wait_until
from tests.bench.throughput import produce_source


def cost_per_record(
    cfg: ConfigDir,
    hub: str,
    registry_url: str,
    records: list[dict[str, Any]],
    *,
    follow_config: bool = True,
    serve_admin: bool = True,
) -> float:
    """Microseconds per record of one hub worker over ``records`` newly published to PD-ENT-0001.

    The hub resumes where its previous run committed, so each call times only the records it adds.
    Timed at steady state: the records are published once the hub is ready and no subscription is being
    backfilled any more, so a large catalog's start (10,000 subscriptions each started, its backfill of
    an idle resource handed over, its state written) is not counted as per-record cost; it was, before.

    ``follow_config=False`` for a config with subscriptions that were loaded, not applied (the hub would
    swap to the applied one); ``serve_admin``: with the admin port's monitor thread, whose lag sampling
    grows with the catalog.
    """
    process = start_hub(
        cfg,
        hub,
        first_start="replay",
        start_thread=False,
        follow_config=follow_config,
        serve_admin=serve_admin,
        admin_port=0,
    )
    stats = process.worker.stats
    timing: dict[str, float] = {}

    def measure() -> None:
        try:
            worker = process.worker
            wait_until(lambda: worker.ready.is_set() and not worker.backfill.backfilling(), timeout=900)
            produce_source(cfg, registry_url, records)
            wait_until(lambda: stats.consumed > 0, timeout=600)
            timing["start"], timing["consumed"] = time.perf_counter(), stats.consumed
            wait_until(lambda: stats.consumed >= len(records), timeout=600, poll=0.005)
            timing["end"] = time.perf_counter()
        finally:
            process.worker.stop()

    watcher = threading.Thread(target=measure)
    watcher.start()
    try:
        process.worker.run()
    finally:
        watcher.join()
        process.close()
    if "end" not in timing:
        raise TimeoutError(f"hub {hub} did not consume {len(records)} records (consumed {stats.consumed})")
    return (timing["end"] - timing["start"]) / (len(records) - timing["consumed"]) * 1e6
