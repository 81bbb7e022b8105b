"""Errors of record validation: one ``InvalidRecord`` per bad record, with a short reason code.

Validation raises ``hub.core.errors.InvalidRecord`` (re-exported here) and nothing else per record; the
sidecar dead-letters the record with ``reason`` and ``detail`` in headers and the original bytes as
the value. A schema or option the validator cannot compile is a ``hub.core.errors.ConfigError``.

The reason codes below are the complete set this package produces, so dashboards and alert rules can
rely on them. Details never contain the offending value (it may be personal data), only the field
path, the expected and found *types*, lengths and positions.
"""

from __future__ import annotations

from typing import Final

from hub.core.errors import ConfigError, InvalidRecord

WRONG_TYPE: Final = "wrong_type"
"""A value does not match its Avro type (includes out-of-range numbers, unknown enum symbols)."""
MISSING_FIELD: Final = "missing_field"
"""A field without a default is absent, or null where the schema does not allow null."""
MISSING_KEY: Final = "missing_key"
"""The business key field is absent, null or empty."""
BAD_KEY_FORMAT: Final = "bad_key_format"
"""The business key is present but not well formed for its key format (length, characters, date)."""
BAD_ID_CHECK_DIGIT: Final = "bad_id_check_digit"
"""A citizen ID number (GB 11643) has a wrong check digit."""
BAD_ID_NUMBER: Final = "bad_id_number"
"""A checked citizen ID field that is not the key is malformed (length, characters, birth date)."""
BAD_CREDIT_CODE: Final = "bad_credit_code"
"""A unified social credit code (GB 32100) has a wrong check character, or (outside the key) is
malformed."""
OVERSIZE: Final = "oversize"
"""The raw or encoded record is larger than the configured maximum."""
INVALID_UTF8: Final = "invalid_utf8"
"""The raw bytes are not UTF-8, or a string holds a lone surrogate that cannot be encoded."""
UNKNOWN_FIELD: Final = "unknown_field"
"""The input has a field the schema does not define."""
NOT_JSON: Final = "not_json"
"""The raw bytes are not a JSON object."""
BAD_DATE: Final = "bad_date"
"""A date, time or timestamp string is not ISO 8601 or not a real date."""

REASONS: Final = (
    WRONG_TYPE,
    MISSING_FIELD,
    MISSING_KEY,
    BAD_KEY_FORMAT,
    BAD_ID_CHECK_DIGIT,
    BAD_ID_NUMBER,
    BAD_CREDIT_CODE,
    OVERSIZE,
    INVALID_UTF8,
    UNKNOWN_FIELD,
    NOT_JSON,
    BAD_DATE,
)
"""Every reason code ``InvalidRecord.reason`` can carry when raised by this package."""

__all__ = [
    "BAD_CREDIT_CODE",
    "BAD_DATE",
    "BAD_ID_CHECK_DIGIT",
    "BAD_ID_NUMBER",
    "BAD_KEY_FORMAT",
    "INVALID_UTF8",
    "MISSING_FIELD",
    "MISSING_KEY",
    "NOT_JSON",
    "OVERSIZE",
    "REASONS",
    "UNKNOWN_FIELD",
    "WRONG_TYPE",
    "ConfigError",
    "InvalidRecord",
]
