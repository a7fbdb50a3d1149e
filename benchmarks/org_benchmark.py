"""Issue 11's figures: member accounts over hub Regions, each with VPCs in every hub Region.

    .venv/bin/python benchmarks/org_benchmark.py [--members 10 50] [--regions 6] [--vpcs 2]
        [--accounts 40 80 160 320] [--latency 0.05] [--rate 5] [--organization]
        [--delivery rules|profile] [--skip-live] [--skip-cpu]

1. *Live* (local emulator, moto on 127.0.0.1): for each N of `--members`, hubs in `--regions`
   Regions of the home account and N member accounts with `--vpcs` VPCs in every hub Region,
   listed in that hub's `shared_vpcs` (reached through their member role, as `MEMBER_ROLES`
   would); with `--organization`, the accounts are those of an OU of the emulator's
   organisation (`MEMBER_OUS`) and their VPCs join by tag, no item naming any; `--delivery
   profile` delivers the hubs' rules through their Route 53 Profiles. Every request is
   held `--latency` seconds, every location has `--rate` Resolver calls per second. In fresh
   Python processes (as a cold Lambda): a *converge* from nothing (every pass, as one
   invocation makes them), then a *cold no-op* and, in the same process, a *warm no-op*.
   Reported: wall time, the busiest location budget's calls and the lower bound it sets (calls
   / rate); the *bound by pass*, the sum over the converge's passes of each pass's busiest
   budget (sharing with other accounts takes passes that follow each other: rules and shares,
   acceptance, associations); peak RSS (`VmHWM`), the peak worker threads, and the sockets the
   no-op process holds open at its end (its clients' connections, which the emulator keeps
   alive as AWS does); for the warm no-op, the CPU of the reconciling process and that of the
   emulator (the parent process, read from /proc: with 2 CPUs, each has about one, so the
   larger of the two bounds the no-op).
2. *Pure steps* (no I/O) at `--accounts`: `desired_rules`, `make_plan` and `check_plan` on
   states built directly for the same shape, CPU per location (see org_scale.py).

Figures, not tests: they depend on the machine and on the emulator, which serves about 400
calls per second on 2 CPUs (every Region's and account's calls share it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core"))
sys.path.insert(0, str(ROOT / "emulator"))

MESH = "resolver-mesh"
TABLE = "resolver-mesh-org-benchmark"


@dataclass(frozen=True)
class ChildRun:
    """One measured reconcile in a fresh process (and, for a no-op, a warm one after it)."""

    seconds: float
    warm_seconds: float
    warm_cpu_seconds: float
    warm_emulator_cpu_seconds: float
    peak_mib: float
    imports_mib: float
    cpu_seconds: float
    calls: int
    busiest: str
    busiest_calls: int
    bound_seconds: float
    pass_bounds: list[float]
    peak_threads: int
    open_sockets: int
    counts: dict[str, int]
    ok: bool
    errors: list[str]


def _budgets(aws: Any, account: str = "") -> Iterable[tuple[str, int, float]]:
    """(budget@account, calls, seconds at the budget's rate) for every rate budget of an `Aws`
    and of its member accounts'."""
    for key, caller in aws._callers.items():
        calls = sum(caller.counts.values())
        rate = 1.0 / caller.limiter._interval
        yield f"{key}@{account or 'home'}", calls, calls / rate
    for member_account, member in aws._members.items():
        yield from _budgets(member, member_account)


def parent_cpu_seconds() -> float:
    """The CPU (user and system, every thread) that the parent, the emulator's process, has
    used so far; NaN where /proc does not tell it."""
    try:
        with open(f"/proc/{os.getppid()}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(warm: bool) -> None:
    """Run one reconcile (apply) as the scheduled resync does; with `warm`, another one."""
    from resolver_mesh.aws.session import Aws
    from resolver_mesh.config import Settings
    from resolver_mesh.local.org import open_sockets, peak_mib
    from resolver_mesh.models import Request
    from resolver_mesh.reconcile import Reconciler, tune_collector

    tune_collector()  # as the function does
    imports = peak_mib()
    peak_threads = threading.active_count()
    stop = threading.Event()

    def count_threads() -> None:
        nonlocal peak_threads
        while not stop.wait(0.05):
            peak_threads = max(peak_threads, threading.active_count())

    watcher = threading.Thread(target=count_threads, daemon=True)
    watcher.start()
    aws = Aws(Settings.from_env())
    pass_bounds: list[float] = []  # per pass: its busiest budget's calls at that budget's rate
    one_pass = Reconciler._run

    def counted_pass(reconciler: Reconciler, *args: Any) -> bool:
        before = {key: calls for key, calls, _ in _budgets(aws)}
        more = one_pass(reconciler, *args)
        pass_bounds.append(
            max(
                (
                    (calls - before.get(key, 0)) * seconds / calls
                    for key, calls, seconds in _budgets(aws)
                    if calls
                ),
                default=0.0,
            )
        )
        return more

    Reconciler._run = counted_pass  # type: ignore[method-assign,assignment]
    started, cpu = time.monotonic(), time.process_time()
    report = Reconciler(aws).run(Request(apply=True, trigger="benchmark"))
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    budgets = {key: (calls, bound) for key, calls, bound in _budgets(aws)}
    warm_seconds = warm_cpu = warm_emulator = 0.0
    if warm:
        started, warm_cpu = time.monotonic(), time.process_time()
        warm_emulator = parent_cpu_seconds()
        again = Reconciler(aws).run(Request(apply=True, trigger="benchmark, warm"))
        warm_seconds, warm_cpu = time.monotonic() - started, time.process_time() - warm_cpu
        warm_emulator = parent_cpu_seconds() - warm_emulator
        if any(again.counts.values()):
            report.errors.append({"kind": "benchmark", "message": "the warm run changed things"})
    stop.set()
    busiest = max(budgets, key=lambda key: budgets[key][1])
    result = ChildRun(
        seconds=seconds,
        warm_seconds=warm_seconds,
        warm_cpu_seconds=warm_cpu,
        warm_emulator_cpu_seconds=warm_emulator,
        peak_mib=peak_mib(),
        imports_mib=imports,
        cpu_seconds=cpu,
        calls=sum(report.calls.values()),
        busiest=busiest,
        busiest_calls=budgets[busiest][0],
        bound_seconds=budgets[busiest][1],
        pass_bounds=pass_bounds,
        peak_threads=peak_threads - 1,  # not the watcher
        open_sockets=open_sockets(),  # its clients' connections, kept for their next calls
        counts={kind: n for kind, n in report.counts.items() if n},
        ok=report.ok,
        errors=[str(e.get("message")) for e in report.errors[:5]],
    )
    print(json.dumps(asdict(result)))


def run_child(environment: dict[str, str], warm: bool) -> ChildRun:
    from resolver_mesh.local.org import FUNCTION_PROCESS_ENVIRONMENT

    command = [sys.executable, __file__, "--child"] + (["--warm"] if warm else [])
    process = {**FUNCTION_PROCESS_ENVIRONMENT, **environment}  # as template.yaml sets them
    done = subprocess.run(
        command,
        env={**os.environ, **process, "PYTHONPATH": str(ROOT / "layers" / "core")},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"the child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return ChildRun(**json.loads(done.stdout.strip().splitlines()[-1]))


def build_world(
    endpoint_url: str, regions: list[str], members: int, vpcs: int, organization: bool = False
) -> dict[str, Any]:
    """Hubs in `regions` (home first), the table, and `members` accounts with `vpcs` VPCs in
    every hub Region, listed in that hub's `shared_vpcs`; with `organization`, the accounts
    are created in an OU of the home account's organisation (its id in the returned
    `"ou"`) and their VPCs join by tag (`MESH_TAG_KEY`), no item naming any of them."""
    import boto3
    from boto3.dynamodb.types import TypeSerializer

    from resolver_mesh.local.org import MEMBER_VPC_CIDR, member_account, member_role
    from resolver_mesh.local.topology import (
        CachedClients,
        assumed_clients,
        build_hub,
        create_hubs_table,
        hub_item,
    )
    from resolver_mesh.names import MESH_TAG_KEY

    client = CachedClients(boto3.session.Session())
    hubs: dict[str, Any] = {region: build_hub(client, region) for region in regions}
    create_hubs_table(client, regions[0], TABLE)
    accounts = [member_account(index) for index in range(members)]
    tags: list[dict[str, Any]] = []
    if organization:
        org = client("organizations", regions[0])
        org.create_organization(FeatureSet="ALL")
        root = org.list_roots()["Roots"][0]["Id"]
        hubs["ou"] = org.create_organizational_unit(ParentId=root, Name="members")[
            "OrganizationalUnit"
        ]["Id"]
        accounts = []
        for index in range(members):
            made = org.create_account(Email=f"m{index}@example.com", AccountName=f"m{index}")
            accounts.append(made["CreateAccountStatus"]["AccountId"])
            org.move_account(
                AccountId=accounts[-1], SourceParentId=root, DestinationParentId=hubs["ou"]
            )
        tags = [{"ResourceType": "vpc", "Tags": [{"Key": MESH_TAG_KEY, "Value": MESH}]}]
    shared: dict[str, list[dict[str, str]]] = {region: [] for region in regions}
    for account in accounts:
        role = member_role(account, MESH)
        clients = assumed_clients(client, role, None, endpoint_url)
        for region in regions:
            ec2 = clients("ec2", region)
            for _ in range(vpcs):
                made = ec2.create_vpc(CidrBlock=MEMBER_VPC_CIDR, TagSpecifications=tags)
                if not organization:
                    vpc = made["Vpc"]["VpcId"]
                    shared[region].append({"vpc_id": vpc, "account_id": account, "role_arn": role})
    serializer = TypeSerializer()
    for region in regions:
        item = hub_item(hubs[region], shared_vpcs=shared[region])
        client("dynamodb", regions[0]).put_item(
            TableName=TABLE, Item={k: serializer.serialize(v) for k, v in item.items()}
        )
    return hubs


def live_rows(
    members: list[int],
    regions: list[str],
    vpcs: int,
    latency: float,
    rate: float,
    organization: bool = False,
    delivery: str = "rules",
) -> list[str]:
    from mesh_benchmark import injected_latency

    from mesh_emulator.server import LocalEmulator, emulator_environment

    rows = []
    environment = {
        "HUBS_TABLE_NAME": TABLE,
        "MESH_ID": MESH,
        "HOME_REGION": regions[0],
        "MESH_REGIONS": ",".join(regions),
        "CALLS_PER_SECOND": str(rate),
        "DELIVERY": delivery,
    }
    with LocalEmulator() as emulator:
        os.environ.update(emulator_environment(emulator.endpoint_url))
        for n in members:
            emulator.reset()
            log(f"{n} member accounts: building {n * len(regions) * vpcs} VPCs")
            built = build_world(emulator.endpoint_url, regions, n, vpcs, organization)
            if organization:
                environment["MEMBER_OUS"] = built["ou"]
            with injected_latency(emulator, latency):
                log(f"{n} member accounts: converge")
                converge = run_child(environment, warm=False)
                log(f"{n} member accounts: cold and warm no-op")
                noop = run_child(environment, warm=True)
            if not converge.ok or not noop.ok or noop.counts:
                raise SystemExit(f"{n}: not converged: {converge} / {noop}")
            locations = len(regions) * (n + 1)
            bound = converge.bound_seconds
            by_pass = sum(converge.pass_bounds)
            rows.append(
                f"| {n} | {locations} | {converge.seconds:.1f} | {converge.busiest_calls}"
                f" ({converge.busiest}) | {bound:.1f} | {converge.seconds / bound:.2f}"
                f" | {len(converge.pass_bounds)}: {by_pass:.1f}"
                f" | {converge.seconds / by_pass:.2f}"
                f" | {converge.calls} | {converge.cpu_seconds * 1000 / locations:.0f}"
                f" | {noop.seconds:.1f} | {noop.warm_seconds:.1f} | {noop.calls}"
                f" | {noop.cpu_seconds * 1000 / locations:.0f}"
                f" | {noop.warm_cpu_seconds * 1000 / locations:.0f}"
                f" | {noop.warm_cpu_seconds:.1f} | {noop.warm_emulator_cpu_seconds:.1f}"
                f" | {noop.peak_mib:.0f} | {converge.peak_mib:.0f} | {converge.peak_threads}"
                f" | {noop.open_sockets} |"
            )
            log(rows[-1])
    return rows


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--accounts", type=int, nargs="+", default=[40, 80, 160, 320])
    parser.add_argument("--regions", type=int, default=6)
    parser.add_argument("--vpcs", type=int, default=2, help="VPCs per account and hub Region")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument(
        "--organization",
        action="store_true",
        help="members from an OU (MEMBER_OUS) and VPCs that join by tag, not listed in items",
    )
    parser.add_argument(
        "--delivery",
        choices=("rules", "profile"),
        default="rules",
        help="how VPCs get the hubs' rules (DELIVERY): one association per rule, or the Profile",
    )
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.warm)
        return 0
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mesh_benchmark import benchmark_regions, isolate_from_aws
    from org_scale import CPU_REPEATS, cpu_rows

    started = time.monotonic()
    regions = benchmark_regions(args.regions)
    if not args.skip_live:
        isolate_from_aws()
        members = sorted(set(args.members))
        rows = live_rows(
            members,
            regions,
            args.vpcs,
            args.latency,
            args.rate,
            args.organization,
            args.delivery,
        )
        how = (
            "members from an OU (MEMBER_OUS), VPCs joined by tag"
            if args.organization
            else "members and VPCs listed in the items"
        ) + f", {args.delivery} delivery"
        print(
            f"Live, {len(regions)} hub Regions, {args.vpcs} VPCs per member account and hub"
            f" Region ({how}), {args.latency * 1000:.0f} ms per call, {args.rate:g} calls/s"
            " per location budget.\n"
        )
        print(
            "| member accounts | locations | converge (s) | busiest budget: calls | lower bound"
            " (s) | converge / bound | passes: bound by pass (s) | converge / bound by pass"
            " | calls | converge CPU (ms/location) | cold no-op (s) | warm no-op (s)"
            " | cold no-op calls"
            " | cold no-op CPU (ms/location) | warm no-op CPU (ms/location)"
            " | warm no-op CPU (s) | emulator's CPU in the warm no-op (s)"
            " | no-op peak RSS (MiB) | converge peak RSS (MiB) | peak threads"
            " | open sockets after the no-ops |"
        )
        print(
            "|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            "---:|---:|"
        )
        print("\n".join(rows))
        print()
    if not args.skip_cpu:
        log(f"pure steps: {', '.join(map(str, args.accounts))} accounts")
        print(
            f"Pure steps, {len(regions)} hubs, {args.vpcs} VPCs per account and hub Region,"
            f" CPU per location (best of {CPU_REPEATS}).\n"
        )
        print(
            "| accounts | locations | state | changes | desired_rules (µs/location)"
            " | make_plan (µs/location) | check_plan (µs/location) |"
        )
        print("|---:|---:|---|---:|---:|---:|---:|")
        for accounts in args.accounts:
            for row in cpu_rows(accounts, tuple(regions), args.vpcs):
                print(row)
    log(f"done in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
