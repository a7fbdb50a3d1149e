"""Freeze on any doubt (issue 10, part 1): a hub item that is not what it says changes nothing.

Each case converges the seed mesh, then stores a doubtful item for us-east-2 with plain boto3
(as a user's IaC or `hubs put --no-check` would), reconciles through the Lambda handler over
HTTP, and asserts that no rule and no association changed in any Region, that the report names
the item and the field, and that the rules forwarding to us-east-2 keep their targets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from meshkit import HOME_REGION, Mesh
from test_spokes_accounts import ROLE, member, rules_and_vpcs  # noqa: F401 (fixture)

from resolver_mesh.local.topology import (
    CachedClients,
    ClientFactory,
    build_spoke,
    default_cidr,
    spoke_item,
)

DOUBTED = "us-east-2"
MISSING_VPC = "vpc-0123456789abcdef0"


def _other_vpc(aws: ClientFactory) -> str:
    ec2 = aws("ec2", DOUBTED)
    return str(ec2.create_vpc(CidrBlock="10.250.0.0/16")["Vpc"]["VpcId"])


# (case, changes to the us-east-2 item, the field the error must name)
CASES: list[tuple[str, Callable[[Mesh], dict[str, Any]], str]] = [
    ("mistyped hub VPC", lambda mesh: {"vpc_id": MISSING_VPC}, "vpc_id"),
    (
        "another VPC that exists",
        lambda mesh: {"vpc_id": _other_vpc(mesh.aws)},
        "inbound_endpoint_id",
    ),
    (
        "inbound endpoint of another Region",
        lambda mesh: {"inbound_endpoint_id": mesh.hubs["us-west-2"].inbound_endpoint_id},
        "inbound_endpoint_id",
    ),
    (
        "outbound endpoint of another Region",
        lambda mesh: {"outbound_endpoint_id": mesh.hubs["us-west-2"].outbound_endpoint_id},
        "outbound_endpoint_id",
    ),
    (
        "inbound endpoint given as outbound",
        lambda mesh: {"inbound_endpoint_id": mesh.hubs[DOUBTED].outbound_endpoint_id},
        "inbound_endpoint_id",
    ),
    ("a workload VPC that does not exist", lambda mesh: {"vpc_ids": [MISSING_VPC]}, "vpc_ids"),
    ("a field that fails validation", lambda mesh: {"domains": "us-east-2.example"}, "domains"),
    ("a peer that is not a hub", lambda mesh: {"peers": ["us-east-1", "eu-west-3"]}, "peers"),
]


@pytest.mark.parametrize(("case", "change", "field"), CASES, ids=[c[0] for c in CASES])
def test_a_doubtful_hub_item_changes_nothing_anywhere(
    mesh: Mesh, case: str, change: Callable[[Mesh], dict[str, Any]], field: str
) -> None:
    assert mesh.resync()["ok"]
    before = mesh.snapshot()
    targets_before = {
        rule["Id"]: rule["TargetIps"]
        for region in ("us-east-1", "us-west-2")
        for rule in mesh.observe(region).managed_rules_for(f"{DOUBTED}.amazonaws.com")
    }
    assert len(targets_before) == 2

    mesh.update(DOUBTED, **change(mesh))
    report = mesh.resync()

    assert not report["ok"], case
    named = [e for e in report["errors"] if e.get("region") == DOUBTED]
    assert named, report["errors"]
    assert any(f"field {field!r}" in e["message"] for e in named), named
    assert mesh.snapshot() == before, case
    assert all(v == 0 for v in report["counts"].values()), report["counts"]
    for region in ("us-east-1", "us-west-2"):
        for rule in mesh.observe(region).managed_rules_for(f"{DOUBTED}.amazonaws.com"):
            assert rule["TargetIps"] == targets_before[rule["Id"]]


def test_the_reported_defect_a_mistyped_vpc_keeps_every_association(mesh: Mesh) -> None:
    """The issue's report: a mistyped vpc_id with the real endpoints disassociated all four
    mesh rules from the real hub VPC. Now the Region is frozen and the plan is empty."""
    assert mesh.resync()["ok"]
    real_vpc = mesh.items[DOUBTED]["vpc_id"]
    associated = mesh.observe(DOUBTED).associations
    ours = {a["ResolverRuleId"] for a in associated if a["VPCId"] == real_vpc}
    assert len(ours) == 4

    mesh.update(DOUBTED, vpc_id=MISSING_VPC)
    plan = mesh.plan()
    assert [c for c in plan["changes"] if c["region"] == DOUBTED] == []
    assert any(
        MISSING_VPC in e["message"] and "does not exist" in e["message"] for e in plan["errors"]
    )
    mesh.resync()
    still = {
        a["ResolverRuleId"] for a in mesh.observe(DOUBTED).associations if a["VPCId"] == real_vpc
    }
    assert still == ours


def test_a_vpc_leaves_only_when_a_valid_item_leaves_it_out(mesh: Mesh) -> None:
    workload = mesh.hubs[HOME_REGION].workload_vpc_ids[0]
    mesh.update(HOME_REGION, vpc_ids=[workload])
    assert mesh.resync()["ok"]
    assert len([a for a in mesh.observe(HOME_REGION).associations if a["VPCId"] == workload]) == 4

    mesh.update(HOME_REGION, vpc_ids=[workload, MISSING_VPC])  # doubtful: nothing moves
    assert not mesh.resync()["ok"]
    assert len([a for a in mesh.observe(HOME_REGION).associations if a["VPCId"] == workload]) == 4

    mesh.update(HOME_REGION, vpc_ids=[])  # valid, and leaves the workload VPC out
    assert mesh.resync()["ok"]
    assert [a for a in mesh.observe(HOME_REGION).associations if a["VPCId"] == workload] == []


def test_a_doubtful_spoke_freezes_its_region(mesh: Mesh, aws: ClientFactory) -> None:
    spoke = build_spoke(aws, HOME_REGION, "10.120.0.0/16", "spoke")
    mesh.update(HOME_REGION, spokes=[spoke_item(spoke, "direct")])
    assert mesh.resync()["ok"]
    before = mesh.snapshot()

    wrong = spoke_item(spoke, "direct") | {"vpc_id": MISSING_VPC}
    mesh.update(HOME_REGION, spokes=[wrong])
    report = mesh.resync()

    assert not report["ok"]
    assert any(
        "field 'spokes'" in e["message"] and MISSING_VPC in e["message"] for e in report["errors"]
    )
    assert mesh.snapshot() == before


def test_a_shared_vpc_missing_in_its_account_freezes_the_region(
    mesh: Mesh,
    member: CachedClients,  # noqa: F811 (fixture)
) -> None:
    ec2 = member("ec2", HOME_REGION)
    shared = str(ec2.create_vpc(CidrBlock=default_cidr(HOME_REGION))["Vpc"]["VpcId"])
    entry = {"vpc_id": shared, "account_id": ROLE.split(":")[4], "role_arn": ROLE}
    entry["external_id"] = "mesh-external-id"
    mesh.update(HOME_REGION, shared_vpcs=[entry])
    assert mesh.resync()["ok"]
    home_before = mesh.snapshot()
    member_before = rules_and_vpcs(member)
    assert any(shared in r["vpcs"] for r in member_before.values())

    mesh.update(HOME_REGION, shared_vpcs=[entry | {"vpc_id": MISSING_VPC}])
    report = mesh.resync()

    assert not report["ok"]
    assert any(
        "field 'shared_vpcs'" in e["message"] and MISSING_VPC in e["message"]
        for e in report["errors"]
    )
    assert mesh.snapshot() == home_before
    assert rules_and_vpcs(member) == member_before


# --- `hubs put` checks the item against AWS before storing it ---------------------------------


def _put_args(mesh: Mesh, **changes: str) -> list[str]:
    item = {**mesh.items[DOUBTED], **changes}
    return [
        "hubs",
        "put",
        DOUBTED,
        "--vpc-id",
        item["vpc_id"],
        "--inbound-endpoint-id",
        item["inbound_endpoint_id"],
        "--outbound-endpoint-id",
        item["outbound_endpoint_id"],
    ]


@pytest.mark.parametrize(
    ("field", "change", "live"),
    [
        ("vpc_id", lambda mesh: {"vpc_id": MISSING_VPC}, True),
        ("inbound_endpoint_id", lambda mesh: {"vpc_id": _other_vpc(mesh.aws)}, True),
        (
            "outbound_endpoint_id",
            lambda mesh: {"outbound_endpoint_id": mesh.hubs["us-west-2"].outbound_endpoint_id},
            True,
        ),
        (  # caught by the item's own validation, before AWS is asked: --no-check would not help
            "inbound_endpoint_id",
            lambda mesh: {"inbound_endpoint_id": mesh.hubs[DOUBTED].outbound_endpoint_id},
            False,
        ),
    ],
)
def test_hubs_put_refuses_an_item_aws_contradicts(
    mesh: Mesh, field: str, change: Callable[[Mesh], dict[str, str]], live: bool
) -> None:
    stored = mesh.stored()[DOUBTED]
    result = mesh.script(*_put_args(mesh, **change(mesh)))

    assert result.code == 1, result
    assert "not stored" in result.out
    assert f"field {field!r}" in result.out
    assert ("--no-check" in result.out) is live
    assert "Traceback" not in result.err
    assert mesh.stored()[DOUBTED] == stored


def test_hubs_put_no_check_stores_it_and_apply_then_freezes_the_region(mesh: Mesh) -> None:
    assert mesh.resync()["ok"]
    before = mesh.snapshot()
    result = mesh.script(*_put_args(mesh, vpc_id=MISSING_VPC), "--no-check")
    assert result.code == 0, result
    assert mesh.stored()[DOUBTED]["vpc_id"] == MISSING_VPC

    plan = mesh.script("plan")
    assert plan.code == 1
    assert MISSING_VPC in plan.out
    assert "does not exist" in plan.out
    applied = mesh.script("apply")
    assert applied.code == 1
    assert mesh.snapshot() == before


def test_hubs_put_refuses_an_inbound_endpoint_that_is_not_ready(mesh: Mesh) -> None:
    from test_event_driven import moto_endpoint

    moto_endpoint(DOUBTED, mesh.items[DOUBTED]["inbound_endpoint_id"]).status = "CREATING"
    result = mesh.script(*_put_args(mesh), "--description", "same hub")
    assert result.code == 1, result
    assert "CREATING" in result.out
    assert "description" not in str(mesh.stored()[DOUBTED])

    result = mesh.script(*_put_args(mesh), "--description", "same hub", "--no-check")
    assert result.code == 0, result
    assert mesh.stored()[DOUBTED]["description"] == "same hub"


def test_hubs_put_of_a_good_item_is_stored(mesh: Mesh) -> None:
    result = mesh.script(*_put_args(mesh), "--description", "checked")
    assert result.code == 0, result
    assert mesh.stored()[DOUBTED]["description"] == "checked"
