"""The policy in force and how it changes while the worker runs: applied configs and validity windows.

The worker follows ``xhub.cfg.<hub>`` (the snapshots `xhub apply` publishes) and installs the newest
between batches; every subscription whose plan changed gets a ``policy_changed`` audit entry. Validity
windows (valid_from / valid_until) open and close on their own: that is audited too. The entries wait
in :attr:`LivePolicy.pending` until the worker's next housekeeping transaction carries them.

An applied config the hub cannot install (not a snapshot, meant for another hub, or one that does not
pass the one validation path, e.g. written to the topic by hand) is refused: logged as
``config_snapshot_refused``, counted, and raised as an alert on the status page, while the hub keeps
serving the policy it has. The next config that installs clears the alert.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from hub.config.signing import SnapshotRefused, SnapshotVerifier
from hub.core import names
from hub.core.envelope import now_ms
from hub.core.errors import HubError
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.engine.audit_log import AuditLog
from hub.engine.changes import describe_change
from hub.engine.policy_set import PolicySet, policy_set_from_snapshot, snapshot_of
from hub.engine.stats import Alert, WorkerStats
from hub.policy.plan import DeliveryPlan

log = get_logger("engine")

WINDOW_CHECK_MS = 250  # how often validity windows are re-evaluated between batches
START_WAIT_S = 15  # at start, how long to wait for the newest applied config
REFUSAL_TEXT_MAX = 600  # characters of the validation errors kept in the log line and the alert


class LivePolicy:
    """The policy set of one hub worker, its config follower and its validity windows.

    Args:
        kafka: cluster settings (the follower reads ``xhub.cfg.<hub>``).
        policies: the policy set to start with (the config directory's, until an applied one is read).
        audit: builds the ``policy_changed`` entries.
        secret: the hub's HMAC key, to compile the plans of applied configs.
        stats: where refused configs are counted and alerted.
        verifier: the apply role's public keys; a config record whose signature does not verify is
            refused before anything else of it is read (default: the keys of XHUB_CONFIG_PUBLIC_KEY).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        policies: PolicySet,
        audit: AuditLog,
        secret: bytes,
        stats: WorkerStats | None = None,
        *,
        verifier: SnapshotVerifier | None = None,
    ) -> None:
        self.kafka = kafka
        self.policies = policies
        self.audit = audit
        self.hub = audit.hub
        self.stats = stats or WorkerStats()
        self.refused: set[str] = set()  # digests of the applied configs refused
        self.pending: list[dict[str, Any]] = []  # policy_changed entries not yet committed
        self._secret = secret
        self.verifier = verifier if verifier is not None else SnapshotVerifier.from_environment()
        self._refusals: dict[str, str | None] = {}  # subscription -> refusal when last looked
        self._next_window_check = 0
        self._follower: KafkaConsumer | None = None
        self._tp = TopicPartition(names.config_topic(self.hub), 0)
        self._cfg_end = 0
        self._log = log.bind(hub=self.hub)

    # -- the config follower ---------------------------------------------------------------------
    def open(self) -> None:
        """Start following the applied config, from the newest snapshot."""
        follower = make_consumer(self.kafka, f"hub-{self.hub}-cfg", group_id=None)
        follower.assign([self._tp])
        self._cfg_end = follower.end_offsets([self._tp]).get(self._tp, 0)
        follower.seek(self._tp, max(0, self._cfg_end - 1))
        self._follower = follower

    def close(self) -> None:
        if self._follower is not None:
            self._follower.close()
            self._follower = None

    def follow(self, *, wait: bool = False) -> PolicySet | None:
        """The newest applied config when it differs from the policy in force, to :meth:`install`.

        ``wait``: at start, read up to the newest snapshot first; it simply becomes the policy in force
        (audited as such by :meth:`in_force`), and None is returned.
        """
        follower = self._follower
        if follower is None:
            return None
        latest: bytes | None = None
        deadline = time.monotonic() + START_WAIT_S
        while True:
            for records in follower.poll(timeout_ms=200 if wait else 0).values():
                for rec in records:
                    if rec.value:
                        latest = rec.value
            if not wait or follower.position(self._tp) >= self._cfg_end or time.monotonic() > deadline:
                break
        if latest is None:
            return None
        new = self.compile_snapshot(latest)
        if new is None:
            return None
        if wait:
            self.policies = new
            self.stats.clear_alerts("config_refused")
            self._log.info("config_installed", digest=new.digest)
            return None
        return new

    def compile_snapshot(self, raw: bytes) -> PolicySet | None:
        """The policy set of one record of xhub.cfg.<hub>; None when it is in force already or refused."""
        try:
            self.verifier.verify(raw)  # before anything else of the record is read
            digest, config = snapshot_of(raw)
            digest = str(digest)
        except (SnapshotRefused, ValueError, KeyError, TypeError) as exc:
            # named by the record's hash: a signed record of the same config may follow
            name = hashlib.sha256(raw).hexdigest()[:16]
            why = (
                str(exc)
                if isinstance(exc, SnapshotRefused)
                else f"not a config snapshot ({type(exc).__name__})"
            )
            self._refuse(name, why)
            return None
        if digest == self.policies.digest:
            self.stats.clear_alerts("config_refused")  # the newest applied config is the one in force
            return None
        if digest in self.refused:
            return None
        hub = config.get("hub") if isinstance(config, dict) else None
        if hub != self.hub:
            self._refuse(digest, f"the snapshot is for hub {hub!r}, not {self.hub!r}")
            return None
        try:
            return policy_set_from_snapshot(config, secret=self._secret, digest=digest)
        except (HubError, ValueError, KeyError, TypeError) as exc:
            # ConfigError lists every problem with its path; none of it is record data
            self._refuse(digest, f"{type(exc).__name__}: {exc}")
            return None

    def _refuse(self, digest: str, why: str) -> None:
        self.refused.add(digest)
        text = why if len(why) <= REFUSAL_TEXT_MAX else why[:REFUSAL_TEXT_MAX] + "…"
        self._log.error(
            "config_snapshot_refused", digest=digest, keeps=self.policies.digest or None, error=text
        )
        with self.stats.lock:
            self.stats.config_refused += 1
        message = (
            f"applied config {digest} refused, the hub keeps serving "
            f"{self.policies.digest or 'the config it started with'}: {text}"
        )
        self.stats.clear_alerts("config_refused")
        self.stats.alert(Alert("config_refused", digest, message, now_ms()))

    # -- installing ------------------------------------------------------------------------------
    def in_force(self) -> None:
        """Audit the policy of every subscription as the worker starts with it."""
        now = now_ms()
        for sid, plan in sorted(self.policies.plans.items()):
            reason = describe_change(
                None,
                plan,
                None,
                self.policies.subscriptions.get(sid),
                verb="in force",
                grant=self.policies.grants.get(sid),
            )
            fields = plan.fields if plan.refusal is None else ()
            self.pending.append(self.audit.policy_changed(plan, now, fields, reason))
            self._refusals[sid] = plan.refusal_at(now)

    def install(self, new: PolicySet) -> bool:
        """Make ``new`` the policy in force; audit every subscription whose policy changed.

        Returns:
            Whether the source topics changed (the worker subscribes again).
        """
        old = self.policies
        now = now_ms()
        for sid in sorted(set(old.plans) | set(new.plans)):
            before, after = old.plans.get(sid), new.plans.get(sid)
            if before is not None and after is not None and before.version == after.version:
                continue
            plan = after or before
            assert plan is not None  # one of the two exists: sid comes from their keys
            reason = describe_change(
                before,
                after,
                old.subscriptions.get(sid),
                new.subscriptions.get(sid),
                grant=new.grants.get(sid),
            )
            fields = after.fields if after is not None and after.refusal is None else ()
            entry = self.audit.policy_changed(plan, now, fields, reason)
            if after is None:
                entry["policy_version"] = "removed"
            self.pending.append(entry)
            self._log.info(
                "policy_changed",
                subscription=sid,
                change=reason.split(";")[0],
                version=after.version if after else None,
            )
        self.policies = new
        self.stats.clear_alerts("config_refused")
        self._refusals = {sid: plan.refusal_at(now) for sid, plan in new.plans.items()}
        return old.source_topics != new.source_topics

    def committed(self, entries: int) -> None:
        """The first ``entries`` pending entries were committed."""
        del self.pending[:entries]

    # -- validity windows ------------------------------------------------------------------------
    def windows_moved(self) -> bool:
        """Audit validity windows opening and closing on their own; True when one did."""
        now = now_ms()
        if now < self._next_window_check:
            return False
        self._next_window_check = now + WINDOW_CHECK_MS
        moved = False
        for sid, plan in self.policies.plans.items():
            if plan.refusal is not None or (plan.valid_from_ms is None and plan.valid_until_ms is None):
                continue
            refusal = plan.refusal_at(now)
            if sid in self._refusals and self._refusals[sid] != refusal:
                reason = f"window {'closed: ' + refusal if refusal else 'open'}"
                fields = () if refusal else tuple(plan.fields)
                self.pending.append(self.audit.policy_changed(plan, now, fields, reason))
                moved = True
                self._log.info("policy_window", subscription=sid, state=refusal or "open")
            self._refusals[sid] = refusal
        return moved

    def deliverable(self, topic: str, now: int) -> list[DeliveryPlan]:
        """The plans of ``topic`` that may deliver at ``now``."""
        return [p for p in self.policies.by_topic.get(topic, []) if p.refusal_at(now) is None]
