"""Which open transactions a producer may abort as its own, hanging: older epochs of its producer id only
(hub.core.hanging_transactions; the abort itself runs against a real broker in the broker restart test)."""

from __future__ import annotations

from kafka import TopicPartition
from kafka.admin import PartitionProducerState, ProducerState, TransactionDescription, TransactionState

from hub.core.hanging_transactions import Hanging, OpenTransaction, hanging_of

POS = TopicPartition("xhub.pos.court", 1)
SRC = TopicPartition("xhub.src.court.pd-crd-0001", 0)


def _producer(pid: int, epoch: int, open_at: int = -1, coordinator_epoch: int = 7) -> ProducerState:
    return ProducerState(pid, epoch, 12, 1_796_310_221_031, coordinator_epoch, open_at)


def test_an_open_transaction_of_an_older_epoch_of_our_id_is_hanging() -> None:
    states = {
        POS: PartitionProducerState([_producer(55001, 0, open_at=25), _producer(56000, 0)]),
        SRC: PartitionProducerState([_producer(55001, 0, open_at=61)]),
    }
    assert hanging_of(55001, 1, states) == [
        Hanging(POS, 55001, 0, 7, 25),
        Hanging(SRC, 55001, 0, 7, 61),
    ]


def test_others_our_current_epoch_and_closed_transactions_are_left_alone() -> None:
    states = {
        POS: PartitionProducerState(
            [
                _producer(56000, 0, open_at=3),  # another producer's transaction: not ours to judge
                _producer(55001, 1, open_at=30),  # our current epoch: the transaction we may be running
                _producer(55001, 0),  # an older epoch, but nothing open
            ]
        )
    }
    assert hanging_of(55001, 1, states) == []


# --- the operator's judgement (xhub transactions): does any coordinator still own the open transaction? ---


def _described(
    state: TransactionState, pid: int = 55001, epoch: int = 0, tps: set[TopicPartition] | None = None
) -> TransactionDescription:
    return TransactionDescription(1, state, pid, epoch, 60000, 0, {POS} if tps is None else tps)


def _open(
    coordinator: TransactionDescription | None, tid: str | None = "xhub-src-court-debtors"
) -> OpenTransaction:
    return OpenTransaction(POS, _producer(55001, 0, open_at=25), tid, coordinator)


def test_an_open_transaction_its_coordinator_runs_is_not_hanging() -> None:
    for state in (TransactionState.ONGOING, TransactionState.PREPARE_COMMIT, TransactionState.PREPARE_ABORT):
        assert not _open(_described(state)).hanging, state


def test_an_open_transaction_no_coordinator_will_end_is_hanging() -> None:
    assert _open(None, tid=None).hanging, "no transactional id has the producer id any more"
    assert _open(_described(TransactionState.EMPTY, epoch=1)).hanging, (
        "the id moved on (seen after a restart)"
    )
    assert _open(_described(TransactionState.ONGOING, epoch=1)).hanging, "a newer epoch runs the id"
    assert _open(_described(TransactionState.ONGOING, pid=56000)).hanging, "another producer id has the id"
    assert _open(_described(TransactionState.COMPLETE_COMMIT)).hanging, "its transaction is over"
    assert _open(_described(TransactionState.ONGOING, tps={SRC})).hanging, "not one of its partitions"
