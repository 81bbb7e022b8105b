"""Read a config directory into a :class:`ConfigDir`: syntax, types and schemas, every problem at once.

Reading only parses; ``hub.config.validation.load_config`` reads and then runs the one validation path
(cross-checks and plan compilation) over the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

import schemas
from hub.config.models import (
    CatalogFile,
    Department,
    DepartmentsFile,
    Grant,
    GrantsFile,
    HubsFile,
    HubSpec,
    Resource,
    Subscription,
    SubscriptionsFile,
)
from hub.config.timezone import DEFAULT_TIMEZONE
from hub.config.yaml_lines import LocatedYaml, Path_, YamlSyntaxError, load_located
from hub.core.errors import ConfigError, ConfigProblem

M = TypeVar("M", bound=BaseModel)


@dataclass
class Origin:
    """Where an object was defined: file, line and path, for error messages."""

    doc: LocatedYaml
    path: Path_

    def problem(self, sub: Path_, message: str) -> ConfigProblem:
        return self.doc.problem((*self.path, *sub), message)

    @property
    def where(self) -> str:
        line = self.doc.line_of(self.path)
        return f"{self.doc.file}:{line}" if line else self.doc.file


@dataclass
class ConfigDir:
    """A config as read: from a directory (``read_config``) or a snapshot (``config_from_snapshot``).

    It is checked once it has been through ``hub.config.validation.compile_config`` (``load_config``
    does that).
    """

    root: Path
    hubs_file: HubsFile
    departments: dict[str, Department] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)  # subscription id -> the owner's grant
    # subscription id -> the folder of grants/ its grant was read from ("" = not in a department's folder)
    grant_folders: dict[str, str] = field(default_factory=dict)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)  # resource code -> Avro schema
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)  # (kind, id) -> origin
    # Kinds ("hub", "department", "resource", "subscription", "grant") of which a file did not load: a ref.
    # to one of them is not reported as unknown, so one wrong value gives one error, not a cascade.
    incomplete: set[str] = field(default_factory=set)

    @property
    def hubs(self) -> dict[str, HubSpec]:
        return {h.name: h for h in self.hubs_file.hubs}

    def hub(self, name: str) -> HubSpec:
        try:
            return self.hubs[name]
        except KeyError:
            raise ConfigError(
                f'hub "{name}" is not in {self.root / "hubs.yaml"} (hubs: {", ".join(self.hubs)})'
            ) from None

    def subscriptions_of(self, hub: str) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.hub == hub]

    def grant_of(self, subscription: str) -> Grant | None:
        """The owner's grant answering ``subscription``, if one was read from its owner's folder."""
        return self.grants.get(subscription)


def read_config(root: str | Path) -> tuple[ConfigDir, list[ConfigProblem]]:
    """Parse ``root`` as far as it parses: the config and every syntax, type and schema problem found.

    Raises:
        ConfigError: ``root`` is not a directory.
    """
    root = Path(root)
    problems: list[ConfigProblem] = []
    if not root.is_dir():
        raise ConfigError(f"config directory {root} does not exist")

    # Naive datetimes are read in hubs.yaml's timezone: set once hubs.yaml is parsed (hub.config.timezone).
    context: dict[str, Any] = {"timezone": DEFAULT_TIMEZONE}

    def parse(path: Path, model: type[M]) -> tuple[M | None, LocatedYaml | None]:
        display = str(path.relative_to(root))
        try:
            doc = load_located(path, display)
        except YamlSyntaxError as exc:
            problems.append(exc.problem)
            return None, None
        if doc.data is None:
            problems.append(ConfigProblem(display, 1, "", "file is empty"))
            return None, doc
        try:
            return model.model_validate(doc.data, context=context), doc
        except ValidationError as exc:
            problems.extend(problems_of(exc, doc))
            return None, doc

    hubs_path = root / "hubs.yaml"
    hubs_file: HubsFile | None = None
    hubs_doc: LocatedYaml | None = None
    if hubs_path.exists():
        hubs_file, hubs_doc = parse(hubs_path, HubsFile)
    else:
        problems.append(
            ConfigProblem("hubs.yaml", None, "", "missing: every config directory needs hubs.yaml")
        )

    if hubs_file is not None:
        context["timezone"] = hubs_file.timezone
    cfg = ConfigDir(root=root, hubs_file=hubs_file or HubsFile(hubs=[]))
    _add_hubs(cfg, problems, hubs_file, hubs_doc)
    # (folder, file model, list attribute, kind, id attribute, where the objects go)
    kinds: list[tuple[str, type[BaseModel], str, str, str, dict[str, Any]]] = [
        ("departments", DepartmentsFile, "departments", "department", "id", cfg.departments),
        ("catalog", CatalogFile, "resources", "resource", "code", cfg.resources),
        ("subscriptions", SubscriptionsFile, "subscriptions", "subscription", "id", cfg.subscriptions),
    ]
    for folder, model, attr, kind, id_attr, into in kinds:
        # catalog/<owner>/ and subscriptions/<dept>/ folders (hub.config.layout checks whose they are)
        for path in _yaml_files(root / folder, recursive=folder != "departments"):
            parsed, doc = parse(path, model)
            if parsed is None or doc is None:
                cfg.incomplete.add(kind)
                continue
            for i, obj in enumerate(getattr(parsed, attr)):
                origin = Origin(doc, (attr, i))
                _add(cfg, problems, _Definition(kind, getattr(obj, id_attr), obj, origin), into)

    grants_root = root / "grants"
    for path in _yaml_files(grants_root, recursive=True):
        parsed_grants, doc = parse(path, GrantsFile)
        if parsed_grants is None or doc is None:
            cfg.incomplete.add("grant")
            continue
        parts = path.relative_to(grants_root).parts
        folder = parts[0] if len(parts) == 2 else ""
        for i, grant in enumerate(parsed_grants.grants):
            origin = Origin(doc, ("grants", i))
            if grant.subscription not in cfg.grants:
                cfg.grant_folders[grant.subscription] = folder
            _add(cfg, problems, _Definition("grant", grant.subscription, grant, origin), cfg.grants)

    _load_schemas(cfg, problems)
    return cfg, problems


def _add_hubs(
    cfg: ConfigDir, problems: list[ConfigProblem], hubs_file: HubsFile | None, hubs_doc: LocatedYaml | None
) -> None:
    """Hubs get origins like the other kinds: a name given twice is an error, and "no hub" has a line."""
    if hubs_file is None or hubs_doc is None:
        cfg.incomplete.add("hub")
        return
    cfg.origins[("hubs", "")] = Origin(hubs_doc, ("hubs",))
    seen: dict[str, HubSpec] = {}
    for i, spec in enumerate(hubs_file.hubs):
        origin = Origin(hubs_doc, ("hubs", i))
        _add(cfg, problems, _Definition("hub", spec.name, spec, origin), seen)


def _yaml_files(folder: Path, *, recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        return []
    pattern = "**/*" if recursive else "*"
    return sorted([*folder.glob(f"{pattern}.yaml"), *folder.glob(f"{pattern}.yml")])


@dataclass(frozen=True)
class _Definition:
    """One thing a config file defines: its kind, its id, the parsed object and where it was read."""

    kind: str
    ident: str
    obj: Any
    origin: Origin


def _add(cfg: ConfigDir, problems: list[ConfigProblem], item: _Definition, into: dict[str, Any]) -> None:
    """Record ``item`` in ``into`` (by id) with its origin; an id defined twice is a problem at the second."""
    if item.ident in into:
        first = cfg.origins[(item.kind, item.ident)]
        where = f"first at {first.where}"
        problems.append(item.origin.problem((), f'{item.kind} "{item.ident}" is defined twice ({where})'))
        return
    into[item.ident] = item.obj
    cfg.origins[(item.kind, item.ident)] = item.origin


def _load_schemas(cfg: ConfigDir, problems: list[ConfigProblem]) -> None:
    import fastavro

    for code, res in cfg.resources.items():
        origin = cfg.origins[("resource", code)]
        try:
            schema = _read_schema(cfg.root, res.schema_)
        except ValueError as exc:
            problems.append(origin.problem(("schema",), f'schema "{res.schema_}" {exc}'))
            continue
        # A resource is a record of fields: anything else cannot be classified, projected or masked.
        kind = schema.get("type") if isinstance(schema, dict) else schema
        if kind != "record":
            problems.append(
                origin.problem(
                    ("schema",), f'schema "{res.schema_}" is {json.dumps(kind)}, not a record of fields'
                )
            )
            continue
        try:
            fastavro.parse_schema(schema)
        except Exception as exc:  # noqa: BLE001 - fastavro raises assorted errors for a bad schema
            problems.append(origin.problem(("schema",), f'schema "{res.schema_}" is not valid Avro: {exc}'))
            continue
        cfg.schemas[code] = schema


def _read_schema(root: Path, name: str) -> Any:
    """The JSON of schema ``name``: a file under the config folder, else a schema shipped with the hub.

    Raises ValueError with a message an integrator can act on (the path looked for, relative to the
    config folder, and the shipped names), never a path inside the installed package.
    """
    local = root / name
    if local.is_file():
        try:
            return json.loads(local.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot be read: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not JSON (line {exc.lineno}: {exc.msg})") from exc
    if name in schemas.names():
        return schemas.load(name)
    shipped = ", ".join(n for n in schemas.names() if n.startswith("resources/"))
    raise ValueError(
        f"not found: there is no file {name} in the config folder, and no schema of that name is "
        f"shipped with exchange-hub ({shipped})"
    )


def problems_of(exc: ValidationError, doc: LocatedYaml, at: Path_ = ()) -> list[ConfigProblem]:
    """One problem per pydantic error, located in ``doc`` (``at``: the path of the validated object)."""
    out = []
    for err in exc.errors():
        loc: Path_ = (*at, *(p for p in err["loc"] if isinstance(p, str | int)))
        msg = err["msg"].removeprefix("Value error, ")  # our validators' messages are whole sentences
        if err["type"] == "extra_forbidden":
            msg = f'unknown key "{loc[-1]}"'
        elif err["type"] == "missing":
            msg = f'required key "{loc[-1]}" is missing'
        out.append(doc.problem(loc, msg))
    return out
