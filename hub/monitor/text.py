"""Plain-text pieces of the operator commands' output: durations and aligned tables."""

from __future__ import annotations

from collections.abc import Sequence


def format_seconds(value: float | None) -> str:
    """Lag in seconds for a table: ``0s``, ``4.2s``, ``3m05s``, ``2h03m``, ``?`` when unknown."""
    if value is None:
        return "?"
    if value < 10:
        return f"{value:.1f}s"
    whole = round(value)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86_400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86_400}d{whole % 86_400 // 3600:02d}h"


def text_table(rows: Sequence[Sequence[str]], numeric: frozenset[int]) -> list[str]:
    """``rows`` (the first is the header) as aligned lines; ``numeric`` columns right-aligned, the last
    column (a free-text note) left as it is."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for row in rows:
        cells = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        out.append("  ".join([*cells, row[-1]]).rstrip())
    return out
