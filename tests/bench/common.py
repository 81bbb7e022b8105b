"""Shared pieces of the benchmarks: a bench config directory, source data, timing helpers."""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import yaml

from hub.core.kafka_settings import KafkaSettings
from tests.fixtures.plugin import DEMO_CONFIG, isolate_config

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "bench"
SECRET_ENV = {
    "XHUB_PUDONG_SECRET": "bench-secret-pudong-0123456789",
    "XHUB_CITY_SECRET": "bench-secret-city-0123456789",
}

# The hub case of the issue: 3 subscriptions on one resource — a projection, two masks, a row filter.
BENCH_SUBSCRIPTIONS = [
    {
        "id": "bench-projection",
        "subscriber": "tax",
        "resource": "PD-ENT-0001",
        "hub": "pudong",
        "fields": ["credit_code", "name", "status", "district", "registered_capital"],
        "purpose": "bench",
    },
    {
        "id": "bench-masks",
        "subscriber": "housing",
        "resource": "PD-ENT-0001",
        "hub": "pudong",
        "fields": ["credit_code", "name", "legal_representative", "legal_rep_id_number"],
        "purpose": "bench",
        "masks": {"legal_representative": "name", "legal_rep_id_number": "id_number"},
    },
    {
        "id": "bench-filter",
        "subscriber": "lujiazui",
        "resource": "PD-ENT-0001",
        "hub": "pudong",
        "fields": ["credit_code", "name", "district", "status"],
        "purpose": "bench",
        "filter": 'district == "浦东新区" && status == "存续"',
    },
]


def bench_config(kafka: KafkaSettings) -> tuple[Path, dict[str, str]]:
    """A fresh config directory under build/bench with unique topic names."""
    token = "b" + uuid.uuid4().hex[:6]
    root = OUT / "config" / token
    renames = isolate_config(DEMO_CONFIG, root, kafka, token)
    for old in (root / "subscriptions").glob("*.yaml"):
        old.unlink()  # only the bench subscriptions
    subs = [dict(s, subscriber=renames[s["subscriber"]], hub=renames[s["hub"]]) for s in BENCH_SUBSCRIPTIONS]
    (root / "subscriptions" / "bench.yaml").write_text(
        yaml.safe_dump({"subscriptions": subs}, allow_unicode=True), encoding="utf-8"
    )
    os.environ.update(SECRET_ENV)
    return root, renames


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.01) -> float:
    """Seconds until ``predicate`` holds; raises TimeoutError after ``timeout``."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"not reached within {timeout} s")
        time.sleep(poll)
    return time.perf_counter() - start


def summary_line(name: str, value: float, unit: str) -> str:
    return f"{name:<34} {value:>14,.1f} {unit}"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
