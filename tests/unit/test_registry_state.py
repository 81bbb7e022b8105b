"""Registry state from its log: Confluent's record layout, replay, first-wins conflicts, idempotency."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.core.registry.errors import IncompatibleSchema, SubjectNotFound, VersionNotFound
from hub.core.registry.schema import canonical_text
from hub.registry.state import RegistryState, SchemaVersion, config_record, schema_record
from hub.registry.store import MemorySchemaStore

PERSON = {
    "type": "record",
    "name": "Person",
    "namespace": "gov.xhub",
    "fields": [{"name": "name", "type": "string"}],
}
PERSON_PHONE = {**PERSON, "fields": [*PERSON["fields"], {"name": "phone", "type": "string", "default": ""}]}
PERSON_BAD = {**PERSON, "fields": [*PERSON["fields"], {"name": "phone", "type": "string"}]}
P1, P2, P3 = canonical_text(PERSON), canonical_text(PERSON_PHONE), canonical_text(PERSON_BAD)


def raw(key: dict[str, Any], value: dict[str, Any] | None) -> tuple[bytes, bytes | None]:
    return json.dumps(key).encode(), None if value is None else json.dumps(value).encode()


def schema_kv(
    subject: str, version: int, schema_id: int, text: str, **extra: Any
) -> tuple[bytes, bytes | None]:
    key = {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}
    value = {
        "subject": subject,
        "version": version,
        "id": schema_id,
        "schema": text,
        "deleted": False,
        **extra,
    }
    return raw(key, value)


def replay(*records: tuple[bytes, bytes | None]) -> RegistryState:
    state = RegistryState()
    for key, value in records:
        state.apply(key, value)
    return state


def test_records_use_confluents_schemas_layout() -> None:
    key, value = schema_record(SchemaVersion("s-value", 3, 7, P1))
    assert json.loads(key) == {"keytype": "SCHEMA", "subject": "s-value", "version": 3, "magic": 1}
    assert list(json.loads(key)) == [
        "keytype",
        "subject",
        "version",
        "magic",
    ]  # compaction compares key bytes
    assert value is not None
    assert json.loads(value) == {"subject": "s-value", "version": 3, "id": 7, "schema": P1, "deleted": False}
    ckey, cvalue = config_record("FULL", "s-value")
    assert json.loads(ckey) == {"keytype": "CONFIG", "subject": "s-value", "magic": 0}
    assert cvalue is not None
    assert json.loads(cvalue) == {"compatibilityLevel": "FULL"}
    assert json.loads(config_record("NONE")[0])["subject"] is None
    assert config_record(None, "s")[1] is None


def test_a_confluent_written_record_is_understood() -> None:
    # as Confluent Schema Registry writes them (schema text not canonical, keys in its own spacing)
    key = b'{"keytype":"SCHEMA","subject":"orders-value","version":1,"magic":1}'
    value = b'{"subject":"orders-value","version":1,"id":21,"schema":"\\"string\\"","deleted":false}'
    state = replay((key, value), (b'{"keytype":"NOOP","magic":0}', None))
    assert state.version("orders-value", None) == SchemaVersion("orders-value", 1, 21, '"string"')
    assert state.max_id == 21


def test_replay_rebuilds_subjects_versions_and_ids() -> None:
    state = replay(schema_kv("a", 1, 1, P1), schema_kv("a", 2, 2, P2), schema_kv("b", 1, 1, P1))
    assert state.subjects() == ["a", "b"]
    assert state.versions("a") == [1, 2]
    assert state.version("a", None).id == 2
    assert state.schema_by_id(1) == P1
    assert state.id_of(P2) == 2
    assert [(sv.subject, sv.version) for sv in state.usages(1)] == [("a", 1), ("b", 1)]


def test_first_record_wins_a_version_claimed_twice() -> None:
    state = replay(schema_kv("a", 1, 1, P1), schema_kv("a", 1, 2, P2))
    assert state.version("a", 1).schema == P1
    assert state.schema_by_id(2) is None
    assert state.max_id == 2  # the loser's id is never handed out again


def test_first_record_wins_an_id_claimed_by_two_texts() -> None:
    state = replay(schema_kv("a", 1, 1, P1), schema_kv("b", 1, 1, P2))
    assert state.schema_by_id(1) == P1
    assert state.versions("b") == []


def test_a_text_keeps_its_first_id() -> None:
    state = replay(schema_kv("a", 1, 1, P1), schema_kv("b", 1, 5, P1))
    assert state.versions("b") == []
    assert state.id_of(P1) == 1


def test_duplicates_are_harmless() -> None:
    record = schema_kv("a", 1, 1, P1)
    state = replay(record, record, record)
    assert state.versions("a") == [1]


def test_deleted_versions_and_tombstones() -> None:
    state = replay(
        schema_kv("a", 1, 1, P1),
        schema_kv("a", 2, 2, P2),
        schema_kv("a", 2, 2, P2, deleted=True),
        schema_kv("b", 1, 3, P3),
        raw({"keytype": "SCHEMA", "subject": "b", "version": 1, "magic": 1}, None),
    )
    assert state.versions("a") == [1]
    assert state.subjects() == ["a"]
    assert state.schema_by_id(2) == P2  # ids stay resolvable: old messages still carry them
    assert state.max_id == 3


def test_malformed_records_are_skipped() -> None:
    state = replay(
        (b"not json", b"{}"),
        (b'{"keytype":"SCHEMA","subject":"a","version":"one","magic":1}', b"{}"),
        (b'{"keytype":"SCHEMA","subject":"a","version":1,"magic":1}', b'{"id":"x"}'),
        (b'{"keytype":"CONFIG","subject":"a","magic":0}', b'{"compatibilityLevel":"SIDEWAYS"}'),
        (b'["a"]', None),
        (None, b"{}"),  # type: ignore[arg-type]
    )
    assert state.subjects() == []
    assert state.level("a") is None


def test_config_records_and_their_removal() -> None:
    state = replay(config_record("FULL"), config_record("NONE", "a"))
    assert state.level() == "FULL"
    assert state.effective_level("a") == "NONE"
    assert state.effective_level("b") == "FULL"
    state.apply(*config_record(None, "a"))
    assert state.level("a") is None
    assert state.effective_level("a") == "FULL"
    assert RegistryState().effective_level("x") == "BACKWARD"


def test_version_lookups_raise_the_right_not_found() -> None:
    state = replay(schema_kv("a", 1, 1, P1))
    with pytest.raises(SubjectNotFound, match='"b"'):
        state.version("b", None)
    with pytest.raises(VersionNotFound, match='version 9 of subject "a"'):
        state.version("a", 9)


def test_plan_registration_numbers_versions_and_reuses_ids_across_subjects() -> None:
    state = replay(schema_kv("a", 1, 1, P1))
    assert state.plan_registration("a", P1) is None  # already there: nothing to write
    assert state.plan_registration("a", P2) == SchemaVersion("a", 2, 2, P2)
    assert state.plan_registration("b", P1) == SchemaVersion("b", 1, 1, P1)


def test_plan_registration_refuses_incompatible_naming_the_field() -> None:
    state = replay(schema_kv("a", 1, 1, P1))
    with pytest.raises(IncompatibleSchema) as caught:
        state.plan_registration("a", P3)
    assert caught.value.messages == [
        'field "phone" of record gov.xhub.Person: added without a default (a BACKWARD reader '
        "cannot read old data)"
    ]
    assert '"a"' in str(caught.value)
    state.apply(*config_record("NONE", "a"))
    assert state.plan_registration("a", P3) == SchemaVersion("a", 2, 2, P3)


def test_memory_store_log_replays_to_the_same_state() -> None:
    store = MemorySchemaStore()
    a1 = store.register("a", PERSON)
    a2 = store.register("a", PERSON_PHONE)
    b1 = store.register("b", PERSON)
    store.set_level("FULL", "b")
    assert store.register("a", PERSON) == a1  # idempotent
    assert (a1.id, a2.id, b1.id) == (1, 2, 1)

    again = MemorySchemaStore(store.log)
    assert again.get("a") == a2
    assert again.get("b", 1) == b1
    assert again.get_level("b") == "FULL"
    assert again.register("c", PERSON_BAD).id == 3


def test_register_many_is_one_append_with_ids_as_one_by_one_would_give() -> None:
    store = MemorySchemaStore()
    store.register("a", PERSON)
    other = {**PERSON, "name": "Other"}
    versions = store.register_many(
        [("a", PERSON_PHONE), ("b", PERSON), ("c", other), ("d", other), ("e", PERSON)]
    )
    assert [(v.subject, v.version, v.id) for v in versions] == [
        ("a", 2, 2),  # a new text: the next id
        ("b", 1, 1),  # a known text keeps its id
        ("c", 1, 3),
        ("d", 1, 3),  # the same new text twice in one batch: one id
        ("e", 1, 1),
    ]
    assert len(store.log) == 6
    assert store.register_many([("a", PERSON_PHONE), ("b", PERSON)]) == versions[:2]  # idempotent
    assert len(store.log) == 6
    assert MemorySchemaStore(store.log).get("d") == versions[3]  # the log replays to the same state


def test_register_many_writes_nothing_when_one_is_incompatible() -> None:
    store = MemorySchemaStore()
    store.register("a", PERSON)
    with pytest.raises(IncompatibleSchema):
        store.register_many([("b", PERSON), ("a", PERSON_BAD)])
    assert len(store.log) == 1


def test_the_store_registrar_answers_as_the_http_one() -> None:
    from hub.provision.registrar import StoreRegistrar

    registrar = StoreRegistrar(MemorySchemaStore())
    assert registrar.latest("a") is None
    assert registrar.incompatibilities("a", PERSON_BAD) == []  # a new subject takes anything
    assert registrar.register_many([("a", PERSON), ("b", PERSON)]) == [1, 1]
    assert registrar.latest("a") == json.loads(P1)
    assert registrar.subjects() == ["a", "b"]
    assert registrar.incompatibilities("a", PERSON_BAD) != []
    assert registrar.register("a", PERSON_PHONE) == 2
