"""``xhub transactions`` on the real broker: a transaction its producer is running is listed and never
aborted, even with --abort; once committed it is gone. (Which open transactions are hanging is decided by
pure logic, tests/unit/test_hanging_transactions.py: a real hanging one needs a broker restart at the
wrong moment, tests/integration/test_sidecar_broker_restart.py.)"""

from __future__ import annotations

import io
from pathlib import Path

from hub.core import names
from hub.core.kafka import make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.monitor.transactions import transactions_command
from tests.fixtures.hubkit import apply_config


def _run(root: Path, **options: object) -> tuple[int, str]:
    out = io.StringIO()
    code = transactions_command(str(root), out=out, **options)  # type: ignore[arg-type]
    return code, out.getvalue()


def test_a_running_transaction_is_listed_not_aborted_and_gone_once_committed(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]]
) -> None:
    root, r = demo_config
    apply_config(root)
    topic = names.position_topic(r["court"])
    producer = make_producer(kafka, "txn-test", transactional_id=f"xhub-src-{r['court']}-test")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(topic, key=b"k", value=b"{}").get(timeout=30)

        code, text = _run(root, older_than_s=0, abort=True)
        assert code == 0, text
        assert f"open     {topic}-0 " in text, text
        assert "Ongoing" in text, "the coordinator's word is shown"
        assert "HANGING" not in text, text
        assert "ABORTED" not in text, text
        assert _run(root, older_than_s=3600)[1].count("\n") == 1, "younger than --older-than: not listed"
        producer.commit_transaction()
    finally:
        producer.close(timeout=5)
    code, text = _run(root, older_than_s=0)
    assert code == 0, text
    assert ": 0 open transactions" in text, text
