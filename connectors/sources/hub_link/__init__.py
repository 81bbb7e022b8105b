"""A hub link (``type: hub_link``): a district hub's deliveries carried to the city cluster, exactly once.

``source`` holds the source and its config, ``position`` where the link stands on the district's
delivery topic (stored in the city cluster, with the records), ``records`` how one delivered record
becomes a captured change.
"""

from __future__ import annotations

from connectors.sources.hub_link.source import DistrictSide, HubLinkSource, HubLinkSourceConfig

__all__ = ["DistrictSide", "HubLinkSource", "HubLinkSourceConfig"]
