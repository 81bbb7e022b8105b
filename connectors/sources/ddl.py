"""The objects ``xhub connector install`` puts in a department database, per dialect.

Trigger capture: one change-log table, and per captured table AFTER INSERT/UPDATE/DELETE row triggers
that write the new row (only the columns the resource schema maps, as JSON named by schema field) or, on
delete, the old key. An update that changes the key is logged as a delete of the old key and an insert of
the new one. Outbox: the outbox table (created if absent) and, on PostgreSQL, its ``txid`` column.

Installing is idempotent and reports exactly what it did per object: created, replaced (definition
changed, e.g. a column added to the mapping) or unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from connectors.db.sqlite import SqliteDialect
from connectors.sources.changelog import ChangeLogConnection, Reader


@dataclass(frozen=True, slots=True)
class DbObject:
    """One object to install.

    Attributes:
        kind: "table", "index", "trigger", "function", "column".
        name: its name (as reported).
        create: statements that create it.
        exists: returns the current definition text ("" if it exists without one), or None if absent.
        replace: statements that replace an outdated definition (None: never replaced).
        definition: the text ``exists`` must return for the object to count as unchanged (None: any).
    """

    kind: str
    name: str
    create: tuple[str, ...]
    exists: Callable[[Reader], str | None]
    replace: tuple[str, ...] | None = None
    definition: str | None = None


def apply_objects(db: ChangeLogConnection, objects: Sequence[DbObject]) -> list[str]:
    """Create or replace what is missing or outdated, in one transaction; one report line per object."""
    report: list[str] = []
    with db.write() as w:
        for obj in objects:
            current = obj.exists(w)
            if current is None:
                for stmt in obj.create:
                    w.execute(stmt)
                report.append(f"created {obj.kind} {obj.name}")
            elif (
                obj.definition is not None
                and obj.replace is not None
                and current.strip() != obj.definition.strip()
            ):
                for stmt in obj.replace:
                    w.execute(stmt)
                report.append(f"replaced {obj.kind} {obj.name} (definition changed)")
            else:
                report.append(f"unchanged {obj.kind} {obj.name}")
    return report


def _is_sqlite(db: ChangeLogConnection) -> bool:
    return isinstance(db.dialect, SqliteDialect)


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _safe_name(*parts: str) -> str:
    return "_".join(p.replace(".", "_") for p in parts)


# --- queries used by both the installer and the readers ------------------------------------------


def text_expr(db: ChangeLogConnection, expr: str) -> str:
    """``expr`` cast to text (how keys are stored in the change log)."""
    return f"CAST({expr} AS TEXT)" if _is_sqlite(db) else f"({expr})::text"


def row_json_expr(db: ChangeLogConnection, alias: str, pairs: Sequence[tuple[str, str]]) -> str:
    """SQL building the JSON object {field: alias.column, ...} as text."""
    if _is_sqlite(db):
        # A BLOB cannot go into json_object(); cast it to text so the row is still logged (and the
        # validator dead-letters it if it is not UTF-8) instead of making the application's write fail.
        args = ", ".join(
            f"{_lit(f)}, CASE WHEN typeof({alias}.{db.quote(c)}) = 'blob' "
            f"THEN CAST({alias}.{db.quote(c)} AS TEXT) ELSE {alias}.{db.quote(c)} END"
            for f, c in pairs
        )
        return f"json_object({args})"
    # json_build_object takes at most 100 arguments: build in slices of 50 fields and merge.
    slices = [pairs[i : i + 50] for i in range(0, len(pairs), 50)] or [[]]
    objs = [
        "json_build_object(" + ", ".join(f"{_lit(f)}, {alias}.{db.quote(c)}" for f, c in part) + ")"
        for part in slices
    ]
    if len(objs) == 1:
        return f"{objs[0]}::text"
    return "(" + " || ".join(f"{o}::jsonb" for o in objs) + ")::text"


# --- change log -----------------------------------------------------------------------------------


def changelog_objects(db: ChangeLogConnection, changelog: str) -> list[DbObject]:
    """The change-log table and its indexes."""
    q = db.quote(changelog)
    base = _safe_name(changelog)
    if _is_sqlite(db):
        table = (
            f"CREATE TABLE {q} (id INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL, "
            "pk TEXT, row_json TEXT, commit_ts INTEGER NOT NULL)"
        )
    else:
        table = (
            f"CREATE TABLE {q} (id BIGSERIAL PRIMARY KEY, txid xid8 NOT NULL DEFAULT pg_current_xact_id(), "
            "tbl TEXT NOT NULL, op CHAR(1) NOT NULL, pk TEXT, row_json TEXT, "
            "commit_ts TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())"
        )
    objects = [DbObject("table", changelog, (table,), _table_exists(db, changelog))]
    indexes = [(f"{base}_tbl_pk", "tbl, pk, id")]
    indexes.append((f"{base}_tbl_id", "tbl, id") if _is_sqlite(db) else (f"{base}_tbl_txid", "tbl, txid"))
    for name, cols in indexes:
        objects.append(
            DbObject(
                "index", name, (f"CREATE INDEX {db.quote(name)} ON {q} ({cols})",), _index_exists(db, name)
            )
        )
    return objects


def trigger_objects(
    db: ChangeLogConnection, table: str, key_column: str, pairs: Sequence[tuple[str, str]], changelog: str
) -> list[DbObject]:
    """The capture triggers of one table (and, on PostgreSQL, their function)."""
    if _is_sqlite(db):
        return _sqlite_triggers(db, table, key_column, pairs, changelog)
    return _pg_triggers(db, table, key_column, pairs, changelog)


def _sqlite_triggers(
    db: ChangeLogConnection, table: str, key_column: str, pairs: Sequence[tuple[str, str]], changelog: str
) -> list[DbObject]:
    q_table, q_log, key = db.quote(table), db.quote(changelog), db.quote(key_column)
    now = SqliteDialect.now_ms_sql()
    tbl = _lit(table)

    def insert(op: str, row: str, *, json: bool) -> str:
        body = row_json_expr(db, row, pairs) if json else "NULL"
        return (
            f"  INSERT INTO {q_log} (tbl, op, pk, row_json, commit_ts) "  # noqa: S608 - identifiers are checked and quoted
            f"VALUES ({tbl}, '{op}', CAST({row}.{key} AS TEXT), {body}, {now});"
        )

    base = _safe_name("xhub", table)
    specs = [
        (f"{base}_ins", "AFTER INSERT", "", [insert("c", "NEW", json=True)]),
        (f"{base}_upd", "AFTER UPDATE", f" WHEN OLD.{key} IS NEW.{key}", [insert("u", "NEW", json=True)]),
        (
            f"{base}_upd_key",
            "AFTER UPDATE",
            f" WHEN OLD.{key} IS NOT NEW.{key}",
            [insert("d", "OLD", json=False), insert("c", "NEW", json=True)],
        ),
        (f"{base}_del", "AFTER DELETE", "", [insert("d", "OLD", json=False)]),
    ]
    objects = []
    for name, when, cond, body in specs:
        sql = (
            f"CREATE TRIGGER {db.quote(name)} {when} ON {q_table}{cond}\nBEGIN\n" + "\n".join(body) + "\nEND"
        )
        objects.append(
            DbObject(
                "trigger",
                f"{name} on {table}",
                (sql,),
                _sqlite_definition(name, "trigger"),
                replace=(f"DROP TRIGGER {db.quote(name)}", sql),
                definition=sql,
            )
        )
    return objects


def _pg_triggers(
    db: ChangeLogConnection, table: str, key_column: str, pairs: Sequence[tuple[str, str]], changelog: str
) -> list[DbObject]:
    q_table, q_log, key = db.quote(table), db.quote(changelog), db.quote(key_column)
    tbl = _lit(table)
    new_json = row_json_expr(db, "NEW", pairs)
    body = f"""
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO {q_log} (tbl, op, pk, row_json) VALUES ({tbl}, 'd', (OLD.{key})::text, NULL);
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.{key} IS DISTINCT FROM NEW.{key} THEN
    INSERT INTO {q_log} (tbl, op, pk, row_json) VALUES ({tbl}, 'd', (OLD.{key})::text, NULL);
    INSERT INTO {q_log} (tbl, op, pk, row_json) VALUES ({tbl}, 'c', (NEW.{key})::text, {new_json});
    RETURN NEW;
  END IF;
  INSERT INTO {q_log} (tbl, op, pk, row_json)
    VALUES ({tbl}, CASE TG_OP WHEN 'INSERT' THEN 'c' ELSE 'u' END, (NEW.{key})::text, {new_json});
  RETURN NEW;
