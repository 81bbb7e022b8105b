"""One validation path: what a hub refuses to compile, `xhub validate` refuses first, with file:line.

Every mask is tried on every kind of Avro field (primitives, logical types, enums, fixed, complex types,
nullable unions both ways round, references to named types). For each combination the plan is compiled
directly, as a hub does, and the config directory holding it is validated, as `xhub validate` does; the
two must agree, and validate's error names the file, the line of the mask and the field.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest

from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.config.snapshot import config_snapshot, read_snapshot_record, snapshot_digest, snapshot_record
from hub.config.validation import compile_config
from hub.core import names
from hub.core.errors import ConfigError, ConfigProblem
from hub.engine.policy_set import build_policy_set, policy_set_from_snapshot, policy_set_of_config
from hub.policy.errors import MaskRuntimeError, PolicyError
from hub.policy.masks import MASK_KINDS
from hub.policy.plan import compile_plan, named_types
from hub.provision.desired import desired_state

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"
SECRET = b"unit-test-secret-0123456789"
RESOURCE = "PD-POP-0001"


def _field_types() -> list[Any]:
    """Every kind of Avro field type, each named type with a name of its own."""
    logical = [
        {"type": "int", "logicalType": "date"},
        {"type": "int", "logicalType": "time-millis"},
        {"type": "long", "logicalType": "time-micros"},
        {"type": "long", "logicalType": "timestamp-millis"},
        {"type": "long", "logicalType": "timestamp-micros"},
        {"type": "long", "logicalType": "local-timestamp-millis"},
        {"type": "long", "logicalType": "local-timestamp-micros"},
        {"type": "string", "logicalType": "uuid"},
        {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
    ]
    primitives = ["boolean", "int", "long", "float", "double", "bytes", "string"]
    out: list[Any] = ["null", *primitives, *logical]
    counter = iter(range(1000))

    def named() -> list[Any]:
        n = next(counter)
        return [
            {"type": "enum", "name": f"Status{n}", "symbols": ["OPEN", "CLOSED"]},
            {"type": "fixed", "name": f"Hash{n}", "size": 16},
            {"type": "fixed", "name": f"Money{n}", "size": 8, "logicalType": "decimal", "precision": 10},
            {"type": "fixed", "name": f"Span{n}", "size": 12, "logicalType": "duration"},
            {"type": "record", "name": f"Part{n}", "fields": [{"name": "x", "type": "string"}]},
        ]

    complex_ = [{"type": "array", "items": "string"}, {"type": "map", "values": "long"}]
    out += named() + complex_
    out += [["null", t] for t in [*primitives, *logical, *named(), *complex_]]
    out += [[t, "null"] for t in ["string", "long", {"type": "int", "logicalType": "date"}, *named()]]
    out += [["null", "string", "long"], ["string", "long"]]
    # References by name to types defined in an earlier field (Status0, Hash0, Part0).
    out += ["Status0", ["null", "Status0"], "Hash0", "Part0"]
    return out


@dataclass(frozen=True)
class Combo:
    sid: str
    mask: str
    field: str
    avro_type: Any
    line: int  # the line of "<field>: <mask>" in subscriptions/matrix.yaml


def _write_matrix(root: Path) -> list[Combo]:
    """A config directory with one subscription per (mask, field type)."""
    types = _field_types()
    (root / "departments").mkdir(parents=True)
    (root / "catalog").mkdir()
    (root / "subscriptions").mkdir()
    (root / "hubs.yaml").write_text("hubs:\n  - name: h\n", encoding="utf-8")
    (root / "departments" / "all.yaml").write_text(
        "departments:\n  - id: owner\n    name: Owner\n  - id: reader\n    name: Reader\n", encoding="utf-8"
    )
    fields = [{"name": "id", "type": "string"}] + [{"name": f"f{i}", "type": t} for i, t in enumerate(types)]
    schema = {"type": "record", "name": "Matrix", "namespace": "test", "fields": fields}
    (root / "catalog" / "matrix.avsc").write_text(json.dumps(schema), encoding="utf-8")
    classes = "".join(f"      f{i}: personal\n" for i in range(len(types)))
    (root / "catalog" / "matrix.yaml").write_text(
        "resources:\n"
        f"  - code: {RESOURCE}\n"
        "    name: matrix\n"
        "    owner: owner\n"
        "    schema: catalog/matrix.avsc\n"
        "    key: id\n"
        "    share: unconditional\n"
        "    fields:\n"
        "      id: public\n" + classes,
        encoding="utf-8",
    )
    lines = ["subscriptions:"]
    combos: list[Combo] = []
    for mask in MASK_KINDS:
        for i, avro_type in enumerate(types):
            sid = f"m-{mask.replace('_', '-')}-{i}"
            lines += [
                f"  - id: {sid}",
                "    subscriber: reader",
                f"    resource: {RESOURCE}",
                "    hub: h",
                f"    fields: [id, f{i}]",
                "    purpose: test",
                "    masks:",
                f"      f{i}: {mask}",
            ]
            combos.append(Combo(sid, mask, f"f{i}", avro_type, len(lines)))
    (root / "subscriptions" / "matrix.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return combos


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Combo]]:
    root = tmp_path_factory.mktemp("matrix") / "config"
    return root, _write_matrix(root)


def _compile_refuses(cfg: ConfigDir, sid: str) -> bool:
    sub = cfg.subscriptions[sid]
    try:
        compile_plan(sub, cfg.resources[sub.resource], cfg.schemas[sub.resource], secret=SECRET)
    except PolicyError:
        return True
    return False


def _problems_by_subscription(exc: ConfigError) -> dict[str, list[ConfigProblem]]:
    out: dict[str, list[ConfigProblem]] = {}
    for problem in exc.problems:
        assert isinstance(problem, ConfigProblem), problem
        sid = problem.message.split('"')[1] if problem.message.startswith("subscription ") else ""
        out.setdefault(sid, []).append(problem)
    return out


def test_validate_refuses_every_mask_and_type_that_plan_compilation_refuses(
    matrix: tuple[Path, list[Combo]],
) -> None:
    root, combos = matrix
    raw = load_config(root, check=False)
    refused = {c.sid for c in combos if _compile_refuses(raw, c.sid)}
    # the matrix is only a proof if both outcomes occur, and the known defects are among the refused
    assert refused
    assert len(refused) < len(combos)
    assert "m-date-year-" + str(_type_index({"type": "enum"})) in refused
    assert "m-phone-" + str(_field_types().index("double")) in refused

    with pytest.raises(ConfigError) as info:
        load_config(root)
    by_sub = _problems_by_subscription(info.value)
    assert set(by_sub) - {""} == refused, (set(by_sub) ^ refused, by_sub.get(""))
    for combo in combos:
        if combo.sid not in refused:
            continue
        (problem,) = by_sub[combo.sid]
        assert problem.file == "subscriptions/matrix.yaml", problem
        assert problem.line == combo.line, (problem, combo)
        assert f'field "{combo.field}"' in problem.message, problem
        assert f'"{combo.mask}"' in problem.message, problem


def _type_index(shape: dict[str, Any]) -> int:
    for i, t in enumerate(_field_types()):
        if isinstance(t, dict) and all(t.get(k) == v for k, v in shape.items()):
            return i
    raise AssertionError(shape)


def test_the_hub_install_refuses_exactly_what_validate_refuses(matrix: tuple[Path, list[Combo]]) -> None:
    """A snapshot published without validation (an older xhub) is refused by the hub with a ConfigError."""
    root, _ = matrix
    raw = load_config(root, check=False)
    with pytest.raises(ConfigError) as from_dir:
        compile_config(raw, secret=SECRET)
    snapshot = config_snapshot(raw, "h")
    with pytest.raises(ConfigError) as at_install:
        policy_set_from_snapshot(json.loads(snapshot), secret=SECRET, digest=snapshot_digest(snapshot))
    from_dir_subs = set(_problems_by_subscription(from_dir.value)) - {""}
    install_subs = set(_problems_by_subscription(at_install.value)) - {""}
    assert install_subs == from_dir_subs
    assert all(
        p.file.startswith("xhub.cfg.h") for p in at_install.value.problems if isinstance(p, ConfigProblem)
    )
    with pytest.raises(ConfigError):
        build_policy_set("h", raw, secret=SECRET)


def test_accepted_combinations_install_on_a_hub(matrix: tuple[Path, list[Combo]]) -> None:
    root, combos = matrix
    raw = load_config(root, check=False)
    accepted = {c.sid for c in combos if not _compile_refuses(raw, c.sid)}
    raw.subscriptions = {sid: sub for sid, sub in raw.subscriptions.items() if sid in accepted}
    compiled = compile_config(raw, secret=SECRET)
    assert set(compiled.plans) == accepted
    snapshot = config_snapshot(raw, "h")
    policies = policy_set_from_snapshot(json.loads(snapshot), secret=SECRET, digest=snapshot_digest(snapshot))
    assert set(policies.plans) == accepted
    assert policies.digest == snapshot_digest(snapshot)


def _demo_with_mask(tmp_path: Path, field: str, mask: str) -> tuple[Path, int]:
    root = tmp_path / "config"
    shutil.copytree(DEMO, root)
    credit = root / "subscriptions" / "tax" / "credit.yaml"
    text = credit.read_text(encoding="utf-8")
    anchor = "  - id: tax-debtors\n"
    assert anchor in text
    start = text.index(anchor)
    masks_at = text.index("    masks:\n", start) + len("    masks:\n")
    text = text[:masks_at] + f"      {field}: {mask}\n" + text[masks_at:]
    credit.write_text(text, encoding="utf-8")
    line = text[:masks_at].count("\n") + 1
    return root, line


def test_validate_cli_refuses_a_date_year_mask_on_an_enum_field(tmp_path: Path) -> None:
    root, line = _demo_with_mask(tmp_path, "debtor_type", "date_year")
    schema_path = DEMO / "catalog" / "credit.yaml"
    assert "debtor_type" in schema_path.read_text(encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli", "validate", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert any(
        f"subscriptions/tax/credit.yaml:{line}" in x
        and '"debtor_type"' in x
        and "date_year" in x
        and "enum" in x
        for x in errors
    ), proc.stderr


def test_validity_over_is_not_judged_when_a_hub_installs_an_applied_config(tmp_path: Path) -> None:
    """A window that closed after apply is a refusal at run time ("expired"), never a broken config."""
    cfg = load_config(DEMO)
    sid = next(iter(cfg.subscriptions_of("pudong"))).id
    sub = cfg.subscriptions[sid]
    cfg.subscriptions[sid] = sub.model_copy(update={"valid_from": None, "valid_until": _past()})
    snapshot = config_snapshot(cfg, "pudong")
    policies = policy_set_from_snapshot(json.loads(snapshot), secret=SECRET, digest=snapshot_digest(snapshot))
    assert sid in policies.plans
    with pytest.raises(ConfigError, match="validity already over"):
        compile_config(cfg, secret=SECRET, now=_now())


def _past() -> Any:
    from datetime import UTC, datetime

    return datetime(2020, 1, 1, tzinfo=UTC)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _sample(avro_type: Any, named: dict[str, Any]) -> Any:  # noqa: PLR0911 - one return per kind of type
    """A value of ``avro_type`` as a writer would give it (text that also reads as a date)."""
    simple = {
        "null": None,
        "boolean": True,
        "int": 5544,
        "long": 13812345678,
        "float": 1.5,
        "double": 2.5,
        "bytes": b"abc",
        "string": "1985-03-07",
    }
    if isinstance(avro_type, list):
        return _sample(next(t for t in avro_type if t != "null"), named)
    if isinstance(avro_type, str):
        return simple[avro_type] if avro_type in simple else _sample(named[avro_type], named)
    logical = avro_type.get("logicalType")
    kind = avro_type["type"]
    if logical == "date":
        return dt.date(1985, 3, 7)
    if logical in ("time-millis", "time-micros"):
        return dt.time(1, 2, 3)
    if logical in ("timestamp-millis", "timestamp-micros"):
        return dt.datetime(1985, 3, 7, 1, 2, 3, tzinfo=dt.UTC)
    if logical in ("local-timestamp-millis", "local-timestamp-micros"):
        return dt.datetime(1985, 3, 7, 1, 2, 3)
    if logical == "uuid":
        return "5c3f8c2b-af70-43c3-a439-7c514ac35cd5"
    if logical == "decimal":
        return Decimal(1234).scaleb(-avro_type.get("scale", 0))
    if kind == "enum":
        return avro_type["symbols"][0]
    if kind == "fixed":
        return b"x" * avro_type["size"]
    if kind == "record":
        return {"x": "a"}
    if kind == "array":
        return ["a"]
    if kind == "map":
        return {"a": 1}
    return _sample(kind, named)


def test_every_accepted_combination_masks_a_decoded_value(matrix: tuple[Path, list[Combo]]) -> None:
    """What validate lets through works on values as fastavro decodes them (no dead letter per record)."""
    root, combos = matrix
    raw = load_config(root, check=False)
    schema = raw.schemas[RESOURCE]
    parsed = fastavro.parse_schema(schema)
    named = named_types(schema)
    record = {f["name"]: _sample(f["type"], named) for f in schema["fields"]}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, record)
    buf.seek(0)
    decoded = fastavro.schemaless_reader(buf, parsed)
    failures = []
    for combo in combos:
        if _compile_refuses(raw, combo.sid):
            continue
        sub = raw.subscriptions[combo.sid]
        plan = compile_plan(sub, raw.resources[RESOURCE], schema, secret=SECRET)
        try:
            plan.project(decoded)
        except MaskRuntimeError as exc:
            failures.append(f"{combo.mask} on {combo.avro_type}: {exc}")
    assert not failures, "\n".join(failures)


def test_apply_refuses_to_publish_a_config_a_hub_would_refuse(matrix: tuple[Path, list[Combo]]) -> None:
    """`xhub plan`/`apply` compute what to publish through the same check, even for an unchecked config."""
    root, _ = matrix
    with pytest.raises(ConfigError) as info:
        desired_state(load_config(root, check=False))
    assert any('mask "date_year" cannot apply to Avro type "enum"' in str(p) for p in info.value.problems)
    desired = desired_state(load_config(DEMO))
    compiled = compile_config(load_config(DEMO))
    for sid, sub in compiled.cfg.subscriptions.items():
        spec = desired.schemas[f"{names.delivery_topic(sub.hub, sid)}-value"]
        assert spec.schema == compiled.delivery_schema(sid)


def test_the_hub_compiles_a_directory_and_a_snapshot_alike() -> None:
    cfg = load_config(DEMO)
    from_dir = policy_set_of_config(cfg, "pudong", secret=SECRET)
    subs = cfg.subscriptions.values()
    digest = from_dir.digest
    pieces = build_policy_set("pudong", cfg, secret=SECRET, digest=digest, subscriptions=subs)
    snapshot = config_snapshot(cfg, "pudong")
    read_digest, body = read_snapshot_record(snapshot_record(snapshot, applied_ts_ms=1))
    assert read_digest == snapshot_digest(snapshot) == digest
    from_snapshot = policy_set_from_snapshot(body, secret=SECRET, digest=read_digest)
    for other in (pieces, from_snapshot):
        assert {sid: p.version for sid, p in other.plans.items()} == {
            sid: p.version for sid, p in from_dir.plans.items()
        }
        assert other.source_topics == from_dir.source_topics
    assert all(sub.hub == "pudong" for sub in from_dir.subscriptions.values())
