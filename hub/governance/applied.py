"""When each share request was filed: the dates `xhub apply` stamped into the applied config snapshots.

`xhub apply` dates a request (a subscription to a conditional resource) when it first publishes it on
xhub.cfg.<hub> and keeps that date on every later apply (``hub.config.snapshot.stamp_requests``). This
module reads the newest snapshot of each hub back, for `xhub requests`.
"""

from __future__ import annotations

from datetime import datetime

from hub.config.loader import ConfigDir
from hub.config.snapshot import read_snapshot_record
from hub.core import names
from hub.core.kafka import make_consumer, read_last_value


def applied_request_dates(cfg: ConfigDir) -> dict[str, datetime]:
    """Subscription id -> requested_at, from the newest applied snapshot of every hub of ``cfg``.

    Raises:
        KafkaError: the cluster of hubs.yaml cannot be reached.
    """
    consumer = make_consumer(cfg.hubs_file.kafka, "requests", group_id=None)
    try:
        existing = consumer.topics()
        dates: dict[str, datetime] = {}
        for hub in cfg.hubs:
            topic = names.config_topic(hub)
            last = read_last_value(consumer, topic) if topic in existing else None
            if not last:
                continue
            _, config = read_snapshot_record(last)
            for sid, sub in config.get("subscriptions", {}).items():
                stamped = sub.get("requested_at") if isinstance(sub, dict) else None
                if stamped:
                    dates[sid] = datetime.fromisoformat(stamped)
        return dates
    finally:
        consumer.close()