END
"""  # noqa: S608 - identifiers are checked and quoted
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    body = f"\n-- xhub capture {digest}{body}"
    func = _safe_name("xhub_capture", table)
    schema_prefix = table.rsplit(".", 1)[0] + "." if "." in table else ""
    q_func = db.quote(schema_prefix + func)
    create_func = (
        f"CREATE OR REPLACE FUNCTION {q_func}() RETURNS trigger LANGUAGE plpgsql AS $xhub${body}$xhub$"
    )
    trigger = "xhub_capture"
    create_trigger = (
        f"CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {q_table} "
        f"FOR EACH ROW EXECUTE FUNCTION {q_func}()"
    )

    def func_def(r: Reader) -> str | None:
        rows = r.rows("SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure(%s)", (f"{q_func}()",))
        return str(rows[0][0]) if rows else None

    def trigger_def(r: Reader) -> str | None:
        rows = r.rows(
            "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass", (trigger, q_table)
        )
        return "" if rows else None

    return [
        DbObject("function", func, (create_func,), func_def, replace=(create_func,), definition=body),
        DbObject("trigger", f"{trigger} on {table}", (create_trigger,), trigger_def),
    ]


# --- outbox ---------------------------------------------------------------------------------------


def outbox_objects(db: ChangeLogConnection, outbox: str) -> list[DbObject]:
    """The outbox table (if absent) and what reading it in commit order needs."""
    q = db.quote(outbox)
    base = _safe_name(outbox)
    if _is_sqlite(db):
        table = (
            f"CREATE TABLE {q} (id INTEGER PRIMARY KEY AUTOINCREMENT, resource TEXT NOT NULL, "
            "op TEXT NOT NULL, key TEXT, payload_json TEXT, "
            f"created_at INTEGER NOT NULL DEFAULT ({SqliteDialect.now_ms_sql()}))"
        )
        return [DbObject("table", outbox, (table,), _table_exists(db, outbox))]
    table = (
        f"CREATE TABLE {q} (id BIGSERIAL PRIMARY KEY, resource TEXT NOT NULL, op CHAR(1) NOT NULL, key TEXT, "
        "payload_json TEXT, created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), "
        "txid xid8 NOT NULL DEFAULT pg_current_xact_id())"
    )

    def txid_exists(r: Reader) -> str | None:
        return "" if "txid" in db.table_columns(r, outbox) else None

    return [
        DbObject("table", outbox, (table,), _table_exists(db, outbox)),
        DbObject(
            "column",
            f"txid of {outbox}",
            (f"ALTER TABLE {q} ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()",),
            txid_exists,
        ),
        DbObject(
            "index",
            f"{base}_txid",
            (f"CREATE INDEX {db.quote(base + '_txid')} ON {q} (txid)",),
            _index_exists(db, f"{base}_txid"),
        ),
    ]


# --- existence checks -----------------------------------------------------------------------------


def _table_exists(db: ChangeLogConnection, table: str) -> Callable[[Reader], str | None]:
    def check(r: Reader) -> str | None:
        return "" if db.table_columns(r, table) else None

    return check


def _index_exists(db: ChangeLogConnection, name: str) -> Callable[[Reader], str | None]:
    if _is_sqlite(db):
        return _sqlite_definition(name, "index")

    def check(r: Reader) -> str | None:
        return "" if r.rows("SELECT to_regclass(%s)::text", (db.quote(name),))[0][0] else None

    return check


def _sqlite_definition(name: str, kind: str) -> Callable[[Reader], str | None]:
    def check(r: Reader) -> str | None:
        rows = r.rows("SELECT sql FROM sqlite_master WHERE type = ? AND name = ?", (kind, name))
        return str(rows[0][0] or "") if rows else None

    return check
