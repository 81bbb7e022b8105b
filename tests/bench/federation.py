"""Federation end to end (issue 17): court -> district hub -> hub link -> city hub -> city subscriber.

The setup is the federation tests' (tests/integration/federation_support.py): two private single-node
clusters (the district's and the city's, from deploy/local/kafka.sh, on the ports of those tests), the
district hub serving the demo config with the link's subscription, the city config knowing the list as
a linked resource; the link and the city subscriber's sidecar (an SQL sink on SQLite with its receipt log)
run as processes of their own, the two hubs and the court's publisher in this one.

The court publishes ``rate`` changes per second for ``seconds``, each stamped with its commit time now.
Latency per change: from that source commit time to its receipt at the city subscriber (the receipt
log's ``applied_at``, written in the sink's database transaction), over every change of the timed
stream. ``federation_e2e_ms_p50`` / ``_p99`` / ``_max``.

Alone: ``python -m tests.bench.federation`` (XHUB_BENCH_FEDERATION_SECONDS, default 20;
XHUB_BENCH_FEDERATION_RATE, default 500). Uses the environment's Kafka security settings like the tests
(``kafka.sh client-env``); XHUB_TEST_PRIVATE_PORT_BASE moves the clusters' ports.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from connectors.testing.runtime import SidecarProcess
from hub.core.log import configure_logging
from tests.bench.common import OUT, bench_environment, percentile
from tests.fixtures.brokers import private_broker
from tests.fixtures.hubkit import apply_config
from tests.integration.federation_support import (
    CITY_PORT,
    DISTRICT_PORT,
    Court,
    city_table,
    make_city,
    registry_on,
    running_district,
    running_hub,
)

WARM_UP = 50  # changes that must reach the city subscriber before the clock starts
KEYS = 1000  # distinct debtors; the stream updates them in turn
DRAIN_S = 300.0  # longest wait for the stream's last change at the city subscriber


def federation_e2e(*, seconds: float = 20.0, rate: int = 500, workdir: Path | None = None) -> dict[str, Any]:
    """Latency from the court's commit to the city subscriber's receipt, through two levels."""
    bench_environment()
    with tempfile.TemporaryDirectory(prefix="xhub-bench-federation-") as tmp:
        root = workdir or Path(tmp)
        os.environ.setdefault("XHUB_STATE_DIR", str(root / "state"))
        with (
            private_broker(DISTRICT_PORT, heap="512m") as district_kafka,
            private_broker(CITY_PORT, heap="512m") as city_kafka,
            registry_on(city_kafka) as city_registry,
            running_district(district_kafka, root / "district") as district,
        ):
            city = make_city(city_kafka, city_registry, district, root)
            with running_hub(apply_config(city.root), city.hub_name):
                table = city_table(city, root)
                link = SidecarProcess(city.connector, root / "link.log")
                sink = SidecarProcess(table.connector, root / "subscriber.log")
                link.start()
                sink.start()
                try:
                    link.wait_started(60)
                    sink.wait_started(60)
                    return _measure(
                        Court(district), table, seconds=seconds, rate=rate, where=(city, district)
                    )
                finally:
                    for process in (link, sink):
                        if process.alive():
                            process.terminate()


def _measure(
    court: Court, table: Any, *, seconds: float, rate: int, where: tuple[Any, Any]
) -> dict[str, Any]:
    try:
        for n in range(WARM_UP):
            court.publish(n, "c", commit_ms=_now_ms())
        court.producer.flush()
        _wait(lambda: len(table.receipts()) >= WARM_UP, 180, "the warm-up at the city subscriber")
        timed: dict[tuple[str, int], int] = {}
        start = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                commit = _now_ms()
                court.publish(sent % KEYS, "u", commit_ms=commit)
                timed[(court.key_of(sent % KEYS), court.seq)] = commit
                sent += 1
            time.sleep(0.002)
        published_s = time.monotonic() - start
        court.producer.flush()
    finally:
        court.close()
    hops = _hops_waiting(*where)
    _wait(lambda: len(table.receipts()) >= WARM_UP + len(timed), DRAIN_S, "the stream at the city subscriber")
    applied = table.applied_at_ms()
    latencies = [applied[k] - commit for k, commit in timed.items() if k in applied]  # in publishing order
    tenth = max(1, len(latencies) // 10)
    return {
        "federation_changes": len(timed),
        "federation_applied": len(latencies),
        "federation_rate_per_s": rate,
        "federation_published_per_s": round(len(timed) / published_s, 1),
        "federation_seconds": seconds,
        "federation_e2e_ms_p50": percentile(latencies, 50),
        "federation_e2e_ms_p99": percentile(latencies, 99),
        "federation_e2e_ms_max": max(latencies) if latencies else float("nan"),
        # A path that keeps up has the same latency at the end of the stream as at its start; one that
        # does not builds a queue, and its latency grows with the length of the run.
        "federation_e2e_ms_p50_first_tenth": percentile(latencies[:tenth], 50),
        "federation_e2e_ms_p50_last_tenth": percentile(latencies[-tenth:], 50),
        "federation_waiting_at_end": hops,
    }


def _hops_waiting(city: Any, district: Any) -> dict[str, Any]:
    """Where the changes wait when the court stops publishing: `xhub lag CITY --upstream DISTRICT`'s
    hops (records waiting, seconds), the queue of a path that does not keep up."""
    import io

    from hub.monitor.cli import Sampling, lag_command
    from hub.monitor.status import Rules

    out = io.StringIO()
    lag_command(
        str(city.root),
        city.hub_name,
        Rules(),
        json_out=True,
        sampling=Sampling(samples=1),
        out=out,
        upstream=[str(district.root)],
    )
    [path] = json.loads(out.getvalue())["federation"]
    return {
        f"{h['hop']} {h.get('hub') or h.get('department') or h.get('subscriber')}": [
            h["records"],
            h["seconds"],
        ]
        for h in path["hops"]
    }


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")
        time.sleep(0.5)


def main() -> int:
    configure_logging("WARNING")
    seconds = float(os.environ.get("XHUB_BENCH_FEDERATION_SECONDS", "20"))
    rate = int(os.environ.get("XHUB_BENCH_FEDERATION_RATE", "500"))
    result = federation_e2e(seconds=seconds, rate=rate)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "federation.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
