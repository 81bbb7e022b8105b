"""Hanging transactions of our own transactional id: found and aborted after ``init_transactions``.

A broker stopped while a producer's transaction is open can come back with the coordinator holding no
transaction for that id (state Empty) while a partition still holds the producer's records as an open
transaction (seen in the broker restart test: `kafka-transactions.sh find-hanging` listed them; the
coordinator said Empty). ``init_transactions`` then aborts nothing, and the partition's last stable
offset stays at that transaction for good: read_committed readers (the sidecar reading back its
position, the hub reading the source topic) stop there. Kafka's answer is an administrative abort
(KIP-664). The owner of the transactional id can do it safely itself: once ``init_transactions`` gave it
epoch E, any transaction of an older epoch of the same producer id is dead — it can never commit.
It needs READ on the topics and ClusterAction on the cluster (WriteTxnMarkers): the super user has them;
a department or hub identity under the generated ACLs does not, and then only logs that it could not.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import (
    AbortTransactionSpec,
    PartitionProducerState,
    ProducerState,
    TransactionDescription,
    TransactionState,
)
from kafka.errors import AuthorizationError, KafkaError

from hub.core.errors import RetriableError
from hub.core.kafka import make_admin
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger

log = get_logger("kafka.transactions")

# After init_transactions the coordinator holds no open transaction of ours in these states.
_SETTLED = {TransactionState.EMPTY, TransactionState.COMPLETE_COMMIT, TransactionState.COMPLETE_ABORT}
_DESCRIBE_CHUNK = 1000  # topics per metadata request (a hub may write 10,000 delivery topics)


@dataclass(frozen=True, slots=True)
class Hanging:
    """An open transaction of an older epoch of our producer id, found on ``partition``."""

    partition: TopicPartition
    producer_id: int
    producer_epoch: int
    coordinator_epoch: int
    start_offset: int


def hanging_of(
    producer_id: int, epoch: int, states: Mapping[TopicPartition, PartitionProducerState]
) -> list[Hanging]:
    """The open transactions in ``states`` (DescribeProducers answers) left by an older ``epoch`` of
    ``producer_id``: none of them can still commit."""
    return [
        Hanging(tp, p.producer_id, p.producer_epoch, p.coordinator_epoch, p.current_transaction_start_offset)
        for tp, state in sorted(states.items())
        for p in state.active_producers
        if p.producer_id == producer_id
        and p.producer_epoch < epoch
        and p.current_transaction_start_offset >= 0
    ]


@dataclass(frozen=True, slots=True)
class OpenTransaction:
    """An open transaction a partition holds (DescribeProducers), and what its coordinator says of it."""

    partition: TopicPartition
    producer: ProducerState
    transactional_id: str | None  # None: no coordinator knows the producer id any more
    coordinator: TransactionDescription | None

    @property
    def hanging(self) -> bool:
        """Whether it can never end by itself: the coordinator that would write its markers forgot it
        (no transactional id has the producer id, a newer epoch holds the id, the id's transaction is
        over, or it does not include this partition)."""
        c = self.coordinator
        return (
            c is None
            or c.producer_id != self.producer.producer_id
            or c.producer_epoch > self.producer.producer_epoch
            or c.state in _SETTLED
            or self.partition not in c.topic_partitions
        )


def open_transactions(
    admin: KafkaAdminClient, partitions: Iterable[TopicPartition], now_ms: int, older_than_ms: int
) -> list[OpenTransaction]:
    """The transactions open on ``partitions`` since ``older_than_ms`` or longer (by the producer's last
    write), each with its coordinator's description (what `kafka-transactions.sh find-hanging` looks at)."""
    states = admin.describe_producers(list(partitions))
    found = [
        (tp, p)
        for tp, state in sorted(states.items())
        for p in state.active_producers
        if p.current_transaction_start_offset >= 0 and now_ms - p.last_timestamp >= older_than_ms
    ]
    if not found:
        return []
    pids = sorted({p.producer_id for _, p in found})
    listed = admin.list_transactions(producer_id_filters=pids)  # {broker: [listing]}: each holds a slice
    ids = {t.producer_id: t.transactional_id for rows in listed.values() for t in rows}
    described = admin.describe_transactions(sorted(set(ids.values()))) if ids else {}
    return [
        OpenTransaction(tp, p, ids.get(p.producer_id), described.get(ids.get(p.producer_id, "")))
        for tp, p in found
    ]


