"""Avro schemas shipped with exchange-hub (package data): resources/ and the hub's own records in hub/."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load(name: str) -> dict[str, Any]:
    """Load a shipped schema by relative path, e.g. ``"resources/person.avsc"``."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def names() -> list[str]:
    """Relative paths of every shipped .avsc file."""
    root = resources.files(__package__)
    found: list[str] = []
    for folder in ("resources", "hub"):
        found.extend(
            f"{folder}/{entry.name}"
            for entry in root.joinpath(folder).iterdir()
            if entry.name.endswith(".avsc")
        )
    return sorted(found)
