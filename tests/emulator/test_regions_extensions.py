"""The emulator's Region extensions: `mesh_emulator.scp` (Regions an SCP denies),
`mesh_emulator.optin` (opt-in Regions an account has not enabled) and
`mesh_emulator.ec2.new_region` (a Region newer than botocore's lists), over HTTP."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from mesh_emulator.ec2 import new_region
from mesh_emulator.optin import regions_not_enabled
from mesh_emulator.scp import denied_regions
from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.topology import ClientFactory, assumed_clients

HOME_REGION = "us-east-1"
NEW = "ap-futurex-1"  # botocore lists no such Region; its partition's pattern matches it
SPARE = "ap-southeast-2"  # no hub there
OPT_IN = "ap-east-1"  # an opt-in Region (Hong Kong)
MEMBER = "222222222222"
OTHER = "333333333333"


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_a_denied_region_refuses_every_call_as_an_scp_does(
    emulator: LocalEmulator, aws: ClientFactory
) -> None:
    with denied_regions(emulator, [SPARE]) as denier:
        with pytest.raises(ClientError) as resolver_error:
            aws("route53resolver", SPARE).list_resolver_rules()
        with pytest.raises(ClientError) as ec2_error:
            aws("ec2", SPARE).describe_vpcs()
        assert aws("route53resolver", HOME_REGION).list_resolver_rules()["ResolverRules"] == []
    assert _code(resolver_error) == "AccessDeniedException"
    assert _code(ec2_error) == "UnauthorizedOperation"
    assert "explicit deny in a service control policy" in str(resolver_error.value)
    assert denier.refused == {SPARE: 2}
    assert aws("route53resolver", SPARE).list_resolver_rules()["ResolverRules"] == []


def test_a_new_region_is_listed_and_served_only_inside_the_block(aws: ClientFactory) -> None:
    def listed() -> set[str]:
        regions = aws("ec2", HOME_REGION).describe_regions(AllRegions=True)["Regions"]
        return {r["RegionName"] for r in regions}

    assert NEW not in boto3.session.Session().get_available_regions("route53resolver")
    with new_region(NEW):
        assert NEW in listed()
        assert aws("route53resolver", NEW).list_resolver_rules()["ResolverRules"] == []
    assert NEW not in listed()


def _member(emulator: LocalEmulator, aws: ClientFactory, account: str) -> ClientFactory:
    role = f"arn:aws:iam::{account}:role/member"
    return assumed_clients(aws, role, None, emulator.endpoint_url)


def _listed(clients: ClientFactory, **arguments: object) -> dict[str, str]:
    regions = clients("ec2", HOME_REGION).describe_regions(**arguments)["Regions"]
    return {r["RegionName"]: r["OptInStatus"] for r in regions}


def test_a_region_not_enabled_refuses_the_accounts_calls_as_aws_does(
    emulator: LocalEmulator, aws: ClientFactory
) -> None:
    member, other = _member(emulator, aws, MEMBER), _member(emulator, aws, OTHER)
    with regions_not_enabled(emulator, {MEMBER: [OPT_IN]}) as gate:
        refused = {}
        for service, call in (
            ("route53resolver", "list_resolver_rules"),
            ("ec2", "describe_vpcs"),
            ("ram", "get_resource_share_invitations"),
            ("route53profiles", "list_profiles"),
        ):
            with pytest.raises(ClientError) as error:
                getattr(member(service, OPT_IN), call)()
            refused[service] = (_code(error), error.value.response["ResponseMetadata"])
        # the account elsewhere, and other accounts there, are served
        assert member("route53resolver", SPARE).list_resolver_rules()["ResolverRules"] == []
        assert other("route53resolver", OPT_IN).list_resolver_rules()["ResolverRules"] == []
        assert aws("ec2", OPT_IN).describe_vpcs()["Vpcs"] is not None
    assert {s: code for s, (code, _) in refused.items()} == {
        "route53resolver": "UnrecognizedClientException",
        "ec2": "AuthFailure",
        "ram": "UnrecognizedClientException",
        "route53profiles": "UnrecognizedClientException",
    }
    assert refused["ec2"][1]["HTTPStatusCode"] == 401
    assert gate.refused == {(MEMBER, OPT_IN): 4}
    assert member("route53resolver", OPT_IN).list_resolver_rules()["ResolverRules"] == []


def test_describe_regions_reports_a_region_not_enabled_to_its_account_alone(
    emulator: LocalEmulator, aws: ClientFactory
) -> None:
    member, other = _member(emulator, aws, MEMBER), _member(emulator, aws, OTHER)
    before = _listed(member, AllRegions=True)
    assert before[OPT_IN] == "opted-in"  # served, so enabled (moto says not-opted-in)
    assert before[HOME_REGION] == "opt-in-not-required"
    with regions_not_enabled(emulator, {MEMBER: [OPT_IN]}):
        assert _listed(member, AllRegions=True)[OPT_IN] == "not-opted-in"
        assert OPT_IN not in _listed(member)  # enabled ones only, by default
        assert _listed(member, RegionNames=[OPT_IN]) == {OPT_IN: "not-opted-in"}
        assert _listed(member)[HOME_REGION] == before[HOME_REGION]
        assert _listed(other, AllRegions=True) == before
    assert _listed(member, AllRegions=True) == before


def test_a_region_enabled_by_default_cannot_be_left_disabled(emulator: LocalEmulator) -> None:
    closing = regions_not_enabled(emulator, {MEMBER: [OPT_IN, "us-west-2"]})
    with pytest.raises(ValueError, match="us-west-2: enabled by default"):
        closing.__enter__()
