"""The two district courts' own databases and the changes their case systems make to the dishonest-debtor
list: a debtor named, a debt partly paid (the status updated), a debt paid (the debtor removed).

Each court keeps its list in SQLite, captured by its sidecar's triggers (``sql_trigger``), as in the
single demo; the case numbers carry the court's area code, so the two lists never share a key.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hub.demo import generator as gen
from hub.demo.federation.parties import DISTRICTS, District
from hub.demo.scenario import DepartmentDbs, create_table

TABLE = "dishonest_debtor"
SCHEMA_FILE = "resources/dishonest_debtor.avsc"
STATUSES = ("全部未履行", "部分履行")


@dataclass
class Courts:
    """The courts' databases under ``folder`` and the changes made in them."""

    folder: Path
    seed: int = 2026
    made: Counter[str] = field(default_factory=Counter)  # "pudong c" -> count
    cases: dict[str, list[str]] = field(default_factory=dict)  # district hub -> its listed cases

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - demo data, not security
        self.fake = gen.make_faker(self.seed)
        self.dbs = DepartmentDbs(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.conns: dict[str, sqlite3.Connection] = {}
        for district in DISTRICTS:
            conn = self.dbs.connect(district.court)
            self.dbs.columns[TABLE] = create_table(conn, TABLE, SCHEMA_FILE, "case_no")
            self.conns[district.hub] = conn
            self.cases[district.hub] = []
        self._numbers = iter(range(10_000, 100_000))

    def database(self, district: District) -> Path:
        return self.dbs.path(district.court)

    def seed_lists(self, per_court: int) -> None:
        """Debtors listed before the sidecars start: they travel as the initial snapshot (op r)."""
        for district in DISTRICTS:
            for _ in range(per_court):
                self._name_debtor(district, count=False)

    def _name_debtor(self, district: District, *, count: bool = True) -> None:
        if self.rng.random() < 0.8:
            subject = gen.person(self.fake, district=district.label)
        else:
            subject = gen.legal_entity(self.fake, district=district.label)
        debtor = gen.dishonest_debtor(self.fake, subject)
        year = debtor["case_no"][1:5]
        debtor["case_no"] = f"({year})沪{district.area[2:]}执{next(self._numbers)}号"
        debtor["court"] = district.court_name
        self.dbs.upsert(self.conns[district.hub], TABLE, debtor)
        self.cases[district.hub].append(debtor["case_no"])
        self.made[f"{district.hub} c"] += count

    def step(self) -> None:
        """One change at one of the courts: mostly new debtors, some status updates, some paid debts."""
        district = self.rng.choice(DISTRICTS)
        cases = self.cases[district.hub]
        conn = self.conns[district.hub]
        roll = self.rng.random()
        if roll < 0.55 or len(cases) < 5:
            self._name_debtor(district)
        elif roll < 0.85:
            conn.execute(
                f"UPDATE {TABLE} SET performance_status = ? WHERE case_no = ?",  # noqa: S608 - our table
                (self.rng.choice(STATUSES), self.rng.choice(cases)),
            )
            self.made[f"{district.hub} u"] += 1
        else:
            case = cases.pop(self.rng.randrange(len(cases)))
            conn.execute(f"DELETE FROM {TABLE} WHERE case_no = ?", (case,))  # noqa: S608 - our table
            self.made[f"{district.hub} d"] += 1

    def clear_id(self, district: District, case_no: str) -> str | None:
        """The debtor's ID as the court keeps it (in clear), to show that it never reached the city so."""
        row = (
            self.conns[district.hub]
            .execute(
                f"SELECT debtor_id FROM {TABLE} WHERE case_no = ?",  # noqa: S608 - our table
                (case_no,),
            )
            .fetchone()
        )
        return None if row is None else str(row[0])

    def changes(self, district: District) -> int:
        return sum(n for k, n in self.made.items() if k.startswith(district.hub + " "))

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()
