"""`xhub demo --federation` in a short form (issue 17 point 7): its three clusters (started and stopped by
the demo itself, on ports of their own), both courts' changes, a SIGKILL of the Pudong link midway, and
every check of its summary passing. The full form is `make demo-federation`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.demo.federation.harness import Federation
from hub.demo.federation.run import FederationOptions, run_federation_demo
from tests.fixtures.brokers import private_port

pytestmark = pytest.mark.kafka

PORT_BASE = private_port(19592, 5)  # Pudong's cluster; Xuhui's 10 above, the city's 20 above
REPO = Path(__file__).resolve().parents[2]


def test_the_federated_demo_checks_every_point_and_passes(tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    result = run_federation_demo(
        FederationOptions(duration=10, rate=8, port_base=PORT_BASE, workdir=workdir), repo=REPO
    )
    failed = [c.text for c in result.checks if not c.ok]
    assert result.passed, f"checks failed: {failed}"
    texts = " | ".join(c.text for c in result.checks)
    points = (
        "exactly once, pudong",
        "exactly once, xuhui",
        "position, in the city cluster",
        "SIGKILL",
        "masked",
        "cannot widen",
        "published terms",
        "provenance",
        "audit trace of a pudong",
        "audit trace of a xuhui",
        "lag per hop",
    )
    for point in points:
        assert point in texts, f"no check of {point!r} in the summary"
    # Everything it started, it stopped.
    assert Federation(REPO, workdir, port_base=PORT_BASE).clusters.running() == []
