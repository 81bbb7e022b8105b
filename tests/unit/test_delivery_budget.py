"""How many polled records one transaction takes (hub/engine/delivery_budget.py): pure logic."""

from __future__ import annotations

from dataclasses import dataclass

from hub.engine.delivery_budget import within_budget


@dataclass(frozen=True)
class Rec:
    offset: int


def records(first: int, n: int) -> list[Rec]:
    return [Rec(first + i) for i in range(n)]


FAN_OUT = {"wide": 10_000, "narrow": 3}


def test_a_narrow_topic_keeps_its_whole_poll_beside_a_wide_catalog() -> None:
    """10,000 subscriptions on another topic no longer shrink this one's batches (they took 1 record)."""
    kept, again = within_budget({"narrow": records(0, 500)}, FAN_OUT.__getitem__, 2000)
    assert len(kept["narrow"]) == 500
    assert again == {}


def test_a_record_worth_more_than_the_budget_goes_alone_and_the_rest_is_read_again() -> None:
    polled = {"wide": records(40, 5), "narrow": records(7, 10)}
    kept, again = within_budget(polled, FAN_OUT.__getitem__, 2000)
    assert kept == {"wide": [Rec(40)]}  # the first partition always moves on
    assert again == {"wide": 41, "narrow": 7}


def test_partitions_share_the_budget_in_poll_order() -> None:
    polled = {"narrow": records(0, 500), "wide": records(0, 1)}
    kept, again = within_budget(polled, FAN_OUT.__getitem__, 2000)
    assert [r.offset for r in kept["narrow"]] == list(range(500))  # 1,500 deliveries
    assert "wide" not in kept  # worth 10,000: waits for the next poll, which it leads
    assert again == {"wide": 0}


def test_a_batch_is_cut_where_the_budget_ends() -> None:
    kept, again = within_budget({"narrow": records(100, 500)}, FAN_OUT.__getitem__, 300)
    assert [r.offset for r in kept["narrow"]] == list(range(100, 200))  # 100 records x 3 = 300
    assert again == {"narrow": 200}


def test_a_topic_without_plans_counts_one_per_record() -> None:
    kept, again = within_budget({"idle": records(0, 4)}, lambda _: 0, 2)
    assert [r.offset for r in kept["idle"]] == [0, 1]
    assert again == {"idle": 2}
