"""Backfill: a new subscriber receives the current state of a large resource while live traffic flows.

The legal-entity topic is filled with N records; the hub runs with one live subscription on another
resource (the court's debtors, fed at a steady rate); then a subscription to the legal entities is added
with `xhub apply`. Measured: backfill records/s from the apply to "done" and from the backfill's start
to "done", and the p99 latency (source commit -> delivered by the hub) of the live traffic meanwhile,
against the p99 of the same traffic in a window of the same run before the backfill
(``backfill_live_p99_ratio``, issue 14: <= 1.5); the backfill's rate against a plain consume ->
transactional produce copy of the same number of records (``backfill_vs_passthrough_ratio``: >= 0.8).
Then the same hub is started on a "machine" without its local state stores: how long it takes to
restore them from the changelog xhub.state.<hub> before it serves again (``state_restore_seconds``,
``state_restore_records``).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from typing import Any

import yaml

from connectors.validation import RecordValidator
from hub.app import start_hub
from hub.config import load_config
from hub.core.kafka_settings import KafkaSettings
from hub.demo.generator import dishonest_debtor, make_faker, person
from hub.provision.session import provision_session
from tests.bench.common import bench_config, percentile, wait_until
from tests.bench.throughput import Registry, entities, passthrough_throughput, produce_source
from tests.fixtures.hubkit import Publisher

SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads of this one forked along
BASELINE_S = float(os.environ.get("XHUB_BENCH_BACKFILL_BASELINE_S", "10"))  # live p99 without a backfill


def run_backfill_benchmark(kafka: KafkaSettings, records: int, live_rate: int = 100) -> dict[str, Any]:
    root, renames = bench_config(kafka)
    subs_file = root / "subscriptions" / "bench.yaml"
    doc = yaml.safe_load(subs_file.read_text(encoding="utf-8"))
    new_sub = next(s for s in doc["subscriptions"] if s["id"] == "bench-projection")
    live = {
        "id": "bench-live",
        "subscriber": renames["tax"],
        "resource": "PD-CRD-0001",
        "hub": renames["pudong"],
        "fields": ["case_no", "performance_status", "district"],
        "purpose": "bench live traffic",
    }
    subs_file.write_text(yaml.safe_dump({"subscriptions": [live]}, allow_unicode=True), encoding="utf-8")
    cfg = load_config(root)
    with provision_session(cfg) as session:
        session.apply()
    registry = Registry(kafka)
    process = None
    stop = SPAWN.Event()
    try:
        produce_source(cfg, registry.url, entities(cfg, records))
        process = start_hub(cfg, renames["pudong"], serve_admin=False)
        assert process.worker.ready.wait(60)
        # The live traffic comes from a process of its own, as from a department's sidecar: a feeder
        # thread here shared the interpreter with the hub and was held up by the backfill like the hub.
        feeder = SPAWN.Process(target=_feed, args=(str(root), registry.url, live_rate, stop), daemon=True)
        feeder.start()
        time.sleep(3)
        stats = process.worker.stats
        with stats.lock:
            baseline_from = len(stats.latency_ms)
        time.sleep(BASELINE_S)  # the live traffic alone: the p99 the backfill's is compared with
        with stats.lock:
            before = len(stats.latency_ms)
            baseline = list(stats.latency_ms)[baseline_from:before]
        # add the new subscriber: apply publishes the config, the running hub starts its backfill
        doc_new = {"subscriptions": [live, new_sub]}
        subs_file.write_text(yaml.safe_dump(doc_new, allow_unicode=True), encoding="utf-8")
        cfg = load_config(root)
        started = time.perf_counter()
        with provision_session(cfg) as session:
            session.apply()
        sid = new_sub["id"]

        def begun() -> bool:
            return process is not None and sid in process.worker.backfills

        def finished() -> bool:
            progress = process.worker.backfills.get(sid) if process else None
            return progress is not None and progress.state == "done"

        wait_until(begun, timeout=600, poll=0.01)
        task_started = time.perf_counter()
        wait_until(finished, timeout=3600, poll=0.05)
        elapsed = time.perf_counter() - started
        task_elapsed = time.perf_counter() - task_started
        with stats.lock:
            during = list(stats.latency_ms)[before:] if len(stats.latency_ms) > before else []
            delivered = stats.subscriptions[sid].delivered
        stop.set()
        feeder.join(10)
        process.close()
        process = None
        restore = _restore_from_changelog(cfg, renames["pudong"])
        passthrough = passthrough_throughput(kafka, records, 1.0)["output_records_per_s"]
        live_p99 = percentile([float(x) for x in during], 99)
        baseline_p99 = percentile([float(x) for x in baseline], 99)
        return {
            **restore,
            "backfill_records": records,
            "backfill_delivered": delivered,
            "backfill_seconds": elapsed,
            "backfill_task_seconds": task_elapsed,
            "backfill_records_per_s": records / elapsed,
            "backfill_task_records_per_s": records / task_elapsed,
            "backfill_passthrough_records_per_s": passthrough,
            # the backfill's own time (its start to done): the apply before it is not the backfill's
            "backfill_vs_passthrough_ratio": records / task_elapsed / passthrough,
            "backfill_live_p99_ms": live_p99,
            "backfill_live_p50_ms": percentile([float(x) for x in during], 50),
            "backfill_live_samples": len(during),
            "live_p99_without_backfill_ms": baseline_p99,
            "live_samples_without_backfill": len(baseline),
            "backfill_live_p99_ratio": live_p99 / baseline_p99,
        }
    finally:
        stop.set()
        if process is not None:
            process.close()
        registry.close()


def _feed(root: str, registry_url: str, live_rate: int, stop: Any) -> None:
    """Publish court debtors at ``live_rate`` a second, each flushed, until ``stop`` is set."""
    cfg = load_config(root)
    publisher = Publisher(cfg, registry_url, "PD-CRD-0001")
    fake = make_faker(3)
    check = RecordValidator(cfg.schemas["PD-CRD-0001"], "case_no", "any")
    pool = [check.validate(dishonest_debtor(fake, person(fake))) for _ in range(200)]
    i = 0
    try:
        while not stop.is_set():
            record = dict(pool[i % len(pool)], case_no=f"(2026)沪0115执{i:07d}号")
            publisher.publish(record)
            publisher.flush()
            i += 1
            time.sleep(1 / live_rate)
    finally:
        publisher.close()


def _restore_from_changelog(cfg: Any, hub: str) -> dict[str, Any]:
    """Start ``hub`` with an empty state directory: its stores are rebuilt from the changelog."""
    before = os.environ.get("XHUB_STATE_DIR")
    with tempfile.TemporaryDirectory(prefix="xhub-bench-state-") as fresh:
        os.environ["XHUB_STATE_DIR"] = fresh
        try:
            started = time.perf_counter()
            process = start_hub(cfg, hub, serve_admin=False)
            try:
                assert process.worker.ready.wait(600)
                ready = time.perf_counter() - started
                stats = process.worker.stats
                with stats.lock:
                    return {
                        "state_restore_seconds": stats.restore_seconds,
                        "state_restore_records": stats.restore_records_done,
                        "state_restore_ready_seconds": ready,
                    }
            finally:
                process.close()
        finally:
            if before is None:
                os.environ.pop("XHUB_STATE_DIR", None)
            else:
                os.environ["XHUB_STATE_DIR"] = before


if __name__ == "__main__":
    import json
    import sys

    from hub.core.log import configure_logging

    configure_logging("WARNING")
    kafka = KafkaSettings(bootstrap_servers=os.environ.get("XHUB_TEST_BOOTSTRAP", "127.0.0.1:9092"))
    result = run_backfill_benchmark(kafka, int(os.environ.get("XHUB_BENCH_BACKFILL", "100000")))
    json.dump(result, sys.stdout, indent=2)
    print()
