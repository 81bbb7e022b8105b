"""The outcome of checking one identifier: what is wrong, and whether only the check character is."""

from __future__ import annotations

from typing import NamedTuple


class CodeProblem(NamedTuple):
    """Why an identifier (citizen ID number, credit code) is invalid.

    Attributes:
        message: what is wrong, naming positions and expected characters, never the value itself.
        check_failed: True when the identifier is well formed and only a check character is wrong
            (a typo), False when its structure is wrong (length, alphabet, date, area).
    """

    message: str
    check_failed: bool
