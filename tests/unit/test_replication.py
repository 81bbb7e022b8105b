"""Replication from the config's kafka settings: auto follows the cluster's size, explicit settings are
checked against it, and the plan shows what new topics get."""

from __future__ import annotations

import pytest

from hub.core.errors import ConfigError
from hub.core.kafka_settings import KafkaSettings
from hub.core.replication import choose_replication
from hub.provision.diff import ClusterChanges


def test_auto_keeps_a_single_broker_as_it_was() -> None:
    single = choose_replication(1)
    assert (single.factor, single.min_insync, single.topic_configs()) == (1, None, {})


@pytest.mark.parametrize(("brokers", "factor", "min_insync"), [(2, 2, None), (3, 3, 2), (5, 3, 2)])
def test_auto_is_up_to_three_copies_with_min_isr_two(
    brokers: int, factor: int, min_insync: int | None
) -> None:
    chosen = choose_replication(brokers)
    assert (chosen.factor, chosen.min_insync) == (factor, min_insync)


def test_explicit_settings_win_and_are_checked_against_the_cluster() -> None:
    assert choose_replication(5, 5, 3).topic_configs() == {"min.insync.replicas": "3"}
    assert choose_replication(3, 1).min_insync is None
    with pytest.raises(ConfigError, match="needs 3 brokers"):
        choose_replication(1, 3)
    with pytest.raises(ConfigError, match="over the replication factor"):
        choose_replication(3, 2, 3)


def test_settings_default_to_auto_and_take_numbers() -> None:
    assert KafkaSettings().replication_factor == "auto"
    settings = KafkaSettings.model_validate({"replication_factor": 3, "min_insync_replicas": 2})
    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)


def test_plan_shows_the_replication() -> None:
    changes = ClusterChanges(replication=choose_replication(3))
    assert changes.to_text().splitlines()[0] == (
        "= topics: replication factor 3, min.insync.replicas 2 (3 brokers)"
    )
    assert changes.to_json()["replication"] == {"factor": 3, "min_insync_replicas": 2, "brokers": 3}
