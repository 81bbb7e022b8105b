"""The image's entrypoint, run outside a container: what `ENTRYPOINT ["xhub"]` starts is the console
script of pyproject.toml, and it validates the demo config as a container would.

The image itself was built and smoke-tested with buildah on the machine this was written on (README,
Deploying); a unit test cannot build images, so this keeps the command line honest between builds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "deploy/container/Containerfile"


def _entrypoints() -> list[list[str]]:
    text = CONTAINERFILE.read_text(encoding="utf-8")
    return [json.loads(m) for m in re.findall(r"^ENTRYPOINT (\[.*\])$", text, re.MULTILINE)]


def test_entrypoint_is_the_xhub_console_script() -> None:
    assert ["xhub"] in _entrypoints()
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["xhub"] == "hub.cli:main"


def test_entrypoint_command_validates_the_demo_config() -> None:
    # `xhub validate CONFIG` as the container runs it: hub.cli:main in a fresh interpreter.
    code = "import sys; from hub.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", code, "validate", str(REPO / "deploy/demo/config")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ok (2 hubs" in result.stdout


def test_the_image_installs_the_project_pinned_by_the_constraints() -> None:
    text = CONTAINERFILE.read_text(encoding="utf-8")
    assert re.search(r"pip install -c constraints\.txt '\.\[", text)
    assert "USER 10001:10001" in text
