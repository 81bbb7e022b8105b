"""Pudong scale: validate, plan, apply and a hub at 300 departments, 2,600 resources, 10,000 subscriptions.

The catalog comes from ``hub.demo.pudong``, added to the bench's small catalog (the demo's departments and
resources, three subscriptions on PD-ENT-0001), so that the same records through the same three
subscriptions can be timed with the small catalog and with Pudong's beside it: ``pudong_cost_ratio`` is
the hub's cost per record with the Pudong catalog over that with the small one, in interleaved rounds.

Run alone: ``.venv/bin/python -m tests.bench.pudong`` (XHUB_TEST_BOOTSTRAP, XHUB_BENCH_PUDONG_SCALE =
fraction of Pudong's size, default 1; XHUB_BENCH_PUDONG_RECORDS, default 20000; XHUB_BENCH_ROUNDS, 3).
A full-size apply creates ~13,200 partitions: point it at a broker that may carry them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from hub.config import load_config
from hub.core.kafka_settings import KafkaSettings
from hub.demo.pudong import PUDONG, Naming, write_pudong_config
from hub.provision.session import provision_session
from tests.bench.common import OUT, bench_config, interleaved, median, summary_line, wait_until
from tests.bench.hub_cost import cost_per_record
from tests.bench.throughput import Registry, entities


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _set_hubs(root: Path, **settings: Any) -> None:
    """Every hub of ``root``'s hubs.yaml gets ``settings`` (partitions, admin_port)."""
    path = root / "hubs.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    for hub in doc["hubs"]:
        hub.update(settings)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def small_and_pudong_configs(kafka: KafkaSettings, scale: float) -> tuple[Path, Path, str, str]:
    """Two bench config directories (small; small + Pudong's catalog), each with its own topics.

    Both hubs read one partition per source topic (as Pudong's generated hubs.yaml says), so that the
    records timed take the same path in both. Returns (small root, Pudong root, small hub, Pudong hub).
    """
    small, small_names = bench_config(kafka)
    _set_hubs(small, partitions=1)
    big, big_names = bench_config(kafka)
    _set_hubs(big, partitions=1, admin_port=_free_port())
    token = big_names["pudong"].rsplit("-", 1)[1]
    naming = Naming(hub=big_names["pudong"], suffix=f"-{token}", region="PDG", files="pudong-")
    write_pudong_config(big, size=PUDONG.scaled(scale), naming=naming, hubs_file=False)
    return small, big, small_names["pudong"], big_names["pudong"]


def provision_figures(root: Path) -> dict[str, Any]:
    """Seconds of validate, plan, a first apply and a no-op re-apply; what the first apply created."""
    started = time.perf_counter()
    cfg = load_config(root)  # what `xhub validate` runs
    validate_s = time.perf_counter() - started
    with provision_session(cfg) as session:
        started = time.perf_counter()
        planned = session.plan()
        plan_s = time.perf_counter() - started
        started = time.perf_counter()
        first, _ = session.apply()  # apply plans again: what `xhub apply` costs, end to end
        apply_s = time.perf_counter() - started
    with provision_session(load_config(root)) as session:
        started = time.perf_counter()
        again, result = session.apply()
        noop_s = time.perf_counter() - started
    created = [c.spec for c in first.topics if c.action == "create" and c.spec is not None]
    return {
        "pudong_departments": len(cfg.departments),
        "pudong_resources": len(cfg.resources),
        "pudong_data_items": sum(len(r.fields) for r in cfg.resources.values()),
        "pudong_subscriptions": len(cfg.subscriptions),
        "pudong_validate_s": validate_s,
        "pudong_plan_s": plan_s,
        "pudong_plan_changes": len(planned.topics) + len(planned.schemas),
        "pudong_apply_s": apply_s,
        "pudong_apply_noop_s": noop_s,
        "pudong_apply_noop_changes": len(again.topics) + len(again.schemas) + len(result.done),
        "pudong_topics_created": len(created),
        "pudong_partitions_created": sum(s.partitions for s in created),
        "pudong_partitions_by_family": _by_family(created),
    }


