"""A party's identity from its environment (issue 15, points 1 and 4): the XHUB_KAFKA_* variables that
`deploy/local/kafka.sh client-env PARTY` prints are the defaults of every ``kafka:`` block, a value written
in the config wins, and the same certificate is presented to a registry served with mutual TLS.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.config import load_config
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.errors import RegistryError, RegistryUnavailable
from hub.provision.credentials import issue, registry_grantees, write_credentials
from hub.registry.authorization import SubjectAuthorizer
from hub.registry.server import RegistryServer
from hub.registry.store import MemorySchemaStore
from tests.fixtures.plugin import DEMO_CONFIG, KAFKA_SH, set_client_env

VARIABLES = (
    "XHUB_KAFKA_SECURITY_PROTOCOL",
    "XHUB_KAFKA_SSL_CAFILE",
    "XHUB_KAFKA_SSL_CERTFILE",
    "XHUB_KAFKA_SSL_KEYFILE",
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    write_credentials(load_config(DEMO_CONFIG), folder)
    return folder


@pytest.fixture
def as_party(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a process that runs as the court."""
    monkeypatch.setenv("XHUB_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("XHUB_KAFKA_SSL_CAFILE", str(pki / "ca.pem"))
    monkeypatch.setenv("XHUB_KAFKA_SSL_CERTFILE", str(pki / "court.pem"))
    monkeypatch.setenv("XHUB_KAFKA_SSL_KEYFILE", str(pki / "court.key"))


def test_without_the_environment_a_client_is_plaintext(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    settings = KafkaSettings(bootstrap_servers="k:9092")
    assert settings.security_protocol == "PLAINTEXT"
    assert settings.tls() is None
    assert "ssl_certfile" not in settings.common("x")


def test_the_environment_is_the_default_and_the_config_wins(pki: Path, as_party: None) -> None:
    settings = KafkaSettings(bootstrap_servers="k:9092")
    conf = settings.common("x")
    assert conf["security_protocol"] == "SSL"
    assert conf["ssl_certfile"] == str(pki / "court.pem")
    assert settings.tls() is not None
    written = KafkaSettings(security_protocol="PLAINTEXT", ssl_certfile="mine.pem")
    assert written.security_protocol == "PLAINTEXT"
    assert written.ssl_certfile == "mine.pem"
    assert written.tls() is None  # plaintext: no identity to present anywhere


def test_a_config_loaded_later_sees_the_environment_of_then(as_party: None) -> None:
    """hubs.yaml's default ``kafka:`` block is made per load, not once at import."""
    assert load_config(DEMO_CONFIG).hubs_file.kafka.security_protocol == "SSL"


def test_a_wrong_protocol_in_the_environment_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XHUB_KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ValidationError, match="security_protocol"):
        KafkaSettings()


def test_a_registry_client_presents_the_environments_certificate(pki: Path, as_party: None) -> None:
    """Without a context of its own, a client of an https registry is the process's party: the court may
    register its own subject, not the tax bureau's."""
    server = RegistryServer(
        MemorySchemaStore(),
        tls=KafkaSettings(
            ssl_certfile=str(pki / "xhub-registry.pem"), ssl_keyfile=str(pki / "xhub-registry.key")
        ).tls(server=True),
        authorizer=SubjectAuthorizer(registry_grantees(load_config(DEMO_CONFIG))),
    )
    server.start()
    try:
        client = RegistryClient(server.url)
        assert server.url.startswith("https://")
        assert client.register("xhub.src.court.pd-crd-0001-value", "string") == 1
        with pytest.raises(RegistryError, match="may not write"):
            client.register("xhub.src.tax.pd-tax-0001-value", "string")
    finally:
        server.stop()


def test_an_identity_from_another_ca_is_refused(pki: Path, as_party: None, tmp_path: Path) -> None:
    other = tmp_path / "other"
    issue(other, "court")
    server = RegistryServer(MemorySchemaStore(), tls=KafkaSettings().tls(server=True))
    server.start()
    try:
        stranger = KafkaSettings(
            ssl_cafile=str(pki / "ca.pem"),
            ssl_certfile=str(other / "court.pem"),
            ssl_keyfile=str(other / "court.key"),
        )
        with pytest.raises((RegistryError, RegistryUnavailable)):
            RegistryClient(server.url, timeout=5, tls=stranger.tls()).subjects()
    finally:
        server.stop()


def test_kafka_sh_client_env_names_the_partys_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `make test` and `make demo` evaluate: paths only, for the super user or a named party."""
    creds = tmp_path / "credentials"
    issue(creds, "xhub-admin")
    issue(creds, "court")
    env = {"XHUB_KAFKA_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def client_env(*args: str) -> str:
        return subprocess.run(
            [str(KAFKA_SH), "client-env", *args], env=env, capture_output=True, text=True, check=True
        ).stdout

    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    set_client_env(client_env())
    assert KafkaSettings().ssl_certfile == str(creds / "xhub-admin.pem")
    set_client_env(client_env("court"))
    assert KafkaSettings().ssl_keyfile == str(creds / "court.key")
    assert "BEGIN" not in client_env("court")  # never a key itself
    set_client_env(client_env("--plaintext"))
    assert KafkaSettings().security_protocol == "PLAINTEXT"
    assert KafkaSettings().ssl_certfile is None
