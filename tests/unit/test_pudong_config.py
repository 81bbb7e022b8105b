"""hub.demo.pudong: a valid config directory of Pudong's size with the stated counts, reproducible."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from hub.catalog.model import ShareAttribute
from hub.config import load_config
from hub.core import names
from hub.demo.pudong import PUDONG, SECRET_ENV, main, write_pudong_config
from hub.provision.desired import desired_state


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "test-secret-pudong-0123456789")


@pytest.mark.slow  # ~25 s on an idle machine: reading 10,000 subscriptions with the located YAML loader
def test_pudong_size_config_validates_with_the_stated_counts(tmp_path: Path) -> None:
    counts = write_pudong_config(tmp_path / "pudong")
    cfg = load_config(tmp_path / "pudong")  # what `xhub validate` runs: cross-checks and every plan compiled

    assert len(cfg.departments) == PUDONG.departments == counts.departments == 300
    assert len(cfg.resources) == PUDONG.resources == counts.resources == 2600
    assert sum(len(r.fields) for r in cfg.resources.values()) == PUDONG.data_items == 17_000
    assert sum(len(s["fields"]) for s in cfg.schemas.values()) == 17_000  # every field classified
    assert len(cfg.subscriptions) == PUDONG.subscriptions == counts.subscriptions == 10_000
    conditional = {c for c, r in cfg.resources.items() if r.share is ShareAttribute.CONDITIONAL}
    assert len(conditional) == counts.conditional_resources > 0
    # every subscription of a conditional resource has its owner's answer, and only those
    on_conditional = {sid for sid, s in cfg.subscriptions.items() if s.resource in conditional}
    assert set(cfg.grants) == on_conditional
    assert {g.decision for g in cfg.grants.values()} == {"approved", "refused"}
    # a city-wide list read by every other department: past the ~150 a hub once carried per resource
    readers = Counter(s.resource for s in cfg.subscriptions.values())
    assert readers.most_common(1)[0][1] == counts.max_subscriptions_per_resource == 299
    assert any(s.filter for s in cfg.subscriptions.values())
    assert all(s.hub == "pudong" for s in cfg.subscriptions.values())


def test_the_same_seed_writes_the_same_files_and_another_seed_others(tmp_path: Path) -> None:
    size = PUDONG.scaled(0.02)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_pudong_config(tmp_path / name, seed=seed, size=size)

    def files(name: str) -> dict[str, bytes]:
        root = tmp_path / name
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files("a") == files("b")
    assert files("a") != files("c")
    load_config(tmp_path / "c")


def test_the_command_refuses_a_folder_that_is_not_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken.txt").write_text("x", encoding="utf-8")
    assert main([str(tmp_path), "--scale", "0.01"]) == 1
    assert "is not empty" in capsys.readouterr().err


def test_a_pudong_apply_asks_one_partition_per_topic_unless_configured(tmp_path: Path) -> None:
    """The partitions `xhub apply` creates: one per delivery topic (a subscriber reads it in order, alone)
    unless its subscription asks for more, and the hub's ``partitions`` per source topic (1 in Pudong's)."""
    size = PUDONG.scaled(0.02)
    counts = write_pudong_config(tmp_path / "p", size=size)
    desired = desired_state(load_config(tmp_path / "p"))
    assert sum(t.partitions for t in desired.topics.values()) == (
        # sources + deliveries + a dead-letter, a position and a backlog topic per department + the hub's
        # audit, dead letters, config and state changelog (the hub's ``partitions``: 1) + the registry's topic
        counts.resources + counts.subscriptions + 3 * counts.departments + 4 + 1
    )
    # a hub with more partitions per source topic, and one subscription asking for 4
    hubs = yaml.safe_load((tmp_path / "p" / "hubs.yaml").read_text(encoding="utf-8"))
    hubs["hubs"][0]["partitions"] = 3
    (tmp_path / "p" / "hubs.yaml").write_text(yaml.safe_dump(hubs, allow_unicode=True), encoding="utf-8")
    sub_file = sorted((tmp_path / "p" / "subscriptions").glob("*.yaml"))[0]
    doc = yaml.safe_load(sub_file.read_text(encoding="utf-8"))
    doc["subscriptions"][0]["delivery"] = {"partitions": 4}
    sub_file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    cfg = load_config(tmp_path / "p")
    desired = desired_state(cfg)

    wide = names.delivery_topic("pudong", doc["subscriptions"][0]["id"])
    deliveries = {n: t.partitions for n, t in desired.topics.items() if n.startswith("xhub.dlv.")}
    assert len(deliveries) == counts.subscriptions
    assert deliveries.pop(wide) == 4
    assert set(deliveries.values()) == {1}
    sources = [t.partitions for n, t in desired.topics.items() if n.startswith("xhub.src.")]
    assert len(sources) == counts.resources
    assert set(sources) == {3}
