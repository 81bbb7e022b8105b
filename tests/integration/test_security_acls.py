"""Kafka ACLs from ownership on a real SECURE broker (issue 15, points 1 and 2).

The broker (deploy/local/kafka.sh up, secure by default: mutual TLS, principal = certificate CN,
StandardAuthorizer, allow.everyone.if.no.acl.found=false) is the one of XHUB_TEST_SECURE_BOOTSTRAP with the
credentials folder XHUB_TEST_SECURE_CREDENTIALS (its CA issues the test's parties), else the session's
broker when it is secure, else one started here on a free port in a scratch folder and stopped at the end.
It cannot be had: the test fails saying why.

`xhub apply` of a demo copy creates the ACLs; then each party is tried: what its ownership allows works,
everything else fails with the broker's authorization error; after revocation the subscriber cannot read
its delivery topic any more, and apply never removes an ACL it did not create.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import OffsetAndMetadata, TopicPartition
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)

from hub.config import load_config
from hub.core import names
from hub.core.kafka import make_admin, make_consumer, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.provision.credentials import issue, write_credentials
from hub.provision.session import provision_session
from tests.fixtures.plugin import DEMO_CONFIG, KAFKA_SH, isolate_config

DENIED = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def secure_broker(
    kafka: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """(bootstrap, credentials folder) of a secure broker: the session's own when it is secure (the
    default), with its CA copied to a scratch folder that issues the test's parties."""
    bootstrap = os.environ.get("XHUB_TEST_SECURE_BOOTSTRAP")
    creds = os.environ.get("XHUB_TEST_SECURE_CREDENTIALS")
    if bootstrap and creds:
        yield bootstrap, Path(creds)
        return
    if kafka.security_protocol == "SSL" and kafka.ssl_cafile:
        shared = Path(kafka.ssl_cafile).parent
        folder = tmp_path_factory.mktemp("credentials")
        for name in ("ca.pem", "ca.key"):  # the broker's CA, so that it trusts what is issued here
            shutil.copy2(shared / name, folder / name)
        yield kafka.bootstrap_servers, folder
        return
    home = tmp_path_factory.mktemp("secure-kafka")
    port = _free_port()
    while port + 1 > 65535 or not _port_free(port + 1):
        port = _free_port()
    env = {
        **os.environ,
        "XHUB_KAFKA_HOME": str(home),
        "XHUB_KAFKA_PORT": str(port),
        "XHUB_KAFKA_HEAP": "512m",
    }
    env.pop("XHUB_KAFKA_CREDENTIALS", None)
    main_lib = Path(__file__).resolve().parents[2] / "deploy" / "local" / ".kafka" / "lib"
    if main_lib.is_dir() and "XHUB_KAFKA_LIB" not in env:
        env["XHUB_KAFKA_LIB"] = str(main_lib)
    write_credentials(load_config(DEMO_CONFIG), home / "credentials")
    up = subprocess.run(
        [str(KAFKA_SH), "up"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if up.returncode != 0:
        pytest.fail(f"kafka.sh up failed: {up.stderr.strip() or up.stdout.strip()}", pytrace=False)
    try:
        yield f"127.0.0.1:{port}", home / "credentials"
    finally:
        subprocess.run([str(KAFKA_SH), "down"], env=env, capture_output=True, check=False)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _as(secure: tuple[str, Path], party: str) -> KafkaSettings:
    bootstrap, creds = secure
    issue(creds, party)  # the CA of the broker issues the test's (renamed) parties
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(creds / "ca.pem"),
        ssl_certfile=str(creds / f"{party}.pem"),
        ssl_keyfile=str(creds / f"{party}.key"),
    )


@pytest.fixture
def applied(
    secure_broker: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, dict[str, str]]:
    """A demo copy applied to the secure broker by the super user (the bootstrap of the ACLs)."""
    token = os.urandom(3).hex()
    root = tmp_path / "config"
    renames = isolate_config(DEMO_CONFIG, root, KafkaSettings(bootstrap_servers=secure_broker[0]), token)
    monkeypatch.setenv("XHUB_PUDONG_SECRET", "test-secret-pudong-0123456789")
    monkeypatch.setenv("XHUB_CITY_SECRET", "test-secret-city-0123456789")
    _set_kafka(root, _as(secure_broker, "xhub-admin"))
    _apply(root)
    return root, renames


def _set_kafka(root: Path, settings: KafkaSettings) -> None:
    hubs = yaml.safe_load((root / "hubs.yaml").read_text(encoding="utf-8"))
    hubs["kafka"] = settings.model_dump(exclude_defaults=True, mode="json")
    (root / "hubs.yaml").write_text(
        yaml.safe_dump(hubs, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )


def _party(root: Path, dept: str) -> str:
    """The certificate name of a department: its principal in departments/*.yaml, else its id."""
    department = load_config(root).departments[dept]
    return (department.principal or dept).removeprefix("User:")


def _apply(root: Path) -> list[str]:
    cfg = load_config(root)
    with provision_session(cfg) as session:
        _plan, result = session.apply()
    return result.done


def _fails(action: Callable[[], Any]) -> bool:
    """Whether ``action`` fails with the broker's authorization error (anything else is re-raised)."""
    try:
        action()
    except DENIED:
        return True
    except KafkaError as exc:
        if any(isinstance(exc, d) for d in DENIED) or "Authorization" in type(exc).__name__:
            return True
        raise
    return False


def _read(settings: KafkaSettings, topic: str, group: str | None = None) -> None:
    consumer = make_consumer(settings, "acl-test", group_id=group)
    try:
        if group is None:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.end_offsets([tp])  # a fetch of an unauthorized topic is only logged; this raises
            consumer.seek_to_beginning()
            consumer.poll(timeout_ms=500)
        else:
            consumer.subscribe([topic])
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and not consumer.assignment():
                consumer.poll(timeout_ms=300)
    finally:
        consumer.close()


def _write(settings: KafkaSettings, topic: str, transactional_id: str | None = None) -> None:
    producer = make_producer(settings, "acl-test", transactional_id=transactional_id, max_block_ms=10000)
    try:
        if transactional_id:
            producer.init_transactions()
            producer.begin_transaction()
        producer.send(topic, key=b"k", value=b"v").get(timeout=15)
        if transactional_id:
            producer.commit_transaction()
    finally:
        producer.close(timeout=5)


def test_each_party_may_do_what_it_owns_and_nothing_else(
    secure_broker: tuple[str, Path], applied: tuple[Path, dict[str, str]]
) -> None:
    root, r = applied
    hub = r["pudong"]
    tax, court, housing = (_as(secure_broker, _party(root, r[d])) for d in ("tax", "court", "housing"))
    hub_party = _as(secure_broker, f"hub-{hub}")
    court_src = names.source_topic(r["court"], "PD-CRD-0001")
    tax_dlv, housing_dlv = (
        names.delivery_topic(hub, "tax-debtors"),
        names.delivery_topic(hub, "housing-debtors"),
    )

    # allowed
    assert not _fails(lambda: _read(tax, tax_dlv))
    assert not _fails(lambda: _read(tax, tax_dlv, group=names.sink_group(r["tax"], "debtors")))
    assert not _fails(lambda: _write(court, court_src))
    assert not _fails(lambda: _write(court, court_src, names.source_transactional_id(r["court"], "debtors")))
    assert not _fails(lambda: _read(hub_party, court_src))
    assert not _fails(lambda: _write(hub_party, tax_dlv, names.hub_transactional_id(hub, 0)))
    assert not _fails(lambda: _write(court, names.backlog_topic(r["court"])))
    assert not _fails(lambda: _read(hub_party, names.backlog_topic(r["court"])))  # its status page
    # the hub: not a department's positions (a snapshot's position holds a business key)
    assert _fails(lambda: _read(hub_party, names.position_topic(r["court"])))
    # a department: not another's deliveries, not the sources, the audit or the config
    court_backlog = names.backlog_topic(r["court"])
    for topic in (housing_dlv, court_src, names.audit_topic(hub), names.config_topic(hub), court_backlog):
        assert _fails(lambda t=topic: _read(tax, t)), topic  # type: ignore[misc]
    # not another department's topics, not the config topic
    for topic in (court_src, names.dead_letter_topic(r["court"]), names.config_topic(hub)):
        assert _fails(lambda t=topic: _write(tax, t)), topic  # type: ignore[misc]
    # not another's transactional ids or groups
    assert _fails(
        lambda: _write(tax, names.source_topic(r["tax"], "X"), names.source_transactional_id(r["court"], "a"))
    )
    assert _fails(lambda: _read(tax, tax_dlv, group=names.sink_group(r["court"], "debtors")))
    # the hub: not another department's delivery of another hub, not the config topic for writing
    assert _fails(lambda: _write(hub_party, names.config_topic(hub)))
    assert _fails(lambda: _write(housing, housing_dlv))


def test_revoking_a_subscription_removes_its_read_acl_and_foreign_acls_stay(
    secure_broker: tuple[str, Path], applied: tuple[Path, dict[str, str]]
) -> None:
    root, r = applied
    hub = r["pudong"]
    tax = _as(secure_broker, _party(root, r["tax"]))
    tax_dlv = names.delivery_topic(hub, "tax-debtors")
    assert not _fails(lambda: _read(tax, tax_dlv))
    admin = make_admin(_as(secure_broker, "xhub-admin"))
    foreign = ACL(
        principal=f"User:{_party(root, r['tax'])}",
        host="*",
        operation=ACLOperation.DESCRIBE,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(
            ResourceType.TOPIC, "someone-elses-topic", ACLResourcePatternType.LITERAL
        ),
    )
    admin.create_acls([foreign])
    try:
        path = next(
            p for p in (root / "subscriptions").rglob("*.yaml") if "tax-debtors" in p.read_text("utf-8")
        )
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for sub in doc["subscriptions"]:
            if sub["id"] == "tax-debtors":
                sub["active"] = False
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        done = _apply(root)
        assert any(line.startswith("removed acl") and "tax-debtors" in line for line in done), done
        time.sleep(1)
        assert _fails(lambda: _read(tax, tax_dlv))
        left, _ = admin.describe_acls(
            ACLFilter(
                principal=f"User:{_party(root, r['tax'])}",
                host=None,
                operation=ACLOperation.ANY,
                permission_type=ACLPermissionType.ANY,
                resource_pattern=ResourcePatternFilter(
                    ResourceType.TOPIC, "someone-elses-topic", ACLResourcePatternType.ANY
                ),
            )
        )
        assert len(left) == 1, "apply removed an ACL it did not create"
        assert _apply(root) == [], "a second apply changes nothing"
    finally:
        admin.delete_acls(
            [
                ACLFilter(
                    principal=f"User:{_party(root, r['tax'])}",
                    host="*",
                    operation=ACLOperation.DESCRIBE,
                    permission_type=ACLPermissionType.ALLOW,
                    resource_pattern=ResourcePatternFilter(
                        ResourceType.TOPIC, "someone-elses-topic", ACLResourcePatternType.LITERAL
                    ),
                )
            ]
        )
        admin.close()


def test_the_hub_sees_the_committed_offsets_of_its_subscribers_sink_groups_and_nothing_more(
    secure_broker: tuple[str, Path], applied: tuple[Path, dict[str, str]]
) -> None:
    """The hub's status page shows subscriber lag: it must DESCRIBE its subscribers' sink groups (a hub
    that cannot sees every delivered record as waiting). Reading or committing for them stays theirs."""
    root, r = applied
    hub = r["pudong"]
    tax = _as(secure_broker, _party(root, r["tax"]))
    group = names.sink_group(r["tax"], "debtors")
    tp = TopicPartition(names.delivery_topic(hub, "tax-debtors"), 0)
    consumer = make_consumer(tax, "acl-test", group_id=group)
    try:
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(0, "", -1)})
    finally:
        consumer.close()

    admin = make_admin(_as(secure_broker, f"hub-{hub}"))
    try:
        assert group in {str(g["group_id"]) for g in admin.list_groups() if "group_id" in g}
        assert tp in admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    hub_party = _as(secure_broker, f"hub-{hub}")
    assert _fails(lambda: _read(hub_party, tp.topic, group=group)), "the hub may not consume as the sink"


