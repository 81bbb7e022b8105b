"""The Kafka loop of an exchange hub: consume source events, apply plans, deliver, all in transactions."""

from __future__ import annotations
