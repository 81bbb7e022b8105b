"""A decoder for the command line tools: the configured schema registry, or the built-in one, from Kafka."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir
    from hub.registry.serde import AvroSerde


@contextmanager
def open_decoder(cfg: ConfigDir) -> Iterator[AvroSerde]:
    """Yield an ``AvroSerde`` on the registry of ``cfg``.

    With no registry URL in hubs.yaml the hubs serve the built-in registry; here it is served in-process,
    on a free port, from its Kafka topic, for as long as the context lasts.
    """
    from hub.registry.client import RegistryClient
    from hub.registry.serde import AvroSerde

    url = cfg.hubs_file.registry.url
    if url is not None:
        yield AvroSerde(RegistryClient(url))
        return
    from hub.registry.server import RegistryServer
    from hub.registry.store import SchemaStore

    store = SchemaStore(cfg.hubs_file.kafka, topic=cfg.hubs_file.registry.topic, client_id="monitor-registry")
    store.start()
    try:
        server = RegistryServer(store, port=0)
        server.start()
        try:
            yield AvroSerde(RegistryClient(server.url))
        finally:
            server.stop()
    finally:
        store.stop()
