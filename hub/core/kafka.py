"""kafka-python client factories shared by the hub and the connectors.

kafka-python is the client. Everything that opens a Kafka connection goes through here, so that
security settings, client ids and timeouts are set in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import IllegalStateError, KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from hub.core.errors import RetriableError
from hub.core.kafka_settings import KafkaSettings
from hub.core.replication import Replication, cluster_replication

STATIC_MEMBER_SESSION_TIMEOUT_MS = 15_000
"""Session timeout of the static group members (hub workers, sidecar sinks): long enough for a restarted
process to take its old partitions back without a rebalance, short enough that a member gone for good
hands them on."""


def make_admin(settings: KafkaSettings, client_id: str = "admin") -> KafkaAdminClient:
    """An admin client; raises RetriableError naming the servers when the cluster does not answer."""
    try:
        return KafkaAdminClient(**settings.common(client_id), request_timeout_ms=15000)
    except KafkaError as exc:
        raise RetriableError(
            f"Kafka at {settings.bootstrap_servers} did not answer: {type(exc).__name__}: {exc}",
            retry_after=2.0,
        ) from exc


class UnwrittenRecordsError(KafkaError):  # type: ignore[misc]  # kafka-python ships no type hints
    """A record sent in the open transaction was not written: the transaction must not commit."""

    retriable = True  # abort, and write the same records again in a new transaction


class TransactionalProducer(KafkaProducer):  # type: ignore[misc]  # kafka-python ships no type hints
    """A transactional producer whose commit refuses a transaction one of whose records failed.

    kafka-python 3.0.x fails a produce batch that ran out of delivery time or retries with a retriable
    error (``KafkaTimeoutError`` "Expiring N record(s)", ``NotEnoughReplicas``...) without marking the
    transaction failed (``TransactionManager.classify_batch_error`` -> RETRIABLE: no state change), and
    ``commit_transaction`` then commits whatever else the transaction wrote, or nothing but its markers.
    A broker's death makes such batches: every batch of a transaction waits until the coordinator has
    added its partition to the transaction (``is_send_to_partition_allowed``), a batch for a partition
    whose leader died waits for the new one, and the court sidecar's 10 s delivery timeout can run out
    meanwhile. Its publisher then took the commit for a success and went on past rows never written:
    ``make chaos`` lost rows 205-409, 220-224 and (once reproduced) 212-414, absent from the source topic,
    with no failed transaction logged (issue 18). The Java producer makes such a transaction abortable;
    here every send of the transaction is watched and the commit checks them
    (:func:`commit_transaction_within`, :meth:`commit_transaction`).
    """

    def __init__(self, **configs: Any) -> None:
        super().__init__(**configs)
        self._transaction = 0  # which transaction a send belongs to (a late failure of an old one)
        self._unwritten: list[BaseException] = []

    def begin_transaction(self) -> None:
        super().begin_transaction()
        self._transaction += 1
        self._unwritten = []

    def send(self, *args: Any, **kwargs: Any) -> Any:
        future = super().send(*args, **kwargs)
        future.add_errback(self._failed, self._transaction)
        return future

    def _failed(self, transaction: int, exc: BaseException) -> None:
        if transaction == self._transaction:  # runs on the sender thread; a list append is atomic
            self._unwritten.append(exc)

    def check_written(self, timeout_s: float | None = None) -> None:
        """Wait for every record sent in the open transaction; raise if one of them was not written.

        Raises:
            UnwrittenRecordsError: a record of the transaction failed (the transaction must abort).
            KafkaTimeoutError: the records did not complete in ``timeout_s``.
        """
        self.flush(timeout=timeout_s)
        failed = list(self._unwritten)
        if failed:
            first = failed[0]
            raise UnwrittenRecordsError(
                f"{len(failed)} send(s) of the transaction not written "
                f"(first: {type(first).__name__}: {first}): not committing"
            )

    def commit_transaction(self) -> None:
        self.check_written()
        super().commit_transaction()


def make_producer(
    settings: KafkaSettings, client_id: str, *, transactional_id: str | None = None, **overrides: Any
) -> KafkaProducer:
    """An idempotent producer; transactional when ``transactional_id`` is given (then a
    :class:`TransactionalProducer`, whose commit refuses a transaction with a failed send)."""
    conf: dict[str, Any] = {
        **settings.common(client_id),
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_in_flight_requests_per_connection": 5,
    }
    if transactional_id:
        conf["transactional_id"] = transactional_id
    conf.update(overrides)
    try:
        return TransactionalProducer(**conf) if transactional_id else KafkaProducer(**conf)
    except KafkaError as exc:
        raise RetriableError(f"producer for {settings.bootstrap_servers} failed: {exc}") from exc


def close_producer(producer: KafkaProducer, timeout_s: float = 2.0) -> None:
    """Close ``producer`` within about ``timeout_s`` and never raise; afterwards nothing is left to close.

    kafka-python's ``close`` flushes first and raises when that times out (the broker is gone), leaving the
    producer open and its sender thread running: after every outage one more thread stays behind, and the
    ``__del__`` of the dropped producer closes it again and reports an exception nobody can catch. The
    records it still holds are given up: a transaction's are aborted by the next ``init_transactions``,
    and other callers (reports, dead letters) send again.
    """
    try:
        producer.close(timeout=timeout_s)
    except Exception:  # noqa: BLE001 - the producer is given up whatever it says: stopped here
        sender = getattr(producer, "_sender", None)
        try:
            if sender is not None and sender.is_alive():
                sender.force_close()
                sender.join(2)
        finally:
            producer._closed = True  # what a completed close sets: __del__ then does nothing


def learn_partitions(producer: KafkaProducer, topics: Sequence[str]) -> None:
    """Have ``producer`` know the partitions of ``topics`` with as few metadata requests as can be.

    kafka-python's ``partitions_for`` asks for one new topic per metadata request, and its requests go at
    least ``retry_backoff_ms`` (100 ms) apart: the 503 delivery topics of a Pudong-sized hub (5 %) took
    51 s of its start. Adding them all to the topics the producer tracks first lets one request answer
    for all of them; without kafka-python's sender hook it goes one by one, as before.

    Raises:
        KafkaError: as ``partitions_for`` (e.g. KafkaTimeoutError after ``max_block_ms``).
    """
    add = getattr(getattr(producer, "_sender", None), "add_topic", None)
    if add is not None:
        for topic in topics:
            add(topic)
    for topic in topics:
        producer.partitions_for(topic)


def make_consumer(
    settings: KafkaSettings, client_id: str, *, group_id: str | None, **overrides: Any
) -> KafkaConsumer:
    """A read_committed consumer with manual commits (offsets are committed in transactions)."""
    conf: dict[str, Any] = {
        **settings.common(client_id),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": 500,
        # A topic created after the consumer subscribed (a sidecar started before `xhub apply`) is seen
        # within 10 s, not after kafka-python's default of 5 minutes.
        "metadata_max_age_ms": 10_000,
    }
    conf.update(overrides)
    try:
        return KafkaConsumer(**conf)
    except KafkaError as exc:
        raise RetriableError(f"consumer for {settings.bootstrap_servers} failed: {exc}") from exc


def commit_transaction_within(producer: KafkaProducer, timeout_s: float) -> None:
    """``producer.commit_transaction()`` with a deadline.

    kafka-python's own waits without one for the broker's answer to EndTxn; after a broker restart that
    answer can be lost, and a sidecar then hung in its commit for good (seen in the broker restart test).
    The caller closes the producer on the error: the next ``init_transactions`` of its transactional id
    completes or aborts the transaction, and reading back the committed position tells which.

    First every record the transaction sent must be written (see :class:`TransactionalProducer`): one
    that failed aborts the transaction instead of committing the others without it.

    Raises:
        UnwrittenRecordsError: a record of the transaction was not written; nothing was committed.
        KafkaTimeoutError: no answer in ``timeout_s``.
        KafkaError: the commit failed.
    """
    began = time.monotonic()
    if isinstance(producer, TransactionalProducer):
        producer.check_written(timeout_s)
    left = max(1.0, timeout_s - (time.monotonic() - began))
    _within(producer, "commit", lambda manager: manager.begin_commit(), left)


def abort_transaction_within(producer: KafkaProducer, timeout_s: float) -> None:
    """``producer.abort_transaction()`` with a deadline (same reason as the commit's)."""
    _within(producer, "abort", lambda manager: manager.begin_abort(), timeout_s)


def send_offsets_within(
    producer: KafkaProducer, offsets: Mapping[Any, Any], group_metadata: Any, timeout_s: float
) -> None:
    """``producer.send_offsets_to_transaction(...)`` with a deadline: kafka-python's waits for the group
    coordinator without one, and a hub worker hung there for good after its coordinator broker was killed
    (seen in make chaos). Raises as :func:`commit_transaction_within`."""
    _within(
        producer,
        "offsets",
        lambda manager: manager.send_offsets_to_transaction(offsets, group_metadata),
        timeout_s,
    )


def _within(producer: KafkaProducer, what: str, start: Callable[[Any], Any], timeout_s: float) -> None:
    manager = producer._transaction_manager  # private: the public methods have no timeout
    if manager is None:
        raise IllegalStateError("not a transactional producer")
    result = start(manager)
    producer._sender.wakeup()
    if not result.wait(timeout_ms=int(timeout_s * 1000)):
        raise KafkaTimeoutError(f"the {what} of the transaction was not answered in {timeout_s:.0f} s")


def ensure_topics(
    admin: KafkaAdminClient,
    topics: Mapping[str, Mapping[str, Any]],
    *,
    partitions: int = 3,
    replication: Replication | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    ``topics`` maps a name to its topic configs (e.g. ``{"cleanup.policy": "compact"}``).
    ``replication``: None is ``auto`` on the cluster ``admin`` reaches (hub.core.replication).
    """
    existing = set(admin.list_topics())
    missing = {name: conf for name, conf in topics.items() if name not in existing}
    if not missing:
        return []
    replication = replication or cluster_replication(admin)
    wanted = [
        NewTopic(
            name,
            partitions,
            replication.factor,
            topic_configs={**replication.topic_configs(), **{k: str(v) for k, v in conf.items()}},
        )
        for name, conf in missing.items()
    ]
    created: list[str] = []
    for topic in wanted:
        try:
            admin.create_topics([topic])
            created.append(topic.name)
        except TopicAlreadyExistsError:
            continue  # created concurrently by another process: that is what we wanted
    return created


def read_last_value(consumer: KafkaConsumer, topic: str, attempts: int = 20) -> bytes | None:
    """The value of the newest record of partition 0 of ``topic`` (a config topic), or None if empty.

    ``consumer`` is assigned to that partition (any earlier assignment is replaced).
    """
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    end = consumer.end_offsets([tp])[tp]
    if end == 0:
        return None
    consumer.seek(tp, max(0, end - 1))
    for _ in range(attempts):
        for records in consumer.poll(timeout_ms=500).values():
            if records:
                value: bytes | None = records[-1].value
                return value
    return None
