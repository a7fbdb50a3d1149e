"""What each way of wiring workload VPCs costs, measured end to end on the local emulator.

    .venv/bin/python benchmarks/spoke_costs.py [--regions 3 5] [--spokes 0 2 4]

README's *Spokes* section gives the cost of each mode as formulas (*What each way costs*). This
script measures the same quantities instead of computing them: for every cell of the grid
(N hub Regions x S spokes x mode), on the local emulator (moto on 127.0.0.1, nothing else is
contacted), after `emulator.reset()`:

1. builds N hubs (`build_hub`: VPC, inbound and outbound Resolver endpoints, S3 interface
   endpoint; d = 2 domains each) and registers them in the hubs table; the first Region's item
   gets the S spokes of the mode:
   - `hubs only` (S = 0): nothing more;
   - `direct`: S spoke VPCs (`build_spoke`) with `"mode": "direct"`;
   - `central`: S spoke VPCs with `"mode": "central"` (one rule per peer domain);
   - `central parent`: S spoke VPCs with `"mode": "central", "parent_domain": "amazonaws.com"`;
   - `shared (RAM)`: S plain VPCs of account 222222222222 in `shared_vpcs`, reached by
     assuming `arn:aws:iam::222222222222:role/resolver-mesh-member-resolver-mesh`;
   S = 0 is measured once per N, as `hubs only` (every mode is the same without spokes);
2. reconciles (`Reconciler(...).run(Request(apply=True))`, a fresh `Aws` per run, as a CLI run or
   a cold Lambda would have) until a run applies no change: the writes of the runs before it are
   the converge writes, that last run is the no-op run (its reads and writes). Reads and writes
   are the report's `calls` (assuming the member role counts as a read: it changes nothing);
3. counts, with plain boto3 in every Region of the mesh in both accounts, the managed rules
   (`CreatorRequestId` starting with `resolver-mesh/`, owned by the account: a rule shared with
   an account through RAM is counted once, in its owner's) and the rule associations;
4. gives the second Region's hub inbound endpoint one more IP and reconciles: the writes of
   that run (compared with README's "rules updated").

The Markdown table is printed at the end, with each measured count compared with README's
formula. `CALLS_PER_SECOND` is 1000 (this measures counts, not time), the mass-change guard is
off (with few hubs, a peer's IP change retargets most direct spokes' rules), and the emulator's
limit of Resolver endpoints per Region is raised to fit the hub's two and the S spokes' own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core"))

import boto3  # noqa: E402

from mesh_emulator.server import LocalEmulator, emulator_environment  # noqa: E402
from resolver_mesh.aws.session import Aws  # noqa: E402
from resolver_mesh.config import Settings  # noqa: E402
from resolver_mesh.local.topology import (  # noqa: E402
    KNOWN_REGIONS,
    CachedClients,
    ClientFactory,
    HubResources,
    assumed_clients,
    build_hub,
    build_spoke,
    create_hubs_table,
    hub_item,
    spoke_item,
)
from resolver_mesh.models import Request  # noqa: E402
from resolver_mesh.reconcile import Reconciler  # noqa: E402
from resolver_mesh.report import Report  # noqa: E402
from resolver_mesh.safety import Guard  # noqa: E402

HOME_REGION = "us-east-1"
TABLE = "resolver-mesh-spoke-costs"
DOMAINS = 2  # d: `{region}.amazonaws.com` and `{region}.vpce.amazonaws.com`
MEMBER = "222222222222"
MEMBER_ROLE = f"arn:aws:iam::{MEMBER}:role/resolver-mesh-member-resolver-mesh"
MEMBER_EXTERNAL_ID = "resolver-mesh-spoke-costs"
PARENT_DOMAIN = "amazonaws.com"
# Spoke and shared VPCs: /22 networks above every hub's block (hubs use 10.0-10.127).
SPOKE_NETWORKS = IPv4Network("10.128.0.0/9")
MAX_RUNS = 4  # runs to converge before giving up (sharing may need more than one pass)

HUBS_ONLY = "hubs only"
DIRECT = "direct"
CENTRAL = "central"
CENTRAL_PARENT = "central parent"
SHARED = "shared (RAM)"
SPOKE_MODES = (DIRECT, CENTRAL, CENTRAL_PARENT, SHARED)


@dataclass(frozen=True)
class Expected:
    """README's formulas (*What each way costs*) for one cell."""

    rules: int
    associations: int
    ip_change_writes: int


