"""An audit verification's result as Prometheus metrics in a file, for the node exporter's textfile collector.

`xhub audit verify` and `xhub audit checkpoint` run as jobs (an auditor's cron or CronJob), not inside the
hub, so nothing scrapes them: with ``--metrics-file`` they leave their result where the node exporter
(``--collector.textfile.directory``) serves it, and a broken chain reaches the alerting rules.

    xhub_audit_chain_intact{hub}                    1 when every chain verified, 0 when one is broken
    xhub_audit_problems{hub,kind}                   problems found, per kind (altered, missing, ...)
    xhub_audit_entries_verified{hub}                entries read
    xhub_audit_chains{hub}                          chains (hub workers) seen
    xhub_audit_last_verify_timestamp_seconds{hub}   when the verification finished (a stale one alerts too)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from hub.audit.verify import VerifyReport

PROBLEM_KINDS: Final = (
    "altered",
    "missing",
    "reordered",
    "undecodable",
    "truncated",
    "unknown_chain",
    "invented",
    "checkpoint",
)
UNREPORTED: Final = "unreported"  # problems past verify's MAX_REPORTED: counted, kind not kept


def verify_registry(report: VerifyReport, hub: str, finished_s: float) -> CollectorRegistry:
    """The metrics of one verification of ``hub``'s audit, finished at ``finished_s`` (epoch seconds)."""
    registry = CollectorRegistry(auto_describe=False)
    labels = ["hub"]
    intact = Gauge(
        "xhub_audit_chain_intact", "1 when every audit chain verified, else 0.", labels, registry=registry
    )
    intact.labels(hub).set(1.0 if report.ok else 0.0)
    problems = Gauge(
        "xhub_audit_problems",
        "Problems the audit verification found, per kind.",
        [*labels, "kind"],
        registry=registry,
    )
    kinds = Counter(p.kind for p in report.problems)
    kinds[UNREPORTED] += report.more_problems
    for kind in sorted(set(PROBLEM_KINDS) | set(kinds)):
        problems.labels(hub, kind).set(float(kinds.get(kind, 0)))
    entries = Gauge(
        "xhub_audit_entries_verified", "Audit entries the verification read.", labels, registry=registry
    )
    entries.labels(hub).set(float(report.entries))
    chains = Gauge(
        "xhub_audit_chains", "Audit chains (hub workers) the verification saw.", labels, registry=registry
    )
    chains.labels(hub).set(float(len(report.chains)))
    stamp = Gauge(
        "xhub_audit_last_verify_timestamp_seconds",
        "When the audit verification finished (epoch seconds).",
        labels,
        registry=registry,
    )
    stamp.labels(hub).set(finished_s)
    return registry


def write_verify_metrics(path: str | Path, report: VerifyReport, hub: str, finished_s: float) -> None:
    """Write the metrics to ``path`` atomically (a reader never sees half a file)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), verify_registry(report, hub, finished_s))
