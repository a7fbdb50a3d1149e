"""The engine at organisation scale: memory per member account and CPU of the pure steps.

    .venv/bin/python benchmarks/org_scale.py [--members 5 10 20] [--accounts 40 80 160 320]
        [--regions 3] [--latency 0.05] [--rate 5] [--skip-memory] [--skip-cpu]

1. *Cold no-op* (local emulator, moto on 127.0.0.1): for each N of `--members`, hubs in
   `--regions` Regions and N member accounts, each with one VPC listed in a hub's `shared_vpcs`
   (round robin), converged in this process; then one reconcile (`apply`, as the scheduled
   resync) in a fresh Python process, with every request held `--latency` seconds and
   `--rate` Resolver calls per second. Reported: the child's peak RSS (`VmHWM`), the same
   after its imports, wall time, calls; the memory per member account is the difference of peak
   RSS between the largest and the smallest N, divided by the difference of N.
2. *Pure steps* (no emulator, no I/O): `desired_rules`, `make_plan` and `check_plan` on states
   built directly for 4 hubs and `--accounts` member accounts (one shared VPC each), CPU time
   (`time.process_time`, best of 3) per location, for a converged mesh (*no-op*) and for one
   whose member VPCs have lost their associations (*re-associate*: 6 changes per account).

Figures, not tests: they depend on the machine. The tests hold the counts (see README).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core"))

import boto3  # noqa: E402
from mesh_benchmark import benchmark_regions, injected_latency, isolate_from_aws  # noqa: E402

from mesh_emulator.server import LocalEmulator, emulator_environment  # noqa: E402
from resolver_mesh.aws.session import Aws  # noqa: E402
from resolver_mesh.config import Settings  # noqa: E402
from resolver_mesh.desired import Desired, desired_rules, parse_hubs  # noqa: E402
from resolver_mesh.local.org import ColdRun, build_org_mesh, cold_run  # noqa: E402
from resolver_mesh.local.topology import CachedClients  # noqa: E402
from resolver_mesh.models import (  # noqa: E402
    ObservedAssociation,
    ObservedEndpoint,
    ObservedRule,
    ObservedShare,
    RegionState,
    Request,
    location,
)
from resolver_mesh.names import creator_request_ids, share_name  # noqa: E402
from resolver_mesh.plan import make_plan  # noqa: E402
from resolver_mesh.reconcile import Reconciler  # noqa: E402
from resolver_mesh.safety import Guard, check_plan  # noqa: E402

MESH = "resolver-mesh"
TABLE = "resolver-mesh-org-scale"
HOME = "123456789012"
MAX_CONVERGE_RUNS = 4
CPU_HUBS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1")
CPU_REPEATS = 3


# --- 1. cold no-op on the emulator ---------------------------------------------------------


def converge(settings: Settings, session: boto3.session.Session) -> int:
    """Reconcile in this process until a run changes nothing; the number of runs that did."""
    for run in range(MAX_CONVERGE_RUNS):
        report = Reconciler(Aws(settings, session)).run(Request(apply=True, trigger="converge"))
        if not report.ok:
            raise SystemExit(f"converge failed: {report.errors or report.refused}")
        if not any(report.counts.values()):
            return run
    raise SystemExit(f"not converged after {MAX_CONVERGE_RUNS} runs")


def cold_noop(
    emulator: LocalEmulator, members: int, regions: list[str], latency: float, rate: float
) -> ColdRun:
    emulator.reset()
    session = boto3.session.Session()
    build_org_mesh(CachedClients(session), None, regions, members, TABLE, MESH)
    settings = Settings(
        table_name=TABLE,
        mesh_id=MESH,
        home_region=regions[0],
        mesh_regions=tuple(regions),
        calls_per_second=1000.0,
    )
    converge(settings, session)
    environment = {
        "HUBS_TABLE_NAME": TABLE,
        "MESH_ID": MESH,
        "HOME_REGION": regions[0],
        "MESH_REGIONS": ",".join(regions),
        "CALLS_PER_SECOND": str(rate),
    }
    with injected_latency(emulator, latency):
        run = cold_run(environment)
    if not run.ok or run.counts:
        raise SystemExit(f"{members} members: the cold run was not a no-op: {run}")
    return run


def memory_table(runs: dict[int, ColdRun]) -> str:
    lines = [
        "| member accounts | peak RSS (MiB) | after imports (MiB) | reconcile (MiB) | wall (s)"
        " | calls |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for members, run in sorted(runs.items()):
        lines.append(
            f"| {members} | {run.peak_mib:.1f} | {run.imports_mib:.1f}"
            f" | {run.peak_mib - run.imports_mib:.1f} | {run.seconds:.2f}"
            f" | {sum(run.calls.values())} |"
        )
    low, high = min(runs), max(runs)
    if high > low:
        per_account = (runs[high].peak_mib - runs[low].peak_mib) / (high - low)
        lines.append(f"\nPeak memory per member account ({low} to {high}): {per_account:.2f} MiB")
    return "\n".join(lines)


# --- 2. CPU of the pure steps -----------------------------------------------------------------


def _hex(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _hub_ids(region: str) -> tuple[str, str, str]:
    return (
        f"vpc-{_hex(region, 17)}",
        f"rslvr-in-{_hex(region + 'i', 17)}",
        f"rslvr-out-{_hex(region + 'o', 17)}",
    )


def synthetic_mesh(
    accounts: int, hubs: tuple[str, ...] = CPU_HUBS, vpcs: int = 0
) -> tuple[list[dict[str, Any]], dict[str, RegionState]]:
    """Hub items (`hubs`; `accounts` shared VPCs in round robin, or, with `vpcs`, that many
    in every hub Region of every account) and their locations' states before any rule exists
    (hubs with endpoints; members with their VPCs)."""
    shared: dict[str, list[dict[str, str]]] = {region: [] for region in hubs}
    states: dict[str, RegionState] = {}
    for index in range(accounts):
        account = f"{100_000_000_001 + index:012d}"
        role = f"arn:aws:iam::{account}:role/resolver-mesh-member-{MESH}"
        regions = hubs if vpcs else (hubs[index % len(hubs)],)
        for region in regions:
            ids = [f"vpc-{_hex(f'{account}{region}{n}', 17)}" for n in range(max(1, vpcs))]
            for vpc in ids:
                shared[region].append({"vpc_id": vpc, "account_id": account, "role_arn": role})
            states[location(region, account)] = RegionState(
                region, account=account, vpcs=frozenset(ids)
            )
    items = []
    for n, region in enumerate(hubs):
        vpc, inbound, outbound = _hub_ids(region)
        items.append(
            {
                "region": region,
                "vpc_id": vpc,
                "inbound_endpoint_id": inbound,
                "outbound_endpoint_id": outbound,
                "shared_vpcs": shared[region],
            }
        )
        ips = (f"10.{n}.0.10", f"10.{n}.1.10")
        states[region] = RegionState(
            region,
            endpoints=(
                ObservedEndpoint(inbound, "INBOUND", "OPERATIONAL", vpc, ips),
                ObservedEndpoint(outbound, "OUTBOUND", "OPERATIONAL", vpc),
            ),
            vpcs=frozenset({vpc}),
        )
    return items, states


def converged_states(
    desired: Desired, states: dict[str, RegionState], hubs: tuple[str, ...] = CPU_HUBS
) -> dict[str, RegionState]:
    """`states` as a finished reconcile leaves them: the hubs' rules, shared with the member
    accounts, which see them and associate them with their VPCs."""
    out = dict(states)
    hub_rules: dict[str, tuple[ObservedRule, ...]] = {}
    for region in hubs:
        rules = tuple(
            ObservedRule(
                id=f"rslvr-rr-{_hex(region + want.domain, 17)}",
                domain=want.domain,
                rule_type="FORWARD",
                name=want.name,
                status="COMPLETE",
                endpoint_id=want.endpoint_id,
                targets=want.targets or frozenset(),
                creator_request_id=creator_request_ids(
                    MESH, want.region, want.domain, want.target_region
                )[0],
                owner_id=HOME,
                share_status="SHARED_BY_ME",
                arn=f"arn:aws:route53resolver:{region}:{HOME}:resolver-rule/{_hex(want.domain, 8)}",
            )
            for want in desired.rules
            if want.location == region
        )
        hub_rules[region] = rules
        principals = frozenset(s.principal for s in desired.shares if s.region == region)
        share = ObservedShare(
            f"arn:aws:ram:{region}:{HOME}:resource-share/{_hex(region, 8)}",
            share_name(MESH),
            frozenset(r.arn for r in rules),
            principals,
        )
        vpc = _hub_ids(region)[0]
        out[region] = replace(
            states[region],
            rules=rules,
            associations=tuple(
                ObservedAssociation(f"a-{r.id}", r.id, vpc, "COMPLETE") for r in rules
            ),
            shares=(share,),
        )
    for share in desired.shares:
        where = location(share.region, share.principal)
        received = tuple(replace(r, share_status="SHARED_WITH_ME") for r in hub_rules[share.region])
        out[where] = replace(
            states[where],
            rules=received,
            associations=tuple(
                ObservedAssociation(f"a-{r.id}-{vpc}", r.id, vpc, "COMPLETE")
                for r in received
                for vpc in sorted(share.vpc_ids)
            ),
        )
    return out


def unassociated(states: dict[str, RegionState]) -> dict[str, RegionState]:
    """The member locations without their associations (the plan re-associates them)."""
    return {w: replace(s, associations=()) if s.account else s for w, s in states.items()}


def best_cpu(step: Callable[[], Any]) -> tuple[float, Any]:
    """The least CPU time of `CPU_REPEATS` runs of `step`, and its result."""
    best, result = float("inf"), None
    for _ in range(CPU_REPEATS):
        started = time.process_time()
        result = step()
        best = min(best, time.process_time() - started)
    return best, result


def cpu_rows(accounts: int, hubs: tuple[str, ...] = CPU_HUBS, vpcs: int = 0) -> Iterable[str]:
    items, bare = synthetic_mesh(accounts, hubs, vpcs)
    hub_set = parse_hubs(items, set(hubs), HOME)
    if hub_set.errors:
        raise SystemExit(f"synthetic items are invalid: {hub_set.errors[:3]}")
    scope = set(bare)
    per_location = 1_000_000 / len(scope)  # microseconds per location
    desired_cpu, desired = best_cpu(lambda: desired_rules(MESH, hub_set, bare))
    converged = converged_states(desired, bare, hubs)
    for name, states in (("no-op", converged), ("re-associate", unassociated(converged))):
        plan_cpu, plan = best_cpu(
            lambda s=states: make_plan(MESH, desired, s, scope, home_account=HOME)
        )
        check_cpu, verdict = best_cpu(
            lambda s=states, p=plan: check_plan(p, s, scope, MESH, Guard(max_fraction=1.0))
        )
        if name == "no-op" and plan.changes:
            raise SystemExit(f"{accounts} accounts: the converged states plan {plan.changes[:3]}")
        if not verdict.allowed:
            raise SystemExit(f"{accounts} accounts: refused: {verdict.refusals}")
        yield (
            f"| {accounts} | {len(scope)} | {name} | {len(plan.changes)}"
            f" | {desired_cpu * per_location:.0f} | {plan_cpu * per_location:.0f}"
            f" | {check_cpu * per_location:.0f} |"
        )


def cpu_table(sizes: list[int]) -> str:
    lines = [
        "| accounts | locations | state | changes | desired_rules (µs/location)"
        " | make_plan (µs/location) | check_plan (µs/location) |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for accounts in sizes:
        lines.extend(cpu_rows(accounts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--accounts", type=int, nargs="+", default=[40, 80, 160, 320])
    parser.add_argument("--regions", type=int, default=3, help="hub Regions of the cold no-op")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added per call")
    parser.add_argument("--rate", type=float, default=5.0, help="CALLS_PER_SECOND of the run")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.members + args.accounts):
        parser.error("sizes must be 1 or more")

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    if not args.skip_memory:
        isolate_from_aws()
        regions = benchmark_regions(args.regions)
        runs: dict[int, ColdRun] = {}
        with LocalEmulator() as emulator:
            os.environ.update(emulator_environment(emulator.endpoint_url))
            for members in sorted(set(args.members)):
                log(f"cold no-op: {members} member accounts, hubs in {', '.join(regions)}")
                runs[members] = cold_noop(emulator, members, regions, args.latency, args.rate)
        print(
            f"Cold no-op in a fresh process: {len(regions)} hubs, one shared VPC per member"
            f" account, {args.latency * 1000:.0f} ms per call, {args.rate:g} calls/s.\n"
        )
        print(memory_table(runs))
        print()
    if not args.skip_cpu:
        log(f"pure steps: {', '.join(map(str, args.accounts))} accounts")
        print(f"Pure steps, {len(CPU_HUBS)} hubs, CPU per location (best of {CPU_REPEATS}).\n")
        print(cpu_table(args.accounts))
    log(f"done in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
