"""Text in terminal columns: CJK characters take two, so a table of Chinese names lines up."""

from __future__ import annotations

import unicodedata


def width(text: str) -> int:
    """Terminal columns of ``text``: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, columns: int) -> str:
    """``text`` followed by spaces up to ``columns`` terminal columns."""
    return text + " " * (columns - width(text))


def clip(text: str, columns: int) -> str:
    """``text`` cut to at most ``columns`` terminal columns, "…" marking a cut."""
    if width(text) <= columns:
        return text
    out = ""
    for ch in text:
        if width(out + ch) > columns - 1:
            break
        out += ch
    return out + "…"
