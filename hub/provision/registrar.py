"""Adapters giving plan/apply one view of the registry: a remote one over HTTP, or the built-in store."""

from __future__ import annotations

from typing import Any, cast

from hub.core.registry.client import RegistryClient
from hub.core.registry.errors import SchemaNotFound


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
