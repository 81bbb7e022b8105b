"""The main-job demo: its config directory and the synthetic data generator."""

from __future__ import annotations
