"""The local emulator behaves like AWS where resolver-mesh depends on it (all over HTTP)."""

from __future__ import annotations

import gc
import ipaddress
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mesh_emulator import install
from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.topology import (
    KNOWN_REGIONS,
    ClientFactory,
    HubResources,
    build_hub,
    create_hubs_table,
    create_unmanaged_rule,
    default_cidr,
    hub_item,
)

REGION = "us-east-1"


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    """(code, message) of the ClientError raised by `call`."""
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def create_rule(
    resolver: Any,
    hub: HubResources,
    domain: str,
    targets: list[str] | None = None,
    name: str | None = None,
    endpoint_id: str | None = None,
) -> str:
    rule_id: str = resolver.create_resolver_rule(
        CreatorRequestId=f"test/{uuid.uuid4().hex}",
        Name=name or f"rule-{uuid.uuid4().hex[:8]}",
        RuleType="FORWARD",
        DomainName=domain,
        TargetIps=[{"Ip": ip, "Port": 53} for ip in targets or ["10.200.0.10"]],
        ResolverEndpointId=endpoint_id or hub.outbound_endpoint_id,
    )["ResolverRule"]["Id"]
    return rule_id


@pytest.fixture
def hub(aws: ClientFactory) -> HubResources:
    return build_hub(aws, REGION, workload_vpcs=1)


@pytest.fixture
def resolver(aws: ClientFactory) -> Any:
    return aws("route53resolver", REGION)


