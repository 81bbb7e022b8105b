"""Errors of the schema registry: its client, its built-in server and its store.

Each error that maps to a Confluent REST error carries that ``error_code`` and the HTTP ``status``, so the
built-in server answers as Confluent Schema Registry does and the client turns a Confluent error body back
into the same exception.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.core.errors import HubError, RetriableError


class RegistryError(HubError):
    """A schema registry request failed in a way retrying will not fix."""

    error_code: int = 50001
    status: int = 500


class SchemaNotFound(RegistryError):  # noqa: N818 - the name the registry API fixes
    """A schema id, or a schema under a subject, is not in the registry."""

    error_code = 40403
    status = 404


class SubjectNotFound(SchemaNotFound):
    """The subject has no schema registered."""

    error_code = 40401


class VersionNotFound(SchemaNotFound):
    """The subject exists but has no such version."""

    error_code = 40402


class ConfigNotFound(RegistryError):  # noqa: N818 - named like its siblings
    """The subject has no subject-level compatibility configured."""

    error_code = 40408
    status = 404


class IncompatibleSchema(RegistryError):  # noqa: N818 - the name the registry API fixes
    """The registry refused a schema under the subject's compatibility level.

    Args:
        message: the whole refusal, naming the subject and the level.
        messages: one line per problem, each naming the field (``field "phone" of record ...``).
    """

    error_code = 409
    status = 409

    def __init__(self, message: str, messages: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.messages: list[str] = list(messages)


class InvalidSchema(RegistryError):  # noqa: N818 - named like its siblings
    """The schema is not a valid Avro schema (or not Avro at all)."""

    error_code = 42201
    status = 422


class InvalidVersion(RegistryError):  # noqa: N818 - named like its siblings
    """A version is neither a positive integer nor ``latest``."""

    error_code = 42202
    status = 422


class InvalidCompatibilityLevel(RegistryError):  # noqa: N818 - named like its siblings
    """A compatibility level is not one of NONE, BACKWARD[_TRANSITIVE], FORWARD[...], FULL[...]."""

    error_code = 42203
    status = 422


class RegistryUnavailable(RetriableError):  # noqa: N818 - the name the registry API fixes
    """The registry (its HTTP endpoint, or the Kafka topic behind it) did not answer; try again later."""
