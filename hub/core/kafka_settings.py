"""How to reach the Kafka cluster. Kept apart from the client factories so that loading and validating a
config does not import kafka-python."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class KafkaSettings(BaseModel):
    """How to reach the Kafka cluster (the ``kafka:`` block of hubs.yaml or a connector config)."""

    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="host:port[,host:port...]")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
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
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

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
