"""Secrets of the processes (keys, tokens, passwords): from environment variables or a secrets directory.

Never from the YAML of the config directory, which is kept in git and shown in reviews. A secret named
``config_signing_key`` is read from ``XHUB_CONFIG_SIGNING_KEY`` or from the file
``$XHUB_SECRETS_DIR/xhub_config_signing_key`` (the layout of Docker and Kubernetes secrets mounted as
files); the environment variable wins. Every value is a ``SecretStr``: printing or logging it shows
``**********``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRETS_DIR_ENV = "XHUB_SECRETS_DIR"


class ProcessSecrets(BaseSettings):
    """The secrets a hub, `xhub apply` or a sidecar may need; each is optional until it is used."""

    model_config = SettingsConfigDict(env_prefix="XHUB_", extra="ignore", case_sensitive=False)

    config_signing_key: SecretStr | None = None  # the apply role's Ed25519 key (hub.config.signing)


def secrets_dir() -> Path | None:
    """The secrets directory named by ``XHUB_SECRETS_DIR``, when it exists."""
    folder = os.environ.get(SECRETS_DIR_ENV)
    return Path(folder) if folder and Path(folder).is_dir() else None


def process_secrets() -> ProcessSecrets:
    """The secrets of this process, read now (environment first, then the secrets directory)."""
    folder = secrets_dir()
    if folder is None:
        return ProcessSecrets()
    return ProcessSecrets(_secrets_dir=folder)


def named_secret(name: str) -> SecretStr | None:
    """A secret that the config names (e.g. a source's ``token_secret``): ``$XHUB_<NAME>`` or the file
    ``<secrets dir>/xhub_<name>``; None when neither exists."""
    env = f"XHUB_{name.upper().replace('-', '_')}"
    value = os.environ.get(env)
    if value:
        return SecretStr(value)
    folder = secrets_dir()
    if folder is not None:
        path = folder / env.lower()
        if path.is_file():
            return SecretStr(path.read_text(encoding="utf-8").strip())
    return None