@dataclass
class Cell:
    """The measured figures of one (mode, N, S)."""

    mode: str
    regions: int
    spokes: int
    rules: int = 0
    associations: int = 0
    converge_runs: int = 0
    converge_writes: int = 0
    noop_reads: int = 0
    noop_writes: int = 0
    ip_change_reads: int = 0
    ip_change_writes: int = 0
    ip_change_counts: dict[str, int] = field(default_factory=dict)
    by_account: dict[str, tuple[int, int]] = field(default_factory=dict)


def expected(mode: str, n: int, s: int, d: int = DOMAINS) -> Expected:
    """The README's table, with no workload VPCs in `vpc_ids` and S spokes in all."""
    hub_rules = d * n * (n - 1)
    ip_change = d * (n - 1)  # d rules updated in each of the N-1 other Regions
    if mode in (DIRECT, CENTRAL):
        extra = s * d * (n - 1)
        return Expected(
            hub_rules + extra, hub_rules + extra, ip_change + (s * d if mode == DIRECT else 0)
        )
    if mode == CENTRAL_PARENT:
        return Expected(hub_rules + s, hub_rules + s, ip_change)
    if mode == SHARED:
        return Expected(hub_rules, hub_rules + s * d * (n - 1), ip_change)
    return Expected(hub_rules, hub_rules, ip_change)


def compare(cell: Cell) -> str:
    """ "matches", or how each measured figure differs from the README's (its rules updated
    after an IP change are the writes of that run)."""
    want = expected(cell.mode, cell.regions, cell.spokes)
    differences = [
        f"{name} {got} vs {formula} ({got - formula:+d})"
        for name, got, formula in (
            ("rules", cell.rules, want.rules),
            ("associations", cell.associations, want.associations),
            ("IP-change writes", cell.ip_change_writes, want.ip_change_writes),
        )
        if got != formula
    ]
    return "; ".join(differences) or "matches"


def mesh_regions(count: int) -> list[str]:
    """`count` Regions botocore knows Route 53 Resolver in, the home Region first, in the
    order the local topology assigns CIDR blocks (so that no two hubs' networks overlap)."""
    known = set(boto3.session.Session().get_available_regions("route53resolver"))
    ordered = [HOME_REGION, *(r for r in KNOWN_REGIONS if r in known and r != HOME_REGION)]
    if not 2 <= count <= len(ordered):
        raise SystemExit(f"between 2 and {len(ordered)} Regions, not {count}")
    return ordered[:count]


def spoke_networks() -> Iterator[str]:
    return (str(network) for network in SPOKE_NETWORKS.subnets(new_prefix=22))


def spoke_entries(
    mode: str,
    count: int,
    client: ClientFactory,
    member: Callable[[], CachedClients],
) -> dict[str, Any]:
    """The attributes to add to the first Region's hub item: `count` spokes of `mode`."""
    if mode == HUBS_ONLY or count == 0:
        return {}
    networks = spoke_networks()
    if mode == SHARED:
        ec2 = member()("ec2", HOME_REGION)
        access = {"account_id": MEMBER, "role_arn": MEMBER_ROLE, "external_id": MEMBER_EXTERNAL_ID}
        vpcs = [ec2.create_vpc(CidrBlock=next(networks))["Vpc"]["VpcId"] for _ in range(count)]
        return {"shared_vpcs": [{"vpc_id": vpc, **access} for vpc in vpcs]}
    extra = {"parent_domain": PARENT_DOMAIN} if mode == CENTRAL_PARENT else {}
    spokes = [
        build_spoke(client, HOME_REGION, next(networks), f"spoke-{i + 1}") for i in range(count)
    ]
    kind = DIRECT if mode == DIRECT else CENTRAL
    return {"spokes": [spoke_item(spoke, kind, **extra) for spoke in spokes]}


