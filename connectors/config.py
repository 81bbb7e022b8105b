"""The connector config file: one department's sidecar, its sources and its sinks (YAML, checked whole).

    department: psb
    catalog: ../config               # the config directory (resources and their schemas)
    registry_url: http://127.0.0.1:8081
    kafka: {bootstrap_servers: 127.0.0.1:9092}     # default: the catalog's hubs.yaml
    health: {host: 127.0.0.1, port: 8790}
    sources:
      - name: hukou
        type: sql_trigger                          # sql_trigger | pg_logical | outbox | http_push | hub_link
        resource: PD-POP-0001
        database: sqlite:////var/lib/hukou.db      # or postgresql://user@host/db (a secret)
        table: person
    sinks: []                                      # see connectors.sinks.config

Every problem is reported at once, each with file, line and path (``ConfigError``). Paths in the file
(catalog, SQLite databases) are relative to the file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.db import parse_dsn
from connectors.sources import SourceConfig
from connectors.sources.base import ResourceSpec
from hub.config.yaml_lines import LocatedYaml, Path_, YamlSyntaxError, load_located
from hub.core.errors import ConfigError, ConfigProblem
from hub.core.kafka_settings import KafkaSettings

_SOURCE_TYPES = frozenset({"sql_trigger", "pg_logical", "postgres", "outbox", "http_push", "hub_link"})


class HealthSettings(BaseModel):
    """Where /healthz, /metrics and POST /snapshot are served."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8790, ge=0, le=65535, description="0 picks a free port")
    enabled: bool = True


