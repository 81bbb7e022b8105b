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
from kafka.admin import AbortTransactionSpec, PartitionProducerState, TransactionState
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
        return abort_own_hanging(admin, transactional_id, _partitions_of(admin, topics))
    except AuthorizationError as exc:
        # Describing producers needs READ on the topics, the abort needs ClusterAction: a department
        # or hub identity has neither (issue 15's ACLs). An operator aborts with kafka-transactions.sh.
        log.info(
            "hanging_transaction_check_not_permitted",
            transactional_id=transactional_id,
            error=type(exc).__name__,
            hint="kafka-transactions.sh find-hanging / abort, as an operator",
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


def _partitions_of(admin: KafkaAdminClient, topics: list[str]) -> list[TopicPartition]:
    """Every partition of the existing ``topics``, from a metadata request per chunk of them."""
    out: list[TopicPartition] = []
    for start in range(0, len(topics), _DESCRIBE_CHUNK):
        for desc in admin.describe_topics(topics[start : start + _DESCRIBE_CHUNK]):
            if desc.get("error_code", 0) == 0:
                name = desc["name"]
                out.extend(TopicPartition(name, int(p["partition_index"])) for p in desc["partitions"])
    return out
