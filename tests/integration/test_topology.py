"""The product's local topology builders (`resolver_mesh.local.topology`) on the emulator: hubs,
CIDRs, the hubs table."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from resolver_mesh.local.topology import (
    KNOWN_REGIONS,
    ClientFactory,
    HubResources,
    build_hub,
    create_hubs_table,
    default_cidr,
    hub_item,
)

REGION = "us-east-1"


@pytest.fixture
def hub(aws: ClientFactory) -> HubResources:
    return build_hub(aws, REGION, workload_vpcs=1)


@pytest.fixture
def resolver(aws: ClientFactory) -> Any:
    return aws("route53resolver", REGION)


class TestBuildHub:
    def test_endpoints_are_operational_with_attached_ips(
        self, aws: ClientFactory, hub: HubResources, resolver: Any
    ) -> None:
        assert hub.outbound_endpoint_id is not None
        for endpoint_id, direction in (
            (hub.inbound_endpoint_id, "INBOUND"),
            (hub.outbound_endpoint_id, "OUTBOUND"),
        ):
            endpoint = resolver.get_resolver_endpoint(ResolverEndpointId=endpoint_id)[
                "ResolverEndpoint"
            ]
            assert endpoint["Status"] == "OPERATIONAL"
            assert endpoint["Direction"] == direction
            assert endpoint["HostVPCId"] == hub.vpc_id
            assert endpoint["IpAddressCount"] == 2
            assert endpoint["Name"]
            ips = resolver.list_resolver_endpoint_ip_addresses(ResolverEndpointId=endpoint_id)[
                "IpAddresses"
            ]
            assert [ip["Status"] for ip in ips] == ["ATTACHED", "ATTACHED"]
            assert {ip["SubnetId"] for ip in ips} == set(hub.subnet_ids)
        listed = resolver.list_resolver_endpoints()["ResolverEndpoints"]
        assert {e["Id"] for e in listed} == {hub.inbound_endpoint_id, hub.outbound_endpoint_id}

    def test_network_resources(self, aws: ClientFactory, hub: HubResources) -> None:
        ec2 = aws("ec2", REGION)
        vpc = ec2.describe_vpcs(VpcIds=[hub.vpc_id])["Vpcs"][0]
        assert vpc["CidrBlock"] == default_cidr(REGION)
        for attribute, key in (
            ("enableDnsSupport", "EnableDnsSupport"),
            ("enableDnsHostnames", "EnableDnsHostnames"),
        ):
            value = ec2.describe_vpc_attribute(VpcId=hub.vpc_id, Attribute=attribute)
            assert value[key]["Value"] is True
        subnets = ec2.describe_subnets(SubnetIds=list(hub.subnet_ids))["Subnets"]
        assert len({s["AvailabilityZone"] for s in subnets}) == 2
        endpoint = ec2.describe_vpc_endpoints(VpcEndpointIds=[hub.interface_endpoint_ids["s3"]])[
            "VpcEndpoints"
        ][0]
        assert endpoint["ServiceName"] == f"com.amazonaws.{REGION}.s3"
        assert endpoint["VpcEndpointType"] == "Interface"
        assert endpoint["PrivateDnsEnabled"] is True
        workload = ec2.describe_vpcs(VpcIds=list(hub.workload_vpc_ids))["Vpcs"][0]
        assert not ipaddress.ip_network(workload["CidrBlock"]).overlaps(
            ipaddress.ip_network(vpc["CidrBlock"])
        )

    def test_hub_without_outbound_endpoint(self, aws: ClientFactory) -> None:
        hub = build_hub(aws, "eu-west-1", outbound=False, services=("s3", "sqs"))
        assert hub.outbound_endpoint_id is None
        assert set(hub.interface_endpoint_ids) == {"s3", "sqs"}
        item = hub_item(hub, peers=["us-east-1"])
        assert item == {
            "region": "eu-west-1",
            "vpc_id": hub.vpc_id,
            "inbound_endpoint_id": hub.inbound_endpoint_id,
            "peers": ["us-east-1"],
        }

    def test_hub_item(self, hub: HubResources) -> None:
        assert hub_item(hub) == {
            "region": REGION,
            "vpc_id": hub.vpc_id,
            "inbound_endpoint_id": hub.inbound_endpoint_id,
            "outbound_endpoint_id": hub.outbound_endpoint_id,
            "vpc_ids": list(hub.workload_vpc_ids),
        }


def test_default_cidrs_never_overlap() -> None:
    blocks = [ipaddress.ip_network(default_cidr(region)) for region in KNOWN_REGIONS]
    workloads = [ipaddress.ip_network((n.network_address + 3 * 65536, 16)) for n in blocks]
    every = blocks + workloads
    assert all(not a.overlaps(b) for i, a in enumerate(every) for b in every[i + 1 :]), (
        "a Region's block (hub and up to 3 workload VPCs) overlaps another Region's"
    )
    assert all(n.subnet_of(ipaddress.ip_network("10.0.0.0/8")) for n in every)
    assert ipaddress.ip_network(default_cidr("xx-future-1")).subnet_of(
        ipaddress.ip_network("10.0.0.0/8")
    )


def test_create_hubs_table_is_idempotent(aws: ClientFactory) -> None:
    create_hubs_table(aws, REGION, "hubs")
    create_hubs_table(aws, REGION, "hubs")
    dynamodb = aws("dynamodb", REGION)
    table = dynamodb.describe_table(TableName="hubs")["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["KeySchema"] == [{"AttributeName": "region", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert dynamodb.list_tables()["TableNames"] == ["hubs"]
