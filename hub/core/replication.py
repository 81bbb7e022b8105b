"""How many copies of each topic the cluster keeps: the ``kafka:`` settings ``replication_factor`` and
``min_insync_replicas``, ``auto`` by default, resolved against the brokers the cluster has.

``auto`` is replication min(3, brokers) and, at three copies, min.insync.replicas 2: an acknowledged
write survives one broker's loss and a partition still takes writes while one broker is away. A single
local broker keeps what it always had (one copy, the broker's default min ISR).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hub.core.errors import ConfigError

if TYPE_CHECKING:
    from kafka import KafkaAdminClient

    from hub.core.kafka_settings import KafkaSettings

Auto = Literal["auto"]


@dataclass(frozen=True)
class Replication:
    """The replication topics get on one cluster."""

    factor: int
    min_insync: int | None
    """None: the broker's default (not set on the topic)."""
    brokers: int

    def topic_configs(self) -> dict[str, str]:
        return {} if self.min_insync is None else {"min.insync.replicas": str(self.min_insync)}

    def describe(self) -> str:
        isr = "broker default" if self.min_insync is None else str(self.min_insync)
        return f"replication factor {self.factor}, min.insync.replicas {isr} ({self.brokers} brokers)"


def choose_replication(
    brokers: int, factor: int | Auto = "auto", min_insync: int | Auto = "auto"
) -> Replication:
    """The replication for a cluster of ``brokers`` under the settings ``factor`` and ``min_insync``.

    Raises:
        ConfigError: a setting the cluster cannot honour (more copies than brokers, min ISR over the factor).
    """
    chosen = min(3, brokers) if factor == "auto" else factor
    if chosen > brokers:
        raise ConfigError(
            f"kafka.replication_factor {chosen} needs {chosen} brokers; the cluster has {brokers}"
        )
    if min_insync == "auto":
        isr = 2 if chosen >= 3 else None
    elif min_insync > chosen:
        raise ConfigError(f"kafka.min_insync_replicas {min_insync} is over the replication factor {chosen}")
    else:
        isr = min_insync
    return Replication(chosen, isr, brokers)


def cluster_replication(admin: KafkaAdminClient, settings: KafkaSettings | None = None) -> Replication:
    """The replication of ``settings`` (``auto`` when None) on the cluster ``admin`` reaches."""
    brokers = len(admin.describe_cluster()["brokers"])
    if settings is None:
        return choose_replication(brokers)
    return choose_replication(brokers, settings.replication_factor, settings.min_insync_replicas)
