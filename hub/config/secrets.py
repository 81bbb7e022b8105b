"""Secrets named by the config: the HMAC key of a hub (pseudonyms, audit key hashes), its audit key."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from hub.config.credentials import env_or_secret_file
from hub.config.loader import ConfigDir
from hub.core.errors import ConfigError


def hub_secret(cfg: ConfigDir, hub: str) -> bytes:
    """The HMAC key of ``hub`` (pseudonyms, audit key hashes): from its env variable or the config.

    Raises:
        ConfigError: the hub names an unset environment variable, or no secret at all.
    """
    spec = cfg.hub(hub)
    if spec.pseudonym_secret_env:
        value = env_or_secret_file(spec.pseudonym_secret_env)  # or a file of XHUB_SECRETS_DIR
        if value is not None:
            return value.get_secret_value().encode("utf-8")
        raise ConfigError(
            f'hub "{hub}" in hubs.yaml: environment variable {spec.pseudonym_secret_env} '
            "(pseudonym_secret_env) is not set, nor a file of that name in XHUB_SECRETS_DIR"
        )
    if spec.pseudonym_secret is not None:
        return spec.pseudonym_secret.get_secret_value().encode("utf-8")
    raise ConfigError(
        f'hub "{hub}" in hubs.yaml: set pseudonym_secret_env (the HMAC key for pseudonyms and audit)'
    )


def audit_key(cfg: ConfigDir, hub: str) -> SecretStr:
    """The audit key of ``hub`` (the HMAC key of its audit chains), from its env variable or secret file.

    Only the hub and whoever verifies its audit hold it; it is never taken from YAML and never printed.

    Raises:
        ConfigError: neither is configured, the variable is unset, or the file cannot be read.
    """
    spec = cfg.hub(hub)
    if spec.audit_key_env:
        value = env_or_secret_file(spec.audit_key_env)  # or a file of XHUB_SECRETS_DIR
        if value is not None:
            return value
        raise ConfigError(
            f'hub "{hub}" in hubs.yaml: environment variable {spec.audit_key_env} (audit_key_env) '
            "is not set, nor a file of that name in XHUB_SECRETS_DIR"
        )
    if spec.audit_key_file:
        path = Path(spec.audit_key_file)
        if not path.is_absolute():
            path = cfg.root / path
        try:
            return SecretStr(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(
                f'hub "{hub}" in hubs.yaml: audit_key_file {path} cannot be read ({type(exc).__name__})'
            ) from exc
    raise ConfigError(
        f'hub "{hub}" in hubs.yaml: set audit_key_env or audit_key_file (the HMAC key of its audit chains)'
    )
