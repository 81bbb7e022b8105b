"""A decoder for the command line tools: the configured schema registry, or the built-in one, from Kafka."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir
    from hub.core.registry.serde import AvroSerde


@contextmanager
def open_decoder(cfg: ConfigDir) -> Iterator[AvroSerde]:
    """Yield an ``AvroSerde`` on the registry of ``cfg``.

    With no registry URL in hubs.yaml the hubs serve the built-in registry; here it is served in-process,
    on a free port, from its Kafka topic, for as long as the context lasts.
    """
    from hub.registry.local import open_serde

    registry = cfg.hubs_file.registry
    with open_serde(cfg.hubs_file.kafka, registry.url, registry.topic, client_id="monitor-registry") as serde:
        yield serde
