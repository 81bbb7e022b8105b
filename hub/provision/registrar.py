"""Adapters giving plan/apply one view of the registry: a remote one over HTTP, or the built-in store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from hub.core.registry.client import RegistryClient
from hub.core.registry.errors import SchemaNotFound, SubjectNotFound, VersionNotFound
from hub.registry.operations import BaseSchemaStore


class HttpRegistrar:
    """Plan/apply against a Confluent-compatible registry (Confluent SR, Karapace, Apicurio, or our own)."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def subjects(self) -> list[str]:
        return self.client.subjects()

    def latest(self, subject: str) -> dict[str, Any] | None:
        try:
            _, _, schema = self.client.get_latest(subject)
        except SchemaNotFound:
            return None
        return cast(dict[str, Any], schema)

    def incompatibilities(self, subject: str, schema: dict[str, Any]) -> list[str]:
        return self.client.test_compatibility(subject, schema)

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        return self.client.register(subject, schema)

    def register_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        """One request each: the Confluent REST API has no batch registration."""
        return [self.client.register(subject, schema) for subject, schema in items]


class StoreRegistrar:
    """Plan/apply on the built-in registry's store itself (its Kafka topic), without an HTTP hop: a batch
    of registrations is one Kafka transaction (a Pudong-size first apply registers 12,600 subjects)."""

    def __init__(self, store: BaseSchemaStore) -> None:
        self.store = store

    def subjects(self) -> list[str]:
        return self.store.subjects()

    def latest(self, subject: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], json.loads(self.store.get(subject).schema))
        except (SubjectNotFound, VersionNotFound):
            return None

    def incompatibilities(self, subject: str, schema: dict[str, Any]) -> list[str]:
        return self.store.test_compatibility(subject, schema)  # against the latest, as over HTTP

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        return self.store.register(subject, schema).id

    def register_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        return [version.id for version in self.store.register_many(items)]