def test_two_config_directories_on_one_cluster_keep_each_others_acls(
    secure_broker: tuple[str, Path], applied: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Each config directory holds its own ACLs in the ledger: applying one never removes another's
    (a district cluster carries several hubs' configs, and every test applies its own copy)."""
    first, _ = applied
    second = tmp_path / "second"
    r2 = isolate_config(
        DEMO_CONFIG, second, KafkaSettings(bootstrap_servers=secure_broker[0]), os.urandom(3).hex()
    )
    _set_kafka(second, _as(secure_broker, "xhub-admin"))
    _apply(second)
    tax = _as(secure_broker, _party(second, r2["tax"]))
    tax_dlv = names.delivery_topic(r2["pudong"], "tax-debtors")
    assert not _fails(lambda: _read(tax, tax_dlv))

    done = _apply(first)
    assert not [line for line in done if line.startswith("removed acl")], done
    time.sleep(1)
    assert not _fails(lambda: _read(tax, tax_dlv)), "applying one config removed another's ACLs"
    assert _apply(second) == [], "the second config's ACLs are all still there"


def test_the_hubs_registry_requires_each_partys_certificate_and_authorises_writes_per_subject(
    secure_broker: tuple[str, Path], applied: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in registry of a hub on a secure cluster serves mutual TLS: no certificate, no answer;
    a department reads everything and registers only its own subjects; the hub's own clients present
    the hub's certificate (it serves and reads through the same registry)."""
    from hub.app import start_hub
    from hub.core.registry.client import RegistryClient
    from hub.core.registry.errors import RegistryError, RegistryUnavailable

    root, r = applied
    monkeypatch.setenv("XHUB_PUDONG_AUDIT_KEY", "test-audit-key-pudong-0123456789")
    cfg = load_config(root)
    process = start_hub(cfg, r["pudong"], serve_admin=False, follow_config=False)
    try:
        assert process.worker.ready.wait(60), "hub worker did not start"
        url = process.registry_url
        assert url.startswith("https://"), url
        court_subject = names.source_topic(r["court"], "PD-CRD-0001") + "-value"
        court = RegistryClient(url, tls=_as(secure_broker, _party(root, r["court"])).tls())
        tax = RegistryClient(url, tls=_as(secure_broker, _party(root, r["tax"])).tls())
        assert court_subject in court.subjects()  # apply registered it
        assert tax.get_latest(court_subject).id > 0  # reading is for every party
        with pytest.raises(RegistryError, match="may not write"):
            tax.register(court_subject, "string")
        with pytest.raises((RegistryError, RegistryUnavailable)):
            RegistryClient(
                url, tls=ssl.create_default_context(cafile=str(secure_broker[1] / "ca.pem"))
            ).subjects()
    finally:
        process.close()
