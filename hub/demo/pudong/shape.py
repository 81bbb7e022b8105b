"""The shape of a generated Pudong config: its size, its names, what it holds, how its files are written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

HUB = "pudong"
SECRET_ENV = "XHUB_PUDONG_SECRET"  # noqa: S105 - the name of the variable, not a secret
AUDIT_KEY_ENV = "XHUB_PUDONG_AUDIT_KEY"


@dataclass(frozen=True)
class Size:
    """How big a generated catalog is."""

    departments: int
    resources: int
    data_items: int  # fields over all resources, keys included
    subscriptions: int

    def scaled(self, factor: float) -> Size:
        """The same shape at ``factor`` of the size (at least 10 departments and resources)."""
        if factor == 1:
            return self
        return Size(
            departments=max(10, round(self.departments * factor)),
            resources=max(10, round(self.resources * factor)),
            data_items=max(10 * 4, round(self.data_items * factor)),
            subscriptions=max(10, round(self.subscriptions * factor)),
        )


PUDONG: Final = Size(departments=300, resources=2600, data_items=17_000, subscriptions=10_000)

MIN_FIELDS, MAX_FIELDS = 3, 14  # per resource, key included


@dataclass(frozen=True)
class Counts:
    """What a generated directory holds (the unit test checks them against the files)."""

    departments: int
    resources: int
    data_items: int
    subscriptions: int
    grants: int
    conditional_resources: int
    max_subscriptions_per_resource: int


@dataclass(frozen=True)
class Naming:
    """Names of the generated parties, so several generated catalogs can share one cluster or directory.

    ``suffix`` is appended to every department id (topic names derive from them), ``region`` starts every
    resource code (PD = 浦东新区), ``hub`` names the one hub that carries every subscription.
    """

    hub: str = HUB
    suffix: str = ""
    region: str = "PD"
    files: str = ""  # prefix of the generated file names, so they sit beside others in one directory


def dump_yaml(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's, where installed: 10x faster
    path.write_text(
        yaml.dump(doc, Dumper=dumper, allow_unicode=True, sort_keys=False, width=200), encoding="utf-8"
    )
