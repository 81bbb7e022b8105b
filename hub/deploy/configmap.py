"""The config directory as a ConfigMap, with hubs.yaml pointed at the cluster's Kafka and registry.

The files stay the source of truth: the ConfigMap carries them byte for byte, except ``hubs.yaml``, where
``kafka.bootstrap_servers`` and ``registry.url`` are set to what the pods reach (a laptop's
``127.0.0.1:9092`` means nothing in a pod). Comments and order survive (ruamel round trip), so the
rendered file still reads like the one in git.

ConfigMap keys cannot hold "/": a file ``grants/court/tax.yaml`` is the key ``grants__court__tax.yaml``,
and the volume's ``items`` put it back at its path.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from hub.core.errors import ConfigError

CONFIG_MAP_LIMIT = 1_000_000
"""Bytes a ConfigMap may hold (Kubernetes refuses more than 1 MiB, metadata included)."""

_KEY_SEPARATOR = "__"


@dataclass(frozen=True)
class ConfigFiles:
    """The files of a config directory, as a ConfigMap holds them."""

    data: dict[str, str]  # ConfigMap key -> file text
    paths: dict[str, str]  # ConfigMap key -> path inside the config directory

    @property
    def digest(self) -> str:
        """SHA-256 of every key and text: a pod annotation, so a config change rolls the workers."""
        digest = hashlib.sha256()
        for key in sorted(self.data):
            digest.update(key.encode() + b"\0" + self.data[key].encode() + b"\0")
        return digest.hexdigest()


def cluster_hubs_yaml(text: str, *, bootstrap_servers: str, registry_url: str) -> str:
    """``hubs.yaml`` with the Kafka bootstrap servers and the registry URL the pods use."""
    yaml = YAML(typ="rt")
    yaml.width = 4096  # keep long comments on one line, as written
    yaml.indent(mapping=2, sequence=4, offset=2)  # the layout of the config files
    doc = yaml.load(text)
    doc.setdefault("kafka", {})["bootstrap_servers"] = bootstrap_servers
    _retell(doc, "kafka", "in the cluster: Kafka as its pods and containers reach it")
    doc["registry"] = {**(doc.get("registry") or {}), "url": registry_url}
    _retell(doc, "registry", "in the cluster: its registry (xhub registry)")
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _retell(doc: Any, key: str, comment: str) -> None:
    """Replace the end-of-line comment of ``key`` (a stale "no url" would mislead); the comment lines
    ruamel stores with it (those below it) move above the next key, where they were."""
    tokens = doc.ca.items.get(key)
    token = tokens[2] if tokens and len(tokens) > 2 else None
    if token is None or not token.value.lstrip().startswith("#"):
        doc.yaml_add_eol_comment(comment, key)
        return
    below = [line.strip().removeprefix("#").removeprefix(" ") for line in token.value.split("\n")[1:]]
    below = [line for line in below if line]
    token.value = f"  # {comment}\n"
    keys = list(doc)
    if below and keys.index(key) + 1 < len(keys):
        doc.yaml_set_comment_before_after_key(keys[keys.index(key) + 1], before="\n".join(below))


def config_files(config_dir: Path, *, bootstrap_servers: str, registry_url: str) -> ConfigFiles:
    """Every YAML file of ``config_dir`` keyed for a ConfigMap, hubs.yaml set for the cluster.

    Raises:
        ConfigError: the files exceed what one ConfigMap holds (bake them into the image instead).
    """
    data: dict[str, str] = {}
    paths: dict[str, str] = {}
    for path in sorted(config_dir.rglob("*")):
        if not path.is_file() or path.suffix not in (".yaml", ".yml") or _hidden(path, config_dir):
            continue
        relative = path.relative_to(config_dir).as_posix()
        text = path.read_text(encoding="utf-8")
        if relative == "hubs.yaml":
            text = cluster_hubs_yaml(text, bootstrap_servers=bootstrap_servers, registry_url=registry_url)
        key = relative.replace("/", _KEY_SEPARATOR)
        data[key] = text
        paths[key] = relative
    size = sum(len(k) + len(v.encode()) for k, v in data.items())
    if size > CONFIG_MAP_LIMIT:
        raise ConfigError(
            f"config directory {config_dir} holds {size:,} bytes of YAML; a ConfigMap holds at most "
            f"{CONFIG_MAP_LIMIT:,}: build an image with the config inside (COPY into /etc/xhub/config)"
        )
    return ConfigFiles(data, paths)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)
