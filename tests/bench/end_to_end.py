"""End to end: SQLite trigger capture -> hub -> SQL sink, at a steady rate; and a large backfill.

Latency is measured per change from its commit at the source (the change-log's commit time carried in
the event) to its apply in the subscriber's database (the sink's applied-at column), over every row.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from hub.config import load_config
from hub.core.kafka_settings import KafkaSettings
from hub.demo.generator import dishonest_debtor, make_faker, person
from hub.demo.harness import Demo
from hub.demo.scenario import DepartmentDbs
from hub.provision.session import provision_session
from tests.bench.common import OUT, percentile


def debtor_pool(n: int) -> list[dict[str, Any]]:
    fake = make_faker(99)
    people = [person(fake) for _ in range(200)]
    return [dishonest_debtor(fake, random.Random(i).choice(people)) for i in range(n)]


@contextmanager
def debtor_path(
    kafka: KafkaSettings,
    workdir: Path,
    subscriptions: Iterable[str] = ("tax-debtors",),
    *,
    rate: float = 1000,
    log_level: str = "WARNING",
) -> Iterator[tuple[Demo, DepartmentDbs]]:
    """The court's debtor table -> hub -> the subscribers' inbox tables of ``subscriptions``, running.

    Provisions the demo config (only those subscriptions and the grants answering them), starts the hub
    and the sidecars of the court and of each subscriber, and stops them all at the end.
    """
    repo = Path(__file__).resolve().parents[2]
    demo = Demo(repo=repo, workdir=workdir, bootstrap=kafka.bootstrap_servers, duration=0, rate=rate)
    demo.prepare()
    wanted = set(subscriptions)
    config = demo.workdir / "config"
    for kind, key, files in (
        ("subscriptions", "id", (config / "subscriptions").rglob("*.yaml")),
        ("grants", "subscription", (config / "grants").rglob("*.yaml")),
    ):
        for path in files:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            doc[kind] = [s for s in doc[kind] if s[key] in wanted]
            if doc[kind]:
                path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
            else:
                path.unlink()
    cfg = load_config(demo.workdir / "config")
    demo.env["XHUB_LOG_LEVEL"] = log_level
    demo.clear_previous_run(cfg)
    dbs = DepartmentDbs(demo.workdir / "db")
    dbs.create()
    with provision_session(cfg) as session:
        session.apply()
    paths = demo.write_connector_configs(set(cfg.subscriptions))
    try:
        demo.start_registry()  # each party as itself, like the demo
        demo.start(
            "hub",
            ["-m", "hub.cli", "run", str(demo.workdir / "config"), "--hub", "pudong"],
            party=demo.party_names["pudong"],
        )
        demo.wait_ready()
        subprocess.run(
            [sys.executable, "-m", "connectors", "install", "--config", str(paths["court"])],
            check=True,
            capture_output=True,
            env=demo.party_env(demo.party_names["court"]),
        )
        for dept in dict.fromkeys(("court", *sorted({sid.split("-", maxsplit=1)[0] for sid in wanted}))):
            demo.start(
                f"sidecar-{dept}",
                ["-m", "connectors", "run", "--config", str(paths[dept])],
                party=demo.party_names[dept],
            )
        time.sleep(5)  # sidecars join their groups before the clock starts
        yield demo, dbs
    finally:
        demo.stop_all()


def e2e_latency(kafka: KafkaSettings, *, seconds: int = 60, rate: int = 1000) -> dict[str, Any]:
    pool = debtor_pool(2000)
    sent = 0
    with debtor_path(kafka, OUT / "e2e", rate=rate) as (demo, dbs):
        conn = dbs.connect("court")
        conn.execute("PRAGMA synchronous=NORMAL")
        start = time.monotonic()
        tick = 0.01
        per_tick = max(1, int(rate * tick))
        while time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * rate)
            while sent < due:
                record = dict(pool[sent % len(pool)])
                record["case_no"] = f"(2026)沪0115执{sent:07d}号"
                dbs.upsert(conn, "dishonest_debtor", record)  # autocommit: one transaction per change
                sent += 1
                if sent % per_tick == 0:
                    break
            demo.check_alive()
            time.sleep(tick / 2)
        conn.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(demo.inbox_rows("tax-debtors")) < sent:
            time.sleep(1)
    latencies = []
    for row in demo.inbox_rows("tax-debtors"):
        applied = datetime.fromisoformat(str(row["_xhub_applied_at"])).replace(tzinfo=UTC).timestamp() * 1000
        latencies.append(applied - float(row["_xhub_source_commit_ms"]))
    return {
        "e2e_changes": sent,
        "e2e_applied": len(latencies),
        "e2e_rate_per_s": rate,
        "e2e_seconds": seconds,
        "e2e_latency_ms_p50": percentile(latencies, 50),
        "e2e_latency_ms_p99": percentile(latencies, 99),
        "e2e_latency_ms_max": max(latencies) if latencies else float("nan"),
    }


def backfill_benchmark(kafka: KafkaSettings, records: int) -> dict[str, Any]:
    """Backfill is measured once the hub supports it (issue 6); until then this says so."""
    try:
        from tests.bench.backfill import run_backfill_benchmark
    except ImportError as exc:
        return {"backfill_error": f"not measured: {exc}"}
    return run_backfill_benchmark(kafka, records)


if __name__ == "__main__":
    from hub.core.log import configure_logging

    configure_logging("WARNING")
    print(e2e_latency(KafkaSettings(), seconds=int(sys.argv[1]) if len(sys.argv) > 1 else 20))
