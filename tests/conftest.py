"""Shared fixtures live in tests/fixtures/plugin.py (loaded with -p in pyproject.toml)."""
