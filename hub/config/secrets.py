"""Secrets named by the config: the HMAC key of a hub (pseudonyms, audit key hashes)."""

from __future__ import annotations

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
