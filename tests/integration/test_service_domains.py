"""`{services}` hubs over HTTP: interface endpoints created or deleted in a hub add or remove the
matching rules in every peer Region within one reconcile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from meshkit import Mesh

EVENTS = Path(__file__).resolve().parents[2] / "events"
HOME_ACCOUNT = "123456789012"  # the emulator's default account
OTHER_ACCOUNT = "210987654321"

SERVICES = ["{services}", "{region}.vpce.amazonaws.com"]
S3_NAMES = ("s3", "s3-control", "s3-accesspoint")


def managed_domains(mesh: Mesh, region: str) -> set[str]:
    return {r["DomainName"] for r in mesh.observe(region).managed()}


def test_interface_endpoints_become_rules_and_leave_with_them(make_mesh: Any) -> None:
    mesh: Mesh = make_mesh(
        items={r: {"domains": SERVICES} for r in ("us-east-1", "us-east-2", "us-west-2")}
    )
    first = mesh.resync()
    assert first["ok"], first["errors"]
    expected = {f"{name}.us-east-2.amazonaws.com." for name in S3_NAMES}
    expected.add("us-east-2.vpce.amazonaws.com.")
    for region in ("us-east-1", "us-west-2"):
        assert expected <= managed_domains(mesh, region)
        assert "us-east-2.amazonaws.com." not in managed_domains(mesh, region)

    east2 = mesh.hubs["us-east-2"]
    ec2 = mesh.aws("ec2", "us-east-2")
    kms = ec2.create_vpc_endpoint(
        VpcId=east2.vpc_id,
        ServiceName="com.amazonaws.us-east-2.kms",
        VpcEndpointType="Interface",
        SubnetIds=list(east2.subnet_ids),
        PrivateDnsEnabled=True,
    )["VpcEndpoint"]["VpcEndpointId"]
    joined = mesh.resync()
    assert joined["counts"]["create_rule"] == 2  # kms in us-east-1 and us-west-2
    for region in ("us-east-1", "us-west-2"):
        assert "kms.us-east-2.amazonaws.com." in managed_domains(mesh, region)

    ec2.delete_vpc_endpoints(VpcEndpointIds=[east2.interface_endpoint_ids["s3"], kms])
    left = mesh.resync()
    assert left["ok"], left["errors"] + left["refused"]
    assert left["counts"]["delete_rule"] == 2 * 4  # three S3 names and kms, in two Regions
    for region in ("us-east-1", "us-west-2"):
        domains = managed_domains(mesh, region)
        assert domains.isdisjoint(
            {*expected - {"us-east-2.vpce.amazonaws.com."}, "kms.us-east-2.amazonaws.com."}
        )
        assert "us-east-2.vpce.amazonaws.com." in domains
    assert mesh.resync()["calls"]["writes"] == 0


def endpoint_event(region: str, account: str) -> dict[str, Any]:
    event = json.loads((EVENTS / "cloudtrail-CreateVpcEndpoint.json").read_text())
    event["detail"] |= {"awsRegion": region, "recipientAccountId": account}
    return event


def test_an_interface_endpoint_event_from_another_account_without_a_hub_reads_nothing(
    make_mesh: Any,
) -> None:
    """Endpoint events come from every account and Region of an organisation, but interface
    endpoints are read only in hub locations: from another account's Region without a hub,
    the event's pass reads the hubs table (and the account id), says why it stops, and
    changes nothing. From a hub's location, or anywhere in the reconciler's own account, it is
    the full pass it always was (a trigger means "look again")."""
    mesh: Mesh = make_mesh(
        items={r: {"domains": SERVICES} for r in ("us-east-1", "us-east-2", "us-west-2")}
    )
    assert mesh.resync()["ok"]
    east2 = mesh.hubs["us-east-2"]
    mesh.aws("ec2", "us-east-2").create_vpc_endpoint(
        VpcId=east2.vpc_id,
        ServiceName="com.amazonaws.us-east-2.kms",
        VpcEndpointType="Interface",
        SubnetIds=list(east2.subnet_ids),
        PrivateDnsEnabled=True,
    )
    kms = "kms.us-east-2.amazonaws.com."
    for region in ("us-east-2", "eu-west-1"):
        skipped = mesh.invoke(endpoint_event(region, OTHER_ACCOUNT))
        assert skipped["ok"], skipped["errors"]
        assert skipped["changes"] == []
        assert skipped["regions"] == []  # nothing swept
        assert skipped["calls"]["reads"] <= 2  # the hubs table, the account id
        [note] = skipped["notes"]
        assert note == (
            f"interface VPC endpoint changes in {region} ({OTHER_ACCOUNT}): no hub there, so"
            " nothing to reconcile (only hubs' interface endpoints are read)"
        )
        assert kms not in managed_domains(mesh, "us-east-1")

    done = mesh.invoke(endpoint_event("us-east-2", HOME_ACCOUNT))
    assert done["ok"], done["errors"]
    assert done["counts"]["create_rule"] == 2  # kms in us-east-1 and us-west-2
    assert kms in managed_domains(mesh, "us-west-2")


@pytest.mark.parametrize("region", ["us-east-2", "eu-west-1"])
def test_an_interface_endpoint_event_of_the_home_account_is_a_full_pass(
    make_mesh: Any, region: str
) -> None:
    """Without `{services}` hubs, and in a Region with or without a hub: an event of the
    reconciler's own account looks at everything again, as the replayed sample does."""
    mesh: Mesh = make_mesh()
    assert mesh.resync()["ok"]
    mesh.remove("us-west-2")  # a change only a full pass makes
    done = mesh.invoke(endpoint_event(region, HOME_ACCOUNT))
    assert done["ok"], done["errors"]
    assert done["counts"]["delete_rule"] > 0
    assert not any("interface VPC endpoint" in note for note in done["notes"])
