"""The CPU one AWS call costs the reconciler's process in its clients, and where it goes.

    .venv/bin/python benchmarks/call_costs.py [--rounds 40] [--accounts 3] [--regions 2]

The reconciler makes every call from one process, on one core: at organisation scale its CPU
per call bounds a no-op (issue 11). Against the local emulator (in this process, on its own
threads), a fresh child process makes the warm no-op's kinds of call (ListResolverRules,
ListResolverRuleAssociations, DescribeVpcs, GetResourceShareInvitations, ListProfiles) in each
member account's Regions, `--rounds` times after one warm-up call per client, through:

- *botocore*: a boto3 session per member account, clients as botocore makes them;
- *mesh*: `Aws.member(...).client(...)`, as the reconciler makes them; and the same clients
  with their User-Agent string built on every call, as before `_CachedUserAgent`, in rounds
  that alternate with the others (so that both see the same machine: the CPU of one call
  varies by 10% from one run to the next on a shared machine).

Reported: the CPU per call of the calling thread only (`time.thread_time`; the emulator runs
in the parent process), best of `--repeat` runs; the same calls made by a thread per location,
all at once as the reconciler's workers make them (`time.process_time` of the child: only
client threads run in it); then, for the mesh's clients, a profile (`cProfile` timed by
`time.thread_time`) of the one-thread calls by botocore stage: each stage's inclusive CPU as a
share of the whole call (`BaseClient._make_api_call`). Stages nest: the event hooks include
the handlers that run in them (signing among them). Figures, not tests.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import os
import pstats
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core"))
sys.path.insert(0, str(ROOT / "emulator"))

VARIANTS = ("botocore", "mesh")
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "route53resolver": ("list_resolver_rules", {}),
    "ec2": ("describe_vpcs", {"MaxResults": 1000}),
    "ram": ("get_resource_share_invitations", {}),
    "route53profiles": ("list_profiles", {}),
}
ASSOCIATIONS = ("route53resolver", "list_resolver_rule_associations")
REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"]
# (label, "module:qualified name"): botocore's stages, inclusive CPU (nested where indented).
STAGES = (
    ("event hooks (emit, with their handlers)", "botocore.hooks:HierarchicalEmitter._emit"),
    ("  signing (SigV4, in a hook)", "botocore.signers:RequestSigner.sign"),
    (
        "  user agent rebuilt (in a hook)",
        "botocore.useragent:UserAgentString.rebuild_and_replace_user_agent_handler",
    ),
    ("serialising the request", "botocore.client:BaseClient._convert_to_request_dict"),
    ("user agent built (both times)", "botocore.useragent:UserAgentString.to_string"),
    ("endpoint rules", "botocore.client:BaseClient._resolve_endpoint_ruleset"),
    ("sending (urllib3, http.client)", "botocore.httpsession:URLLib3Session.send"),
    ("  response headers (email parser)", "http.client:parse_headers"),
    ("parsing the response", "botocore.parsers:ResponseParser.parse"),
)
WHOLE = ("whole", "botocore.client:BaseClient._make_api_call")


def member_account(index: int) -> str:
    return f"{210000000000 + index:012d}"


def clients_of(variant: str, accounts: int, regions: list[str]) -> list[Any]:
    """The clients a member location reads with, for every account and Region."""
    import boto3

    from resolver_mesh.aws.session import Aws
    from resolver_mesh.config import Settings
    from resolver_mesh.models import AccountAccess

    home = boto3.session.Session(region_name=regions[0])
    aws = Aws(Settings(home_region=regions[0]), home)
    made = []
    for index in range(accounts):
        account = member_account(index)
        role = f"arn:aws:iam::{account}:role/resolver-mesh-member-resolver-mesh"
        if variant == "botocore":
            assumed = home.client("sts").assume_role(RoleArn=role, RoleSessionName="costs")
            keys = assumed["Credentials"]
            session = boto3.session.Session(
                aws_access_key_id=keys["AccessKeyId"],
                aws_secret_access_key=keys["SecretAccessKey"],
                aws_session_token=keys["SessionToken"],
            )
            made += [session.client(s, region_name=r) for r in regions for s in CALLS]
        else:
            member = aws.member(AccountAccess(account_id=account, role_arn=role))
            made += [member.client(s, r) for r in regions for s in CALLS]
    return made


def calls_of(clients: list[Any]) -> list[Callable[[], Any]]:
    """One call of each warm no-op kind per client (two with the Resolver's)."""
    calls: list[Callable[[], Any]] = []
    for client in clients:
        service = client.meta.service_model.service_name
        operation, arguments = CALLS[service]
        calls.append(lambda c=client, o=operation, a=arguments: getattr(c, o)(**a))
        if service == ASSOCIATIONS[0]:
            calls.append(lambda c=client: getattr(c, ASSOCIATIONS[1])())
    return calls


def child(variant: str, accounts: int, regions: list[str], rounds: int, mode: str) -> None:
    clients = clients_of(variant, accounts, regions)
    calls = calls_of(clients)
    for call in calls:  # warm: credentials, connections, caches
        call()
    if mode == "threads":
        print(json.dumps(threaded(calls, rounds)))
        return
    if mode == "plain" and variant == "mesh":
        print(json.dumps(paired(clients, calls, rounds)))
        return
    profile = mode == "profile"
    profiler = cProfile.Profile(time.thread_time) if profile else None
    started = time.thread_time()
    if profiler is not None:
        profiler.enable()
    for _ in range(rounds):
        for call in calls:
            call()
    if profiler is not None:
        profiler.disable()
    spent = time.thread_time() - started
    result: dict[str, Any] = {"calls": rounds * len(calls), "cpu": spent}
    if profiler is not None:
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        result["stages"] = stage_times(stats)
    print(json.dumps(result))


def paired(clients: list[Any], calls: list[Callable[[], Any]], rounds: int) -> dict[str, Any]:
    """Rounds that alternate: the clients' User-Agent strings built on every call (botocore's
    own builder), then kept (`_CachedUserAgent`); the calling thread's CPU of each."""
    from botocore.useragent import UserAgentString

    from resolver_mesh.aws.session import _CachedUserAgent

    spent = {"cpu_per_call_agent": 0.0, "cpu": 0.0}
    for index in range(2 * rounds):
        kind, builder = [("cpu_per_call_agent", UserAgentString), ("cpu", _CachedUserAgent)][
            index % 2
        ]
        for client in clients:
            client._user_agent_creator.__class__ = builder
        started = time.thread_time()
        for call in calls:
            call()
        spent[kind] += time.thread_time() - started
    creator = clients[0]._user_agent_creator
    builds = 2000
    started = time.thread_time()
    for _ in range(builds):
        UserAgentString.to_string(creator)
    build = (time.thread_time() - started) / builds
    return {"calls": rounds * len(calls), **spent, "build": build}


def threaded(calls: list[Callable[[], Any]], rounds: int) -> dict[str, Any]:
    """The calls of each location (5 in a row) in a thread of its own, all at once, as the
    reconciler's workers make them; the CPU of the whole process (only client threads run
    in it)."""
    per_location = [calls[i : i + len(CALLS) + 1] for i in range(0, len(calls), len(CALLS) + 1)]
    start = threading.Barrier(len(per_location) + 1)

    def work(location: list[Callable[[], Any]]) -> None:
        start.wait()
        for _ in range(rounds):
            for call in location:
                call()

    workers = [threading.Thread(target=work, args=(loc,)) for loc in per_location]
    for worker in workers:
        worker.start()
    started = time.process_time()
    start.wait()
    for worker in workers:
        worker.join()
    return {"calls": rounds * len(calls), "cpu": time.process_time() - started}


def profile_key(where: str) -> tuple[str, int, str]:
    """cProfile's key of a function named "module:qualified name"."""
    module, qualified = where.split(":")
    found: Any = importlib.import_module(module)
    for part in qualified.split("."):
        found = getattr(found, part)
    code = found.__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def stage_times(stats: dict[tuple[str, int, str], Any]) -> dict[str, float]:
    """Inclusive CPU of each stage and of the whole call (`WHOLE`)."""
    found = {}
    for label, where in (WHOLE, *STAGES):
        entry = stats.get(profile_key(where))
        found[label] = entry[3] if entry else 0.0
    return found


def build_world(endpoint_url: str, accounts: int, regions: list[str]) -> None:
    """Two VPCs per member location, as in issue 11's shape."""
    import boto3

    sts = boto3.client("sts", region_name=regions[0], endpoint_url=endpoint_url)
    for index in range(accounts):
        account = member_account(index)
        role = f"arn:aws:iam::{account}:role/resolver-mesh-member-resolver-mesh"
        keys = sts.assume_role(RoleArn=role, RoleSessionName="build")["Credentials"]
        for region in regions:
            ec2 = boto3.client(
                "ec2",
                region_name=region,
                endpoint_url=endpoint_url,
                aws_access_key_id=keys["AccessKeyId"],
                aws_secret_access_key=keys["SecretAccessKey"],
                aws_session_token=keys["SessionToken"],
            )
            for block in ("10.1.0.0/16", "10.2.0.0/16"):
                ec2.create_vpc(CidrBlock=block)


def measure(variant: str, args: argparse.Namespace, mode: str, env: dict[str, str]) -> dict:
    regions = ",".join(REGIONS[: args.regions])
    command = [sys.executable, __file__, "--child", variant, str(args.accounts), regions]
    command += [str(args.rounds), mode]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--regions", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        variant, accounts, regions, rounds, mode = args.child
        child(variant, int(accounts), regions.split(","), int(rounds), mode)
        return 0
    from mesh_emulator.server import LocalEmulator, emulator_environment
    from resolver_mesh.local.org import FUNCTION_PROCESS_ENVIRONMENT

    with LocalEmulator() as emulator:
        emulator_env = emulator_environment(emulator.endpoint_url)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            **FUNCTION_PROCESS_ENVIRONMENT,
            **emulator_env,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "PYTHONPATH": str(ROOT / "layers" / "core"),
        }
        os.environ.update(emulator_env)
        build_world(emulator.endpoint_url, args.accounts, REGIONS[: args.regions])
        print(
            f"{args.accounts} member accounts x {args.regions} Regions, 5 calls per location"
            f" and round, {args.rounds} rounds ({args.rounds * args.accounts * args.regions * 5}"
            f" calls); best of {args.repeat}.\n"
        )
        print("| clients | CPU per call, one thread (ms) | a thread per location (ms) |")
        print("|---|---:|---:|")
        rows: dict[str, list[float]] = {}
        for variant in VARIANTS:
            for mode in ("plain", "threads"):
                for _ in range(args.repeat):
                    run = measure(variant, args, mode, env)
                    for kind in ("cpu", "cpu_per_call_agent"):
                        if kind in run:
                            row = rows.setdefault(f"{variant}:{kind}", [9e9, 9e9])
                            column = mode == "threads"
                            row[column] = min(row[column], run[kind] / run["calls"] * 1000)
        for key, label in (
            ("botocore:cpu", "botocore"),
            ("mesh:cpu_per_call_agent", "mesh, User-Agent built on every call (before)"),
            ("mesh:cpu", "mesh"),
        ):
            one, many = (f"{v:.2f}" if v < 9e9 else "-" for v in rows[key])
            print(f"| {label} | {one} | {many} |", flush=True)
        build = measure("mesh", args, "plain", env)["build"] * 1e6
        print(f"\nbotocore builds a User-Agent string in {build:.0f} µs, twice per call.")
        profiled = measure("mesh", args, "profile", env)
        stages = profiled["stages"]
        whole = stages.get("whole") or 1.0
        print("\nWhere the mesh's clients spend it (cProfile, inclusive, share of the call):\n")
        print("| stage | share |\n|---|---:|")
        for label, _ in STAGES:
            print(f"| {label} | {stages.get(label, 0.0) / whole:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
