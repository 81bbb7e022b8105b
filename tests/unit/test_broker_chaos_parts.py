"""Pure parts of the broker chaos test: finding a node's process, naming the rows an inbox misses.

The private clusters' fixture finds a node's process in what ``kafka.sh status`` prints.

It used to read the pid file under a name of its own making (``kafka-cluster-<port>.pid``), which is the
plaintext name: on a secure cluster (kafka.sh's default, and CI's) the file is
``kafka-secure-cluster-<port>.pid``, and the broker chaos test failed before any broker was touched.
"""

from __future__ import annotations

import pytest

from tests.fixtures.brokers import pid_in_status
from tests.integration.broker_chaos import row_ranges

STATUS = """\
kafka.sh: running (pid 4101) on 127.0.0.1:29110, Kafka 4.3.1
kafka.sh: running (pid 4102) on 127.0.0.1:29112, Kafka 4.3.1
kafka.sh: running (pid 4103) on 127.0.0.1:29114, Kafka 4.3.1
"""


def test_the_pid_of_the_node_on_that_port() -> None:
    assert [pid_in_status(STATUS, port) for port in (29114, 29110, 29112)] == [4103, 4101, 4102]


def test_a_node_not_running_fails_naming_its_port() -> None:
    status = STATUS.replace("running (pid 4103) on", "not running on")
    with pytest.raises(pytest.fail.Exception, match="no broker running on port 29114"):
        pid_in_status(status, 29114)


def test_a_port_that_only_begins_like_the_nodes_is_not_it() -> None:
    with pytest.raises(pytest.fail.Exception, match="port 2911"):
        pid_in_status(STATUS, 2911)


def test_rows_missing_from_an_inbox_are_named_as_ranges() -> None:
    assert row_ranges([205, 206, 207, 409, 411, 412]) == "#205-#207, #409, #411-#412"
    assert row_ranges([]) == "none"
