"""Operators' view of an exchange hub: lag in records and seconds, Burrow-style status, Prometheus metrics,
the status page, and the per-department sharing report (考核)."""

from __future__ import annotations
