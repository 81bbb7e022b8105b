"""Secrets never in config files, never printed (issue 15, point 7)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hub.cli import main
from hub.config.credentials import named_secret, process_secrets, secret_warnings

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"
SECRET = "s3cr3t-value-never-shown"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    root = tmp_path / "config"
    shutil.copytree(DEMO, root)
    return root


def test_the_demo_config_holds_no_secret() -> None:
    assert secret_warnings(DEMO) == []


def test_validate_warns_on_secrets_in_files_without_showing_them(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hubs = config / "hubs.yaml"
    text = hubs.read_text(encoding="utf-8")
    text = text.replace("    pseudonym_secret_env: XHUB_PUDONG_SECRET", f"    pseudonym_secret: {SECRET}", 1)
    hubs.write_text(text, encoding="utf-8")
    (config / "notes.yaml").write_text(
        f"# an integrator's scratch file\nsink: postgresql://app:{SECRET}@db.example/x\n"
        f"api_token: {SECRET}\nkey: |\n  -----BEGIN PRIVATE KEY-----\n  {SECRET}\n"
        "token_secret: push_token\npassword_env: XHUB_DB_PASSWORD\nempty_token: ''\n",
        encoding="utf-8",
    )
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "pseudonym_secret:" in t)
    warnings = secret_warnings(config)
    assert warnings == [
        f'hubs.yaml:{line}: "pseudonym_secret" holds a secret in the file: give it through an environment '
        "variable or a file of XHUB_SECRETS_DIR (value not shown)",
        "notes.yaml:2: a URL with a password: give it through an environment variable or a file of "
        "XHUB_SECRETS_DIR (value not shown)",
        'notes.yaml:3: "api_token" holds a secret in the file: give it through an environment variable or '
        "a file of XHUB_SECRETS_DIR (value not shown)",
        "notes.yaml:5: a private key: give it through an environment variable or a file of "
        "XHUB_SECRETS_DIR (value not shown)",
    ]
    (config / "notes.yaml").unlink()
    assert main(["validate", str(config)]) == 0
    out = capsys.readouterr()
    assert f"warning: hubs.yaml:{line}:" in out.err
    assert SECRET not in out.out + out.err


def test_secrets_come_from_the_environment_or_the_secrets_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XHUB_PUSH_TOKEN", raising=False)
    monkeypatch.delenv("XHUB_CONFIG_SIGNING_KEY", raising=False)
    monkeypatch.setenv("XHUB_SECRETS_DIR", str(tmp_path))
    assert named_secret("push_token") is None
    (tmp_path / "xhub_push_token").write_text(SECRET + "\n")
    (tmp_path / "xhub_config_signing_key").write_text(SECRET)
    token = named_secret("push_token")
    assert token is not None
    assert token.get_secret_value() == SECRET
    assert SECRET not in repr(token) + str(token)
    secrets = process_secrets()
    assert secrets.config_signing_key is not None
    assert SECRET not in repr(secrets)
    monkeypatch.setenv("XHUB_PUSH_TOKEN", "from-env")
    assert named_secret("push_token").get_secret_value() == "from-env"  # type: ignore[union-attr]


def test_the_hub_secret_comes_from_the_secrets_directory_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.config import load_config
    from hub.config.secrets import hub_secret
    from hub.core.errors import ConfigError

    cfg = load_config(DEMO)
    monkeypatch.delenv("XHUB_PUDONG_SECRET", raising=False)
    monkeypatch.setenv("XHUB_SECRETS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="XHUB_SECRETS_DIR") as info:
        hub_secret(cfg, "pudong")
    assert SECRET not in str(info.value)
    (tmp_path / "xhub_pudong_secret").write_text(SECRET + "\n")
    assert hub_secret(cfg, "pudong") == SECRET.encode()
