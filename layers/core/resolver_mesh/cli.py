"""The `resolver-mesh` command: plan, apply, hubs put|list|remove, replay, demo, emulator.

Settings come from the same environment variables as the Lambda (see `resolver_mesh.config`);
flags override them. boto3's normal configuration applies (profiles, `AWS_ENDPOINT_URL`).
Exit status: 0 when everything is in step, 1 on errors, conflicts or refusals, 2 on bad usage,
130 when Ctrl-C stopped a plan or apply (no new call started; the calls in flight finished).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resolver_mesh.config import ConfigError, Settings, comma_list, region_list
from resolver_mesh.desired import parse_hubs
from resolver_mesh.models import Request
from resolver_mesh.render import Style, hubs_text, report_text
from resolver_mesh.triggers import request_from_event

if TYPE_CHECKING:
    from resolver_mesh.reconcile import Reconciler

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def _settings_flags() -> argparse.ArgumentParser:
    # SUPPRESS: a flag may stand before or after the command without one hiding the other.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = common.add_argument_group("settings (override the environment variables)")
    group.add_argument("--table", dest="table_name", help="hubs table (HUBS_TABLE_NAME)")
    group.add_argument("--mesh-id", help="mesh id (MESH_ID)")
    group.add_argument("--home-region", help="Region of the hubs table (HOME_REGION)")
    group.add_argument(
        "--mesh-regions", help="comma-separated Regions a full resync sweeps (MESH_REGIONS)"
    )
    group.add_argument(
        "--excluded-regions", help="comma-separated Regions never read (EXCLUDED_REGIONS)"
    )
    group.add_argument(
        "--member-ous",
        help="comma-separated OU or root ids whose ACTIVE accounts are members (MEMBER_OUS)",
    )
    group.add_argument("--calls-per-second", type=float, help="rate per Region (CALLS_PER_SECOND)")
    group.add_argument("--delivery", help="how hub VPCs get the rules: rules or profile (DELIVERY)")
    group.add_argument("--profile", help="AWS profile (AWS_PROFILE)")
    group.add_argument("--json", action="store_true", help="machine-readable JSON output")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _settings_flags()
    parser = argparse.ArgumentParser(
        prog="resolver-mesh",
        description="Keep Route 53 Resolver forwarding rules in step with a table of hubs.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("plan", "show what a resync would change"), ("apply", "reconcile now")):
        sub = commands.add_parser(name, parents=[common], help=text, description=text)
        sub.add_argument("--regions", help="only change rules in these Regions (comma-separated)")
        if name == "apply":
            sub.add_argument("--force", action="store_true", help="apply past the safety guard")

    hubs = commands.add_parser("hubs", help="manage the hub items").add_subparsers(
        dest="hubs_command", required=True
    )
    hubs.add_parser("list", parents=[common], help="list the hub items")
    put = hubs.add_parser("put", parents=[common], help="add or replace a hub item")
    put.add_argument("region", nargs="?", help="the hub's Region, or the whole item as JSON")
    put.add_argument("--region", dest="hub_region", help="the hub's Region (instead of REGION)")
    put.add_argument("--vpc-id", help="the hub VPC (vpc_id)")
    put.add_argument(
        "--inbound-endpoint-id", help="its INBOUND Resolver endpoint, where peers forward to"
    )
    put.add_argument(
        "--outbound-endpoint-id",
        help="its OUTBOUND Resolver endpoint (without one the hub only answers, gets no rules)",
    )
    put.add_argument("--vpc-ids", nargs="+", metavar="VPC_ID", help="workload VPCs")
    put.add_argument("--domains", nargs="+", metavar="TEMPLATE", help="e.g. '{region}.example'")
    put.add_argument(
        "--peers", nargs="+", metavar="REGION", help="the hubs it forwards to (default: all others)"
    )
    put.add_argument("--disabled", action="store_true", help="store the hub as enabled=false")
    put.add_argument("--description", help="free text, shown by 'hubs list'")
    put.add_argument("--item", help="the whole item as JSON, or @FILE, or @- for stdin")
    put.add_argument("--file", help="the whole item as a JSON file (like --item @FILE)")
    put.add_argument(
        "--no-check",
        action="store_true",
        help="store without checking the VPCs and endpoints in AWS (offline use)",
    )
    remove = hubs.add_parser("remove", parents=[common], help="remove a hub item")
    remove.add_argument("region", nargs="?", help="the hub's Region")
    remove.add_argument("--region", dest="hub_region", help="the hub's Region (instead of REGION)")

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="show (or, with --apply, make) the reconcile that an event file leads to",
    )
    replay.add_argument("event_file", help="a file of events/, or any event the function takes")
    replay.add_argument("--apply", action="store_true", help="reconcile, not only plan")
    replay.add_argument("--force", action="store_true", help="apply past the safety guard")

    text = "show how every mesh name resolves from every hub and workload VPC"
    verify = commands.add_parser("verify", parents=[common], help=text, description=text)
    verify.add_argument(
        "--format",
        choices=("text", "json", "mermaid"),
        default=None,
        help="text (a matrix, the default), json (same as --json) or mermaid (a diagram)",
    )

    table = commands.add_parser("table", help="the hubs table").add_subparsers(
        dest="table_command", required=True
    )
    text = "create the hubs table (--table) as template.yaml declares it, unless it exists"
    table.add_parser("create", parents=[common], help=text, description=text)

    demo = commands.add_parser("demo", help="run the mesh on a local AWS emulator")
    demo.add_argument("--port", type=int, default=0, help="emulator port (default: any free)")

    text = "serve the local AWS emulator (moto with this project's extensions) until Ctrl-C"
    emulator = commands.add_parser("emulator", help=text, description=text)
    emulator.add_argument("--port", type=int, default=0, help="port (default: any free)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    regions = getattr(args, "mesh_regions", None)
    excluded = getattr(args, "excluded_regions", None)
    ous = getattr(args, "member_ous", None)
    return Settings.from_env(
        table_name=getattr(args, "table_name", None),
        mesh_id=getattr(args, "mesh_id", None),
        home_region=getattr(args, "home_region", None),
        mesh_regions=region_list(regions) if regions is not None else None,
        excluded_regions=region_list(excluded) if excluded is not None else None,
        calls_per_second=getattr(args, "calls_per_second", None),
        member_ous=comma_list(ous) if ous is not None else None,
        delivery=getattr(args, "delivery", None),
    )


def _json_value(value: Any) -> Any:
    """DynamoDB values in JSON: string sets as sorted lists, numbers as numbers."""
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    as_json = getattr(args, "json", False)
    print(json.dumps(data, indent=2, default=_json_value) if as_json else text)


# The flags that make an item field by field (`hubs put REGION --vpc-id ...`).
_FIELD_FLAGS = {
    "vpc_id": "--vpc-id",
    "inbound_endpoint_id": "--inbound-endpoint-id",
    "outbound_endpoint_id": "--outbound-endpoint-id",
    "vpc_ids": "--vpc-ids",
    "domains": "--domains",
    "peers": "--peers",
    "disabled": "--disabled",
    "description": "--description",
}
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number"}


def _hub_region(args: argparse.Namespace) -> str | None:
    """The hub's Region, from REGION or --region (both only when they agree). A REGION that is
    JSON is the whole item: it becomes `args.item`."""
    region, flag = getattr(args, "region", None), getattr(args, "hub_region", None)
    if region and region.lstrip().startswith("{"):
        if getattr(args, "item", None) or getattr(args, "file", None):
            raise ValueError("give the item once: as REGION, --item or --file")
        args.item, region = region, None
    if region and flag and region != flag:
        raise ValueError(f"REGION {region} and --region {flag} differ: give the Region once")
    return region or flag


def _whole_item(where: str, text: str) -> dict[str, Any]:
    """The JSON object in `text`; a ValueError naming `where` and the position otherwise."""
    try:
        item = json.loads(text)
    except json.JSONDecodeError as error:
        position = f"line {error.lineno} column {error.colno}"
        raise ValueError(f"{where}: {position}: {error.msg}") from None
    if not isinstance(item, dict):
        kind = "true or false" if isinstance(item, bool) else _JSON_KINDS.get(type(item), "null")
        raise ValueError(f"{where}: the item must be a JSON object, not {kind}")
    return item


def _item_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The item to store: whole (--file, --item, or REGION as JSON) or made of REGION and the
    field flags, never both. A whole item's `region` must be REGION's when both are given."""
    if args.file and args.item:
        raise ValueError("give --item or --file, not both")
    if args.file or args.item:
        if args.file:
            where, text = args.file, Path(args.file).read_text()
        elif args.item == "@-":
            where, text = "stdin", sys.stdin.read()
        elif args.item.startswith("@"):
            where, text = args.item[1:], Path(args.item[1:]).read_text()
        else:
            where, text = "the item", args.item
        ignored = [flag for dest, flag in _FIELD_FLAGS.items() if getattr(args, dest)]
        if ignored:
            raise ValueError(
                f"{where} is the whole item: {', '.join(ignored)} cannot be added to it"
                " (put the fields in the item)"
            )
        item = _whole_item(where, text)
        if args.region and "region" not in item:
            item = {"region": args.region, **item}
        elif args.region and item["region"] != args.region:
            raise ValueError(
                f"{where} is the item of the Region {item['region']!r}, not {args.region}"
            )
        return item
    if not (args.region and args.vpc_id and args.inbound_endpoint_id):
        raise ValueError("give REGION, --vpc-id and --inbound-endpoint-id (or --item)")
    fields = {
        "region": args.region,
        "vpc_id": args.vpc_id,
        "inbound_endpoint_id": args.inbound_endpoint_id,
        "outbound_endpoint_id": args.outbound_endpoint_id,
        "vpc_ids": args.vpc_ids,
        "domains": args.domains,
        "peers": args.peers,
        "description": args.description,
    }
    item = {k: v for k, v in fields.items() if v is not None}
    if args.disabled:
        item["enabled"] = False
    return item


