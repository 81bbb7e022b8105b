"""Schema stores: the Kafka-backed one the hub runs (``SchemaStore``) and an in-memory one for embedding.

Both apply the registry operations of ``hub.registry.operations``; they differ only in their log.

``SchemaStore`` keeps the registry in a compacted, single-partition topic (``_xhub_schemas``) in Confluent's
``_schemas`` layout and rebuilds its state by reading the topic from the start, so ids survive restarts.

Several processes (several hub workers, each with its own store and server) agree on ids because writes are
serialised through Kafka itself: every writer uses the same transactional id, derived from the topic. A
writer (1) initialises its transactional producer, which fences every other writer and completes any
transaction they left open, (2) reads the topic to its end, (3) decides the new record against that complete
state (version = latest + 1, id = the text's existing id or max id + 1), and (4) commits it in a
transaction. If another writer started meanwhile, it fenced this one and the commit fails; the loser
re-reads, re-decides (adopting the winner's id when the text is the same) and tries again. So no two
conflicting records ever reach the log, and each key is written once: compaction cannot change the outcome.
A write returns only once the store has read its own record back.

Registering a schema that is already there needs no write (and no fencing): the store reads to the end of the
topic and returns the existing id.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from hub.core import names
from hub.core.errors import FatalError, RetriableError
from hub.core.kafka import close_producer, ensure_topics, make_admin, make_consumer, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.core.names import SCHEMAS_TOPIC
from hub.core.registry import compatibility
from hub.core.registry.errors import RegistryUnavailable
from hub.core.replication import cluster_replication
from hub.registry.operations import BaseSchemaStore, RecordsToAppend
from hub.registry.state import Record

log = get_logger("registry.store")


class _ExpectedFencing(logging.Filter):
    """Drops kafka-python's ERROR lines about our registry writers being fenced.

    Fencing is how registry writers take turns (see the module docstring), not a fault; the store logs its
    own ``schema_write_retry`` event instead. Only the network threads of registry writers are muted, so a
    fenced engine producer (a real zombie) still shows.
    """

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName in self.threads and "ProducerFenced" in record.getMessage())


_FENCING_FILTER = _ExpectedFencing()


def _mute_expected_fencing(thread_name: str) -> None:
    if not _FENCING_FILTER.threads:  # installed on first use, not at import
        for name in ("kafka.producer.sender", "kafka.producer.transaction_manager"):
            logging.getLogger(name).addFilter(_FENCING_FILTER)
    _FENCING_FILTER.threads.add(thread_name)


class MemorySchemaStore(BaseSchemaStore):
    """A store whose log is a Python list: for embedding and for tests of the layers above the store.

    It applies exactly the same rules as ``SchemaStore``; ``records`` replays an existing log.
    """

    def __init__(
        self, records: Iterable[Record] = (), default_level: str = compatibility.DEFAULT_LEVEL
    ) -> None:
        super().__init__(default_level)
        self.log: list[Record] = []
        for key, value in records:
            self.log.append((key, value))
            self._state.apply(key, value)

    def _refresh(self) -> None:
        return None

    def _commit(self, records_for: RecordsToAppend) -> bool:
        with self._write_lock, self._lock:
            records = records_for(self._state)
            for key, value in records:
                self.log.append((key, value))
                self._state.apply(key, value)
            return bool(records)


@dataclass(frozen=True, slots=True)
class SchemaTopicSetup:
    """How the schemas topic is created and written, the same for every process sharing it.

    Attributes:
        transactional_id: shared by every writer of the topic; None derives it from the topic name.
            The Kafka principal needs Write on this transactional id and on the topic.
        replication_factor: for creating the topic; None: the settings' (auto: min(3, brokers)).
        default_level: the compatibility level when none is configured.
    """

    transactional_id: str | None = None
    replication_factor: int | None = None
    default_level: str = compatibility.DEFAULT_LEVEL


class SchemaStore(BaseSchemaStore):
    """The registry kept in a compacted single-partition Kafka topic (see the module docstring).

    Args:
        settings: how to reach Kafka.
        topic: the schemas topic; every process sharing a registry must name the same one.
        client_id: client id suffix for the Kafka clients.
        timeout: seconds to wait for Kafka before raising RegistryUnavailable.
        setup: the topic's transactional id, replication and default compatibility level.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str = SCHEMAS_TOPIC,
        *,
        client_id: str = "registry",
        timeout: float = 30.0,
        setup: SchemaTopicSetup = SchemaTopicSetup(),
    ) -> None:
        super().__init__(setup.default_level)
        self.settings = settings
        self.topic = topic
        self.client_id = client_id
        self.transactional_id = setup.transactional_id or names.registry_transactional_id(topic)
        self.replication_factor = setup.replication_factor
        self.timeout = timeout
        self._partition = TopicPartition(topic, 0)
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None

    def _replication_settings(self) -> KafkaSettings:
        if self.replication_factor is None:
            return self.settings
        return self.settings.model_copy(update={"replication_factor": self.replication_factor})

    def _where(self) -> str:
        return f"schemas topic {self.topic} at {self.settings.bootstrap_servers}"

    def start(self) -> None:
        """Create the topic if needed (1 partition, compacted) and read it from the start.

        Raises:
            RegistryUnavailable: Kafka did not answer in time.
            FatalError: the topic exists with more than one partition (ids would not be ordered).
        """
        with self._lock:
            if self._consumer is not None:
                return
            try:
                admin = make_admin(self.settings, f"{self.client_id}-admin")
                try:
                    ensure_topics(
                        admin,
                        {self.topic: {"cleanup.policy": "compact"}},
                        partitions=1,
                        replication=cluster_replication(admin, self._replication_settings()),
                    )
                finally:
                    admin.close()
                consumer = make_consumer(self.settings, self.client_id, group_id=None, max_poll_records=2000)
            except (KafkaError, RetriableError) as exc:
                raise RegistryUnavailable(f"{self._where()}: {type(exc).__name__}: {exc}") from exc
            self._consumer = consumer
            try:
                self._check_partitions(consumer)
                consumer.assign([self._partition])
                consumer.seek_to_beginning(self._partition)
            except BaseException:
                self.stop()
                raise
        self._refresh()
        with self._lock:
            log.info(
                "schema_store_started",
                topic=self.topic,
                subjects=len(self._state.subjects()),
                max_id=self._state.max_id,
            )

    def _check_partitions(self, consumer: KafkaConsumer) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            partitions = consumer.partitions_for_topic(self.topic)
            if partitions == {0}:
                return
            if partitions:
                raise FatalError(
                    f"schemas topic {self.topic} has {len(partitions)} partitions; it must have exactly 1"
                )
            if time.monotonic() > deadline:
                raise RegistryUnavailable(f"{self._where()}: the topic has no partitions yet")
            time.sleep(0.1)

    def stop(self) -> None:
        """Close the Kafka clients."""
        with self._write_lock, self._lock:
            if self._producer is not None:
                self._drop_producer()
            if self._consumer is not None:
                try:
                    self._consumer.close()
                except KafkaError:
                    log.warning("schema_consumer_close_failed", topic=self.topic)
                self._consumer = None

    # --- reading ------------------------------------------------------------------------------

    def _refresh(self) -> None:
        with self._lock:
            consumer = self._require_consumer()
            try:
                # read_committed: this is the last stable offset, so an open transaction does not stall us
                end = consumer.end_offsets([self._partition])[self._partition]
            except KafkaError as exc:
                raise RegistryUnavailable(f"{self._where()}: {type(exc).__name__}: {exc}") from exc
            self._read_until(end)

    def _read_until(self, target: int) -> None:
        with self._lock:
            consumer = self._require_consumer()
            deadline = time.monotonic() + self.timeout
            try:
                while consumer.position(self._partition) < target:
                    for records in consumer.poll(timeout_ms=100).values():
                        for record in records:
                            self._state.apply(record.key, record.value)
                    if time.monotonic() > deadline:
                        raise RegistryUnavailable(
                            f"{self._where()}: could not read up to offset {target} in {self.timeout:g}s"
                        )
            except KafkaError as exc:
                raise RegistryUnavailable(f"{self._where()}: {type(exc).__name__}: {exc}") from exc

    def _require_consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            raise RegistryUnavailable(f"{self._where()}: the store is not started")
        return self._consumer

    # --- writing ------------------------------------------------------------------------------

    def _commit(self, records_for: RecordsToAppend) -> bool:
        with self._write_lock:
            deadline = time.monotonic() + self.timeout
            attempt = 0
            while True:
                attempt += 1
                try:
                    last_offset = self._try_commit(records_for)
                except (KafkaError, RetriableError) as exc:
                    # fenced by another writer (or a broker hiccup): start over from a fresh view
                    self._drop_producer()
                    if time.monotonic() > deadline:
                        raise RegistryUnavailable(
                            f"{self._where()}: write failed after {attempt} attempts: "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
                    log.info(
                        "schema_write_retry", topic=self.topic, attempt=attempt, error=type(exc).__name__
                    )
                    time.sleep(random.uniform(0.01, 0.1) * min(attempt, 10))  # noqa: S311 - jitter, not crypto
                    continue
                if last_offset is None:
                    return False
                self._read_until(last_offset + 1)
                return True

    def _try_commit(self, records_for: RecordsToAppend) -> int | None:
        producer = self._transactional_producer()  # fences every other writer from here on
        self._refresh()
        with self._lock:
            records = records_for(self._state)
        if not records:
            return None
        producer.begin_transaction()
        try:
            futures = [producer.send(self.topic, key=key, value=value, partition=0) for key, value in records]
            producer.commit_transaction()
            return int(max(future.get(timeout=self.timeout).offset for future in futures))
        except KafkaError:
            raise
        except BaseException:
            self._drop_producer()  # whatever it left open is aborted when the next writer initialises
            raise

    def _transactional_producer(self) -> KafkaProducer:
        if self._producer is None:
            client_id = f"{self.client_id}-writer"
            # kafka-python names the producer's network thread after its client id
            _mute_expected_fencing(f"{self.settings.client_id_prefix}-{client_id}-network-thread")
            producer = make_producer(
                self.settings, client_id, transactional_id=self.transactional_id, linger_ms=0
            )
            try:
                producer.init_transactions()
            except BaseException:
                close_producer(producer, timeout_s=1)
                raise
            self._producer = producer
        return self._producer

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            close_producer(producer, timeout_s=1)


KafkaSchemaStore = SchemaStore
"""Another name for ``SchemaStore``, saying what backs it."""