def reconcile(settings: Settings, session: boto3.session.Session, name: str) -> Report:
    """One reconcile with a fresh `Aws` (clients, rate limiters, assumed roles)."""
    report = Reconciler(Aws(settings, session)).run(Request(apply=True, trigger=name))
    if not report.ok:
        problems = report.errors + report.conflicts + [{"refused": r} for r in report.refused]
        raise SystemExit(f"{name}: the reconcile failed: {problems}")
    return report


def count_live(clients: ClientFactory, regions: list[str]) -> tuple[int, int]:
    """(managed rules owned by the account, rule associations) over `regions`, plain boto3."""
    rules = associations = 0
    for region in regions:
        resolver = clients("route53resolver", region)
        rules += sum(
            1
            for page in resolver.get_paginator("list_resolver_rules").paginate()
            for rule in page["ResolverRules"]
            if rule["CreatorRequestId"].startswith("resolver-mesh/")
            and rule.get("ShareStatus") != "SHARED_WITH_ME"
        )
        associations += sum(
            1
            for page in resolver.get_paginator("list_resolver_rule_associations").paginate()
            for association in page["ResolverRuleAssociations"]
            if association.get("Status", "COMPLETE") != "DELETING"
        )
    return rules, associations


def new_ip(client: ClientFactory, hub: HubResources) -> None:
    """Give the hub's inbound endpoint one more IP (.53 of its first subnet), as the demo does."""
    cidr = client("ec2", hub.region).describe_subnets(SubnetIds=[hub.subnet_ids[0]])["Subnets"][0][
        "CidrBlock"
    ]
    client("route53resolver", hub.region).associate_resolver_endpoint_ip_address(
        ResolverEndpointId=hub.inbound_endpoint_id,
        IpAddress={"SubnetId": hub.subnet_ids[0], "Ip": f"{cidr.rsplit('.', 1)[0]}.53"},
    )


def measure(
    emulator: LocalEmulator,
    session: boto3.session.Session,
    mode: str,
    count: int,
    spokes: int,
) -> Cell:
    emulator.reset()
    regions = mesh_regions(count)
    client = CachedClients(session)
    member_clients: list[CachedClients] = []

    def member() -> CachedClients:
        if not member_clients:
            member_clients.append(assumed_clients(client, MEMBER_ROLE, MEMBER_EXTERNAL_ID, None))
        return member_clients[0]

    hubs = {region: build_hub(client, region) for region in regions}
    create_hubs_table(client, HOME_REGION, TABLE)
    settings = Settings(
        table_name=TABLE,
        home_region=HOME_REGION,
        mesh_regions=tuple(regions),
        calls_per_second=1000.0,
        guard=Guard(max_fraction=1.0),
    )
    table = Aws(settings, session).hubs_table()
    extra = spoke_entries(mode, spokes, client, member)
    for region, hub in hubs.items():
        table.put_item(hub_item(hub, **(extra if region == HOME_REGION else {})))

    cell = Cell(mode, count, spokes)
    for run in range(1, MAX_RUNS + 1):
        report = reconcile(settings, session, f"converge {run}")
        if not any(report.counts.values()):
            cell.noop_reads, cell.noop_writes = report.calls["reads"], report.calls["writes"]
            break
        cell.converge_runs = run
        cell.converge_writes += report.calls["writes"]
    else:
        raise SystemExit(f"{mode}, N={count}, S={spokes}: not converged after {MAX_RUNS} runs")

    accounts: dict[str, ClientFactory] = {"home": client}
    if mode == SHARED and spokes:
        accounts[MEMBER] = member()
    for account, clients in accounts.items():
        cell.by_account[account] = count_live(clients, regions)
    cell.rules = sum(rules for rules, _ in cell.by_account.values())
    cell.associations = sum(associations for _, associations in cell.by_account.values())

    new_ip(client, hubs[regions[1]])
    change = reconcile(settings, session, "peer IP change")
    cell.ip_change_writes = change.calls["writes"]
    cell.ip_change_reads = change.calls["reads"]
    cell.ip_change_counts = {kind: n for kind, n in change.counts.items() if n}
    return cell


