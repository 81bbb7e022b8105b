"""`subscription_scaling_ratio`: the hub's cost per record with 10,000 subscriptions on ONE resource vs 10.

The records timed go through the bench's three subscriptions on PD-ENT-0001; the other subscriptions all
read one other resource, which carries no traffic. They are not spread over many resources: a hub must
carry a city-wide list read by every office (issue 14), and the handover state of every subscription of a
partition once lived in its committed-offset metadata (4 KB, about 150 subscriptions), a cap spreading
would hide. Measured in turns (large, small, large, small ...), engine alone and with the admin port's
monitor; the ratio is the median of the per-round ratios, the spread their min and max.

Run alone: ``.venv/bin/python -m tests.bench.scaling`` (XHUB_BENCH_SCALING_RECORDS, default 5000;
XHUB_BENCH_SCALING_SUBSCRIPTIONS, default 10000; XHUB_BENCH_ROUNDS, default 3).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import yaml

from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.kafka import ensure_topics, make_admin
from hub.core.kafka_settings import KafkaSettings
from tests.bench.common import OUT, interleaved, median, summary_line
from tests.bench.hub_cost import cost_per_record
from tests.bench.throughput import Registry, applied_config, entities

IDLE_RESOURCE = "PD-SOC-0001"
LICENCE_FIELDS = (
    "licence_no",
    "credit_code",
    "entity_name",
    "licence_type",
    "issue_date",
    "valid_until",
    "issuing_authority",
)


def with_subscriptions_on_one_resource(kafka: KafkaSettings, count: int) -> tuple[ConfigDir, str]:
    """An applied bench config plus ``count`` subscriptions on one idle resource, loaded, not applied.

    Applying them would create one delivery topic each (10,000 on the bench's broker); the hub needs only
    the idle resource's source topic, created here. Returns (config, hub name).
    """
    cfg, renames = applied_config(kafka)
    owner, subscriber, hub = renames["amr"], renames["tax"], renames["pudong"]
    resource = {
        "code": IDLE_RESOURCE,
        "name": "bench: a list every office reads",
        "owner": owner,
        "schema": "resources/business_licence.avsc",
        "key": "licence_no",
        "share": "unconditional",
        "fields": dict.fromkeys(LICENCE_FIELDS, "public"),
    }
    (cfg.root / "catalog" / "bench-idle.yaml").write_text(
        yaml.safe_dump({"resources": [resource]}, allow_unicode=True), encoding="utf-8"
    )
    subs = [
        {
            "id": f"idle-{i:05d}",
            "subscriber": subscriber,
            "resource": IDLE_RESOURCE,
            "hub": hub,
            "fields": ["licence_no", "entity_name"],
            "purpose": "bench",
        }
        for i in range(count)
    ]
    # a config file may hold at most 1 MiB: 1,000 subscriptions per file, as an integrator would split them
    for start in range(0, len(subs), 1000):
        (cfg.root / "subscriptions" / f"bench-idle-{start // 1000:03d}.yaml").write_text(
            yaml.safe_dump({"subscriptions": subs[start : start + 1000]}, allow_unicode=True),
            encoding="utf-8",
        )
    admin = make_admin(kafka)
    try:
        ensure_topics(admin, {names.source_topic(owner, IDLE_RESOURCE): {"cleanup.policy": "compact"}})
    finally:
        admin.close()
    return load_config(cfg.root), hub


def subscription_scaling(
    kafka: KafkaSettings, records: int, small: int, large: int, *, rounds: int = 3
) -> dict[str, Any]:
    """Cost per record with ``large`` vs ``small`` subscriptions on one idle resource (see the module doc)."""
    registry = Registry(kafka)
    try:

        def cost(count: int, *, serve_admin: bool) -> Callable[[], float]:
            def run() -> float:
                cfg, hub = with_subscriptions_on_one_resource(kafka, count)
                return cost_per_record(
                    cfg,
                    hub,
                    registry.url,
                    entities(cfg, records),
                    follow_config=False,  # the applied snapshot lacks the idle subscriptions
                    serve_admin=serve_admin,
                )

            return run

        engine = interleaved(cost(large, serve_admin=False), cost(small, serve_admin=False), rounds).summary()
        monitor = interleaved(cost(large, serve_admin=True), cost(small, serve_admin=True), rounds).summary()
    finally:
        registry.close()
    return {
        "subscriptions_on_one_resource": {"small": small, "large": large},
        "records": records,
        "cost_us_per_record": {small: median(engine["b"]), large: median(engine["a"])},
        "runs_us_per_record": {small: engine["b"], large: engine["a"]},
        "ratio": engine["ratio"],
        "ratio_spread": [engine["ratio_min"], engine["ratio_max"]],
        "with_monitor_cost_us_per_record": {small: median(monitor["b"]), large: median(monitor["a"])},
        "with_monitor_ratio": monitor["ratio"],
        "with_monitor_ratio_spread": [monitor["ratio_min"], monitor["ratio_max"]],
    }


def main() -> int:
    from hub.core.log import configure_logging

    configure_logging("WARNING")
    kafka = KafkaSettings(bootstrap_servers=os.environ.get("XHUB_TEST_BOOTSTRAP", "127.0.0.1:9092"))
    OUT.mkdir(parents=True, exist_ok=True)
    large = int(os.environ.get("XHUB_BENCH_SCALING_SUBSCRIPTIONS", "10000"))
    result = subscription_scaling(
        kafka,
        int(os.environ.get("XHUB_BENCH_SCALING_RECORDS", "5000")),
        10,
        large,
        rounds=int(os.environ.get("XHUB_BENCH_ROUNDS", "3")),
    )
    (OUT / "scaling.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    for count, value in result["cost_us_per_record"].items():
        print(summary_line(f"cost/record, {count} subs on one resource", value, "us"))
    low, high = result["ratio_spread"]
    print(summary_line("subscription_scaling_ratio", result["ratio"], f"(engine; {low:.2f}–{high:.2f})"))
    low, high = result["with_monitor_ratio_spread"]
    print(summary_line("  with the admin monitor", result["with_monitor_ratio"], f"({low:.2f}–{high:.2f})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
