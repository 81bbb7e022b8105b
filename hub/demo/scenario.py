"""The demo's departments and their databases: tables, seed data, and a stream of realistic changes.

Source departments keep their own SQLite databases (the systems exchange-hub must not make them rewrite);
the change stream writes to them as their applications would: inserts, updates, deletes, and the odd bad
record that validation must stop at the door.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemas
from hub.demo import generator as gen

# (department, resource code, table, schema file) of every source table in the demo.
SOURCES: tuple[tuple[str, str, str, str], ...] = (
    ("court", "PD-CRD-0001", "dishonest_debtor", "resources/dishonest_debtor.avsc"),
    ("court", "PD-CRD-0002", "enforcement_case", "resources/enforcement_case.avsc"),
    ("amr", "PD-ENT-0001", "legal_entity", "resources/legal_entity.avsc"),
    ("amr", "PD-LIC-0001", "business_licence", "resources/business_licence.avsc"),
    ("psb", "PD-POP-0001", "person", "resources/person.avsc"),
    ("housing", "PD-EST-0001", "real_estate", "resources/real_estate.avsc"),
)
KEYS = {
    "PD-CRD-0001": "case_no",
    "PD-CRD-0002": "case_no",
    "PD-ENT-0001": "credit_code",
    "PD-LIC-0001": "licence_no",
    "PD-POP-0001": "id_number",
    "PD-EST-0001": "cert_no",
}


def _sql_type(avro: Any) -> str:
    if isinstance(avro, list):
        avro = next(t for t in avro if t != "null")
    if isinstance(avro, dict):
        if avro.get("logicalType"):
            return "TEXT"  # dates as ISO text, as a department system would keep them
        avro = avro["type"]
    return {"int": "INTEGER", "long": "INTEGER", "double": "REAL", "float": "REAL", "boolean": "INTEGER"}.get(
        str(avro), "TEXT"
    )


def create_table(conn: sqlite3.Connection, table: str, schema_file: str, key: str) -> list[str]:
    fields = schemas.load(schema_file)["fields"]
    columns = [
        f'"{f["name"]}" {_sql_type(f["type"])}' + (" PRIMARY KEY" if f["name"] == key else "") for f in fields
    ]
    conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}" ({", ".join(columns)})')
    return [f["name"] for f in fields]


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


@dataclass
class DepartmentDbs:
    """The SQLite databases of the demo's departments, under one folder."""

    folder: Path
    columns: dict[str, list[str]] = field(default_factory=dict)

    def path(self, dept: str) -> Path:
        return self.folder / f"{dept}.db"

    def connect(self, dept: str) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path(dept), timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def create(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for dept, code, table, schema_file in SOURCES:
            with self.connect(dept) as conn:
                self.columns[table] = create_table(conn, table, schema_file, KEYS[code])

    def upsert(self, conn: sqlite3.Connection, table: str, record: dict[str, Any]) -> None:
        cols = self.columns[table]
        values = [_iso(record.get(c)) for c in cols]
        quoted = ", ".join(f'"{c}"' for c in cols)
        marks = ", ".join("?" * len(cols))
        # table and column names come from our own schema files, never from input
        conn.execute(f'INSERT OR REPLACE INTO "{table}" ({quoted}) VALUES ({marks})', values)  # noqa: S608


@dataclass
class ChangeStream:
    """Makes changes in the source departments' databases, as their applications would."""

    dbs: DepartmentDbs
    seed: int = 2026
    made: Counter[str] = field(default_factory=Counter)  # "PD-CRD-0001 c" -> count
    deleted_cases: list[str] = field(default_factory=list)
    bad_records: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - demo data, not security
        self.fake = gen.make_faker(self.seed)
        self.conns = {dept: self.dbs.connect(dept) for dept in {s[0] for s in SOURCES}}
        self.debtors: list[str] = []
        self.entities: list[dict[str, Any]] = []
        self.persons: list[dict[str, Any]] = []

    def seed_initial(self, debtors: int = 60, entities: int = 80, persons: int = 60) -> None:
        """Rows that exist before the sidecars start: they travel as an initial snapshot (op=r)."""
        for _ in range(persons):
            self._new_person(count=False)
        for _ in range(entities):
            self._new_entity(count=False)
        for _ in range(debtors):
            self._new_debtor(count=False)

    def _new_person(self, *, count: bool = True) -> dict[str, Any]:
        person = gen.person(self.fake, district=self.rng.choice(["浦东新区", "浦东新区", None]))
        self.persons.append(person)
        self.dbs.upsert(self.conns["psb"], "person", person)
        self.made["PD-POP-0001 c"] += count
        return person

    def _new_entity(self, *, count: bool = True) -> dict[str, Any]:
        entity = gen.legal_entity(self.fake, district=self.rng.choice(["浦东新区", None]))
        self.entities.append(entity)
        self.dbs.upsert(self.conns["amr"], "legal_entity", entity)
        self.dbs.upsert(self.conns["amr"], "business_licence", gen.business_licence(self.fake, entity))
        self.made["PD-ENT-0001 c"] += count
        self.made["PD-LIC-0001 c"] += count
        return entity

    def _new_debtor(self, *, count: bool = True) -> None:
        if self.rng.random() < 0.7 and self.persons:
            subject: dict[str, Any] = self.rng.choice(self.persons)
        else:
            subject = self.rng.choice(self.entities) if self.entities else self._new_entity(count=count)
        debtor = gen.dishonest_debtor(self.fake, subject)
        self.debtors.append(debtor["case_no"])
        self.dbs.upsert(self.conns["court"], "dishonest_debtor", debtor)
        self.made["PD-CRD-0001 c"] += count

    def step(self) -> None:
        """One change, chosen like a busy afternoon at the district's offices."""
        roll = self.rng.random()
        court = self.conns["court"]
        if roll < 0.35:
            self._new_debtor()
        elif roll < 0.55 and self.debtors:
            case = self.rng.choice(self.debtors)
            court.execute(
                "UPDATE dishonest_debtor SET performance_status = ? WHERE case_no = ?",
                (self.rng.choice(["部分未履行", "全部未履行"]), case),
            )
            self.made["PD-CRD-0001 u"] += 1
        elif roll < 0.62 and len(self.debtors) > 10:
            # the debt is paid: the court removes the debtor from the list, everywhere at once
            case = self.debtors.pop(self.rng.randrange(len(self.debtors)))
            court.execute("DELETE FROM dishonest_debtor WHERE case_no = ?", (case,))
            self.deleted_cases.append(case)
            self.made["PD-CRD-0001 d"] += 1
        elif roll < 0.72:
            self._new_entity()
        elif roll < 0.80 and self.entities:
            entity = self.rng.choice(self.entities)
            self.conns["amr"].execute(
                "UPDATE legal_entity SET status = ? WHERE credit_code = ?",
                (self.rng.choice(["存续", "吊销", "注销"]), entity["credit_code"]),
            )
            self.made["PD-ENT-0001 u"] += 1
        elif roll < 0.90:
            self._new_person()
        elif roll < 0.95 and self.persons:
            owner = self.rng.choice(self.persons)
            self.dbs.upsert(self.conns["housing"], "real_estate", gen.real_estate(self.fake, owner))
            self.made["PD-EST-0001 c"] += 1
        else:
            casefile: dict[str, Any] = {
                "case_no": f"(2026)沪0115执{self.rng.randint(10000, 99999)}号",
                "judge": self.fake.name(),
                "summary": "执行案件卷宗摘要(不予共享)",
                "filed_date": "2026-11-01",
            }
            self.dbs.upsert(court, "enforcement_case", casefile)
            self.made["PD-CRD-0002 c"] += 1

    def bad_person(self) -> None:
        """A household-register entry with a wrong ID check digit: the sidecar must dead-letter it."""
        person = gen.person(self.fake)
        good = person["id_number"]
        wrong = "0" if good[-1] != "0" else "1"
        person["id_number"] = good[:-1] + wrong
        self.dbs.upsert(self.conns["psb"], "person", person)
        self.bad_records.append("PD-POP-0001: wrong citizen ID check digit")
        self.made["PD-POP-0001 c (bad)"] += 1

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()