def markdown(cells: list[Cell]) -> str:
    lines = [
        "| mode | N | S | rules | associations | converge writes | no-op reads | no-op writes "
        "| writes after a peer IP change | vs README (d=2) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cells:
        runs = f" ({c.converge_runs} runs)" if c.converge_runs > 1 else ""
        lines.append(
            f"| {c.mode} | {c.regions} | {c.spokes} | {c.rules} | {c.associations} "
            f"| {c.converge_writes}{runs} | {c.noop_reads} | {c.noop_writes} "
            f"| {c.ip_change_writes} | {compare(c)} |"
        )
    return "\n".join(lines)


def allow_endpoints(per_region: int) -> None:
    """Let the emulator hold `per_region` Resolver endpoints per account and Region. moto
    refuses the 6th, like AWS's default quota of endpoints per Region (adjustable): the hub's
    inbound and outbound endpoints and S spokes' outbound endpoints share one Region."""
    from moto.route53resolver.models import ResolverEndpoint

    ResolverEndpoint.MAX_ENDPOINTS_PER_REGION = max(
        ResolverEndpoint.MAX_ENDPOINTS_PER_REGION, per_region
    )


def isolate_from_aws() -> None:
    """Only the emulator: no profile, no config file, no per-service endpoint."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL_") or name in ("AWS_PROFILE", "AWS_REGION"):
            del os.environ[name]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--regions", type=int, nargs="+", default=[3, 5], help="hub Regions N")
    parser.add_argument("--spokes", type=int, nargs="+", default=[0, 2, 4], help="spokes S")
    args = parser.parse_args(argv)
    if any(s < 0 for s in args.spokes):
        parser.error("--spokes must be 0 or more")

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    isolate_from_aws()
    allow_endpoints(2 + max(args.spokes))
    started = time.monotonic()
    cells: list[Cell] = []
    with LocalEmulator() as emulator:
        os.environ.update(emulator_environment(emulator.endpoint_url))
        session = boto3.session.Session()
        for count in args.regions:
            for spokes in args.spokes:
                for mode in SPOKE_MODES if spokes else (HUBS_ONLY,):
                    cell_started = time.monotonic()
                    cells.append(measure(emulator, session, mode, count, spokes))
                    log(f"{mode}, N={count}, S={spokes}: {time.monotonic() - cell_started:.1f}s")
    total = time.monotonic() - started

    print(
        f"Measured on the local emulator, {os.cpu_count()} CPUs, in {total:.0f}s. Spokes (or"
        f" shared VPCs of account {MEMBER}) in {HOME_REGION}'s item; the peer whose inbound"
        " endpoint gets an IP is the second Region's hub."
    )
    print()
    print(markdown(cells))
    for c in cells:
        if c.mode == SHARED or compare(c) != "matches":
            accounts = ", ".join(
                f"{account}: {rules} rules, {associations} associations"
                for account, (rules, associations) in c.by_account.items()
            )
            print(
                f"\n{c.mode}, N={c.regions}, S={c.spokes}: {accounts}; the peer IP change run"
                f" read {c.ip_change_reads} times and applied {c.ip_change_counts}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
