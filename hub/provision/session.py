"""Open what plan/apply need: an admin client, a producer, a reader of config snapshots, the registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from hub.config.loader import ConfigDir
from hub.config.signing import apply_signing_key
from hub.core.kafka import make_admin, make_consumer, make_producer
from hub.core.replication import cluster_replication
from hub.provision.acl_cluster import acls_managed, apply_acl_changes, cluster_acls, read_ledger
from hub.provision.acls import compute_acl_changes, desired_acls, ledger_owner
from hub.provision.apply import ApplyResult, apply_changes
from hub.provision.desired import desired_state
from hub.provision.diff import (
    ClusterChanges,
    SchemaRegistrar,
    compute_changes,
    read_cluster_state,
    relevant_topics,
)
from hub.provision.registrar import HttpRegistrar, StoreRegistrar


@dataclass
class ProvisionSession:
    cfg: ConfigDir
    admin: KafkaAdminClient
    producer: KafkaProducer
    consumer: KafkaConsumer
    registrar: SchemaRegistrar

    def plan(self) -> ClusterChanges:
        """What apply would change (`xhub plan`). Raises ConfigError when the config does not validate."""
        replication = cluster_replication(self.admin, self.cfg.hubs_file.kafka)
        desired = desired_state(self.cfg, replication)
        keys = {key for topic in desired.topics.values() for key in topic.configs}
        owners = set(self.cfg.departments) | set(self.cfg.hubs)
        relevant = relevant_topics(desired, owners)
        cluster = read_cluster_state(self.admin, self.consumer, list(self.cfg.hubs), keys, relevant)
        changes = compute_changes(desired, cluster, self.registrar, owners)
        changes.replication = replication
        if acls_managed(self.cfg.hubs_file.kafka):  # ACLs from ownership (hub.provision.acls)
            wanted = desired_acls(self.cfg, datetime.now(UTC))
            ledger = read_ledger(self.consumer, self.admin)
            owner = ledger_owner(self.cfg)
            changes.acls = compute_acl_changes(wanted, cluster_acls(self.admin), ledger, owner)
        return changes

    def apply(self, *, allow_delete: bool = False) -> tuple[ClusterChanges, ApplyResult]:
        """Converge the cluster on the config (`xhub apply`); nothing is changed when it does not validate."""
        plan = self.plan()
        signer = apply_signing_key() if plan.snapshots else None  # missing: refused before any change
        result = apply_changes(
            plan,
            self.admin,
            self.producer,
            self.registrar,
            allow_delete=allow_delete,
            replication_factor=plan.replication.factor if plan.replication else 1,
            signer=signer,
        )
        if plan.acls is not None:
            result.done += apply_acl_changes(self.admin, self.producer, plan.acls)
        return plan, result


@contextmanager
def provision_session(cfg: ConfigDir) -> Iterator[ProvisionSession]:
    """Connect to the cluster and the registry of ``cfg`` (the built-in one is served in-process)."""
    from hub.core.registry.client import RegistryClient

    kafka = cfg.hubs_file.kafka
    admin = make_admin(kafka, "provision")
    producer = make_producer(kafka, "provision")
    consumer = make_consumer(kafka, "provision", group_id=None)
    closers = [admin.close, producer.close, consumer.close]
    try:
        from hub.registry.local import built_in_store

        registry = cfg.hubs_file.registry
        if registry.url is not None:
            yield ProvisionSession(
                cfg, admin, producer, consumer, HttpRegistrar(RegistryClient(registry.url, tls=kafka.tls()))
            )
        else:  # the built-in registry: its store directly, so that registrations go in batches
            with built_in_store(kafka, registry.topic, client_id="provision-registry") as store:
                yield ProvisionSession(cfg, admin, producer, consumer, StoreRegistrar(store))
    finally:
        for close in reversed(closers):
            close()
