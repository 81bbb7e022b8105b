"""How many polled records one transaction of the main loop takes: its deliveries stay within a budget.

A record of a city-wide list read by 10,000 offices is worth 10,000 deliveries, and a transaction must stay
bounded (its time, the producer's memory). The budget used to shrink every poll to what the widest source
topic allowed: with 10,000 subscriptions on one resource each transaction took 1 record of every topic,
the busy narrow ones included (cost per record 28x, `subscription_scaling_ratio` in make bench). Now the
poll takes ``batch_max_records`` and the batch is cut after the fact by what was actually polled: the
records left out are sought back and read by the next poll.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from kafka import KafkaConsumer, TopicPartition

Partition = TypeVar("Partition")


def within_budget(
    polled: Mapping[Partition, Sequence[Any]], fan_out: Callable[[Partition], int], budget: int
) -> tuple[dict[Partition, list[Any]], dict[Partition, int]]:
    """The records of ``polled`` (in its order) whose deliveries fit ``budget``, and where each partition
    cut short must be read again (the offset of its first record left out).

    ``fan_out(partition)`` is the number of subscriptions one of its records may go to. The first
    partition keeps at least one record whatever it is worth, so every batch moves on.
    """
    kept: dict[Partition, list[Any]] = {}
    again: dict[Partition, int] = {}
    used = 0
    for tp, records in polled.items():
        worth = max(1, fan_out(tp))
        room = max(0, budget - used) // worth
        take = min(len(records), room if kept else max(1, room))
        if take < len(records):
            again[tp] = records[take].offset
        if take > 0:
            kept[tp] = list(records[:take])
            used += take * worth
    return kept, again


def cut_to_budget(
    consumer: KafkaConsumer,
    polled: Mapping[TopicPartition, Sequence[Any]],
    plans_by_topic: Mapping[str, Sequence[Any]],
    budget: int,
) -> dict[TopicPartition, list[Any]]:
    """The records of ``polled`` one transaction takes (:func:`within_budget`, a record worth as many
    deliveries as its topic has plans); ``consumer`` is sought back to read the others again."""
    kept, again = within_budget(polled, lambda tp: len(plans_by_topic.get(tp.topic, ())), budget)
    for tp, offset in again.items():
        consumer.seek(tp, offset)
    return kept