def test_extensions_install_once_from_many_threads() -> None:
    from moto.route53resolver.models import Route53ResolverBackend

    threads = [threading.Thread(target=install) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    patched = Route53ResolverBackend.associate_resolver_rule
    install()
    assert Route53ResolverBackend.associate_resolver_rule is patched


def test_emulator_listens_on_loopback(emulator: LocalEmulator) -> None:
    assert emulator.endpoint_url.startswith("http://127.0.0.1:")


def test_a_reset_forgets_everything_and_keeps_no_backend_alive(
    emulator: LocalEmulator, aws: ClientFactory, hub: HubResources
) -> None:
    """moto's caches kept every reset backend (and so every test's state) for the session."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends
    from moto.route53resolver.models import route53resolver_backends

    account = DEFAULT_ACCOUNT_ID
    before = [
        weakref.ref(ec2_backends[account]),
        weakref.ref(ec2_backends[account][REGION]),
        weakref.ref(route53resolver_backends[account][REGION]),
    ]

    emulator.reset()
    gc.collect()

    assert [ref() for ref in before] == [None, None, None]
    vpcs = aws("ec2", REGION).describe_vpcs()["Vpcs"]
    assert hub.vpc_id not in {vpc["VpcId"] for vpc in vpcs}
    assert aws("route53resolver", REGION).list_resolver_endpoints()["ResolverEndpoints"] == []


class TestUpdateResolverRule:
    def test_changes_name_targets_and_endpoint(
        self, resolver: Any, hub: HubResources, aws: ClientFactory
    ) -> None:
        rule_id = create_rule(resolver, hub, "example.com", name="before")
        before = resolver.get_resolver_rule(ResolverRuleId=rule_id)["ResolverRule"]
        second_outbound = resolver.create_resolver_endpoint(
            CreatorRequestId=uuid.uuid4().hex,
            Name="second-outbound",
            SecurityGroupIds=resolver.get_resolver_endpoint(
                ResolverEndpointId=hub.inbound_endpoint_id
            )["ResolverEndpoint"]["SecurityGroupIds"],
            Direction="OUTBOUND",
            IpAddresses=[{"SubnetId": subnet_id} for subnet_id in hub.subnet_ids],
        )["ResolverEndpoint"]["Id"]

        updated = resolver.update_resolver_rule(
            ResolverRuleId=rule_id,
            Config={
                "Name": "after",
                "TargetIps": [{"Ip": "10.4.0.10", "Port": 53}, {"Ip": "10.4.1.10", "Port": 53}],
                "ResolverEndpointId": second_outbound,
            },
        )["ResolverRule"]

        assert updated["Id"] == rule_id
        assert updated["Name"] == "after"
        assert [t["Ip"] for t in updated["TargetIps"]] == ["10.4.0.10", "10.4.1.10"]
        assert updated["ResolverEndpointId"] == second_outbound
        assert updated["ModificationTime"] > before["ModificationTime"]
        assert updated["DomainName"] == "example.com."
        listed = resolver.get_resolver_rule(ResolverRuleId=rule_id)["ResolverRule"]
        assert listed["Name"] == "after"
        assert listed["TargetIps"] == updated["TargetIps"]

    def test_changes_only_what_is_given(self, resolver: Any, hub: HubResources) -> None:
        rule_id = create_rule(resolver, hub, "example.com", name="keep-me")
        updated = resolver.update_resolver_rule(
            ResolverRuleId=rule_id, Config={"TargetIps": [{"Ip": "10.4.0.10", "Port": 53}]}
        )["ResolverRule"]
        assert updated["Name"] == "keep-me"
        assert updated["ResolverEndpointId"] == hub.outbound_endpoint_id

    def test_rejects_unknown_rule_and_endpoint(self, resolver: Any, hub: HubResources) -> None:
        rule_id = create_rule(resolver, hub, "example.com")
        code, message = error_of(
            lambda: resolver.update_resolver_rule(
                ResolverRuleId="rslvr-rr-0123456789abcdef0", Config={"Name": "x"}
            )
        )
        assert code == "ResourceNotFoundException"
        assert "rslvr-rr-0123456789abcdef0" in message
        code, _ = error_of(
            lambda: resolver.update_resolver_rule(
                ResolverRuleId=rule_id,
                Config={"ResolverEndpointId": "rslvr-out-0123456789abcdef0"},
            )
        )
        assert code == "ResourceNotFoundException"

    def test_rejects_invalid_config(self, resolver: Any, hub: HubResources) -> None:
        rule_id = create_rule(resolver, hub, "example.com")
        seven = [{"Ip": f"10.4.0.{i}", "Port": 53} for i in range(10, 17)]

        def update(**config: Any) -> Callable[[], Any]:
            return lambda: resolver.update_resolver_rule(ResolverRuleId=rule_id, Config=config)

        assert error_of(update(TargetIps=seven))[0] == "InvalidParameterException"
        assert error_of(update(Name="us-east-2.amazonaws.com"))[0] == "ValidationException"
        assert error_of(update(ResolverEndpointId=hub.inbound_endpoint_id))[0] == (
            "InvalidRequestException"
        )


class TestAssociationConflicts:
    @pytest.mark.parametrize(
        ("first", "second"),
        [
            ("example.com", "example.com"),
            ("example.com", "example.com."),
            ("example.com.", "EXAMPLE.com"),
            ("Example.COM", "example.com."),
        ],
    )
    def test_same_domain_in_one_vpc_is_rslvr_00802(
        self, resolver: Any, hub: HubResources, first: str, second: str
    ) -> None:
        first_id = create_rule(resolver, hub, first)
        second_id = create_rule(resolver, hub, second)
        resolver.associate_resolver_rule(ResolverRuleId=first_id, VPCId=hub.vpc_id, Name="a")

        code, message = error_of(
            lambda: resolver.associate_resolver_rule(
                ResolverRuleId=second_id, VPCId=hub.vpc_id, Name="b"
            )
        )
        assert code == "InvalidRequestException"
        assert "RSLVR-00802" in message
        assert first_id in message

    def test_same_rule_twice_is_rslvr_00802(self, resolver: Any, hub: HubResources) -> None:
        rule_id = create_rule(resolver, hub, "example.com")
        resolver.associate_resolver_rule(ResolverRuleId=rule_id, VPCId=hub.vpc_id, Name="a")
        code, message = error_of(
            lambda: resolver.associate_resolver_rule(
                ResolverRuleId=rule_id, VPCId=hub.vpc_id, Name="a"
            )
        )
        assert code == "InvalidRequestException"
        assert "RSLVR-00802" in message
        assert rule_id in message

    def test_conflicts_with_a_rule_we_do_not_own(
        self, aws: ClientFactory, resolver: Any, hub: HubResources
    ) -> None:
        assert hub.outbound_endpoint_id is not None
        theirs = create_unmanaged_rule(
            aws, REGION, "example.com", hub.outbound_endpoint_id, "10.200.0.10", vpc_id=hub.vpc_id
        )
        ours = create_rule(resolver, hub, "example.com.")
        code, message = error_of(
            lambda: resolver.associate_resolver_rule(
                ResolverRuleId=ours, VPCId=hub.vpc_id, Name="ours"
            )
        )
        assert (code, theirs in message) == ("InvalidRequestException", True)

    def test_other_vpc_or_other_domain_is_fine(self, resolver: Any, hub: HubResources) -> None:
        first = create_rule(resolver, hub, "example.com")
        same_domain = create_rule(resolver, hub, "example.com.")
        subdomain = create_rule(resolver, hub, "sub.example.com")
        workload_vpc = hub.workload_vpc_ids[0]
        resolver.associate_resolver_rule(ResolverRuleId=first, VPCId=hub.vpc_id, Name="a")
        resolver.associate_resolver_rule(ResolverRuleId=same_domain, VPCId=workload_vpc, Name="b")
        resolver.associate_resolver_rule(ResolverRuleId=subdomain, VPCId=hub.vpc_id, Name="c")

    def test_after_disassociation_the_domain_is_free(
        self, resolver: Any, hub: HubResources
    ) -> None:
        old = create_rule(resolver, hub, "example.com")
        new = create_rule(resolver, hub, "example.com")
        resolver.associate_resolver_rule(ResolverRuleId=old, VPCId=hub.vpc_id, Name="old")
        resolver.disassociate_resolver_rule(ResolverRuleId=old, VPCId=hub.vpc_id)
        resolver.associate_resolver_rule(ResolverRuleId=new, VPCId=hub.vpc_id, Name="new")

    def test_rule_targeting_own_inbound_endpoint_is_rslvr_00804(
        self, resolver: Any, hub: HubResources
    ) -> None:
        inbound_ips = [
            ip["Ip"]
            for ip in resolver.list_resolver_endpoint_ip_addresses(
                ResolverEndpointId=hub.inbound_endpoint_id
            )["IpAddresses"]
        ]
        rule_id = create_rule(resolver, hub, "us-east-1.amazonaws.com", targets=inbound_ips)
        code, message = error_of(
            lambda: resolver.associate_resolver_rule(
                ResolverRuleId=rule_id, VPCId=hub.vpc_id, Name="self"
            )
        )
        assert code == "InvalidRequestException"
        assert "RSLVR-00804" in message
        resolver.associate_resolver_rule(
            ResolverRuleId=rule_id, VPCId=hub.workload_vpc_ids[0], Name="workload"
        )


class TestCreateValidation:
    def test_at_most_six_targets(self, resolver: Any, hub: HubResources) -> None:
        six = [f"10.4.0.{i}" for i in range(10, 16)]
        create_rule(resolver, hub, "six.example.com", targets=six)
        code, _ = error_of(
            lambda: create_rule(resolver, hub, "seven.example.com", targets=[*six, "10.4.0.99"])
        )
        assert code == "InvalidParameterException"

    @pytest.mark.parametrize("name", ["us-east-2.amazonaws.com", "x" * 65, "12345"])
    def test_name_follows_the_aws_pattern(
        self, resolver: Any, hub: HubResources, name: str
    ) -> None:
        code, message = error_of(lambda: create_rule(resolver, hub, "example.com", name=name))
        assert code == "ValidationException"
        assert "name" in message

    def test_name_of_64_allowed_characters_is_fine(self, resolver: Any, hub: HubResources) -> None:
        create_rule(resolver, hub, "example.com", name="a-b_c d" + "x" * 57)

    def test_forward_rule_needs_an_outbound_endpoint(
        self, resolver: Any, hub: HubResources
    ) -> None:
        code, _ = error_of(
            lambda: create_rule(resolver, hub, "x.example", endpoint_id=hub.inbound_endpoint_id)
        )
        assert code == "InvalidRequestException"

    def test_domain_comes_back_with_one_trailing_dot(
        self, resolver: Any, hub: HubResources
    ) -> None:
        for domain in ("a.example.com", "b.example.com."):
            rule_id = create_rule(resolver, hub, domain)
            rule = resolver.get_resolver_rule(ResolverRuleId=rule_id)["ResolverRule"]
            assert rule["DomainName"] == domain.rstrip(".") + "."
        filtered = resolver.list_resolver_rules(
            Filters=[{"Name": "DomainName", "Values": ["b.example.com."]}]
        )["ResolverRules"]
        assert [r["DomainName"] for r in filtered] == ["b.example.com."]


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


def test_list_resolver_rules_paginates_over_pages_of_ten(resolver: Any, hub: HubResources) -> None:
    created = {
        create_rule(resolver, hub, f"d{i:02}.example.com", name=f"r{i:02}") for i in range(25)
    }
    first_page = resolver.list_resolver_rules()
    assert len(first_page["ResolverRules"]) == 10
    assert "NextToken" in first_page
    pages = list(resolver.get_paginator("list_resolver_rules").paginate())
    listed = [rule["Id"] for page in pages for rule in page["ResolverRules"]]
    assert len(pages) == 3
    assert sorted(listed) == sorted(created)


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
