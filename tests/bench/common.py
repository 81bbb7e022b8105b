"""Shared pieces of the benchmarks: a bench config directory, source data, timing helpers."""

from __future__ import annotations

import os
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hub.core.kafka_settings import KafkaSettings
from tests.fixtures.plugin import DEMO_CONFIG, isolate_config

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "bench"
SECRET_ENV = {
    "XHUB_PUDONG_SECRET": "bench-secret-pudong-0123456789",
    "XHUB_CITY_SECRET": "bench-secret-city-0123456789",
    "XHUB_PUDONG_AUDIT_KEY": "bench-audit-key-pudong-0123456789",
    "XHUB_CITY_AUDIT_KEY": "bench-audit-key-city-0123456789",
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
    shutil.rmtree(
        root / "subscriptions"
    )  # only the bench subscriptions (the demo's sit in subscriptions/<dept>/)
    (root / "subscriptions").mkdir()
    shutil.rmtree(root / "grants", ignore_errors=True)  # the demo's grants answer subscriptions gone now
    subs = [dict(s, subscriber=renames[s["subscriber"]], hub=renames[s["hub"]]) for s in BENCH_SUBSCRIPTIONS]
    (root / "subscriptions" / "bench.yaml").write_text(
        yaml.safe_dump({"subscriptions": subs}, allow_unicode=True), encoding="utf-8"
    )
    bench_environment()
    return root, renames


def bench_environment() -> None:
    """The hubs' secrets and the config signing keys in this process's environment (as the demo sets
    them): `xhub apply` signs, the hubs verify."""
    os.environ.update(SECRET_ENV)
    if "XHUB_CONFIG_SIGNING_KEY" not in os.environ:
        from hub.config.signing import local_key_pair

        key, public = local_key_pair(ROOT / "deploy" / "local" / ".secrets")
        os.environ["XHUB_CONFIG_SIGNING_KEY"] = key.get_secret_value()
        os.environ["XHUB_CONFIG_PUBLIC_KEY"] = public


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


@dataclass(frozen=True)
class Interleaved:
    """Two measurements taken in turns (A B A B ...), so the shared machine's drift hits both alike."""

    a: list[float]
    b: list[float]

    @property
    def ratios(self) -> list[float]:
        return [x / y for x, y in zip(self.a, self.b, strict=True)]

    def summary(self) -> dict[str, Any]:
        """Median of the per-round ratios A/B and their spread (min, max): how far to trust the median."""
        ratios = self.ratios
        return {
            "ratio": median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "a": self.a,
            "b": self.b,
        }


def interleaved(a: Callable[[], float], b: Callable[[], float], rounds: int) -> Interleaved:
    """Run ``a`` and ``b`` alternately ``rounds`` times each."""
    xs: list[float] = []
    ys: list[float] = []
    for _ in range(rounds):
        xs.append(a())
        ys.append(b())
    return Interleaved(xs, ys)
