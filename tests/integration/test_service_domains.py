"""`{services}` hubs over HTTP: interface endpoints created or deleted in a hub add or remove the
matching rules in every peer Region within one reconcile."""

from __future__ import annotations

from typing import Any

from meshkit import Mesh

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
