"""rejoin_if_stranded: when it asks kafka-python for a fresh join (the real thing: tests/integration/
test_sink_rejoin.py and test_broker_chaos.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from hub.core.group_join import rejoin_if_stranded


@dataclass
class _Task:
    is_done: bool


@dataclass
class _Coordinator:
    rebalancing: bool
    needed: bool
    _join_task: _Task | None
    requested: list[bool] = field(default_factory=list)

    def rebalance_in_progress(self) -> bool:
        return self.rebalancing

    def need_rejoin(self) -> bool:
        return self.needed

    def request_rejoin(self) -> None:
        self.requested.append(True)


@dataclass
class _Subscription:
    auto: bool = True

    def partitions_auto_assigned(self) -> bool:
        return self.auto


@dataclass
class _Consumer:
    _coordinator: Any
    _subscription: Any = field(default_factory=_Subscription)


@pytest.mark.parametrize(
    ("rebalancing", "needed", "task", "stranded"),
    [
        (True, False, None, True),  # a join that failed and was not retried
        (True, False, _Task(is_done=True), True),  # a join over, its answer never used
        (True, False, _Task(is_done=False), False),  # in flight: wait for it to end
        (True, True, _Task(is_done=True), False),  # the next poll drives the join
        (False, False, None, False),  # stable
    ],
)
def test_only_a_rebalance_no_poll_drives_any_more_is_rejoined(
    rebalancing: bool, needed: bool, task: _Task | None, stranded: bool
) -> None:
    coordinator = _Coordinator(rebalancing, needed, task)
    assert rejoin_if_stranded(_Consumer(coordinator)) is stranded
    assert coordinator.requested == ([True] if stranded else [])


def test_consumers_without_group_management_are_left_alone() -> None:
    coordinator = _Coordinator(rebalancing=True, needed=False, _join_task=None)
    assert not rejoin_if_stranded(_Consumer(coordinator, _Subscription(auto=False)))
    assert not rejoin_if_stranded(object())  # another client, or a kafka-python without these attributes
    assert coordinator.requested == []