class ConnectorConfig(BaseModel):
    """A department sidecar."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    department: str = Field(description="department id, as in the catalog's departments/*.yaml")
    catalog: str = Field(description="config directory with the catalog (relative to this file)")
    registry_url: str | None = Field(
        default=None, description="schema registry; default: hubs.yaml registry.url"
    )
    kafka: KafkaSettings | None = Field(default=None, description="default: the kafka block of hubs.yaml")
    health: HealthSettings = HealthSettings()
    create_topics: bool = Field(default=True, description="create the department's topics if missing")
    topic_partitions: int = Field(default=3, ge=1)
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="default: the kafka settings' replication_factor (auto: min(3, brokers))",
    )
    sources: list[SourceConfig] = Field(default_factory=list)
    sinks: list[dict[str, Any]] = Field(default_factory=list, description="sink configs (connectors.sinks)")
    shutdown_timeout_s: float = Field(
        default=60.0, gt=0, description="longest wait for batches in hand on stop"
    )

    @field_validator("registry_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("registry_url must start with http:// or https://")
        return value


@dataclass
class LoadedConnector:
    """A checked connector config with everything it refers to resolved."""

    config: ConnectorConfig
    path: Path
    kafka: KafkaSettings
    registry_url: str
    resources: dict[str, ResourceSpec]
    sinks: list[SinkBinding] = field(default_factory=list)
    catalog: Any = None  # hub.config.ConfigDir

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def department(self) -> str:
        return self.config.department


def load_connector_config(path: str | Path) -> LoadedConnector:
    """Load and check a connector config file and the catalog it names.

    Raises:
        ConfigError: listing every problem, each with file, line and path.
    """
    path = Path(path).resolve()
    display = str(path)
    if not path.is_file():
        raise ConfigError(f"connector config {display} does not exist")
    try:
        doc = load_located(path, display)
    except YamlSyntaxError as exc:
        raise ConfigError([exc.problem]) from exc
    if not isinstance(doc.data, dict):
        raise ConfigError(
            [ConfigProblem(display, 1, "", "expected a mapping with department, catalog, sources")]
        )
    try:
        config = ConnectorConfig.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(_problems_of(exc, doc)) from exc

    problems: list[ConfigProblem] = []
    from hub.config import load_config

    catalog_dir = (path.parent / config.catalog).resolve()
    try:
        catalog = load_config(catalog_dir)
    except ConfigError as exc:
        problems.append(doc.problem(("catalog",), f"catalog {catalog_dir} has errors:"))
        problems.extend(
            p if isinstance(p, ConfigProblem) else ConfigProblem(str(catalog_dir), None, "", p)
            for p in exc.problems
        )
        raise ConfigError(problems) from exc

    if config.department not in catalog.departments:
        problems.append(
            doc.problem(
                ("department",), f'department "{config.department}" is not in {catalog_dir}/departments'
            )
        )
    resources = _source_resources(config, doc, catalog, problems)
    ports = [(i, getattr(s, "port", None)) for i, s in enumerate(config.sources)]
    if config.health.enabled and config.health.port:
        for i, port in ports:
            if port == config.health.port:
                problems.append(doc.problem(("sources", i, "port"), f"port {port} is the health port too"))

    registry_url = config.registry_url or catalog.hubs_file.registry.url
    if not registry_url:
        problems.append(
            doc.problem(("registry_url",), "registry_url is required (hubs.yaml has no registry.url)")
        )
    sinks = _sinks(config, doc, problems, catalog, path.parent)
    if problems:
        raise ConfigError(problems)
    return LoadedConnector(
        config=config,
        path=path,
        kafka=config.kafka or catalog.hubs_file.kafka,
        registry_url=str(registry_url),
        resources=resources,
        sinks=sinks,
        catalog=catalog,
    )


def _source_resources(
    config: ConnectorConfig, doc: LocatedYaml, catalog: Any, problems: list[ConfigProblem]
) -> dict[str, ResourceSpec]:
    """The catalog resources the sources publish; each must be owned by this department."""
    resources: dict[str, ResourceSpec] = {}
    names: dict[str, int] = {}
    for i, source in enumerate(config.sources):
        if source.name in names:
            message = f'source name "{source.name}" is used twice (also sources[{names[source.name]}])'
            problems.append(doc.problem(("sources", i, "name"), message))
        names.setdefault(source.name, i)
        where = ("sources", i, "resource" if hasattr(source, "resource") else "resources")
        for code in source.resource_codes():
            res = catalog.resources.get(code)
            if res is None:
                problems.append(doc.problem(where, f'resource "{code}" is not in the catalog'))
            elif res.owner != config.department:
                message = (
                    f'resource "{code}" is owned by "{res.owner}"; '
                    f'department "{config.department}" cannot publish it'
                )
                problems.append(doc.problem(where, message))
            else:
                if (problem := _link_mismatch(source, res)) is not None:
                    problems.append(doc.problem((*where[:2], "district"), problem))
                resources[code] = ResourceSpec(
                    code=code,
                    schema=catalog.schemas[code],
                    key_field=res.key,
                    key_format=res.key_format,
                    checks=dict(res.checks),
                    terms_version=_terms_version(catalog, res),
                )
    return resources


def _terms_version(catalog: Any, res: Any) -> str | None:
    """The district policy version of a linked resource's terms copy (None: not linked, or unreadable:
    validating the catalog reported that already)."""
    from hub.config.linked import read_terms

    if res.linked_from is None:
        return None
    try:
        return read_terms(catalog.root, res.linked_from).policy_version
    except ValueError:
        return None


def _link_mismatch(source: Any, res: Any) -> str | None:
    """Why a hub link source cannot publish ``res``: only a linked resource of its district hub and
    subscription (``linked_from`` in the catalog), so what the city checked is what the link carries."""
    district = getattr(source, "district", None)
    if district is None:
        return None
    linked = res.linked_from
    if linked is None:
        return (
            f"resource {res.code} is not a linked resource: give it linked_from (hub, subscription, "
            "terms) in the catalog to carry it from a district hub"
        )
    if (linked.hub, linked.subscription) != (district.hub, district.subscription):
        return (
            f"resource {res.code} is linked from hub {linked.hub}, subscription {linked.subscription}; "
            f"this source reads hub {district.hub}, subscription {district.subscription}"
        )
    return None


@dataclass
class SinkBinding:
    """A sink item of the connector config: which delivery topics feed which sink.

    In the file, one flat mapping: ``name``, ``hub``, optional ``subscriptions`` (default: every active
    subscription of this department at that hub), ``group_id`` and ``max_batch``; every other key is
    the sink's own config (``type: sql | webhook | jsonl`` ..., see ``connectors.sinks.config``).
    """

    name: str
    hub: str
    subscriptions: list[str]
    sink: Any
    group_id: str | None = None
    max_batch: int = 500


_BINDING_KEYS = ("name", "hub", "subscriptions", "group_id", "max_batch")


def _sinks(
    config: ConnectorConfig, doc: LocatedYaml, problems: list[ConfigProblem], catalog: Any, base_dir: Path
) -> list[SinkBinding]:
    """The sink bindings, each sink config validated by the sinks package's models."""
    if not config.sinks:
        return []
    from connectors.sinks.config import SINK_CONFIG_ADAPTER

    out: list[SinkBinding] = []
    names: set[str] = set()
    for i, item in enumerate(config.sinks):
        where: Path_ = ("sinks", i)
        before = len(problems)
        name, hub = item.get("name"), item.get("hub")
        if not isinstance(name, str) or not name:
            problems.append(doc.problem(where, 'required key "name" is missing'))
        elif name in names:
            problems.append(doc.problem((*where, "name"), f'sink name "{name}" is used twice'))
        if not isinstance(hub, str) or hub not in catalog.hubs:
            problems.append(doc.problem((*where, "hub"), f'hub "{hub}" is not in hubs.yaml'))
        wanted = _subscriptions(config, doc=doc, catalog=catalog, item=item, where=where, problems=problems)
        max_batch = item.get("max_batch", 500)
        if not isinstance(max_batch, int) or max_batch < 1:
            problems.append(doc.problem((*where, "max_batch"), "must be a positive integer"))
        try:
            sink = SINK_CONFIG_ADAPTER.validate_python(
                _relative_to(base_dir, {k: v for k, v in item.items() if k not in _BINDING_KEYS})
            )
        except ValidationError as exc:
            problems.extend(_problems_of(exc, doc, prefix=where))
            continue
        if len(problems) == before:
            names.add(str(name))
            group = item.get("group_id")
            out.append(
                SinkBinding(str(name), str(hub), wanted, sink, str(group) if group else None, max_batch)
            )
    return out


