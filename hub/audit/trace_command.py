"""``xhub audit trace``, bound to clusters: the hubs of the config directories given (the last hub's and
its upstream hubs'), each read on its own cluster with its own registry."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from typing import IO, TYPE_CHECKING, Any

from hub.audit.reader import Decoder, open_decoder, read_record_at, read_records
from hub.audit.show import Criteria, build_query
from hub.audit.trace import Trace, trace_disclosure
from hub.core import names
from hub.core.errors import ConfigError, RetriableError

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir


class ConfigHubs:
    """The :class:`hub.audit.trace.Hubs` of some config directories: audits and records on their clusters."""

    def __init__(self, stack: ExitStack, configs: list[ConfigDir]) -> None:
        self._stack = stack
        self._cfg = {name: cfg for cfg in configs for name in cfg.hubs}
        self._decoders: dict[int, Decoder] = {}
        self._audits: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}

    def decoder(self, hub: str) -> Decoder:
        cfg = self._cfg[hub]
        if id(cfg) not in self._decoders:
            self._decoders[id(cfg)] = self._stack.enter_context(open_decoder(cfg))
        return self._decoders[id(cfg)]

    def config(self, hub: str) -> ConfigDir | None:
        return self._cfg.get(hub)

    def audit_entry(self, hub: str, chain: str, seq: int) -> dict[str, Any] | None:
        cfg = self._cfg.get(hub)
        if cfg is None:
            return None
        if hub not in self._audits:
            records = read_records(cfg.hubs_file.kafka, names.audit_topic(hub), self.decoder(hub))
            self._audits[hub] = {
                (str(r.entry["chain"]), int(r.entry["seq"])): r.entry for r in records if r.entry is not None
            }
        return self._audits[hub].get((chain, seq))

    def record_at(
        self, hub: str, origin: str
    ) -> tuple[list[tuple[str, bytes]], dict[str, Any] | None] | None:
        cfg = self._cfg.get(hub)
        if cfg is None:
            return None
        found = read_record_at(cfg.hubs_file.kafka, origin)
        if found is None:
            return None
        headers, raw = found
        try:
            value = self.decoder(hub).decode(raw)[1] if raw is not None else None
        except RetriableError:
            raise  # the registry did not answer: that says nothing of the record
        except Exception:  # noqa: BLE001 - an undecodable record is reported as not readable
            value = None
        return headers, value

    def secret(self, hub: str) -> bytes | None:
        from hub.config.secrets import hub_secret

        cfg = self._cfg.get(hub)
        if cfg is None:
            return None
        try:
            return hub_secret(cfg, hub)
        except ConfigError:
            return None  # the key check of that hop is skipped: the chain position still identifies it


def trace_command(
    config_dir: str,
    hub: str,
    resource: str,
    key: str,
    *,
    upstream: list[str] | None = None,
    json_out: bool = False,
    out: IO[str] | None = None,
) -> list[Trace]:
    """`xhub audit trace`: every delivery of record ``key`` of ``resource`` at ``hub``, traced back.

    ``upstream``: config directories of the hubs before it (a district's), each read on its cluster.
    """
    from hub.config import load_config

    out = out or sys.stdout
    cfg = load_config(config_dir)
    configs = [cfg, *(load_config(d) for d in upstream or [])]
    traces: list[Trace] = []
    with ExitStack() as stack:
        hubs = ConfigHubs(stack, configs)
        secret = hubs.secret(hub)
        if secret is None:
            raise ConfigError(
                f'hub "{hub}": its secret is needed to find key hashes (as for xhub audit show)'
            )
        query = build_query(secret, Criteria(resource=resource, key=key, kinds=["delivered"]))
        entries = read_records(cfg.hubs_file.kafka, names.audit_topic(hub), hubs.decoder(hub))
        for rec in entries:
            if rec.entry is None or not query.matches(rec.entry):
                continue
            trace = trace_disclosure(hubs, hub, rec.entry, key)
            traces.append(trace)
            if json_out:
                print(json.dumps(trace.to_json(), ensure_ascii=False, sort_keys=True), file=out)
            else:
                print("\n".join(trace.lines()), file=out)
    if not json_out:
        broken = sum(not t.ok for t in traces)
        print(f"{len(traces)} deliveries traced, {broken} with a gap or mismatch", file=out)
    return traces
