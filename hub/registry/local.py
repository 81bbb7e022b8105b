"""The registry a tool should talk to: the configured one, or the built-in one served in-process.

With no registry URL in hubs.yaml the hubs serve the built-in registry themselves; a command-line tool
(plan/apply, audit, lag) that runs without a hub serves it in-process from the same Kafka topic, on a
free port, for as long as it needs it. Ids agree either way (see store.py).

With a mutual-TLS identity in the Kafka settings (hub.core.kafka_settings), the built-in registry serves
HTTPS with that certificate and requires a client certificate of the same CA on every endpoint (and, given
an authorizer, authorises writes per subject); clients present theirs (``KafkaSettings.tls``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde

if TYPE_CHECKING:
    from hub.registry.authorization import SubjectAuthorizer
    from hub.registry.store import SchemaStore


@contextmanager
def registry_url(
    kafka: KafkaSettings,
    url: str | None,
    topic: str,
    *,
    client_id: str,
    port: int = 0,
    authorizer: SubjectAuthorizer | None = None,
) -> Iterator[str]:
    """``url`` itself, or the URL of a built-in registry served from ``topic`` (on ``port``, 0 = any free
    one) while the context lasts."""
    if url is not None:
        yield url
        return
    with serve_registry(kafka, topic, client_id=client_id, port=port, authorizer=authorizer) as served:
        yield served


@contextmanager
def serve_registry(
    kafka: KafkaSettings,
    topic: str,
    *,
    client_id: str = "registry",
    host: str = "127.0.0.1",
    port: int = 0,
    authorizer: SubjectAuthorizer | None = None,
) -> Iterator[str]:
    """Serve the built-in registry from ``topic`` on ``host:port`` while the context lasts; yields its URL.

    ``host`` beyond loopback is for a registry of its own in a cluster (``xhub registry``), where the
    departments' sidecars reach it. Without a TLS identity in ``kafka`` it serves plain HTTP to whoever
    reaches the port; with one, mutual TLS (and ``authorizer``'s decisions on writes).
    """
    from hub.registry.server import RegistryServer

    tls = kafka.tls(server=True)
    with built_in_store(kafka, topic, client_id=client_id) as store:
        server = RegistryServer(store, host=host, port=port, tls=tls, authorizer=authorizer if tls else None)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@contextmanager
def built_in_store(kafka: KafkaSettings, topic: str, *, client_id: str) -> Iterator[SchemaStore]:
    """The built-in registry's store on ``topic`` (created when missing), started, while the context lasts."""
    from hub.core.kafka import ensure_topics, make_admin
    from hub.registry.store import SchemaStore

    admin = make_admin(kafka, client_id)
    try:
        # The store reads its topic from the start; on a new cluster it does not exist yet.
        ensure_topics(admin, {topic: {"cleanup.policy": "compact"}}, partitions=1)
    finally:
        admin.close()
    store = SchemaStore(kafka, topic=topic, client_id=client_id)
    store.start()
    try:
        yield store
    finally:
        store.stop()


@contextmanager
def open_serde(kafka: KafkaSettings, url: str | None, topic: str, *, client_id: str) -> Iterator[AvroSerde]:
    """An ``AvroSerde`` on the registry :func:`registry_url` gives."""
    with registry_url(kafka, url, topic, client_id=client_id) as resolved:
        yield AvroSerde(RegistryClient(resolved, tls=kafka.tls()))
