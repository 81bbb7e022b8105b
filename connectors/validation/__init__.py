"""Record checks a department sidecar runs before publishing a change event.

Schema types, required fields, the business key, GB 11643 citizen ID numbers and GB 32100 unified
social credit codes. A record that fails raises ``hub.core.errors.InvalidRecord`` with a reason code from
``REASONS``; the sidecar sends it to its dead-letter topic with the original bytes.
"""

from __future__ import annotations

from connectors.validation.errors import REASONS, InvalidRecord
from connectors.validation.gb11643 import (
    check_digit,
    diagnose_citizen_id,
    explain_citizen_id,
    is_valid_citizen_id,
)
from connectors.validation.gb32100 import (
    check_char,
    diagnose_credit_code,
    explain_credit_code,
    is_valid_credit_code,
    org_code_check_char,
)
from connectors.validation.problem import CodeProblem
from connectors.validation.record import CHINA_STANDARD_TIME, CheckKind, KeyFormat, RecordValidator

__all__ = [
    "CHINA_STANDARD_TIME",
    "REASONS",
    "CheckKind",
    "CodeProblem",
    "InvalidRecord",
    "KeyFormat",
    "RecordValidator",
    "check_char",
    "check_digit",
    "diagnose_citizen_id",
    "diagnose_credit_code",
    "explain_citizen_id",
    "explain_credit_code",
    "is_valid_citizen_id",
    "is_valid_credit_code",
    "org_code_check_char",
]
