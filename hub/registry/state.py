"""The registry's state as a pure function of its log, in Confluent's ``_schemas`` record layout.

Records (JSON keys and values, as Confluent Schema Registry writes them):

- ``{"keytype":"SCHEMA","subject":s,"version":v,"magic":1}`` ->
  ``{"subject":s,"version":v,"id":i,"schema":text,"deleted":false}``
- ``{"keytype":"CONFIG","subject":s|null,"magic":0}`` -> ``{"compatibilityLevel":"FULL"}`` (null deletes)
- anything else (NOOP, MODE, DELETE_SUBJECT ...) is ignored.

Applying records is deterministic, so every process that reads the same log holds the same state. The first
record in log order wins any conflict (a version, a schema text or an id claimed twice); later conflicting
records are ignored and logged. The store makes sure conflicts are never written (see store.py); the rule is
the safety net for foreign or corrupted logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hub.core.log import get_logger
from hub.core.registry import compatibility
from hub.core.registry.errors import IncompatibleSchema, SubjectNotFound, VersionNotFound

log = get_logger("registry.state")

Record = tuple[bytes, bytes | None]


@dataclass(frozen=True)
class SchemaVersion:
    """One registered version of a subject."""

    subject: str
    version: int
    id: int
    schema: str  # canonical text

    def to_json(self) -> dict[str, Any]:
        """The Confluent REST representation (``GET /subjects/{s}/versions/{v}``)."""
        return {"subject": self.subject, "version": self.version, "id": self.id, "schema": self.schema}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def schema_record(version: SchemaVersion) -> Record:
    """The log record that registers ``version``."""
    key = {"keytype": "SCHEMA", "subject": version.subject, "version": version.version, "magic": 1}
    value = {
        "subject": version.subject,
        "version": version.version,
        "id": version.id,
        "schema": version.schema,
        "deleted": False,
    }
    return _dumps(key), _dumps(value)


def config_record(level: str | None, subject: str | None = None) -> Record:
    """The log record that sets (or, with ``level=None``, removes) a compatibility level."""
    key = _dumps({"keytype": "CONFIG", "subject": subject, "magic": 0})
    return key, None if level is None else _dumps({"compatibilityLevel": level})


class RegistryState:
    """Subjects, versions, ids and compatibility levels, built by applying log records in order."""

    def __init__(self, default_level: str = compatibility.DEFAULT_LEVEL) -> None:
        self.default_level = compatibility.validate_level(default_level)
        self.max_id = 0
        self._by_id: dict[int, str] = {}
        self._id_by_text: dict[str, int] = {}
        self._versions: dict[str, dict[int, SchemaVersion]] = {}
        self._max_version: dict[str, int] = {}
        self._deleted: set[tuple[str, int]] = set()
        self._global_level: str | None = None
        self._subject_levels: dict[str, str] = {}

    # --- applying the log ---------------------------------------------------------------------

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one log record. Unknown or malformed records are skipped (and logged), never fatal."""
        try:
            k = json.loads(key) if key else None
            v = json.loads(value) if value else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("schema_record_unreadable", key_bytes=len(key or b""), value_bytes=len(value or b""))
            return
        if not isinstance(k, dict):
            return
        keytype = k.get("keytype")
        if keytype == "SCHEMA":
            self._apply_schema(k, v)
        elif keytype == "CONFIG":
            self._apply_config(k, v)

    def _apply_schema(self, key: dict[str, Any], value: Any) -> None:
        subject, version = key.get("subject"), key.get("version")
        if not isinstance(subject, str) or not isinstance(version, int):
            return
        if value is None:  # hard delete (tombstone)
            self._versions.get(subject, {}).pop(version, None)
            return
        if not isinstance(value, dict):
            return
        schema_id, text = value.get("id"), value.get("schema")
        if not isinstance(schema_id, int) or not isinstance(text, str):
            return
        self.max_id = max(self.max_id, schema_id)
        self._max_version[subject] = max(self._max_version.get(subject, 0), version)
        current = self._versions.get(subject, {}).get(version)
        if current is not None:
            if (current.id, current.schema) != (schema_id, text):
                log.warning(
                    "schema_record_conflict",
                    subject=subject,
                    version=version,
                    id=schema_id,
                    kept_id=current.id,
                    rule="version_taken",
                )
            elif value.get("deleted"):
                self._deleted.add((subject, version))
            return
        known_text = self._by_id.get(schema_id)
        known_id = self._id_by_text.get(text)
        if (known_text is not None and known_text != text) or (
            known_id is not None and known_id != schema_id
        ):
            log.warning(
                "schema_record_conflict",
                subject=subject,
                version=version,
                id=schema_id,
                kept_id=known_id,
                rule="id_taken",
            )
            return
        self._by_id[schema_id] = text
        self._id_by_text[text] = schema_id
        self._versions.setdefault(subject, {})[version] = SchemaVersion(subject, version, schema_id, text)
        if value.get("deleted"):
            self._deleted.add((subject, version))

    def _apply_config(self, key: dict[str, Any], value: Any) -> None:
        subject = key.get("subject")
        level = value.get("compatibilityLevel") if isinstance(value, dict) else None
        if level is not None and (not isinstance(level, str) or level.upper() not in compatibility.LEVELS):
            log.warning("config_record_invalid", subject=subject)
            return
        if subject is None:
            self._global_level = level.upper() if level else None
        elif isinstance(subject, str):
            if level:
                self._subject_levels[subject] = level.upper()
            else:
                self._subject_levels.pop(subject, None)

    # --- queries ------------------------------------------------------------------------------

    def schema_by_id(self, schema_id: int) -> str | None:
        """The canonical text of ``schema_id``, or None."""
        return self._by_id.get(schema_id)

    def id_of(self, text: str) -> int | None:
        """The id of a canonical schema text, in any subject, or None."""
        return self._id_by_text.get(text)

    def subjects(self) -> list[str]:
        """Subjects with at least one live version, sorted."""
        return sorted(s for s in self._versions if self.versions(s))

    def versions(self, subject: str) -> list[int]:
        """Live versions of ``subject``, ascending (empty when the subject is unknown)."""
        return sorted(v for v in self._versions.get(subject, {}) if (subject, v) not in self._deleted)

    def version(self, subject: str, version: int | None) -> SchemaVersion:
        """A version of ``subject``; ``None`` means the latest.

        Raises:
            SubjectNotFound: the subject has no live version.
            VersionNotFound: it has, but not this one.
        """
        live = self.versions(subject)
        if not live:
            raise SubjectNotFound(f'subject "{subject}" not found')
        number = live[-1] if version is None else version
        if number not in live:
            raise VersionNotFound(f'version {version} of subject "{subject}" not found')
        return self._versions[subject][number]

    def find(self, subject: str, text: str) -> SchemaVersion | None:
        """The live version of ``subject`` whose canonical text is ``text``, or None."""
        for number in self.versions(subject):
            found = self._versions[subject][number]
            if found.schema == text:
                return found
        return None

    def usages(self, schema_id: int) -> list[SchemaVersion]:
        """Every live subject version that uses ``schema_id``."""
        return [
            sv
            for subject in sorted(self._versions)
            for number, sv in sorted(self._versions[subject].items())
            if sv.id == schema_id and (subject, number) not in self._deleted
        ]

    def level(self, subject: str | None = None) -> str | None:
        """The level configured for ``subject`` (or globally, with None); None when not configured."""
        return self._global_level if subject is None else self._subject_levels.get(subject)

    def effective_level(self, subject: str) -> str:
        """The level that applies to ``subject``: its own, else the global one, else the default."""
        return self._subject_levels.get(subject) or self._global_level or self.default_level

    # --- decisions ----------------------------------------------------------------------------

    def compatibility_problems(self, subject: str, text: str, version: int | str | None = "all") -> list[str]:
        """Problems registering ``text`` under ``subject`` would have.

        ``version="all"`` checks as registration does (the latest version, or all of them for a transitive
        level); a number or None (latest) checks against that one version only, under the same level.
        """
        level = self.effective_level(subject)
        live = self.versions(subject)
        if version == "all":
            existing = [self._versions[subject][v].schema for v in live]
        else:
            existing = [self.version(subject, version if isinstance(version, int) else None).schema]
        return compatibility.check(text, existing, level)

    def plan_registration(self, subject: str, text: str) -> SchemaVersion | None:
        """The version registering ``text`` under ``subject`` would create; None if it is already there.

        The same text gets the same id in every subject; a new text gets the next id never used before.

        Raises:
            IncompatibleSchema: naming each offending field.
        """
        if self.find(subject, text) is not None:
            return None
        problems = self.compatibility_problems(subject, text)
        if problems:
            level = self.effective_level(subject)
            raise IncompatibleSchema(
                f'schema being registered is incompatible with an earlier schema for subject "{subject}" '
                f"({level}): " + "; ".join(problems),
                problems,
            )
        schema_id = self._id_by_text.get(text) or self.max_id + 1
        return SchemaVersion(subject, self._max_version.get(subject, 0) + 1, schema_id, text)
