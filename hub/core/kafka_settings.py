"""How to reach the Kafka cluster. Kept apart from the client factories so that loading and validating a
config does not import kafka-python.

The security fields default from the environment (``XHUB_KAFKA_SECURITY_PROTOCOL``,
``XHUB_KAFKA_SSL_CAFILE``, ``XHUB_KAFKA_SSL_CERTFILE``, ``XHUB_KAFKA_SSL_KEYFILE``; ``deploy/local/kafka.sh
client-env PARTY`` prints them), so that a party's identity is given once to its process, and every
client it makes (and every process it starts) uses it, without writing certificate paths into each config
file. A value written in the config wins.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

if TYPE_CHECKING:
    import ssl


ENV_PREFIX = "XHUB_KAFKA_"


def _from_env(name: str) -> str | None:
    return os.environ.get(ENV_PREFIX + name) or None


class KafkaSettings(BaseModel):
    """How to reach the Kafka cluster (the ``kafka:`` block of hubs.yaml or a connector config)."""

    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="host:port[,host:port...]")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default_factory=lambda: os.environ.get(ENV_PREFIX + "SECURITY_PROTOCOL") or "PLAINTEXT",
        validate_default=True,  # a wrong value in the environment is an error like one in the config
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    client_id_prefix: str = "xhub"
    # How many copies topics get (hub.core.replication): auto is min(3, brokers), min ISR 2 at three copies.
    replication_factor: int | Literal["auto"] = Field(
        default="auto", description="copies of each topic xhub creates; auto: min(3, brokers)"
    )
    min_insync_replicas: int | Literal["auto"] = Field(
        default="auto", description="min.insync.replicas of those topics; auto: 2 at three copies, else unset"
    )
    # Mutual TLS (security_protocol SSL): the party's certificate and key, and the CA of the brokers.
    ssl_cafile: str | None = Field(default_factory=lambda: _from_env("SSL_CAFILE"))
    ssl_certfile: str | None = Field(default_factory=lambda: _from_env("SSL_CERTFILE"))
    ssl_keyfile: str | None = Field(default_factory=lambda: _from_env("SSL_KEYFILE"))

    def tls(self, *, server: bool = False) -> ssl.SSLContext | None:
        """The party's mutual-TLS identity as an ``ssl`` context, for its other connections (the schema
        registry: the same certificate as on Kafka); None without a certificate (plaintext, SASL)."""
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        if not (self.ssl_cafile and self.ssl_certfile and self.ssl_keyfile):
            return None
        from hub.core.identity import tls_context

        return tls_context(self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile, server=server)

    def common(self, client_id: str) -> dict[str, Any]:
        """Keyword arguments every kafka-python client takes."""
        conf: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": f"{self.client_id_prefix}-{client_id}",
            "security_protocol": self.security_protocol,
        }
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, name):
                conf[name] = getattr(self, name)
        if self.sasl_mechanism:
            conf["sasl_mechanism"] = self.sasl_mechanism
            conf["sasl_plain_username"] = self.sasl_username
            conf["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return conf
