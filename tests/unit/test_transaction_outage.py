"""A hub step caught by a cluster outage (both found by tests/integration/test_federation_faults.py).

- Its commit not answered in time: read again only if it was not made. The city cluster stopped while
  the city hub committed a batch; the answer never came, the hub took the step as aborted and delivered
  the batch again, while the coordinator had decided the commit and completed it after the restart (38
  changes twice at the city subscriber, the audit chain's entries twice).
- Fenced because the broker aborted it for running too long: read again with a fresh producer. The
  district hub's worker took that for another worker's takeover and died when the district cluster
  stopped mid-stream.

The fakes stand for kafka-python's transactional producer and the group's committed offsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import ProducerFencedError
from kafka.structs import OffsetAndMetadata

from hub.audit.chain import AuditChain
from hub.engine.errors import WorkerFencedError
from hub.engine.handover import PartitionState
from hub.engine.state.changelog import Changelog
from hub.engine.state.store import StateStore
from hub.engine.stats import WorkerStats
from hub.engine.transaction import TransactionStep

TP = TopicPartition("xhub.src.pudong.pd-crd-0001", 0)


class _Result:
    def __init__(self, answered: bool) -> None:
        self.answered = answered

    def wait(self, timeout_ms: int) -> bool:
        del timeout_ms
        return self.answered


@dataclass
class _Manager:
    offsets: dict[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)

    def send_offsets_to_transaction(self, offsets: Any, group_metadata: Any) -> _Result:
        del group_metadata
        self.offsets = dict(offsets)
        return _Result(answered=True)

    def begin_commit(self) -> _Result:
        return _Result(answered=False)  # the broker went away before it answered

    def begin_abort(self) -> _Result:
        return _Result(answered=True)


class _Producer:
    def __init__(self) -> None:
        self._transaction_manager = _Manager()
        self._sender = type("Sender", (), {"wakeup": lambda self: None})()
        self.closed = False

    def begin_transaction(self) -> None:
        pass

    def close(self, timeout: float) -> None:
        del timeout
        self.closed = True


class _Consumer:
    def __init__(self) -> None:
        self.group_offsets: dict[TopicPartition, OffsetAndMetadata] = {}

    def group_metadata(self) -> object:
        return object()

    def committed(self, tp: TopicPartition, metadata: bool = False, timeout_ms: int | None = None) -> Any:
        del metadata, timeout_ms
        return self.group_offsets.get(tp)


class _State:
    def __init__(self) -> None:
        self.applied: list[object] = []

    def begin(self, writer: str) -> None:
        del writer

    def end(self, writer: str) -> None:
        del writer

    def changes(self, states: Any, held: Any, *, partial: bool = False) -> list[object]:
        del states, held, partial
        return []

    def apply(self, sent: object, writer: str = "") -> None:
        del writer
        self.applied.append(sent)


class _Changelog:
    def send(self, producer: Any, entries: Any) -> str:
        del producer, entries
        return "sent"


def _step(made: bool) -> tuple[TransactionStep, _State, list[_Producer], list[str]]:
    """A step whose commit is not answered; ``made``: whether the broker made it anyway."""
    first, consumer, state = _Producer(), _Consumer(), _State()
    chain = AuditChain("xhub-hub-city-0", b"audit-key")
    step = TransactionStep(
        cast(KafkaProducer, first),
        cast(KafkaConsumer, consumer),
        chain,
        cast(StateStore, state),
        cast(Changelog, _Changelog()),
        WorkerStats(),
        hub="city",
        worker_id=0,
    )
    step.wait = lambda seconds: None
    producers = [first]
    events: list[str] = []

    def reopen() -> KafkaProducer:
        # The fresh producer's init_transactions settles the old transaction: the group's offsets now
        # show it committed, or still what the step before left.
        sent = first._transaction_manager.offsets
        consumer.group_offsets = dict(sent) if made else {TP: OffsetAndMetadata(10, "{}", -1)}
        producers.append(_Producer())
        events.append("reopened")
        return cast(KafkaProducer, producers[-1])

    step.reopen = reopen
    return step, state, producers, events


def _body(chain: AuditChain) -> Any:
    def body(producer: Any) -> dict[TopicPartition, tuple[int, PartitionState]]:
        del producer
        chain.append({"kind": "delivered"})  # a delivery's audit entry
        return {TP: (15, cast(PartitionState, {}))}

    return body


def test_a_commit_made_though_unanswered_is_not_read_again() -> None:
    step, state, producers, events = _step(made=True)
    rewound: list[bool] = []
    assert step.run(_body(step.chain), rewind=lambda: rewound.append(True)) is True
    assert rewound == [], "the batch would be delivered twice"
    assert state.applied == ["sent"], "the local state takes the committed step"
    assert step.chain.seq == 1, "the chain keeps the committed entry"
    assert events == ["reopened"]
    assert step.producer is cast(KafkaProducer, producers[-1])
    assert step.stats.aborted_transactions == 0


def test_a_commit_not_made_is_read_again_after_one_reopen() -> None:
    step, state, producers, events = _step(made=False)
    rewound: list[bool] = []
    assert step.run(_body(step.chain), rewind=lambda: rewound.append(True)) is False
    assert rewound == [True]
    assert state.applied == []
    assert step.chain.seq == 0, "the chain is back where it stood"
    assert events == ["reopened"], "the fresh producer settled it: no second reopen"
    assert step.stats.aborted_transactions == 1
    assert producers[0].closed


def _fenced_after(seconds: float) -> tuple[TransactionStep, list[str]]:
    """A step fenced ``seconds`` after it began (its transaction timeout: 30 s)."""
    step, _, _, events = _step(made=False)
    clock = iter([0.0, seconds])
    step.clock = lambda: next(clock)
    step.timeout_s = 30.0
    return step, events


def _fenced_body(chain: AuditChain) -> Any:
    def body(producer: Any) -> Any:
        del producer
        chain.append({"kind": "delivered"})
        raise ProducerFencedError()

    return body


def test_a_transaction_the_broker_let_expire_is_read_again_with_a_fresh_producer() -> None:
    step, events = _fenced_after(40.0)
    rewound: list[bool] = []
    assert step.run(_fenced_body(step.chain), rewind=lambda: rewound.append(True)) is False
    assert rewound == [True]
    assert events == ["reopened"]
    assert step.chain.seq == 0


def test_fenced_quickly_is_another_workers_takeover() -> None:
    step, events = _fenced_after(1.0)
    with pytest.raises(WorkerFencedError):
        step.run(_fenced_body(step.chain))
    assert events == []
