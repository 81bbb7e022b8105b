"""The upstream hubs of ``xhub lag CONFIG --upstream DISTRICT_CONFIG``: the link subscriptions there, each
measured on its own cluster, with the link's position read where the link keeps it.

Like ``xhub audit trace --upstream``, each config directory brings its own cluster and registry (its
hubs.yaml): the district's hub lag and delivery topic are read on the district cluster, the link's
position on the cluster it carries to (the config whose catalog links the resource), so the operator
needs the configs, not a list of addresses. Only the link subscriptions are measured upstream, not the
district's whole catalog.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING

from hub.monitor.board import LagBoard, SubscriptionLag
from hub.monitor.federated_path import Links
from hub.monitor.lag import LagProbe, Target, targets_of_config
from hub.monitor.lag.link_position import LinkPositions
from hub.monitor.status import Rules

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir


def links_of(configs: Sequence[ConfigDir]) -> Links:
    """(hub, resource) -> (upstream hub, the link's subscription there), for every hub of every config."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for cfg in configs:
        for code, resource in cfg.resources.items():
            if resource.linked_from is not None:
                for hub in cfg.hubs:
                    out[(hub, code)] = (resource.linked_from.hub, resource.linked_from.subscription)
    return out


class UpstreamHubs:
    """Measures the link subscriptions of the upstream configs. Not thread-safe: one thread owns it.

    Args:
        cfg: the config given first (the city's): its linked resources name the links to follow.
        upstream: the upstream config directories, loaded (a district's; for three levels, the city's and
            the districts').
        rules: the status window.
        stack: closes the Kafka clients and registries opened here.
    """

    def __init__(self, cfg: ConfigDir, upstream: Sequence[ConfigDir], rules: Rules, stack: ExitStack) -> None:
        from hub.audit.reader import open_decoder

        configs = [cfg, *upstream]
        self.links = links_of(configs)
        readers: dict[int, LinkPositions] = {}
        # (upstream hub, link subscription) -> (where the link keeps its position, the link's department)
        self._kept: dict[tuple[str, str], tuple[LinkPositions, str]] = {}
        for below in configs:
            for resource in below.resources.values():
                source = resource.linked_from
                if source is None:
                    continue
                if id(below) not in readers:
                    reader = readers[id(below)] = LinkPositions(below.hubs_file.kafka)
                    stack.callback(reader.close)
                self._kept[(source.hub, source.subscription)] = (readers[id(below)], resource.owner)
        self._boards: list[tuple[LagBoard, list[Target]]] = []
        for up in upstream:
            targets = [
                dataclasses.replace(t, hub_link=True)
                for t in targets_of_config(up)
                if (t.hub, t.subscription) in self._kept
            ]
            if not targets:
                continue  # none of its hubs feeds a link of these configs
            decoder = stack.enter_context(open_decoder(up, client_id="monitor-registry"))
            probe = LagProbe(
                up.hubs_file.kafka, decoder, client_id="lag-upstream", link_positions=self._position
            )
            stack.callback(probe.close)
            self._boards.append((LagBoard(probe, rules), targets))

    def _position(self, target: Target) -> Mapping[int, int] | None:
        reader, dept = self._kept[(target.hub, target.subscription)]
        return reader.of(dept, target.delivery_topic)

    def refresh(self) -> dict[tuple[str, str], SubscriptionLag]:
        """Measure every link subscription once: (hub, subscription) -> its row (the subscriber is the link).

        Raises:
            LagUnavailable: a cluster did not answer.
        """
        out: dict[tuple[str, str], SubscriptionLag] = {}
        for board, targets in self._boards:
            for row in board.refresh(targets):
                out[(row.target.hub, row.target.subscription)] = row
        return out
