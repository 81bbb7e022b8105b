"""The hash-chained disclosure audit: writing entries, verifying chains, answering questions."""

from __future__ import annotations
