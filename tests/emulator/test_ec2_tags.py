"""`mesh_emulator.ec2.install_tag_lookup`: an EC2 resource's tags looked up by its id, with
moto's answers, over HTTP."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from resolver_mesh.local.topology import ClientFactory

REGION = "eu-west-1"


def _moto_tags(resource: Any) -> list[dict[str, str]]:
    """moto's own answer: the tags of every tagged resource whose id the id's pattern
    matches (`TagBackend.describe_tags`, which the lookup replaces)."""
    from moto.ec2.models.tags import TagBackend

    return TagBackend.describe_tags(resource.ec2_backend, filters={"resource-id": [resource.id]})


def test_tags_by_id_are_moto_s_answers(aws: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """VPCs with no tag, one, several (in the order they were made, one changed and one
    removed since) and an empty value, among tagged subnets and security groups: each VPC's
    tags, DescribeVpcs's among them, are moto's; an id with a wildcard (none is made by EC2)
    still gets moto's answer, the tags of every id it matches."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.core import TaggedEC2Resource

    from mesh_emulator import install

    install()
    ec2 = aws("ec2", REGION)
    account = aws("sts", REGION).get_caller_identity()["Account"]
    vpcs = [ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"] for _ in range(4)]
    ec2.create_tags(Resources=[vpcs[1]], Tags=[{"Key": "resolver-mesh", "Value": "m"}])
    ec2.create_tags(
        Resources=[vpcs[2]],
        Tags=[{"Key": k, "Value": v} for k, v in (("b", "2"), ("a", "1"), ("c", ""), ("d", "4"))],
    )
    ec2.create_tags(Resources=[vpcs[2]], Tags=[{"Key": "a", "Value": "changed"}])
    ec2.delete_tags(Resources=[vpcs[2]], Tags=[{"Key": "d"}])
    for vpc in vpcs:
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName=f"g-{vpc}", Description="d", VpcId=vpc)
        ec2.create_tags(
            Resources=[subnet, group["GroupId"]], Tags=[{"Key": "resolver-mesh", "Value": "m"}]
        )
    backend = ec2_backends[account][REGION]
    from moto.ec2.models.tags import TagBackend

    scans: list[Any] = []
    scan = TagBackend.describe_tags
    with monkeypatch.context() as counting:
        counting.setattr(
            TagBackend, "describe_tags", lambda *a, **k: scans.append(a) or scan(*a, **k)
        )
        found = {vpc.id: vpc.get_tags() for vpc in backend.vpcs.values()}
        ec2.describe_vpcs()
        assert scans == []  # looked up by id, not scanned for
        TaggedEC2Resource.get_tags(SimpleNamespace(id="vpc-*", ec2_backend=backend))
        assert len(scans) == 1  # a wildcard: moto's scan
    assert set(vpcs) <= set(found)
    for vpc in backend.vpcs.values():
        assert found[vpc.id] == _moto_tags(vpc), vpc.id
    assert found[vpcs[0]] == []
    assert [(t["key"], t["value"]) for t in found[vpcs[2]]] == [
        ("b", "2"),
        ("a", "changed"),
        ("c", ""),
    ]
    assert {t["resource_type"] for t in found[vpcs[2]]} == {"vpc"}
    listed = {v["VpcId"]: v.get("Tags", []) for v in ec2.describe_vpcs(VpcIds=vpcs)["Vpcs"]}
    assert {vpc: [(t["Key"], t["Value"]) for t in tags] for vpc, tags in listed.items()} == {
        vpc: [(t["key"], t["value"]) for t in found[vpc]] for vpc in vpcs
    }

    for pattern in ("vpc-*", "vpc-?*", "[v]pc-*", "*"):
        wildcard = SimpleNamespace(id=pattern, ec2_backend=backend)
        assert TaggedEC2Resource.get_tags(wildcard) == _moto_tags(wildcard)
        assert len(TaggedEC2Resource.get_tags(wildcard)) >= 4  # every VPC it matches
    assert TaggedEC2Resource.get_tags(SimpleNamespace(id="", ec2_backend=backend)) == []
