"""Registry authentication and per-subject authorisation over mutual TLS (issue 15, point 4).

Real certificates from the local CA (hub.provision.credentials), a real TLS socket on loopback: every
endpoint needs a client certificate of the deployment's CA; a department writes only its own topics'
subjects, a hub only its own, the apply role anything; reads are open to every authenticated party.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.config import load_config
from hub.provision.credentials import issue, registry_grantees, tls_context, write_credentials
from hub.registry.server import RegistryServer
from hub.registry.store import MemorySchemaStore

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"
SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    write_credentials(load_config(DEMO), folder)
    issue(folder, "stranger")  # issued by the CA, but no party of the config
    issue(tmp_path_factory.mktemp("other-ca"), "court")  # a court certificate from another CA
    return folder


@pytest.fixture(scope="module")
def server(pki: Path) -> Iterator[RegistryServer]:
    srv = RegistryServer(
        MemorySchemaStore(),
        tls=tls_context(pki, "xhub-registry", server=True),
        authorizer=registry_grantees_of_demo(),
    )
    srv.start()
    yield srv
    srv.stop()


def registry_grantees_of_demo() -> Any:
    from hub.registry.authorization import SubjectAuthorizer

    return SubjectAuthorizer(registry_grantees(load_config(DEMO)))


def _call(server: RegistryServer, context: ssl.SSLContext, method: str, path: str, body: Any = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"https://localhost:{server.port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status


def _as(pki: Path, name: str) -> ssl.SSLContext:
    return tls_context(pki, name, server=False)


@pytest.mark.parametrize(
    "case",
    [
        ("court", "POST", "/subjects/xhub.src.court.pd-crd-0001-value/versions", {"schema": SCHEMA}, 200),
        ("tax", "POST", "/subjects/xhub.src.court.pd-crd-0001-value/versions", {"schema": SCHEMA}, 403),
        ("tax", "POST", "/subjects/xhub.dlq.tax-value/versions", {"schema": SCHEMA}, 200),
        ("tax", "PUT", "/config/xhub.src.court.pd-crd-0001-value", {"compatibility": "NONE"}, 403),
        ("court", "PUT", "/config/xhub.src.court.pd-crd-0001-value", {"compatibility": "FULL"}, 200),
        ("court", "PUT", "/config", {"compatibility": "NONE"}, 403),
        ("tax", "POST", "/subjects/xhub.dlv.pudong.tax-debtors-value/versions", {"schema": SCHEMA}, 403),
        (
            "hub-pudong",
            "POST",
            "/subjects/xhub.dlv.pudong.tax-debtors-value/versions",
            {"schema": SCHEMA},
            200,
        ),
        (
            "hub-pudong",
            "POST",
            "/subjects/xhub.src.court.pd-crd-0001-value/versions",
            {"schema": SCHEMA},
            403,
        ),
        ("hub-city", "POST", "/subjects/xhub.audit.pudong-value/versions", {"schema": SCHEMA}, 403),
        ("xhub-apply", "POST", "/subjects/xhub.src.amr.pd-ent-0001-value/versions", {"schema": SCHEMA}, 200),
        ("xhub-apply", "PUT", "/config", {"compatibility": "BACKWARD"}, 200),
        ("stranger", "GET", "/subjects", None, 200),
        ("stranger", "POST", "/subjects/xhub.src.stranger.x-value/versions", {"schema": SCHEMA}, 403),
        ("tax", "GET", "/subjects/xhub.src.court.pd-crd-0001-value/versions", None, 200),
        ("tax", "POST", "/subjects/xhub.src.court.pd-crd-0001-value", {"schema": SCHEMA}, 200),  # lookup
    ],
)
def test_writes_are_authorised_per_subject(
    pki: Path, server: RegistryServer, case: tuple[str, str, str, Any, int]
) -> None:
    who, method, path, body, status = case
    assert _call(server, _as(pki, who), method, path, body) == status


def test_every_endpoint_needs_a_certificate_of_the_ca(pki: Path, server: RegistryServer) -> None:
    anonymous = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        _call(server, anonymous, "GET", "/subjects")
    forged = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    other = pki.parent / next(p.name for p in pki.parent.iterdir() if p.name.startswith("other-ca"))
    forged.load_cert_chain(str(other / "court.pem"), str(other / "court.key"))
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        _call(server, forged, "POST", "/subjects/xhub.src.court.x-value/versions", {"schema": SCHEMA})


def test_an_authorizing_registry_refuses_to_run_without_client_certificates(pki: Path) -> None:
    from hub.registry.authorization import SubjectAuthorizer

    with pytest.raises(ValueError, match="requires client certificates"):
        RegistryServer(MemorySchemaStore(), authorizer=SubjectAuthorizer({}))


def test_credentials_are_private(pki: Path) -> None:
    assert (pki / "court.key").stat().st_mode & 0o777 == 0o600
    assert (pki / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (pki / "hub-pudong.pem").exists()
    assert (pki / "xhub-admin.bundle.pem").stat().st_mode & 0o777 == 0o600
