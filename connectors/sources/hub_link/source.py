"""The hub link source: reads a district hub's delivery topic, publishes its changes in the city cluster.

    sources:
      - name: pudong-debtors
        type: hub_link
        resource: PD-CRD-0001            # the city catalog's linked resource, owned by this sidecar's dept
        district:
          hub: pudong                    # the district hub that delivers
          subscription: city-debtors     # the link's subscription there
          registry_url: http://district-registry:8081
          kafka: {bootstrap_servers: district-kafka:9093, security_protocol: SSL, ...}

The sidecar's own ``kafka`` and ``registry_url`` are the city's: events, dead letters and the link's
position are written there, in one transaction per batch (``connectors.runtime.publisher``). The
district cluster is only read, read_committed, by ``assign`` and ``seek`` to the stored position: no
consumer group, so the link's district identity needs READ on its delivery topic and nothing else.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.errors import SourceUnavailable
from connectors.sources.base import Batch, Captured, Poll, PollingSource, Position, SourceConfigBase
from connectors.sources.hub_link.position import LinkPosition
from connectors.sources.hub_link.records import captured_of
from hub.core.errors import RetriableError
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.core.names import delivery_topic
from hub.core.provenance import POLICY_HEADER
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde


class DistrictSide(BaseModel):
    """Where the link reads: the district hub, the link's subscription there, that cluster and registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hub: str = Field(description="the district hub delivering to the link")
    subscription: str = Field(description="the link's subscription at that hub")
    kafka: KafkaSettings = Field(description="the district cluster, with the link's own identity there")
    registry_url: str = Field(description="the district's schema registry (decodes the deliveries)")

    @field_validator("hub", "subscription")
    @classmethod
    def _topic_part(cls, value: str) -> str:
        delivery_topic(value, "x")  # the same rule as every topic name part
        return value

    @field_validator("registry_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("registry_url must start with http:// or https://")
        return value

    @property
    def topic(self) -> str:
        """The delivery topic the link reads."""
        return delivery_topic(self.hub, self.subscription)


class HubLinkSourceConfig(SourceConfigBase):
    """A district hub's deliveries to one subscription, carried into this (city) cluster."""

    type: Literal["hub_link"] = "hub_link"
    resource: str = Field(description="catalog code of the linked resource (the city's catalog)")
    district: DistrictSide
    poll_timeout_ms: int = Field(
        default=500, ge=10, le=10_000, description="longest wait of one read of the district topic"
    )

    def resource_codes(self) -> list[str]:
        return [self.resource]


class HubLinkSource(PollingSource):
    """Carries the records of a district delivery topic, in order, with the offsets as its position."""

    kind = "hub_link"
    poll_interval_s = 0.0  # the consumer's poll waits for records itself
    config: HubLinkSourceConfig

    def __init__(self, config: HubLinkSourceConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.topic = config.district.topic
        self.resource = config.resource
        self.key_field = self.specs[config.resource].key_field
        self.serde = AvroSerde(RegistryClient(config.district.registry_url, tls=config.district.kafka.tls()))
        self._consumer: KafkaConsumer | None = None
        self._placed: LinkPosition | None = None  # where the consumer was last sought to, or has read to
        # (records waiting on the district topic, commit time bounding their age): read by the backlog
        # thread, so one tuple swapped whole
        self._backlog: tuple[int | None, int | None] = (None, None)
        self.terms_version = self.specs[config.resource].terms_version
        self._stale: str | None = None  # a district policy version other than the city's terms copy
        self.log = get_logger("source", source=config.name, kind=self.kind)

    def open(self) -> None:
        district = self.config.district
        try:
            self._consumer = make_consumer(
                district.kafka,
                f"link-{self.name}",
                group_id=None,
                max_poll_records=self.config.batch_size,
                # Fail a read of the gone district cluster instead of hanging; the runtime retries.
                request_timeout_ms=15_000,
            )
        except RetriableError as exc:
            message = f'source "{self.name}": district cluster: {exc}'
            raise SourceUnavailable(message, retry_after=2.0) from exc
        self._placed = None

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):  # closing after an outage must not raise
                consumer.close(autocommit=False)

    def poll(self, position: Position | None, limit: int, *, start_snapshot: bool) -> Poll:
        del start_snapshot  # the district hub backfills a new subscription; the link has no table
        consumer = self._consumer
        if consumer is None:
            raise SourceUnavailable(f'source "{self.name}" is not open')
        at = LinkPosition.of(position, self.topic, source=self.name)
        try:
            self._place(consumer, at)
            polled = consumer.poll(timeout_ms=self.config.poll_timeout_ms, max_records=limit)
        except SourceUnavailable:
            self._backlog = (None, None)  # unknown while the topic cannot be read: not "drained"
            raise
        except KafkaError as exc:
            self._backlog = (None, None)
            where = self.config.district.kafka.bootstrap_servers
            failure = f"{type(exc).__name__}: {exc}"
            message = f'source "{self.name}": reading {self.topic} at {where} failed: {failure}'
            if isinstance(exc, TopicAuthorizationFailedError):
                message += " (the link may not read it any more: was its subscription revoked?)"
            raise SourceUnavailable(message, retry_after=2.0) from exc
        changes: list[Captured] = []
        read: dict[int, int] = {}
        for tp in sorted(polled, key=lambda tp: tp.partition):
            for record in polled[tp]:
                change = captured_of(record, self.serde, resource=self.resource, key_field=self.key_field)
                if change is not None:
                    changes.append(change)
                    self._check_terms(record)
                read[tp.partition] = record.offset
        self._measure(consumer, changes)
        if not read:
            return Poll(None, position)
        after = at.advanced(read)
        self._placed = after
        stored = after.to_json()
        # A batch of tombstones only still moves the position (an empty batch persists it).
        return Poll(Batch(changes, stored), stored, more=sum(len(r) for r in polled.values()) >= limit)

    def _check_terms(self, record: Any) -> None:
        """Warn when the district delivers under a policy other than the terms the city validated
        against: its grant changed, and the city's copy (and what validate checked) is out of date."""
        delivered = next(
            (
                bytes(v).decode("utf-8", "replace")
                for k, v in record.headers or ()
                if k == POLICY_HEADER and v
            ),
            None,
        )
        if delivered is None or self.terms_version is None or delivered in {self.terms_version, self._stale}:
            return
        self._stale = delivered
        self.log.warning(
            "link_terms_stale", topic=self.topic, delivered_policy=delivered, terms_policy=self.terms_version
        )

    def _measure(self, consumer: KafkaConsumer, carried: list[Captured]) -> None:
        """The link's backlog (the hop between the district and the city hub), from what the last fetch
        told: high watermarks minus positions, no request of its own. An upper bound: transaction markers
        and aborted records count. Its age is bounded by the commit time of the last change carried (what
        waits was committed after it)."""
        try:
            waiting = 0
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                if high is None:
                    return  # not fetched yet: keep the last figure
                waiting += max(0, high - consumer.position(tp))
        except KafkaError:
            return
        last_commit = max((c.commit_ts_ms for c in carried if c.rejected is None), default=None)
        before = self._backlog[1]
        self._backlog = (waiting, (last_commit or before) if waiting else None)

    def _place(self, consumer: KafkaConsumer, at: LinkPosition) -> None:
        """Assign every partition of the topic and seek it to ``at`` unless the consumer stands there."""
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            # The district answers alike for a topic that is not there and one the link may not read.
            raise SourceUnavailable(
                f'source "{self.name}": delivery topic {self.topic} at '
                f"{self.config.district.kafka.bootstrap_servers} does not exist or the link may not read "
                "it (is its subscription applied there, or was it revoked?)",
                retry_after=5.0,
            )
        wanted = {TopicPartition(self.topic, p) for p in partitions}
        if wanted == consumer.assignment() and self._placed == at:
            return
        consumer.assign(sorted(wanted, key=lambda tp: tp.partition))
        first = consumer.beginning_offsets(list(wanted))
        for tp in wanted:
            stored = at.offsets.get(tp.partition)
            if stored is None:
                consumer.seek_to_beginning(tp)
                continue
            if stored < first[tp]:
                # Retention deleted records the link never carried: say so; they cannot be had any more.
                self.log.error(
                    "link_records_lost", topic=self.topic, partition=tp.partition, lost=first[tp] - stored
                )
            consumer.seek(tp, max(stored, first[tp]))
        self._placed = at
        self.log.info("link_positioned", topic=self.topic, offsets=at.to_json()["offsets"])

    def health(self) -> dict[str, Any]:
        rows, oldest = self._backlog
        out: dict[str, Any] = {
            "district_topic": self.topic,
            "backlog_rows": rows,
            "backlog_oldest_commit_ms": oldest,
        }
        if self._stale is not None:
            out["warnings"] = [
                f"deliveries under district policy {self._stale}, the city's terms copy is of "
                f"{self.terms_version}: republish the terms (xhub plan --terms) and validate the city config"
            ]
        return out