def _by_family(specs: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for spec in specs:
        family = spec.name.split(".")[1] if spec.name.startswith("xhub.") else spec.name
        out[family] = out.get(family, 0) + spec.partitions
    return out


def _rss_kb(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def hub_start_figures(root: Path, hub: str, *, settle_s: float = 15.0) -> dict[str, Any]:
    """`xhub run` of the Pudong config in its own process: seconds until /readyz answers 200, its RSS."""
    cfg = load_config(root)
    port = cfg.hub(hub).admin_port
    log = OUT / "pudong_hub.log"
    env = {**os.environ, "XHUB_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", str(root), "--hub", hub], stdout=out, stderr=out, env=env
        )
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"the hub exited with {proc.returncode}: see {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_until(ready, timeout=900, poll=0.2)
        ready_s = time.perf_counter() - started
        rss_ready = _rss_kb(proc.pid)
        time.sleep(settle_s)  # the monitor's first lag samples of every subscription
        rss_settled = _rss_kb(proc.pid)
        peak = _rss_kb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        "pudong_hub_ready_s": ready_s,
        "pudong_hub_rss_mb": rss_settled / 1024,
        "pudong_hub_rss_ready_mb": rss_ready / 1024,
        "pudong_hub_rss_peak_mb": peak / 1024,
    }


def pudong_benchmark(kafka: KafkaSettings, *, scale: float, records: int, rounds: int) -> dict[str, Any]:
    small_root, big_root, small_hub, big_hub = small_and_pudong_configs(kafka, scale)
    out: dict[str, Any] = {"pudong_scale": scale, "pudong_config": str(big_root)}
    progress = OUT / "pudong-progress.json"  # what is measured so far, should a later step fail

    def save() -> None:
        progress.write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")

    out.update(provision_figures(big_root))
    save()
    out.update(hub_start_figures(big_root, big_hub))
    save()
    small_cfg = load_config(small_root)
    with provision_session(small_cfg) as session:
        session.apply()
    big_cfg = load_config(big_root)
    registry = Registry(kafka)
    try:
        data = entities(small_cfg, records)
        versus = interleaved(
            lambda: cost_per_record(big_cfg, big_hub, registry.url, data),
            lambda: cost_per_record(small_cfg, small_hub, registry.url, data),
            rounds,
        ).summary()
    finally:
        registry.close()
    out.update(
        {
            "pudong_cost_us_per_record": median(versus["a"]),
            "small_cost_us_per_record": median(versus["b"]),
            "pudong_cost_ratio": versus["ratio"],
            "pudong_cost_spread": [versus["ratio_min"], versus["ratio_max"]],
            "pudong_cost_runs": {"pudong": versus["a"], "small": versus["b"]},
            "pudong_cost_records": records,
        }
    )
    return out


def print_pudong(summary: dict[str, Any]) -> None:
    for key, unit in (
        ("pudong_validate_s", "s"),
        ("pudong_plan_s", "s"),
        ("pudong_apply_s", "s"),
        ("pudong_apply_noop_s", "s"),
        ("pudong_partitions_created", ""),
        ("pudong_hub_ready_s", "s"),
        ("pudong_hub_rss_mb", "MB"),
    ):
        if key in summary:
            print(summary_line(key, summary[key], unit))
    if "pudong_cost_ratio" in summary:
        low, high = summary["pudong_cost_spread"]
        print(summary_line("pudong_cost_ratio", summary["pudong_cost_ratio"], f"({low:.2f}–{high:.2f})"))


def main() -> int:
    from hub.core.log import configure_logging

    configure_logging("WARNING")
    kafka = KafkaSettings(bootstrap_servers=os.environ.get("XHUB_TEST_BOOTSTRAP", "127.0.0.1:9092"))
    OUT.mkdir(parents=True, exist_ok=True)
    scale = float(os.environ.get("XHUB_BENCH_PUDONG_SCALE", "1"))
    summary = pudong_benchmark(
        kafka,
        scale=scale,
        records=int(os.environ.get("XHUB_BENCH_PUDONG_RECORDS", "20000")),
        rounds=int(os.environ.get("XHUB_BENCH_ROUNDS", "3")),
    )
    figures = OUT / f"pudong-scale-{scale:g}.json"
    figures.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    print_pudong(summary)
    print(f"figures: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