def abort_hanging(admin: KafkaAdminClient, txn: OpenTransaction) -> None:
    """Write the abort marker of hanging ``txn`` (an operator's command: it needs ClusterAction)."""
    p = txn.producer
    admin.abort_transaction(AbortTransactionSpec(txn.partition, p.producer_id, p.producer_epoch, -1))
    log.warning(
        "hanging_transaction_aborted",
        transactional_id=txn.transactional_id,
        topic=txn.partition.topic,
        partition=txn.partition.partition,
        producer_epoch=p.producer_epoch,
        from_offset=p.current_transaction_start_offset,
    )


def abort_own_hanging(
    admin: KafkaAdminClient, transactional_id: str, partitions: Iterable[TopicPartition]
) -> list[Hanging]:
    """Abort, on ``partitions``, what older epochs of ``transactional_id`` left open (call it right after
    ``init_transactions``). Returns what was aborted.

    Raises:
        KafkaError: the cluster did not answer, or refused (e.g. no permission to describe or abort).
    """
    described = admin.describe_transactions([transactional_id]).get(transactional_id)
    if described is None or described.state not in _SETTLED:
        return []  # a transaction of ours is open at the coordinator: init_transactions was not called
    found = hanging_of(
        described.producer_id, described.producer_epoch, admin.describe_producers(list(partitions))
    )
    for h in found:
        admin.abort_transaction(
            AbortTransactionSpec(h.partition, h.producer_id, h.producer_epoch, h.coordinator_epoch)
        )
        log.warning(
            "hanging_transaction_aborted",
            transactional_id=transactional_id,
            topic=h.partition.topic,
            partition=h.partition.partition,
            producer_epoch=h.producer_epoch,
            from_offset=h.start_offset,
        )
    return found


def abort_own_hanging_on(
    settings: KafkaSettings, transactional_id: str, topics: Iterable[str], *, deadline_s: float = 30.0
) -> list[Hanging]:
    """:func:`abort_own_hanging` on every partition of ``topics``, right after the producer of
    ``transactional_id`` called ``init_transactions``. A failure (no answer, no permission to describe or
    abort) is logged, not raised, and so is a check still running after ``deadline_s`` (it runs on a
    thread of its own: kafka-python's admin calls have no overall deadline, and a worker waiting on one
    after a broker's death must not stop for it): the caller goes on either way.
    """
    names = sorted(set(topics))
    found: list[list[Hanging]] = []
    check = threading.Thread(
        target=lambda: found.append(_check(settings, transactional_id, names)),
        name=f"hanging-check-{transactional_id}",
        daemon=True,
    )
    check.start()
    check.join(deadline_s)
    if check.is_alive():
        log.warning(
            "hanging_transaction_check_timed_out", transactional_id=transactional_id, after_s=deadline_s
        )
        return []
    return found[0] if found else []


def _check(settings: KafkaSettings, transactional_id: str, topics: list[str]) -> list[Hanging]:
    admin = None
    try:
        admin = make_admin(settings, f"{transactional_id}-hanging")
        return abort_own_hanging(admin, transactional_id, partitions_of(admin, topics))
    except AuthorizationError as exc:
        # Describing producers needs READ on the topics, the abort needs ClusterAction: a department
        # or hub identity has neither (issue 15's ACLs). An operator aborts with `xhub transactions`.
        log.info(
            "hanging_transaction_check_not_permitted",
            transactional_id=transactional_id,
            error=type(exc).__name__,
            hint="an operator runs: xhub transactions CONFIG_DIR --abort",
        )
        return []
    except (RetriableError, KafkaError) as exc:
        log.warning(
            "hanging_transaction_check_failed",
            transactional_id=transactional_id,
            error=f"{type(exc).__name__}: {exc}"[:300],
        )
        return []
    finally:
        if admin is not None:
            admin.close()


def partitions_of(admin: KafkaAdminClient, topics: list[str]) -> list[TopicPartition]:
    """Every partition of the existing ``topics``, from a metadata request per chunk of them."""
    out: list[TopicPartition] = []
    for start in range(0, len(topics), _DESCRIBE_CHUNK):
        for desc in admin.describe_topics(topics[start : start + _DESCRIBE_CHUNK]):
            if desc.get("error_code", 0) == 0:
                name = desc["name"]
                out.extend(TopicPartition(name, int(p["partition_index"])) for p in desc["partitions"])
    return out
