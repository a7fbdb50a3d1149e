"""`mesh_emulator.faults` on EC2's query protocol: faults chosen by a fragment of the form body
and by Region, answered in EC2's XML error shape with its codes, so botocore reads them as
EC2 would send them."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from mesh_emulator.faults import injected_faults
from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.topology import ClientFactory

TAG_FILTER = "tag:resolver-mesh:mesh"


def tagged(aws: ClientFactory, region: str) -> list[str]:
    ec2 = aws("ec2", region)
    found = ec2.describe_vpcs(Filters=[{"Name": TAG_FILTER, "Values": ["m"]}])["Vpcs"]
    return [vpc["VpcId"] for vpc in found]


@pytest.mark.parametrize(
    ("kind", "code"),
    [("denied", "UnauthorizedOperation"), ("error", "InternalError")],
)
def test_a_query_fault_hits_only_the_matching_calls_of_the_chosen_regions(
    aws: ClientFactory, emulator: LocalEmulator, kind: str, code: str
) -> None:
    ec2 = aws("ec2", "us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "resolver-mesh:mesh", "Value": "m"}])
    with injected_faults(
        emulator, 1.0, kinds=(kind,), queries=(TAG_FILTER,), regions=("us-east-1",)
    ) as injector:
        with pytest.raises(ClientError) as failed:
            tagged(aws, "us-east-1")
        assert failed.value.response["Error"]["Code"] == code
        assert tagged(aws, "us-west-2") == []  # another Region: passed on
        plain = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"]  # another filter: passed on
        assert [v["VpcId"] for v in plain] == [vpc]
    # only the tag reads of us-east-1 were chosen (the client retries a 500 on its own)
    assert injector.requests == injector.injected[kind] >= 1
    assert tagged(aws, "us-east-1") == [vpc]  # the block is over: the call works again


def test_a_throttled_query_is_ec2s_request_limit_and_json_services_are_unchanged(
    aws: ClientFactory, emulator: LocalEmulator
) -> None:
    with injected_faults(emulator, 1.0, kinds=("throttle",), queries=("Action=DescribeVpcs",)):
        with pytest.raises(ClientError) as failed:
            aws("ec2", "us-east-1").describe_vpcs()
        assert failed.value.response["Error"]["Code"] == "RequestLimitExceeded"
        with pytest.raises(ClientError) as json_failed:  # the default service, as before
            aws("route53resolver", "us-east-1").list_resolver_rules()
        assert json_failed.value.response["Error"]["Code"] == "ThrottlingException"
