"""Schema-registry client side shared by the hub and the connectors.

Client of the Confluent REST API, the Avro serde with the Confluent wire format, schema parsing and the
compatibility rules. Typical use::

    serde = AvroSerde(RegistryClient("http://127.0.0.1:8081"))
    value = serde.encode("xhub.src.tax.person-value", schema, record)
    schema_id, record = serde.decode(value)
"""

from __future__ import annotations

from hub.core.registry.client import RegisteredSchema, RegistryClient
from hub.core.registry.compatibility import DEFAULT_LEVEL, LEVELS, check
from hub.core.registry.errors import (
    IncompatibleSchema,
    InvalidCompatibilityLevel,
    InvalidSchema,
    RegistryError,
    RegistryUnavailable,
    SchemaNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from hub.core.registry.schema import AvroSchema, canonical_text, normalize
from hub.core.registry.serde import AvroSerde
from hub.core.registry.wire import MAGIC, frame, unframe

__all__ = [
    "DEFAULT_LEVEL",
    "LEVELS",
    "MAGIC",
    "AvroSchema",
    "AvroSerde",
    "IncompatibleSchema",
    "InvalidCompatibilityLevel",
    "InvalidSchema",
    "RegisteredSchema",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailable",
    "SchemaNotFound",
    "SubjectNotFound",
    "VersionNotFound",
    "canonical_text",
    "check",
    "frame",
    "normalize",
    "unframe",
]
