"""The Route 53 Resolver extensions of the emulator (`mesh_emulator.route53resolver`): what
moto lacks or does differently from AWS (UpdateResolverRule, association conflicts, create
validation, pages of ten), all over HTTP."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mesh_emulator import install
from resolver_mesh.local.topology import (
    ClientFactory,
    HubResources,
    build_hub,
    create_unmanaged_rule,
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