def _run_hubs(args: argparse.Namespace, aws: Any) -> int:
    table = aws.hubs_table()
    args.region = _hub_region(args)
    if args.hubs_command == "remove" and not args.region:
        raise ValueError("give the Region of the hub to remove")
    if args.hubs_command == "list":
        items = table.read_items()
        checked = parse_hubs(items, aws.known_regions(str(i.get("region")) for i in items))
        problems = [str(e) for e in checked.errors]
        text = hubs_text(items) + "".join(f"\n! {p}" for p in problems)
        _emit(args, {"hubs": items, "errors": problems}, text)
        return EXIT_PROBLEMS if problems else EXIT_OK
    if args.hubs_command == "remove":
        removed = table.remove_item(args.region)
        _emit(
            args,
            {"removed": removed, "region": args.region},
            f"removed the hub of {args.region}" if removed else f"no hub for {args.region}",
        )
        return EXIT_OK if removed else EXIT_PROBLEMS
    item = _item_from_args(args)
    others = [i for i in table.read_items() if i.get("region") != item.get("region")]
    known = aws.known_regions(str(i.get("region")) for i in [*others, item])
    errors = [
        e for e in parse_hubs([*others, item], known).errors if e.region == item.get("region")
    ]
    problems = [str(e) for e in errors]
    if not problems and not args.no_check:
        problems = _live_problems(aws, [*others, item], str(item["region"]))
    if problems:
        hint = "" if args.no_check or errors else "\n(--no-check stores it without these checks)"
        _emit(
            args,
            {"stored": False, "errors": problems},
            "not stored:\n" + "\n".join(f"! {p}" for p in problems) + hint,
        )
        return EXIT_PROBLEMS
    table.put_item(item)
    _emit(args, {"stored": True, "item": item}, f"stored the hub of {item['region']}")
    return EXIT_OK