def _relative_to(base_dir: Path, sink: dict[str, Any]) -> dict[str, Any]:
    """Sink file paths (SQLite DSNs, JSON-lines files) are relative to the config file, as sources' are.

    SQLite DSNs go through ``connectors.db.parse_dsn``, the function the sources open theirs with, so a
    source and a sink naming the same relative path open the same file.
    """
    out = dict(sink)
    dsn = out.get("dsn")
    if isinstance(dsn, str):
        try:
            address = parse_dsn(dsn, base_dir=base_dir)
        except ValueError:
            pass  # the sink's model refuses it, naming the key
        else:
            if address.dialect == "sqlite":
                out["dsn"] = address.dsn
    for key in ("path", "offsets_path"):
        value = out.get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            out[key] = str((base_dir / value).resolve())
    return out


def _subscriptions(
    config: ConnectorConfig,
    *,
    doc: LocatedYaml,
    catalog: Any,
    item: dict[str, Any],
    where: Path_,
    problems: list[ConfigProblem],
) -> list[str]:
    """The subscriptions a sink item consumes (default: all of this department at its hub)."""
    hub = item.get("hub")
    wanted = item.get("subscriptions")
    if wanted is None:
        wanted = [
            s.id
            for s in catalog.subscriptions.values()
            if s.subscriber == config.department and s.hub == hub and s.active
        ]
        if not wanted:
            problems.append(doc.problem(where, f'no subscription of "{config.department}" at hub "{hub}"'))
        return list(wanted)
    if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted) or not wanted:
        problems.append(
            doc.problem((*where, "subscriptions"), "must be a non-empty list of subscription ids")
        )
        return []
    for sub_id in wanted:
        sub = catalog.subscriptions.get(sub_id)
        if sub is None:
            problems.append(
                doc.problem((*where, "subscriptions"), f'subscription "{sub_id}" is not in the catalog')
            )
        elif sub.subscriber != config.department:
            message = f'subscription "{sub_id}" belongs to "{sub.subscriber}", not "{config.department}"'
            problems.append(doc.problem((*where, "subscriptions"), message))
    return list(wanted)


def _problems_of(exc: ValidationError, doc: LocatedYaml, prefix: Path_ = ()) -> list[ConfigProblem]:
    out: list[ConfigProblem] = []
    for err in exc.errors():
        raw = [p for p in err["loc"] if isinstance(p, str | int)]
        loc: list[str | int] = list(prefix)
        for part in raw:
            # A discriminated union adds the chosen type to the path; the file has no such key.
            if loc and isinstance(loc[-1], int) and part in _SOURCE_TYPES | {"sql", "webhook", "jsonl"}:
                continue
            loc.append(part)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f'unknown key "{loc[-1]}"'
        elif err["type"] == "missing":
            msg = f'required key "{loc[-1]}" is missing'
        out.append(doc.problem(tuple(loc), msg))
    return out
