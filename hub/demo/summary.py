"""The demo's result: what reached whom, the latency, and the checks that decide whether the demo passed."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.demo.harness import SINK_TABLES, Demo, say
from hub.demo.requests import REQUEST, AnswerSeen, show_request
from hub.demo.scenario import ChangeStream
from hub.provision.credentials import OPERATOR


def _latencies(demo: Demo) -> list[float]:
    out = []
    for sid in SINK_TABLES:
        for row in demo.inbox_rows(sid):
            if row.get("_xhub_op") == "r":
                continue  # snapshot rows were committed before the sidecars started
            applied, commit = row.get("_xhub_applied_at"), row.get("_xhub_source_commit_ms")
            if applied and commit:
                applied_ms = datetime.fromisoformat(str(applied)).replace(tzinfo=UTC).timestamp() * 1000
                out.append(applied_ms - float(commit))
    return sorted(out)


def _dead_letters(kafka: KafkaSettings, dept: str) -> Counter[str]:
    consumer = make_consumer(kafka, "demo-dlq", group_id=None)
    reasons: Counter[str] = Counter()
    try:
        topic = names.dead_letter_topic(dept)
        consumer.subscribe([topic])
        quiet = time.monotonic()
        while time.monotonic() - quiet < 2:
            for records in consumer.poll(timeout_ms=300).values():
                quiet = time.monotonic()
                for rec in records:
                    reason = dict(rec.headers or []).get("xhub.reason", b"?")
                    reasons[reason.decode()] += 1
    finally:
        consumer.close()
    return reasons


def print_summary(
    demo: Demo, cfg: ConfigDir, stream: ChangeStream, summary: dict[str, Any], wall: float
) -> None:
    status = {s["subscription"]: s for s in summary.get("status", {}).get("subscriptions", [])}
    kafka = cfg.hubs_file.kafka
    lat = _latencies(demo)

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * (len(lat) - 1)))] if lat else float("nan")

    say("\n== summary ==")
    say(
        f"changes made at the sources: {sum(stream.made.values())} "
        + ", ".join(f"{k}={v}" for k, v in sorted(stream.made.items()))
    )
    say("delivered per subscription (hub counters; rows now in the subscriber's database):")
    for sid in sorted(SINK_TABLES):
        s = status.get(sid, {})
        say(
            f"  {sid:<20} delivered={s.get('delivered', 0):<5} filtered={s.get('filtered', 0):<5} "
            f"refused={s.get('refused', 0):<5} dead-lettered={s.get('dead_lettered', 0):<3} "
            f"rows={len(demo.inbox_rows(sid))}" + (f"  [refused: {s['refusal']}]" if s.get("refusal") else "")
        )
    say(
        f"source commit -> subscriber database latency: p50={pct(0.5):.0f} ms p99={pct(0.99):.0f} ms "
        f"(n={len(lat)} rows)"
    )
    checks: list[tuple[str, bool]] = []
    tax_rows = demo.inbox_rows("tax-debtors")
    checks.append(
        (
            "unconditional: the court's list reached tax, housing, transport",
            all(
                status.get(s, {}).get("delivered", 0) > 0
                for s in ("tax-debtors", "housing-debtors", "transport-debtors")
            ),
        )
    )
    checks.append(_request_check(demo, cfg, summary, refused=int(status.get(REQUEST, {}).get("refused", 0))))
    checks.extend(_grant_checks(demo, tax_rows))
    casefiles = stream.made.get("PD-CRD-0002 c", 0)
    nobody = not any(s.get("resource") == "PD-CRD-0002" for s in status.values())
    checks.append((f"not shared: {casefiles} enforcement case files published, delivered to nobody", nobody))
    housing = demo.inbox_rows("housing-debtors")
    masked = bool(housing) and all("*" in str(r.get("debtor_id", "*")) for r in housing)
    checks.append(
        (
            "masked: housing sees debtor IDs like "
            + (str(housing[0].get("debtor_id")) if housing else "?")
            + ", names like "
            + (str(housing[0].get("debtor_name")) if housing else "?"),
            masked,
        )
    )
    districts = {r.get("district") for r in demo.inbox_rows("lujiazui-debtors")}
    checks.append(
        (
            f"row filter: the Lujiazui office sees only districts {sorted(d for d in districts if d)}",
            districts <= {"浦东新区"} and bool(districts),
        )
    )
    tax_cases = {r.get("case_no") for r in tax_rows}
    gone = [c for c in stream.deleted_cases if c not in tax_cases]
    checks.append(
        (
            f"delete: {len(gone)}/{len(stream.deleted_cases)} cleared debtors removed from the tax "
            "bureau's database too",
            bool(stream.deleted_cases) and len(gone) == len(stream.deleted_cases),
        )
    )
    with demo.as_party(OPERATOR):  # the operator's view, under its ACLs: it reads every dead letter
        dlq = _dead_letters(KafkaSettings(bootstrap_servers=kafka.bootstrap_servers), "psb")
    checks.append(
        (f"bad record: dead letters of psb by reason {dict(dlq)}", dlq.get("bad_id_check_digit", 0) >= 1)
    )
    for text, ok in checks:
        say(f"  [{'ok' if ok else 'FAILED'}] {text}")
    summary["ok"] = all(ok for _, ok in checks)
    say(
        f"demo {'passed' if summary['ok'] else 'FAILED'} in {wall:.0f} s; "
        f"logs and databases in {demo.workdir}"
    )


def _request_check(demo: Demo, cfg: ConfigDir, summary: dict[str, Any], refused: int) -> tuple[str, bool]:
    """Conditional sharing: refused until psb answered; then the current state reached transport."""
    from hub.config import load_config

    seen = summary.get("answer") or AnswerSeen()
    rows = demo.inbox_rows(REQUEST)
    answered_ms = seen.answered_at.timestamp() * 1000 if seen.answered_at else 0
    # records committed at psb before the answer, refused then: what reached transport of them came with
    # the backfill of the current state
    backfilled = sum(1 for r in rows if float(r.get("_xhub_source_commit_ms") or 0) < answered_ms)
    show_request(load_config(cfg.root))  # the request as answered: in N working days
    # records that reached the hub between psb's answer and the hub taking the new policy were refused too
    late = (
        f", {refused - seen.refused_before} more while the hub took the answer"
        if refused > seen.refused_before
        else ""
    )
    return (
        f"conditional: housing (granted by psb) received persons; transport was refused "
        f"{seen.refused_before} records (no_grant) until psb answered{late}, then received "
        f"{len(rows)} persons ({backfilled} of them committed before the answer: the backfilled state)",
        bool(demo.inbox_rows("housing-persons"))
        and seen.answered_at is not None
        and seen.refused_before > 0
        and seen.rows_before == 0
        and backfilled > 0,
    )


def _grant_checks(demo: Demo, tax_rows: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """What only the owners' grants allow: a personal field in clear, a sensitive field released."""
    housing = demo.inbox_rows("housing-debtors")
    tax_names = [str(r.get("debtor_name")) for r in tax_rows if r.get("debtor_name")]
    estates = demo.inbox_rows("tax-estates")
    return [
        (
            "clear by grant: the court's grant lets tax see debtor names like "
            + (tax_names[0] if tax_names else "?")
            + "; without one, housing sees "
            + (str(housing[0].get("debtor_name")) if housing else "?"),
            bool(tax_names)
            and all("*" not in n for n in tax_names)
            and bool(housing)
            and all("*" in str(r.get("debtor_name", "*")) for r in housing),
        ),
        (
            f"sensitive: housing's grant releases area_m2 to tax ({len(estates)} estates with their area)",
            bool(estates) and all(r.get("area_m2") is not None for r in estates),
        ),
    ]
