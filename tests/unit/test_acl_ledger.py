"""Which ACLs apply creates and removes when several config directories share one cluster (pure logic).

Every config directory applies its own hubs' and parties' ACLs; the ledger records which config holds
which ACL, so that one config's apply never removes what another still wants (issue 15).
"""

from __future__ import annotations

from hub.provision.acls import AclSpec, LedgerEntry, compute_acl_changes

A = "hubs:pudong"
B = "hubs:xuhui"


def _acl(principal: str, name: str, op: str = "READ") -> AclSpec:
    return AclSpec(f"User:{principal}", "TOPIC", name, "LITERAL", op, "test")


TAX_READS = _acl("tax", "xhub.dlv.pudong.tax-debtors")
COURT_READS = _acl("court", "xhub.dlv.xuhui.court-debtors")
OPERATOR = _acl("xhub-operator", "xhub.audit.", "READ")


def test_a_config_does_not_remove_the_acls_another_config_created() -> None:
    ledger = [LedgerEntry(A, TAX_READS), LedgerEntry(B, COURT_READS)]
    changes = compute_acl_changes({TAX_READS}, {TAX_READS.key, COURT_READS.key}, ledger, owner=A)
    assert changes.create == []
    assert changes.remove == []
    assert changes.released == []
    assert changes.ledger_put == []
    assert changes.ledger_drop == []


def test_an_acl_no_longer_wanted_is_removed_when_no_other_config_holds_it() -> None:
    ledger = [LedgerEntry(A, TAX_READS), LedgerEntry(B, COURT_READS)]
    changes = compute_acl_changes(set(), {TAX_READS.key, COURT_READS.key}, ledger, owner=A)
    assert changes.remove == [TAX_READS]
    assert changes.ledger_drop == [LedgerEntry(A, TAX_READS).key]
    assert list(changes.lines()) == [f"- acl {TAX_READS.text()}"]


def test_a_shared_acl_is_claimed_by_the_second_config_and_kept_until_the_last_lets_go() -> None:
    on_cluster = {OPERATOR.key}
    first = [LedgerEntry(A, OPERATOR)]
    claim = compute_acl_changes({OPERATOR}, on_cluster, first, owner=B)
    assert claim.create == []
    assert claim.ledger_put == [LedgerEntry(B, OPERATOR)]
    both = [*first, *claim.ledger_put]

    release = compute_acl_changes(set(), on_cluster, both, owner=A)
    assert release.remove == [], "B still holds it"
    assert release.released == [OPERATOR]
    assert release.ledger_drop == [LedgerEntry(A, OPERATOR).key]
    assert release.lines() == [f"~ acl {OPERATOR.text()}: no longer wanted here, kept: hubs:xuhui holds it"]

    last = compute_acl_changes(set(), on_cluster, [LedgerEntry(B, OPERATOR)], owner=B)
    assert last.remove == [OPERATOR]


def test_an_acl_made_by_hand_is_neither_claimed_nor_removed() -> None:
    changes = compute_acl_changes({TAX_READS}, {TAX_READS.key}, [], owner=A)
    assert changes.create == []
    assert changes.ledger_put == []
    assert compute_acl_changes(set(), {TAX_READS.key}, [], owner=A).remove == []


def test_a_wanted_acl_missing_from_the_cluster_is_created_and_recorded_first() -> None:
    changes = compute_acl_changes({TAX_READS}, set(), [LedgerEntry(B, COURT_READS)], owner=A)
    assert changes.create == [TAX_READS]
    assert changes.ledger_put == [LedgerEntry(A, TAX_READS)]


def test_entries_from_before_owners_count_as_the_applying_configs_and_move_under_its_name() -> None:
    legacy = [LedgerEntry("", TAX_READS), LedgerEntry("", COURT_READS)]
    changes = compute_acl_changes({TAX_READS}, {TAX_READS.key, COURT_READS.key}, legacy, owner=A)
    assert changes.remove == [COURT_READS]  # as the single-config ledger did
    assert changes.ledger_put == [LedgerEntry(A, TAX_READS)]
    assert sorted(changes.ledger_drop) == sorted([TAX_READS.key, COURT_READS.key])


def test_a_ledger_entry_keeps_its_owner_through_its_json() -> None:
    entry = LedgerEntry(A, TAX_READS)
    assert LedgerEntry.from_json(entry.to_json()) == entry
    old = LedgerEntry.from_json(TAX_READS.to_json())  # written before owners
    assert old == LedgerEntry("", TAX_READS)
    assert old.key == TAX_READS.key
