"""`resolver-mesh demo`: the seed article's mesh on a local AWS emulator, reconciled live.

Everything runs against moto on 127.0.0.1 through real HTTP; no AWS account is touched:
the demo overwrites the AWS_* variables of its own process before creating any client.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

DEMO_REGIONS = ("us-east-1", "us-east-2", "us-west-2")
JOINING_REGION = "eu-west-1"
TABLE = "resolver-mesh-hubs"


def run_demo(port: int = 0, out: Callable[[str], None] = print) -> int:
    """Build, register, reconcile, change the world, reconcile again. Returns an exit status."""
    try:
        from resolver_mesh.local.emulator import LocalEmulator, emulator_environment
    except ImportError as error:  # pragma: no cover - moto is a development dependency
        out(f"the demo needs moto: pip install 'resolver-mesh[local]' ({error})")
        return 2
    import boto3

    from resolver_mesh.aws.session import Aws
    from resolver_mesh.config import Settings
    from resolver_mesh.local.topology import CachedClients, build_hub, create_hubs_table, hub_item
    from resolver_mesh.models import Request
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

        def show_rules() -> None:
            regions = sorted(set(hubs))
            states = [aws.resolver(r).read(rules=True, endpoints=False) for r in regions]
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
        last = reconciler.run(Request(apply=True, trigger="demo"))
        out(report_text(last.as_dict(), style))
        step("Forwarding rules per Region, at the end")
        show_rules()
    ok = first.ok and last.ok
    out("")
    out("The demo is over; the emulator has stopped." if ok else "The demo hit errors (above).")
    return 0 if ok else 1


def _spare_ip(subnet_ids: tuple[str, ...], client: Callable[[str, str], Any]) -> str:
    """An address in the hub's first subnet that the topology did not hand out."""
    ec2 = client("ec2", "us-east-2")
    cidr = ec2.describe_subnets(SubnetIds=[subnet_ids[0]])["Subnets"][0]["CidrBlock"]
    base = cidr.split("/")[0].rsplit(".", 1)[0]
    return f"{base}.53"
