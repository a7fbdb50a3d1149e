"""The emulator's Region extensions: `mesh_emulator.scp` (Regions an SCP denies) and
`mesh_emulator.ec2.new_region` (a Region newer than botocore's lists), over HTTP."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from mesh_emulator.ec2 import new_region
from mesh_emulator.scp import denied_regions
from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.topology import ClientFactory

HOME_REGION = "us-east-1"
NEW = "ap-futurex-1"  # botocore lists no such Region; its partition's pattern matches it
SPARE = "ap-southeast-2"  # no hub there


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
