"""The bench's config directory validates: `make bench` must not die on a config the project changed."""

from __future__ import annotations

import shutil

import pytest

from hub.config import load_config
from hub.core.kafka_settings import KafkaSettings
from tests.bench.common import BENCH_SUBSCRIPTIONS, SECRET_ENV, bench_config


def test_the_bench_config_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_ENV.items():  # bench_config sets them; monkeypatch restores them afterwards
        monkeypatch.setenv(name, value)
    root, renames = bench_config(KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    try:
        cfg = load_config(root)
        assert set(cfg.subscriptions) == {s["id"] for s in BENCH_SUBSCRIPTIONS}
        assert {s.hub for s in cfg.subscriptions.values()} == {renames["pudong"]}
    finally:
        shutil.rmtree(root)
