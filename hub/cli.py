"""xhub: the command line. Thin: parse arguments, call the packages, print, set the exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from hub.core.errors import ConfigError, HubError

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir

Command = Callable[[argparse.Namespace], int]


def _validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hub.config import load_config
    from hub.config.credentials import secret_warnings
    from hub.config.layout import layout_warnings

    cfg = load_config(args.config_dir)  # the one validation path: cross-checks and every plan compiled
    # Secrets written into YAML, and the folder layout CODEOWNERS relies on (errors are above).
    for warning in [*secret_warnings(Path(args.config_dir)), *layout_warnings(cfg)]:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"{args.config_dir}: ok ({len(cfg.hubs)} hubs, {len(cfg.departments)} departments, "
        f"{len(cfg.resources)} resources, {len(cfg.subscriptions)} subscriptions)"
    )
    return 0


def _schema(args: argparse.Namespace) -> int:
    from hub.config import json_schema

    print(json.dumps(json_schema(), ensure_ascii=False, indent=2))
    return 0


def _plan(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from hub.config import compile_config, load_config
    from hub.provision.explain import explain, explain_text

    cfg = load_config(args.config_dir)
    if args.output is not None:
        return _plan_output(args, cfg)
    compiled = compile_config(cfg, now=datetime.now(UTC))
    if args.terms is not None:
        from hub.config.linked import published_terms

        print(json.dumps(published_terms(cfg, compiled.plans, args.terms), ensure_ascii=False, indent=2))
        return 0
    policies = explain(compiled)
    if args.policies_only:
        print(json.dumps(policies, ensure_ascii=False, indent=2) if args.json else explain_text(policies))
        return 0
    from hub.provision.session import provision_session

    with provision_session(cfg) as session:
        changes = session.plan()
    if args.json:
        print(json.dumps({**changes.to_json(), "policies": policies}, ensure_ascii=False, indent=2))
    else:
        print(changes.to_text())
        print("\n== policies ==")
        print(explain_text(policies))
    return 0


def _plan_output(args: argparse.Namespace, cfg: ConfigDir) -> int:
    """`xhub plan --output strimzi DIR`: the cluster side as Strimzi resources; no cluster is contacted."""
    from datetime import UTC, datetime
    from pathlib import Path

    from hub.provision.strimzi import StrimziTarget, strimzi_resources, write_resources

    kind, folder = args.output
    if kind != "strimzi":
        raise ConfigError(f"--output {kind}: the only output format is strimzi")
    if not args.strimzi_cluster:
        raise ConfigError(
            "--output strimzi needs --strimzi-cluster NAME (the Kafka resource of the operator)"
        )
    target = StrimziTarget(
        cluster=args.strimzi_cluster,
        namespace=args.namespace,
        api_version=args.strimzi_api_version,
        authentication="tls-external" if args.external_certificates else "tls",
        replicas=args.replicas,
    )
    resources = strimzi_resources(cfg, datetime.now(UTC), target)
    for path in write_resources(resources, Path(folder)):
        print(f"wrote {path}")
    print(
        f"{len(resources.topics)} KafkaTopics, {len(resources.users)} KafkaUsers for cluster {target.cluster}"
    )
    return 0


def _apply(args: argparse.Namespace) -> int:
    from hub.config import load_config
    from hub.provision.session import provision_session

    cfg = load_config(args.config_dir)
    with provision_session(cfg) as session:
        changes, result = session.apply(allow_delete=args.allow_delete)
    for line in result.done:
        print(f"done: {line}")
    for line in result.skipped:
        print(f"skipped: {line}")
    if changes.empty:
        print("nothing to do: the cluster matches the config")
    return 0


def _credentials(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hub.config import load_config
    from hub.provision.credentials import write_credentials

    out = Path(args.out)
    for party in write_credentials(load_config(args.config_dir), out):
        print(f"{party.principal:<28} {party.kind:<11} {out / (party.name + '.pem')}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from hub.app import run_hub
    from hub.config import load_config

    cfg = load_config(args.config_dir)
    return run_hub(
        cfg, args.hub, worker_id=args.worker_id, admin_host=args.admin_host, admin_port=args.admin_port
    )


def _registry(args: argparse.Namespace) -> int:
    from hub.app import run_registry
    from hub.config import load_config

    return run_registry(load_config(args.config_dir), host=args.host, port=args.port)


def _k8s(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hub.config import load_config
    from hub.deploy.render import ClusterSettings, write_manifests

    config_dir = Path(args.config_dir)
    settings = ClusterSettings(
        hub=args.hub,
        namespace=args.namespace,
        image=args.image,
        workers=args.workers,
        bootstrap_servers=args.bootstrap,
    )
    for path in write_manifests(load_config(config_dir), config_dir, settings, Path(args.out)):
        print(path)
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.federation:
        from hub.demo.federation.run import FederationOptions, run_federation_demo

        options = FederationOptions(
            duration=args.duration,
            rate=args.rate,
            port_base=args.port_base,
            plaintext=args.plaintext,
            kill_link=not args.no_kill,
        )
        return 0 if run_federation_demo(options).passed else 1
    from hub.demo.run import run_demo

    return run_demo(args.bootstrap, args.duration, rate=args.rate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xhub", description="exchange-hub: real-time data sharing between departments"
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a config directory; report every error with file and line")
    p.add_argument("config_dir")
    p.set_defaults(func=_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of the config files (for editors)")
    p.set_defaults(func=_schema)

    _add_plan_parser(sub)

    p = sub.add_parser("apply", help="create/update topics, register schemas, publish config (idempotent)")
    p.add_argument("config_dir")
    p.add_argument(
        "--allow-delete", action="store_true", help="also delete xhub.* topics no longer configured"
    )
    p.set_defaults(func=_apply)

    p = sub.add_parser(
        "credentials", help="a local CA and a certificate per party of a config (mutual TLS identities)"
    )
    p.add_argument("config_dir")
    p.add_argument("--out", required=True, help="folder of the CA, certificates and keys (keys 0600)")
    p.set_defaults(func=_credentials)

    p = sub.add_parser("run", help="run one worker of one exchange hub until SIGTERM")
    p.add_argument("config_dir")
    p.add_argument("--hub", required=True, help="hub name from hubs.yaml")
    p.add_argument("--worker-id", type=int, default=0, help="distinct per worker of the same hub (0, 1, ...)")
    p.add_argument(
        "--admin-host", default="127.0.0.1", help="interface of the admin port (0.0.0.0 in a pod, for probes)"
    )
    p.add_argument(
        "--admin-port", type=int, default=None, help="admin port (default: the hub's admin_port + worker id)"
    )
    p.set_defaults(func=_run)

    p = sub.add_parser(
        "registry", help="serve the built-in schema registry alone until SIGTERM (a cluster's)"
    )
    p.add_argument("config_dir")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=8081)
    p.set_defaults(func=_registry)

    p = sub.add_parser("k8s", help="write Kubernetes manifests of a hub (and a department example)")
    p.add_argument("config_dir")
    p.add_argument("--hub", required=True, help="hub name from hubs.yaml")
    p.add_argument("--out", required=True, help="folder the manifests are written to")
    p.add_argument("--namespace", default="xhub")
    p.add_argument("--image", default="localhost/exchange-hub:0.1.0", help="the image of deploy/container")
    p.add_argument("--workers", type=int, default=3, help="hub workers (pods)")
    p.add_argument(
        "--bootstrap", required=True, help="Kafka bootstrap servers as seen from the pods (host:port,...)"
    )
    p.set_defaults(func=_k8s)

    p = sub.add_parser("demo", help="the main job: a credit joint-punishment exchange, live, with a summary")
    p.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    p.add_argument("--duration", type=float, default=30, help="seconds of changes to make")
    p.add_argument("--rate", type=float, default=20, help="changes per second")
    federation = p.add_argument_group("--federation: two districts and the city, each on a cluster it starts")
    federation.add_argument(
        "--federation",
        action="store_true",
        help="Pudong and Xuhui district hubs -> the city hub -> the city's public credit centre",
    )
    federation.add_argument(
        "--port-base",
        type=int,
        default=39092,
        help="Pudong's cluster on this port, Xuhui's on +10, the city's on +20 (default 39092)",
    )
    federation.add_argument("--plaintext", action="store_true", help="clusters without TLS and ACLs")
    federation.add_argument("--no-kill", action="store_true", help="do not SIGKILL the Pudong link midway")
    # The demo tells its own story on the terminal; the in-process hub's info lines would drown it
    # (--log-level INFO or XHUB_LOG_LEVEL bring them back; the sidecars log to files in any case).
    p.set_defaults(func=_demo, quiet_log_level="WARNING")

    _add_package_parsers(sub)
    return parser


def _add_plan_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`xhub plan`, with the options of its Strimzi output."""
    p = sub.add_parser("plan", help="show what apply would change on the cluster (topics, schemas, configs)")
    p.add_argument("config_dir")
    p.add_argument("--json", action="store_true", help="machine-readable plan")
    p.add_argument(
        "--policies-only",
        action="store_true",
        help="only explain each subscription's policy (fields, masks, filter fields, withheld); no cluster",
    )
    p.add_argument(
        "--terms",
        default=None,
        metavar="SUBSCRIPTION",
        help="print the delivery terms of a hub link's subscription (JSON) for the city config's copy; "
        "no cluster",
    )
    p.add_argument(
        "--output",
        nargs=2,
        metavar=("FORMAT", "DIR"),
        default=None,
        help="write the cluster side as resources instead (FORMAT: strimzi); no cluster is contacted",
    )
    strimzi = p.add_argument_group("--output strimzi")
    strimzi.add_argument("--strimzi-cluster", default=None, help="the Kafka resource's name (required)")
    strimzi.add_argument("--namespace", default=None, help="namespace written into every resource")
    strimzi.add_argument(
        "--strimzi-api-version",
        choices=("v1beta2", "v1"),
        default="v1beta2",
        help="kafka.strimzi.io version (default v1beta2; v1 for Strimzi 1.0 and later)",
    )
    strimzi.add_argument(
        "--external-certificates",
        action="store_true",
        help="users authenticate with `xhub credentials` certificates (tls-external), not operator-issued",
    )
    strimzi.add_argument("--replicas", type=int, default=None, help="replication factor of every topic")
    p.set_defaults(func=_plan)


def _add_package_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands whose argument parsing lives beside their code (monitor, audit, governance, the sidecar).

    The sidecar is the connectors package: the CLI is the one place where the hub side names it, so that
    departments and operators have a single `xhub` command.
    """
    from connectors.cli import add_parser as add_connector_parser
    from hub.audit.cli import add_parsers as add_audit_parsers
    from hub.governance.cli import add_parsers as add_governance_parsers
    from hub.monitor.cli import add_parsers as add_monitor_parsers

    add_monitor_parsers(sub)
    add_audit_parsers(sub)
    add_governance_parsers(sub)
    add_connector_parser(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from hub.core.log import configure_logging

    configure_logging(
        args.log_level or os.environ.get("XHUB_LOG_LEVEL") or getattr(args, "quiet_log_level", None)
    )
    func: Command = args.func
    try:
        return func(args)
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


if __name__ == "__main__":
    sys.exit(main())