def _live_problems(aws: Any, items: list[dict[str, Any]], region: str) -> list[str]:
    """What AWS says against the item of `region`: the checks a reconcile makes (VPCs exist,
    endpoints are the named VPC's, of the right direction, in that Region and account), and an
    inbound endpoint that is not OPERATIONAL with ATTACHED IPs yet."""
    from resolver_mesh.reconcile import Reconciler

    errors, unusable = Reconciler(aws).check_item(items, region)
    return [str(e) for e in errors] + [f"hub item {region!r}: {u}" for u in unusable]


def _replayed(args: argparse.Namespace, known: frozenset[str]) -> Request | None:
    """The request the function would make of an event file; a plan unless --apply."""
    request = request_from_event(json.loads(Path(args.event_file).read_text()), known)
    if request is None:
        return None
    return replace(
        request,
        apply=bool(args.apply) and request.apply,
        force=bool(getattr(args, "force", False)),
        trigger=f"replay {args.event_file}: {request.trigger}",
    )


def _run_verify(args: argparse.Namespace, aws: Any) -> int:
    """Exit 0 when every name resolves as the mesh intends, 1 on any gap, stale target, loop,
    conflict or unreadable Region."""
    from resolver_mesh.verify import matrix_mermaid, matrix_text, verify

    if args.format not in (None, "json") and getattr(args, "json", False):
        raise ValueError(f"--json and --format {args.format} ask for two outputs: give one")
    matrix = verify(aws)
    style = args.format or ("json" if getattr(args, "json", False) else "text")
    if style == "json":
        print(json.dumps(matrix.as_dict(), indent=2))
    elif style == "mermaid":
        print(matrix_mermaid(matrix))
    else:
        print(matrix_text(matrix))
    return EXIT_OK if matrix.ok else EXIT_PROBLEMS


