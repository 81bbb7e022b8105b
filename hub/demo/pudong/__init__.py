"""A config directory of Pudong's size: 300 departments, 17,000 data items, 10,000 subscriptions.

浦东新区's exchange carries about 300 departments' systems (district bureaus, the 36 sub-district offices
and towns, and their public institutions), a catalog of 17,000 data items (信息项) in ~2,600 shared
resources, and on the order of 10,000 standing subscriptions. This module writes a config directory of
that size so that `xhub validate`, `plan`, `apply` and a hub can be measured at it (tests/bench/pudong.py):

    python -m hub.demo.pudong OUT_DIR [--seed N] [--scale 0.1] [--bootstrap HOST:PORT]

Deterministic: the same seed and size write the same files, byte for byte. What it writes:

- ``hubs.yaml``: one hub, ``pudong``;
- ``departments/``: bureaus, the 12 sub-districts (街道) and 24 towns (镇), public institutions;
- ``catalog/<class>.yaml`` and ``schemas/<code>.avsc``: each resource its own Avro schema of 3 to 14
  fields (a business key, then data items drawn from a pool of typical ones: names, ID numbers, phones,
  addresses, dates, districts, amounts ...), every field classified, every personal field with the
  owner's default mask, district/status/category filterable; about half the resources conditional;
- ``subscriptions/<subscriber>.yaml``: popularity follows a Zipf-like law, so a few city-wide lists (the
  first is the court's 失信被执行人名单) are read by every other department and most resources by a few;
  one in five subscriptions filters rows, one in eight asks for a stronger mask;
- ``grants/<owner>/subscriptions.yaml``: the owner's answer to every subscription of a conditional
  resource (a few refused, with reasons), as a conditional resource needs one.

The figures measured on it are in the README ("How much one hub carries").
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from hub.demo.pudong.catalog import generate_departments, write_catalog
from hub.demo.pudong.shape import AUDIT_KEY_ENV, HUB, PUDONG, SECRET_ENV, Counts, Naming, Size, dump_yaml
from hub.demo.pudong.subscriptions import write_subscriptions

__all__ = [
    "AUDIT_KEY_ENV",
    "HUB",
    "PUDONG",
    "SECRET_ENV",
    "Counts",
    "Naming",
    "Size",
    "main",
    "write_pudong_config",
]

_ONE_CATALOG: Final = Naming()  # the default: one generated catalog, names as they are


def write_pudong_config(
    out: Path,
    *,
    seed: int = 0,
    size: Size = PUDONG,
    bootstrap: str = "127.0.0.1:9092",
    naming: Naming = _ONE_CATALOG,
    hubs_file: bool = True,
) -> Counts:
    """Write a config directory of ``size`` into ``out``.

    With ``hubs_file`` (the default) ``out`` must be empty or absent and gets its own hubs.yaml; without,
    the catalog, departments, subscriptions and grants are added to the config directory ``out`` whose
    hubs.yaml names ``naming.hub`` (the benchmark adds them to its small catalog that way).
    """
    out = Path(out)
    if hubs_file and out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: give a new folder for the generated config")
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by seed; nothing secret
    if hubs_file:
        dump_yaml(out / "hubs.yaml", _hubs(bootstrap, naming.hub))
    departments = generate_departments(size)
    for dept in departments:
        dept["id"] += naming.suffix
        dept["principal"] = f"User:{dept['id']}"
    dump_yaml(out / "departments" / f"{naming.files}departments.yaml", {"departments": departments})
    names = {d["id"]: d["name"] for d in departments}
    entries, schemas = write_catalog(out, rng, size, naming, list(names))
    readers, grants = write_subscriptions(
        out,
        rng,
        naming=naming,
        entries=entries,
        schemas=schemas,
        names=names,
        subscriptions=size.subscriptions,
    )
    return Counts(
        departments=len(departments),
        resources=len(entries),
        data_items=sum(len(e["fields"]) for e in entries),
        subscriptions=sum(readers),
        grants=grants,
        conditional_resources=sum(e["share"] == "conditional" for e in entries),
        max_subscriptions_per_resource=max(readers),
    )


def _hubs(bootstrap: str, hub: str) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": bootstrap},
        "registry": {},
        "timezone": "Asia/Shanghai",
        "hubs": [
            {
                "name": hub,
                "description": "浦东新区公共数据共享交换枢纽 (generated at Pudong's size)",
                "pseudonym_secret_env": SECRET_ENV,
                "audit_key_env": AUDIT_KEY_ENV,
                # 2,600 source topics already spread a hub's work over its workers; one partition each
                # keeps a Pudong apply at ~13,200 partitions (README: "How much one hub carries").
                "partitions": 1,
            }
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hub.demo.pudong", description="write a config directory of Pudong's size"
    )
    parser.add_argument("out_dir", type=Path, help="new folder to write (must be empty or absent)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of Pudong's size (default 1)")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers for hubs.yaml")
    args = parser.parse_args(argv)
    try:
        counts = write_pudong_config(
            args.out_dir, seed=args.seed, size=PUDONG.scaled(args.scale), bootstrap=args.bootstrap
        )
    except (FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.out_dir}: {counts.departments} departments, {counts.resources} resources "
        f"({counts.conditional_resources} conditional), {counts.data_items} data items, "
        f"{counts.subscriptions} subscriptions (at most {counts.max_subscriptions_per_resource} on one "
        f"resource), {counts.grants} grants; check it with: "
        f"{SECRET_ENV}=... {AUDIT_KEY_ENV}=... xhub validate {args.out_dir}"
    )
    return 0
