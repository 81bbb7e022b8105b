"""A stand-in for one department's own application: it writes records into its own database, as the
department's system would, for a sidecar beside it to capture (deploy/compose runs one per department).

    python -m hub.demo.department_app court --data /data --rate 2

The demo's ``ChangeStream`` plays every department in one process because its records refer to each
other (a debtor is a person of psb's register); here each department invents its own subjects, which is
enough to watch records travel. Inserts and updates only.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from hub.demo import generator as gen
from hub.demo.scenario import KEYS, SOURCES, DepartmentDbs, create_table

GENERATED = set(get_args(gen.RecordKind))  # tables the generator can fill (not the court's case files)


def run(dept: str, data: Path, *, rate: float, seed: int, stop: threading.Event) -> int:
    """Write ``rate`` records a second into ``dept``'s tables until ``stop``; returns how many."""
    tables = [(table, code, schema) for d, code, table, schema in SOURCES if d == dept and table in GENERATED]
    if not tables:
        raise SystemExit(f'department "{dept}" has no table the demo generator fills')
    dbs = DepartmentDbs(data)
    data.mkdir(parents=True, exist_ok=True)
    conn = dbs.connect(dept)
    for table, code, schema in tables:
        dbs.columns[table] = create_table(conn, table, schema, KEYS[code])
    streams: list[tuple[str, Any]] = [(table, gen.records(table, 10**9, seed)) for table, _, _ in tables]  # type: ignore[arg-type]
    written = 0
    while not stop.wait(1 / rate):
        table, stream = streams[written % len(streams)]
        dbs.upsert(conn, table, next(stream))
        written += 1
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub.demo.department_app", description=__doc__)
    parser.add_argument("department", help="court, amr, psb or housing")
    parser.add_argument("--data", type=Path, required=True, help="folder of the department's database")
    parser.add_argument("--rate", type=float, default=2.0, help="records per second")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    written = run(args.department, args.data, rate=args.rate, seed=args.seed, stop=stop)
    print(f"{args.department}: {written} records written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
