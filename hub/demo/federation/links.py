"""A hub link's source in a connector config: it reads a district hub's deliveries to the link's
subscription on the district cluster and publishes them on the city cluster (README, "Federation: hub
link")."""

from __future__ import annotations

from typing import Any


def hub_link_source(
    name: str,
    *,
    resource: str,
    hub: str,
    subscription: str,
    registry_url: str,
    connection: dict[str, Any],
) -> dict[str, Any]:
    """The connector config of a hub link source reading ``hub``'s deliveries to ``subscription``, on
    the cluster of ``connection`` (a connector config's ``kafka``: bootstrap and, on secure clusters, the
    link's own certificate there)."""
    return {
        "name": name,
        "type": "hub_link",
        "resource": resource,
        "batch_size": 100,
        "district": {
            "hub": hub,
            "subscription": subscription,
            "registry_url": registry_url,
            "kafka": connection,
        },
    }
