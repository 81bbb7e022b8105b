"""Confluent-compatible schema registry: client, built-in server, Kafka-backed store, compatibility rules.

Typical use::

    store = SchemaStore(settings)            # the _xhub_schemas topic
    store.start()
    server = RegistryServer(store, port=8081)
    server.start()
    serde = AvroSerde(RegistryClient(server.url))
    value = serde.encode("xhub.src.tax.person-value", schema, record)
    schema_id, record = serde.decode(value)
"""

from __future__ import annotations

from hub.registry.client import RegisteredSchema, RegistryClient
from hub.registry.compatibility import DEFAULT_LEVEL, LEVELS, check
from hub.registry.errors import (
    IncompatibleSchema,
    InvalidCompatibilityLevel,
    InvalidSchema,
    RegistryError,
    RegistryUnavailable,
    SchemaNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from hub.registry.schema import AvroSchema, canonical_text, normalize
from hub.registry.serde import AvroSerde
from hub.registry.server import RegistryApi, RegistryServer
from hub.registry.state import SchemaVersion
from hub.registry.store import BaseSchemaStore, KafkaSchemaStore, MemorySchemaStore, SchemaStore
from hub.registry.wire import MAGIC, frame, unframe

__all__ = [
    "DEFAULT_LEVEL",
    "LEVELS",
    "MAGIC",
    "AvroSchema",
    "AvroSerde",
    "BaseSchemaStore",
    "IncompatibleSchema",
    "InvalidCompatibilityLevel",
    "InvalidSchema",
    "KafkaSchemaStore",
    "MemorySchemaStore",
    "RegisteredSchema",
    "RegistryApi",
    "RegistryClient",
    "RegistryError",
    "RegistryServer",
    "RegistryUnavailable",
    "SchemaNotFound",
    "SchemaStore",
    "SchemaVersion",
    "SubjectNotFound",
    "VersionNotFound",
    "canonical_text",
    "check",
    "frame",
    "normalize",
    "unframe",
]