def _run_table(args: argparse.Namespace, aws: Any) -> int:
    """`table create`: exit 0 when the table is there with the hubs key, created now or not."""
    from resolver_mesh.aws.hubs import TableMismatchError

    table = aws.hubs_table()
    where = f"{table.name} in {aws.home_region}"
    try:
        created = table.create(aws.settings.mesh_id)
    except TableMismatchError as error:
        print(f"resolver-mesh: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    text = (
        f"created the hubs table {where}: key region, on demand, stream NEW_AND_OLD_IMAGES,"
        " encrypted (AWS managed KMS key), point-in-time recovery on"
        if created
        else f"the hubs table {where} exists already (key region); left as it is"
    )
    _emit(args, {"table": table.name, "region": aws.home_region, "created": created}, text)
    return EXIT_OK


def _run_emulator(port: int) -> int:
    """Serve the local AWS emulator on 127.0.0.1 until Ctrl-C; print how to point clients at it."""
    try:
        from mesh_emulator.server import LocalEmulator, require_local_extras, shell_exports

        require_local_extras()
        emulator = LocalEmulator(port).start()
    except RuntimeError as error:  # LocalExtrasMissingError: the message says what to install
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"resolver-mesh: cannot serve on 127.0.0.1:{port}: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    try:
        print(f"local AWS emulator at {emulator.endpoint_url} (Ctrl-C stops it); in a shell:")
        print(shell_exports(emulator.endpoint_url), flush=True)
        threading.Event().wait()  # until Ctrl-C
    except KeyboardInterrupt:
        print("emulator stopped; its state is gone", file=sys.stderr)
    finally:
        emulator.stop()
    return EXIT_OK


@contextmanager
def _ctrl_c_stops_calls() -> Iterator[None]:
    """In the block, a first Ctrl-C starts no new AWS call (see `Caller`) and lets the calls in
    flight finish; a second one raises KeyboardInterrupt. Main thread only."""
    from resolver_mesh.aws.calls import stop_requested

    stop_requested.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        stop_requested.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print(
            "resolver-mesh: stopping: no new calls; the calls in flight finish"
            " (Ctrl-C again to abort at once)",
            file=sys.stderr,
        )

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _reconcile(reconciler: Reconciler, request: Request) -> dict[str, Any]:
    """One reconcile as a report; Ctrl-C stops it between calls (the report says so)."""
    with _ctrl_c_stops_calls():
        report: dict[str, Any] = reconciler.run(request).as_dict()
    return report


def main(argv: Sequence[str] | None = None, *, own_process: bool = False) -> int:
    """Run one command; `own_process`: the process is the command's own (`console`), so its
    garbage collector is tuned as the function's is (`tune_collector`)."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from resolver_mesh.local.demo import run_demo

        return run_demo(port=args.port)
    if args.command == "emulator":
        return _run_emulator(args.port)
    if getattr(args, "profile", None):
        os.environ["AWS_PROFILE"] = args.profile
    from botocore.exceptions import BotoCoreError, ClientError

    from resolver_mesh.aws.session import Aws  # boto3 only for commands that talk to AWS
    from resolver_mesh.aws.work import Work
    from resolver_mesh.reconcile import Reconciler, tune_collector

    if own_process:
        tune_collector()
    try:
        aws = Aws(_settings(args))
        if args.command == "hubs":
            return _run_hubs(args, aws)
        if args.command == "verify":
            return _run_verify(args, aws)
        if args.command == "table":
            return _run_table(args, aws)
        if args.command == "replay":
            replayed = _replayed(args, aws.known_regions())
            if replayed is None:
                _emit(args, {"ok": True, "ignored": True}, "nothing to reconcile for this event")
                return EXIT_OK
            request = replayed
        else:
            given = getattr(args, "regions", None)
            regions = tuple(r.strip() for r in given.split(",") if r.strip()) if given else None
            request = Request(
                apply=args.command == "apply",
                regions=regions,
                force=getattr(args, "force", False),
                trigger="cli",
            )
        report = _reconcile(Reconciler(aws, Work.of(aws)), request)
    except KeyboardInterrupt:
        print("resolver-mesh: aborted; calls in flight may have been made", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigError, ValueError, OSError) as error:
        print(f"resolver-mesh: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (BotoCoreError, ClientError) as error:
        print(f"resolver-mesh: AWS error: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    _emit(args, report, report_text(report, Style(sys.stdout.isatty())))
    if report["interrupted"]:
        return EXIT_INTERRUPTED
    return EXIT_OK if report["ok"] else EXIT_PROBLEMS


def console() -> int:
    """The `resolver-mesh` command (and `python -m resolver_mesh`)."""
    return main(own_process=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console())
