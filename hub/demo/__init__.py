"""The main-job demo: a credit joint-punishment exchange between departments (`xhub demo`, `make demo`)."""

from __future__ import annotations
