"""Region names, the Region settings and refusals by policy (issue 10, part 3)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from resolver_mesh.aws.calls import is_denied
from resolver_mesh.config import ConfigError, Settings
from resolver_mesh.desired import parse_hubs
from resolver_mesh.names import REGION_PATTERN

EVERY_PARTITION = (
    "us-east-1",
    "ap-southeast-7",
    "mx-central-1",
    "cn-northwest-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "us-isob-east-1",
    "eu-isoe-west-1",
    "us-isof-south-1",
    "eusc-de-east-1",
)


@pytest.mark.parametrize("name", EVERY_PARTITION)
def test_the_region_pattern_takes_every_partitions_names(name: str) -> None:
    assert REGION_PATTERN.match(name)


@pytest.mark.parametrize("name", ["us-east", "US-EAST-1", "us-east-1a", "u-east-1", "useast1", ""])
def test_the_region_pattern_refuses_what_is_not_a_region_name(name: str) -> None:
    assert not REGION_PATTERN.match(name)


def test_a_hub_item_in_a_eusc_region_is_valid(world: Any) -> None:
    hub_set = parse_hubs([world.item("eusc-de-east-1")], {"eusc-de-east-1"})
    assert hub_set.errors == ()


def test_a_hub_item_region_must_have_a_regions_shape(world: Any) -> None:
    (error,) = parse_hubs([world.item("Frankfurt")], None).errors
    assert (error.region, error.field) == ("Frankfurt", "region")
    assert "not a Region name like 'us-east-2'" in error.message


def test_region_settings_are_parsed_from_the_environment() -> None:
    env = {"MESH_REGIONS": " us-east-1, eusc-de-east-1 ", "EXCLUDED_REGIONS": "me-south-1,"}
    settings = Settings.from_env(env)
    assert settings.mesh_regions == ("us-east-1", "eusc-de-east-1")
    assert settings.excluded_regions == ("me-south-1",)
    assert Settings.from_env({}).excluded_regions == ()


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"MESH_REGIONS": "us-east-1,us-east1"}, "MESH_REGIONS (--mesh-regions): 'us-east1'"),
        ({"EXCLUDED_REGIONS": "Ireland"}, "EXCLUDED_REGIONS (--excluded-regions): 'Ireland'"),
        (
            {"MESH_REGIONS": "us-east-1,me-south-1", "EXCLUDED_REGIONS": "me-south-1"},
            "me-south-1 also in MESH_REGIONS",
        ),
    ],
)
def test_bad_region_settings_name_the_setting_and_the_region(
    env: dict[str, str], words: str
) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    assert words in str(error.value)


def _client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "explicit deny"}}, operation)


@pytest.mark.parametrize(
    ("error", "denied"),
    [
        (_client_error("AccessDeniedException", "ListResolverRules"), True),
        (_client_error("UnauthorizedOperation", "DescribeVpcEndpoints"), True),
        (_client_error("AccessDenied", "GetResourceShares"), True),
        (_client_error("AccessDenied", "AssumeRole"), False),  # the account, not the Region
        (_client_error("ThrottlingException", "ListResolverRules"), False),
        (RuntimeError("AccessDeniedException"), False),
    ],
)
def test_only_a_refusal_by_policy_in_the_region_is_denied(
    error: BaseException, denied: bool
) -> None:
    assert is_denied(error) is denied


def test_unread_locations_read_by_region_naming_a_few_accounts_and_counting_many() -> None:
    from resolver_mesh.reconcile import _by_region

    few = ["eu-west-1", "eu-west-1@222222222222", "eu-west-1@111111111111", "us-west-1"]
    assert _by_region(few) == (
        "eu-west-1 (the home account, 111111111111, 222222222222), us-west-1"
    )
    many = [f"eu-west-1@{n:012d}" for n in range(1, 301)] + ["eu-west-1", "ap-east-1@1"]
    assert _by_region(many) == "ap-east-1 (1), eu-west-1 (301 accounts)"
