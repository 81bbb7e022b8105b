"""Every broken config in tests/fixtures/broken_configs is refused with file:line, never a traceback.

Each case folder holds ``config/`` (files laid over a copy of deploy/demo/config: replaced or added),
``expected.txt`` (substrings that must all appear in the output, the first naming file:line, so a case
cannot pass for the wrong reason), and optionally ``remove.txt`` (demo files to delete first),
``unexpected.txt`` (substrings that must not appear: the misleading follow-on errors) and ``note.txt``
(why a case has no line: only when the file itself does not exist or is too large to read).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from hub.cli import main
from hub.config import load_config, loader
from hub.config.yaml_lines import MAX_BYTES, LocatedYaml, load_located

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "deploy" / "demo" / "config"
CORPUS = REPO / "tests" / "fixtures" / "broken_configs"
# The format `xhub validate` prints: "error: FILE:LINE at PATH: MESSAGE" (" at PATH" when there is one).
LOCATED = re.compile(r"^error: [^\s:]+\.(?:yaml|yml|avsc):\d+(?: at \S+)?: \S", re.MULTILINE)
UNLOCATED = re.compile(r"^error: [^\s:]+\.(?:yaml|yml|avsc): \S", re.MULTILINE)
# A handful also run as `python -m hub.cli validate`, the way an integrator runs it.
IN_SUBPROCESS = {
    "hubs-admin-port-not-a-number",
    "res-schema-not-a-record",
    "sub-naive-from-aware-until",
    "sub-merge-key",
    "yaml-billion-laughs",
    "enc-utf-16-with-bom",
}


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _materialise(case: Path, into: Path) -> Path:
    root = into / case.name
    shutil.copytree(DEMO, root)
    for rel in _lines(case / "remove.txt"):
        (root / rel).unlink()
    if (case / "config").is_dir():  # a case that only removes files has none (git keeps no empty folder)
        shutil.copytree(case / "config", root, dirs_exist_ok=True)
    return root


def _huge_case(into: Path) -> tuple[str, Path]:
    """A department file over the size limit, written at test time rather than committed."""
    root = into / "huge-file"
    shutil.copytree(DEMO, root)
    entry = "  - id: d{0}\n    name: 部门 {0} (a department of a very long file)\n"
    with (root / "departments" / "zz_huge.yaml").open("w", encoding="utf-8") as out:
        out.write("departments:\n")
        i = 0
        while out.tell() <= MAX_BYTES:
            out.write(entry.format(i))
            i += 1
    return "huge-file", root


def _in_process(root: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["validate", str(root)])
    except BaseException:  # a traceback is exactly what this test hunts
        return -1, out.getvalue() + err.getvalue() + traceback.format_exc()
    return code, out.getvalue() + err.getvalue()


def _subprocess(root: Path) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli", "validate", str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _judge(
    name: str, code: int, output: str, expected: list[str], unexpected: list[str], *, no_line: bool
) -> list[str]:
    wrong = []
    if code in (0, -1):
        wrong.append(f"exit status {code}")
    if "Traceback" in output:
        wrong.append("a Python traceback")
    if not (LOCATED.search(output) or (no_line and UNLOCATED.search(output))):
        wrong.append("no line of the form `error: file:line: message`")
    wrong.extend(f"missing {text!r}" for text in expected if text not in output)
    wrong.extend(f"unexpected {text!r}" for text in unexpected if text in output)
    return [f"{name}: {w}\n{output}" for w in wrong]


def test_corpus_is_large_and_its_base_is_valid() -> None:
    cases = [d for d in CORPUS.iterdir() if d.is_dir()]
    assert len(cases) >= 60
    for case in cases:
        assert _lines(case / "expected.txt"), f"{case.name} has no expected.txt"
    load_config(DEMO)  # every case fails because of its own change, not because the demo is broken


@pytest.fixture
def parse_demo_files_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pure-Python YAML is slow: the demo files every case shares are parsed once, not once a case.

    Keyed by the file's bytes, so a case's own (changed) files are always parsed afresh.
    """
    parsed: dict[tuple[bytes, str], LocatedYaml] = {}

    def cached(path: Path, display: str) -> LocatedYaml:
        key = (path.read_bytes(), display)
        if key not in parsed:
            parsed[key] = load_located(path, display)
        return parsed[key]

    monkeypatch.setattr(loader, "load_located", cached)


@pytest.mark.usefixtures("parse_demo_files_once")
def test_every_broken_config_is_refused_with_file_and_line(tmp_path: Path) -> None:
    failures: list[str] = []
    cases = sorted(d for d in CORPUS.iterdir() if d.is_dir())
    for case in cases:
        root = _materialise(case, tmp_path)
        expected, unexpected = _lines(case / "expected.txt"), _lines(case / "unexpected.txt")
        no_line = (case / "note.txt").exists()
        code, output = _in_process(root)
        failures.extend(_judge(case.name, code, output, expected, unexpected, no_line=no_line))
        if case.name in IN_SUBPROCESS:
            code, output = _subprocess(root)
            failures.extend(
                _judge(f"{case.name} (subprocess)", code, output, expected, unexpected, no_line=no_line)
            )
        shutil.rmtree(root)

    name, root = _huge_case(tmp_path)
    code, output = _subprocess(root)
    huge_expected = ["departments/zz_huge.yaml: file is", f"more than the {MAX_BYTES:,} bytes"]
    failures.extend(_judge(name, code, output, huge_expected, [], no_line=True))  # too large to read: no line

    assert not failures, f"{len(failures)} problems:\n" + "\n".join(failures)


@pytest.mark.parametrize(
    "case", ["yaml-billion-laughs", "yaml-deep-flow-nesting", "yaml-self-referencing-alias"]
)
def test_hostile_yaml_is_refused_quickly(case: str, tmp_path: Path) -> None:
    root = _materialise(CORPUS / case, tmp_path)
    started = time.monotonic()
    code, _ = _in_process(root)
    assert code == 1
    assert time.monotonic() - started < 10
