"""``xhub connector run|install``: thin wrappers the hub's CLI wires in (and ``python -m connectors``).

xhub connector run --config FILE [--snapshot [SOURCE ...]]
xhub connector install --config FILE
xhub connector uninstall --config FILE
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hub.core.errors import ConfigError, HubError


def run(config_path: str | Path, *, snapshot: bool | Sequence[str] = False) -> int:
    """Run the sidecar a config file describes until SIGTERM/SIGINT; return the exit code.

    Args:
        config_path: the connector config file.
        snapshot: re-snapshot these sources at start (True: all that can).

    Raises:
        ConfigError: the config has problems (each with file and line).
    """
    # A SIGTERM while the config loads must stop the sidecar cleanly too, not kill it half-started.
    early_stop = threading.Event()
    previous = _catch_stop_signals(early_stop)
    try:
        from connectors.config import load_connector_config
        from connectors.runtime.sidecar import Sidecar

        sidecar = Sidecar(load_connector_config(config_path), snapshot=snapshot)
    except BaseException:
        _restore_signals(previous)
        raise
    if early_stop.is_set():
        sidecar.stop()
    return sidecar.run()


def _catch_stop_signals(event: threading.Event) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda *_: event.set())
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def install(config_path: str | Path) -> int:
    """Prepare the department databases of every source (change log, triggers, outbox); print what was done.

    Raises:
        ConfigError: the config has problems.
        InstallError: a table or column the config names is missing.
    """
    from connectors.config import load_connector_config
    from connectors.sources import PostgresSourceConfig, build_source, choose_capture

    loaded = load_connector_config(config_path)
    done = 0
    for configured in loaded.config.sources:
        source_config = configured
        if isinstance(configured, PostgresSourceConfig):
            choice = choose_capture(configured, base_dir=loaded.base_dir)
            print(f'source "{configured.name}": capture {choice.config.type} ({choice.reason})')
            source_config = choice.config
        source = build_source(source_config, resources=loaded.resources, base_dir=loaded.base_dir)
        lines = source.install()
        if not lines:
            print(f'source "{source.name}" ({source.kind}): nothing to install')
        for line in lines:
            print(f'source "{source.name}": {line}')
            done += line.startswith(("created", "replaced"))
    print(f"{done} object(s) created or replaced")
    return 0


def uninstall(config_path: str | Path) -> int:
    """Drop what holds resources on the department side (replication slots, publications); print it.

    Change-log tables and triggers stay (they hold the department's history; drop them by hand).

    Raises:
        ConfigError: the config has problems.
        InstallError: a slot is still in use (a sidecar runs).
    """
    from connectors.config import load_connector_config
    from connectors.sources import build_source

    loaded = load_connector_config(config_path)
    done = 0
    for source_config in loaded.config.sources:
        source = build_source(source_config, resources=loaded.resources, base_dir=loaded.base_dir)
        lines = source.uninstall()
        if not lines:
            print(f'source "{source.name}" ({source.kind}): nothing to uninstall')
        for line in lines:
            print(f'source "{source.name}": {line}')
            done += line.startswith("dropped")
    print(f"{done} object(s) dropped")
    return 0


def _run_command(args: argparse.Namespace) -> int:
    snapshot: bool | list[str] = False
    if args.snapshot is not None:
        snapshot = list(args.snapshot) or True
    return run(args.config, snapshot=snapshot)


def _install_command(args: argparse.Namespace) -> int:
    return install(args.config)


def _uninstall_command(args: argparse.Namespace) -> int:
    return uninstall(args.config)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``connector run|install`` to a parent parser's subcommands; each sets ``func(args) -> int``."""
    parser = subparsers.add_parser("connector", help="run or install a department sidecar")
    sub = parser.add_subparsers(dest="connector_command", required=True, metavar="COMMAND")
    p = sub.add_parser("run", help="run the sidecar (its sources and sinks) until SIGTERM")
    p.add_argument("--config", required=True, help="connector config file (YAML)")
    p.add_argument(
        "--snapshot",
        nargs="*",
        metavar="SOURCE",
        default=None,
        help="publish a fresh snapshot (op=r) of these sources, or of all when none is named",
    )
    p.set_defaults(func=_run_command)
    p = sub.add_parser(
        "install",
        help="create the change-log table, triggers and outbox, or the publication and replication slot",
    )
    p.add_argument("--config", required=True, help="connector config file (YAML)")
    p.set_defaults(func=_install_command)
    p = sub.add_parser("uninstall", help="drop the replication slot and publication of pg_logical sources")
    p.add_argument("--config", required=True, help="connector config file (YAML)")
    p.set_defaults(func=_uninstall_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m connectors run|install --config FILE``."""
    parser = argparse.ArgumentParser(
        prog="python -m connectors", description="exchange-hub department sidecar"
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser(subparsers)
    # Also accept "python -m connectors run ..." without the "connector" word.
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw and raw[0] in ("run", "install", "uninstall"):
        raw.insert(0, "connector")
    elif (
        raw
        and raw[0].startswith("--log-level")
        and len(raw) > 2
        and raw[2] in ("run", "install", "uninstall")
    ):
        raw.insert(2, "connector")
    args = parser.parse_args(raw)
    from hub.core.log import configure_logging

    configure_logging(args.log_level)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} error(s)", file=sys.stderr)
        return 1
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
