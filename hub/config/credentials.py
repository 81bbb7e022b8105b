"""Secrets of the processes (keys, tokens, passwords): from environment variables or a secrets directory.

Never from the YAML of the config directory, which is kept in git and shown in reviews. A secret named
``config_signing_key`` is read from ``XHUB_CONFIG_SIGNING_KEY`` or from the file
``$XHUB_SECRETS_DIR/xhub_config_signing_key`` (the layout of Docker and Kubernetes secrets mounted as
files); the environment variable wins. Every value is a ``SecretStr``: printing or logging it shows
``**********``.
"""

from __future__ import annotations

import os
import re
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
    return env_or_secret_file(f"XHUB_{name.upper().replace('-', '_')}")


def env_or_secret_file(env: str) -> SecretStr | None:
    """The environment variable ``env``, else the file of the secrets directory named ``env`` in lower
    case (``XHUB_PUDONG_SECRET`` -> ``xhub_pudong_secret``); None when neither exists."""
    value = os.environ.get(env)
    if value:
        return SecretStr(value)
    folder = secrets_dir()
    if folder is not None:
        path = folder / env.lower()
        if path.is_file():
            return SecretStr(path.read_text(encoding="utf-8").strip())
    return None


# What a secret written into a config file looks like: a key named for one with a value, a URL with a
# password, a PEM private key. Names of secrets (``token_secret: push_token``, ``*_env``) are fine.
_SECRET_KEY = re.compile(
    r"^\s*(?:-\s*)?(?P<key>pseudonym_secret|[A-Za-z_]*(?:password|passwd|api_key|private_key|token))"
    r"\s*:\s*(?P<value>[^#\s].*)?$",
    re.IGNORECASE,
)
_EMPTY = {"", "null", "~", "''", '""'}
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^@\s/]+@")
_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def secret_warnings(root: Path) -> list[str]:
    """Secrets written in the YAML files under ``root``: one warning each, with file and line.

    The value is never part of the warning. Secrets belong in environment variables or the secrets
    directory (``XHUB_SECRETS_DIR``): the config directory is kept in git and shown in reviews.
    """
    out: list[str] = []
    advice = "give it through an environment variable or a file of XHUB_SECRETS_DIR (value not shown)"
    for path in sorted(root.rglob("*.y*ml")):
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        where = path.relative_to(root)
        for number, line in enumerate(lines, start=1):
            match = _SECRET_KEY.match(line)
            if match and (match.group("value") or "").strip() not in _EMPTY:
                out.append(f'{where}:{number}: "{match.group("key")}" holds a secret in the file: {advice}')
            elif _URL_PASSWORD.search(line):
                out.append(f"{where}:{number}: a URL with a password: {advice}")
            elif _PEM_PRIVATE.search(line):
                out.append(f"{where}:{number}: a private key: {advice}")
    return out
