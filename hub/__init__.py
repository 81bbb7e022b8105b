"""exchange-hub: real-time, policy-enforced data sharing between government departments over Kafka."""

from __future__ import annotations

__version__ = "0.1.0"
