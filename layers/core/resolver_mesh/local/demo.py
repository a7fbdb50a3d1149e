"""`resolver-mesh demo`: the seed article's mesh on a local AWS emulator, reconciled live.

Everything runs against moto on 127.0.0.1 through real HTTP; no AWS account is touched:
the demo overwrites the AWS_* variables of its own process before creating any client.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

DEMO_REGIONS = ("us-east-1", "us-east-2", "us-west-2")
JOINING_REGION = "eu-west-1"
TABLE = "resolver-mesh-hubs"
MEMBER_ACCOUNT = "222222222222"
MEMBER_ROLE = f"arn:aws:iam::{MEMBER_ACCOUNT}:role/resolver-mesh-member-resolver-mesh"
MEMBER_EXTERNAL_ID = "resolver-mesh-demo"


def run_demo(port: int = 0, out: Callable[[str], None] = print) -> int:
    """Build, register, reconcile, change the world, reconcile again. Returns an exit status."""
    from mesh_emulator.server import (
        LocalEmulator,
        LocalExtrasMissingError,
        emulator_environment,
        require_local_extras,
    )

    try:
        require_local_extras()
    except LocalExtrasMissingError as error:
        print(error, file=sys.stderr)
        return 2
    import boto3

    from resolver_mesh.aws.session import Aws
    from resolver_mesh.config import Settings
    from resolver_mesh.local.topology import (
        CachedClients,
        assumed_clients,
        build_hub,
        build_spoke,
        create_hubs_table,
        hub_item,
        spoke_item,
    )
    from resolver_mesh.models import AccountAccess, Request
    from resolver_mesh.reconcile import Reconciler
    from resolver_mesh.render import Style, report_text, rules_text, summary_text

    style = Style(sys.stdout.isatty())

    def step(title: str) -> None:
        out("")
        out(style.bold(f"== {title}"))

    with LocalEmulator(port) as emulator:
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(emulator_environment(emulator.endpoint_url))
        session = boto3.session.Session()
        client = CachedClients(session)

        step(f"Local AWS emulator at {emulator.endpoint_url}; building the article's topology")
        hubs = {}
        for region in DEMO_REGIONS:
            hubs[region] = build_hub(
                client, region, workload_vpcs=1 if region == "us-east-1" else 0
            )
            hub = hubs[region]
            workloads = (
                f", workload VPC {', '.join(hub.workload_vpc_ids)}" if hub.workload_vpc_ids else ""
            )
            out(
                f"  {region}: hub {hub.vpc_id}, inbound {hub.inbound_endpoint_id},"
                f" outbound {hub.outbound_endpoint_id}, S3 endpoint"
                f" {hub.interface_endpoint_ids.get('s3')}{workloads}"
            )
        create_hubs_table(client, "us-east-1", TABLE)
        settings = Settings.from_env(
            table_name=TABLE,
            home_region="us-east-1",
            mesh_regions=(*DEMO_REGIONS, JOINING_REGION),
            calls_per_second=50.0,
        )
        aws = Aws(settings, session)
        reconciler = Reconciler(aws)
        for hub in hubs.values():
            aws.hubs_table().put_item(hub_item(hub))
        out(f"  registered {len(hubs)} hubs in the DynamoDB table {TABLE}")

        def show_rules(regions: Iterable[str] = (), member: Aws | None = None) -> None:
            regions = sorted(regions or set(hubs))
            states = [aws.resolver(r).read(rules=True, endpoints=False) for r in regions]
            if member is not None:
                read = member.resolver
                states += [
                    replace(read(r).read(rules=True, endpoints=False), account=MEMBER_ACCOUNT)
                    for r in regions
                ]
            out(rules_text(states, settings.mesh_id, style))

        step("Plan (nothing is changed yet)")
        out(report_text(reconciler.run(Request(apply=False)).as_dict(), style))
        step("Resync: the plan above, applied")
        first = reconciler.run(Request(apply=True, trigger="demo"))
        out(summary_text(first.as_dict(), style))
        for problem in first.errors + first.conflicts:
            out(f"  ! {problem['message']}")
        step("Forwarding rules per Region")
        show_rules()
        step("A second resync straight after: nothing to do, zero writes")
        out(report_text(reconciler.run(Request(apply=True, trigger="demo")).as_dict(), style))

        step(f"The world changes: a hub in {JOINING_REGION} joins the mesh")
        hubs[JOINING_REGION] = build_hub(client, JOINING_REGION)
        aws.hubs_table().put_item(hub_item(hubs[JOINING_REGION]))
        out(report_text(reconciler.run(Request(apply=True, trigger="demo")).as_dict(), style))

        step("The us-east-2 inbound endpoint gets a third IP: targets are updated in place")
        us_east_2 = hubs["us-east-2"]
        client("route53resolver", "us-east-2").associate_resolver_endpoint_ip_address(
            ResolverEndpointId=us_east_2.inbound_endpoint_id,
            IpAddress={
                "SubnetId": us_east_2.subnet_ids[0],
                "Ip": _spare_ip(us_east_2.subnet_ids, client),
            },
        )
        out(report_text(reconciler.run(Request(apply=True, trigger="demo")).as_dict(), style))

        step(
            "Workload VPCs with their own outbound endpoints in us-east-1: a direct spoke here,"
            f" a central spoke and a VPC using the hub's rules in account {MEMBER_ACCOUNT}"
        )
        member_clients = assumed_clients(client, MEMBER_ROLE, MEMBER_EXTERNAL_ID, None)
        direct = build_spoke(client, "us-east-1", "10.100.0.0/16", "direct-spoke")
        central = build_spoke(member_clients, "us-east-1", "10.104.0.0/16", "central-spoke")
        shared_vpc = member_clients("ec2", "us-east-1").create_vpc(CidrBlock="10.108.0.0/16")
        access = {
            "account_id": MEMBER_ACCOUNT,
            "role_arn": MEMBER_ROLE,
            "external_id": MEMBER_EXTERNAL_ID,
        }
        aws.hubs_table().put_item(
            hub_item(
                hubs["us-east-1"],
                spokes=[
                    spoke_item(direct, "direct"),
                    spoke_item(central, "central", parent_domain="amazonaws.com", **access),
                ],
                shared_vpcs=[{"vpc_id": shared_vpc["Vpc"]["VpcId"], **access}],
            )
        )
        out(
            f"  direct spoke {direct.vpc_id}; central spoke {central.vpc_id} and shared VPC"
            f" {shared_vpc['Vpc']['VpcId']} in account {MEMBER_ACCOUNT}"
        )
        last = reconciler.run(Request(apply=True, trigger="demo"))
        out(report_text(last.as_dict(), style))
        step("Forwarding rules in us-east-1, in both accounts")
        show_rules(["us-east-1"], aws.member(AccountAccess.model_validate(access)))
        step(
            "us-east-2 switches to delivery through a Route 53 Profile: the Profile first,"
            " then the direct associations go (make before break)"
        )
        aws.hubs_table().put_item(hub_item(us_east_2, delivery="profile"))
        switched = reconciler.run(Request(apply=True, trigger="demo"))
        out(report_text(switched.as_dict(), style))
        profiles = aws.profiles("us-east-2").read(settings.mesh_id)
        for profile in (p for p in profiles.profiles if p.ours):
            held = [r for r in profiles.resources if r.profile_id == profile.id]
            vpcs = [a.vpc_id for a in profiles.associations if a.profile_id == profile.id]
            out(
                f"  Profile {profile.id} ({profile.name}): {len(held)} rules,"
                f" VPCs {', '.join(vpcs)}"
            )
        step("Forwarding rules per Region, at the end")
        show_rules()
    ok = first.ok and last.ok and switched.ok
    out("")
    out("The demo is over; the emulator has stopped." if ok else "The demo hit errors (above).")
    return 0 if ok else 1


def _spare_ip(subnet_ids: tuple[str, ...], client: Callable[[str, str], Any]) -> str:
    """An address in the hub's first subnet that the topology did not hand out."""
    ec2 = client("ec2", "us-east-2")
    cidr = ec2.describe_subnets(SubnetIds=[subnet_ids[0]])["Subnets"][0]["CidrBlock"]
    base = cidr.split("/")[0].rsplit(".", 1)[0]
    return f"{base}.53"
