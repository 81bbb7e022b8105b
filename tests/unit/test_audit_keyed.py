"""A keyed audit: a chain rebuilt or invented without the audit key, a foreign chain name, a tail cut after a
checkpoint, and forged or removed checkpoints are each found."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from hub.audit.chain import AuditChain, is_worker_chain
from hub.audit.checkpoint import ChainHead, Heads, read_checkpoints, write_checkpoint
from hub.audit.errors import CheckpointError
from hub.audit.verify import Expectations, VerifyReport, verify_entries
from hub.core.errors import ConfigError
from hub.engine.audit_log import AuditLog

KEY = b"unit-test-audit-key-0123456789"
HUB = "pudong"


def _entry(i: int) -> dict[str, Any]:
    return {
        "kind": "delivered",
        "ts_ms": 1_700_000_000_000 + i,
        "hub": HUB,
        "subscription": "tax-debtors",
        "subscriber": "tax",
        "resource": "PD-CRD-0001",
        "policy_version": "abc",
        "event_id": f"e{i}",
        "key_hash": f"k{i}",
        "op": "c",
        "fields": ["case_no"],
        "delivered_topic": "t",
        "delivered_partition": 0,
        "delivered_offset": i,
        "source": f"src-0@{i}",
        "reason": None,
    }


def _log(chains: int = 2, per_chain: int = 6, key: bytes = KEY) -> list[tuple[int, dict[str, Any]]]:
    writers = [AuditChain(f"xhub-hub-{HUB}-{w}", key) for w in range(chains)]
    return [(o, writers[o % chains].append(_entry(o))) for o in range(chains * per_chain)]


def _sha256_rechain(entries: list[dict[str, Any]], chain: str) -> None:
    """What a forger without the key can do: the old public algorithm, plain SHA-256."""
    seq, prev = 0, "0" * 64
    for entry in entries:
        if entry["chain"] != chain:
            continue
        seq += 1
        entry["seq"], entry["prev_hash"] = seq, prev
        body = {k: v for k, v in entry.items() if k != "hash"}
        text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        entry["hash"] = prev = hashlib.sha256((prev + text).encode()).hexdigest()


def _verify(log: list[tuple[int, dict[str, Any]]], **expect: Any) -> VerifyReport:
    known = Expectations(known_chain=lambda chain: is_worker_chain(HUB, chain), **expect)
    return verify_entries(log, key=KEY, expect=known)


def _heads(log: list[tuple[int, dict[str, Any]]], end: int) -> Heads:
    last: dict[str, tuple[int, dict[str, Any]]] = {}
    for offset, entry in log:
        last[entry["chain"]] = (offset, entry)
    heads = tuple(ChainHead(c, e["seq"], e["hash"], o) for c, (o, e) in last.items())
    return Heads("xhub.audit.pudong", end, heads)


def test_a_chain_rebuilt_without_one_disclosure_does_not_verify() -> None:
    entries = [dict(e) for _, e in _log()]
    victim = entries.pop(5)
    _sha256_rechain(entries, victim["chain"])
    report = _verify(list(enumerate(entries)))
    assert not report.ok
    assert {p.kind for p in report.problems} == {"altered"}
    assert all(p.chain == victim["chain"] for p in report.problems)


def test_a_chain_rebuilt_with_another_key_does_not_verify() -> None:
    report = _verify(_log(key=b"a-guessed-key-0123456789"))
    assert [p.kind for p in report.problems] == ["altered"] * 12


def test_an_invented_chain_does_not_verify_and_a_foreign_name_is_named() -> None:
    log = _log()
    invented = [dict(e, chain="xhub-hub-pudong-7") for _, e in log[:4]]
    _sha256_rechain(invented, "xhub-hub-pudong-7")
    report = _verify([*log, *((100 + i, e) for i, e in enumerate(invented))])
    assert {(p.kind, p.chain) for p in report.problems} == {("altered", "xhub-hub-pudong-7")}

    # even written with the key (a stolen key), a chain no worker of this hub writes is named
    foreign = AuditChain("xhub-hub-city-0", KEY)
    report = _verify([*log, (200, foreign.append(_entry(1)))])
    assert [(p.kind, p.offset, p.chain) for p in report.problems] == [
        ("unknown_chain", 200, "xhub-hub-city-0")
    ]


def test_worker_chain_names() -> None:
    assert is_worker_chain("pudong", "xhub-hub-pudong-0")
    assert is_worker_chain("pudong", "xhub-hub-pudong-12")
    assert not is_worker_chain("pudong", "xhub-hub-pudong-x")
    assert not is_worker_chain("pudong", "xhub-hub-pudong-01")
    assert not is_worker_chain("pudong", "xhub-hub-pudong-city-0")
    assert not is_worker_chain("pudong", "xhub-hub-city-0")
    assert is_worker_chain("pudong", "xhub-hub-pudong-0-backfill")  # a worker's backfill task
    assert not is_worker_chain("pudong", "xhub-hub-pudong-backfill")
    assert not is_worker_chain("pudong", "xhub-hub-pudong-0-backfill-backfill")


def test_a_checkpoint_catches_a_cut_tail_a_rebuilt_chain_and_an_invented_chain(tmp_path: Path) -> None:
    log = _log()
    path = write_checkpoint(tmp_path, HUB, _heads(log, end=len(log)), 1_700_000_000_000, KEY)
    assert path.name == "pudong-00000001.json"
    assert not os.access(path, os.W_OK) or os.geteuid() == 0  # read-only (root may write anyway)
    found, problems = read_checkpoints(tmp_path, HUB, KEY)
    assert problems == []
    assert _verify(log, checkpoints=found).ok
    assert _verify(log, checkpoints=found).checkpoints_checked == 1

    # the tail cut: the chain simply ends earlier, only the checkpoint knows it went further
    cut = _verify(log[:-2], checkpoints=found)
    assert sorted((p.kind, p.seq) for p in cut.problems) == [("truncated", 6), ("truncated", 6)]
    assert "checkpoint pudong-00000001.json records seq 6" in cut.problems[0].detail

    # a chain rebuilt with the key (an insider) differs from the checkpointed head
    entries = [dict(e) for _, e in log]
    entries[4]["fields"] = ["case_no", "debtor_id"]
    chain = AuditChain(entries[4]["chain"], KEY)
    rebuilt = [
        (o, chain.append({k: v for k, v in e.items() if k not in {"chain", "seq", "prev_hash", "hash"}}))
        if e["chain"] == chain.chain
        else (o, e)
        for o, e in enumerate(entries)
    ]
    report = _verify(rebuilt, checkpoints=found)
    assert [(p.kind, p.chain, p.seq) for p in report.problems] == [("altered", chain.chain, 6)]

    # a chain with a worker's name and the key, but before the checkpoint and not in it: invented
    extra = AuditChain("xhub-hub-pudong-2", KEY)
    report = _verify([*log[:3], (3, extra.append(_entry(3))), *log[3:]], checkpoints=found)
    assert [(p.kind, p.chain, p.offset) for p in report.problems] == [("invented", "xhub-hub-pudong-2", 3)]
    # after the checkpoint's end offset, a new worker's chain is fine
    later = AuditChain("xhub-hub-pudong-2", KEY)
    assert _verify([*log, (len(log), later.append(_entry(3)))], checkpoints=found).ok


def test_checkpoints_are_never_rewritten_and_a_forged_or_removed_one_is_found(tmp_path: Path) -> None:
    log = _log()
    first = write_checkpoint(tmp_path, HUB, _heads(log[:6], end=6), 1, KEY)
    second = write_checkpoint(tmp_path, HUB, _heads(log, end=12), 2, KEY)
    third = write_checkpoint(tmp_path, HUB, _heads(log, end=12), 3, KEY)
    assert [p.name for p in (first, second, third)] == [f"pudong-0000000{n}.json" for n in (1, 2, 3)]
    assert read_checkpoints(tmp_path, HUB, KEY)[1] == []

    # a checkpoint signed with another key (forged) does not count and is named
    found, problems = read_checkpoints(tmp_path, HUB, b"a-guessed-key-0123456789")
    assert found == []
    assert len(problems) == 3
    assert "signature does not verify" in problems[0]

    # an edited checkpoint (an earlier head, to hide a cut) breaks its signature
    body = json.loads(second.read_text(encoding="utf-8"))
    body["chains"][0]["seq"] = 3
    second.chmod(0o600)
    second.write_text(json.dumps(body), encoding="utf-8")
    found, problems = read_checkpoints(tmp_path, HUB, KEY)
    assert [c.number for c in found] == [1, 3]
    assert any("pudong-00000002.json: signature does not verify" in p for p in problems)
    with pytest.raises(CheckpointError, match="do not verify"):
        write_checkpoint(tmp_path, HUB, _heads(log, end=12), 4, KEY)  # never append to a broken sequence

    # a removed checkpoint is a gap in the numbers
    second.unlink()
    _, problems = read_checkpoints(tmp_path, HUB, KEY)
    assert problems == [f"{third}: checkpoint 3 follows 1: checkpoints were removed"]
    report = _verify(log, checkpoints=read_checkpoints(tmp_path, HUB, KEY)[0], checkpoint_problems=problems)
    assert [p.kind for p in report.problems] == ["checkpoint"]


def test_a_replaced_earlier_checkpoint_breaks_the_digest_link(tmp_path: Path) -> None:
    log = _log()
    first = write_checkpoint(tmp_path, HUB, _heads(log[:6], end=6), 1, KEY)
    write_checkpoint(tmp_path, HUB, _heads(log, end=12), 2, KEY)
    first.chmod(0o600)
    first.unlink()
    write_checkpoint(tmp_path / "other", HUB, _heads(log[:4], end=4), 1, KEY)  # validly signed, other content
    (tmp_path / "other" / first.name).rename(first)
    _, problems = read_checkpoints(tmp_path, HUB, KEY)
    assert len(problems) == 1
    assert "previous_sha256 is not the digest of pudong-00000001.json" in problems[0]


def test_the_hub_refuses_a_missing_or_short_audit_key() -> None:
    with pytest.raises(ConfigError, match="audit key must be at least 16 bytes"):
        AuditLog(HUB, "xhub-hub-pudong-0", serde=None, secret=b"s" * 20, audit_key=b"")  # type: ignore[arg-type]


def test_the_audit_key_comes_from_its_variable_or_secret_file_and_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import yaml

    from hub.config import load_config
    from hub.config.secrets import audit_key
    from tests.fixtures.plugin import DEMO_CONFIG

    monkeypatch.setenv("XHUB_PUDONG_AUDIT_KEY", "from-the-environment-0123456789")
    key = audit_key(load_config(DEMO_CONFIG), "pudong")
    assert key.get_secret_value() == "from-the-environment-0123456789"
    assert "0123456789" not in repr(key)
    assert "0123456789" not in str(key)

    monkeypatch.delenv("XHUB_PUDONG_AUDIT_KEY")
    with pytest.raises(ConfigError, match=r"XHUB_PUDONG_AUDIT_KEY \(audit_key_env\) is not set"):
        audit_key(load_config(DEMO_CONFIG), "pudong")

    root = tmp_path / "config"
    shutil.copytree(DEMO_CONFIG, root)
    hubs = yaml.safe_load((root / "hubs.yaml").read_text(encoding="utf-8"))
    hubs["hubs"][0].pop("audit_key_env")
    hubs["hubs"][0]["audit_key_file"] = "secrets/audit-key"
    (root / "hubs.yaml").write_text(yaml.safe_dump(hubs, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"audit_key_file .*secrets/audit-key cannot be read"):
        audit_key(load_config(root), "pudong")
    (root / "secrets").mkdir()
    (root / "secrets" / "audit-key").write_text("from-a-secret-file-0123456789\n", encoding="utf-8")
    assert audit_key(load_config(root), "pudong").get_secret_value() == "from-a-secret-file-0123456789"

    hubs["hubs"][0].pop("audit_key_file")
    (root / "hubs.yaml").write_text(yaml.safe_dump(hubs, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="set audit_key_env or audit_key_file"):
        audit_key(load_config(root), "pudong")
