"""A location's one VPC read (`Aws.vpcs`): one DescribeVpcs without a filter, every page, that
answers both the tag join (owned and shared-in VPCs, exact tag match) and which VPCs the items
name exist; errors propagate. Against botocore's Stubber: no request leaves the process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from resolver_mesh.aws.session import VPC_PAGE_SIZE, Aws
from resolver_mesh.config import Settings
from resolver_mesh.desired import TaggedVpcs, VpcRead
from resolver_mesh.fanout import state_digest
from resolver_mesh.models import RegionState
from resolver_mesh.names import MESH_TAG_KEY

REGION = "eu-west-1"
ME, OWNER = "111111111111", "222222222222"
MESH = "blue"


def vpc(vpc_id: str, owner: str = ME, **tags: str) -> dict[str, Any]:
    return {
        "VpcId": vpc_id,
        "OwnerId": owner,
        "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
    }


def ours(vpc_id: str, owner: str = ME, value: str = MESH) -> dict[str, Any]:
    return {**vpc(vpc_id, owner), "Tags": [{"Key": MESH_TAG_KEY, "Value": value}]}


@pytest.fixture
def aws() -> Aws:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    made = Aws(Settings(home_region=REGION, mesh_id=MESH, calls_per_second=1000.0), session)
    made._account_id = ME  # as a member account's is known; the home one's is read once
    return made


@pytest.fixture
def ec2(aws: Aws) -> Iterator[Stubber]:
    with Stubber(aws.client("ec2", REGION)) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def pages(stubber: Stubber, *listed: list[dict[str, Any]]) -> None:
    """`listed` as the pages of one unfiltered DescribeVpcs (each page asked for as AWS would)."""
    for n, page in enumerate(listed):
        expected: dict[str, Any] = {"MaxResults": VPC_PAGE_SIZE}
        if n:
            expected["NextToken"] = f"page-{n}"
        response: dict[str, Any] = {"Vpcs": page}
        if n + 1 < len(listed):
            response["NextToken"] = f"page-{n + 1}"
        stubber.add_response("describe_vpcs", response, expected)


def test_one_read_answers_the_tag_join_and_the_named_vpcs(aws: Aws, ec2: Stubber) -> None:
    pages(
        ec2,
        [
            ours("vpc-tagged"),
            vpc("vpc-named"),
            vpc("vpc-other-mesh", **{MESH_TAG_KEY: "green"}),
            vpc("vpc-other-case", **{MESH_TAG_KEY: "Blue"}),
            vpc("vpc-other-key", **{"resolver-mesh:meshes": MESH, "Name": MESH}),
        ],
        [ours("vpc-shared-in", OWNER), vpc("vpc-named-shared-in", OWNER), ours("vpc-both")],
    )
    named = {"vpc-named", "vpc-named-shared-in", "vpc-both", "vpc-missing"}
    read = aws.vpcs(REGION, MESH, named)
    assert read == VpcRead(
        TaggedVpcs(
            owned=frozenset({"vpc-tagged", "vpc-both"}),
            foreign={"vpc-shared-in": OWNER},
            mistagged={"vpc-other-case": f"{MESH_TAG_KEY}=Blue"},  # does not join: reported
        ),
        named=frozenset({"vpc-named", "vpc-named-shared-in", "vpc-both"}),
    )
    assert aws.call_counts()["reads"] == 2  # one per page, nothing else


def test_a_tag_that_differs_only_by_case_or_spaces_is_a_near_miss_of_the_owner_only(
    aws: Aws, ec2: Stubber
) -> None:
    """Tags are compared exactly, as AWS compares them: a key or value that differs from the
    mesh's only by case or surrounding spaces does not join, and is kept to be reported, where
    the VPC's owner reads it. A VPC that also carries the exact tag joins and is no near miss;
    another mesh's tag, or a value that differs otherwise, is neither."""
    pages(
        ec2,
        [
            vpc("vpc-spaces", **{MESH_TAG_KEY: f" {MESH} "}),
            vpc("vpc-key", **{MESH_TAG_KEY.upper(): MESH}),
            vpc("vpc-both", **{MESH_TAG_KEY.upper(): MESH, MESH_TAG_KEY: MESH}),
            vpc("vpc-shared-in", OWNER, **{MESH_TAG_KEY: MESH.upper()}),
            vpc("vpc-other", **{MESH_TAG_KEY: f"{MESH}-2", "Name": MESH}),
        ],
    )
    assert aws.vpcs(REGION, MESH).tagged == TaggedVpcs(
        owned=frozenset({"vpc-both"}),
        mistagged={
            "vpc-spaces": f"{MESH_TAG_KEY}= {MESH} ",
            "vpc-key": f"{MESH_TAG_KEY.upper()}={MESH}",
        },
    )


def test_a_location_without_tagged_vpcs_reads_no_account_id(
    aws: Aws, ec2: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unexpected() -> str:
        raise AssertionError("the account id is needed only to tell owners apart")

    monkeypatch.setattr(aws, "account_id", unexpected)
    pages(ec2, [vpc("vpc-a"), vpc("vpc-b", OWNER)])
    assert aws.vpcs(REGION, MESH, {"vpc-b"}) == VpcRead(TaggedVpcs(), frozenset({"vpc-b"}))
    pages(ec2, [])
    assert aws.vpcs(REGION, MESH) == VpcRead(TaggedVpcs(), frozenset())


def test_a_vpc_without_an_owner_is_the_accounts_own(aws: Aws, ec2: Stubber) -> None:
    pages(ec2, [{"VpcId": "vpc-a", "Tags": [{"Key": MESH_TAG_KEY, "Value": MESH}]}])
    assert aws.vpcs(REGION, MESH).tagged == TaggedVpcs(owned=frozenset({"vpc-a"}))


def test_a_failed_read_raises_never_answers(aws: Aws, ec2: Stubber) -> None:
    first = {"Vpcs": [ours("vpc-a")], "NextToken": "page-1"}
    ec2.add_response("describe_vpcs", first, {"MaxResults": VPC_PAGE_SIZE})
    ec2.add_client_error(
        "describe_vpcs",
        service_error_code="UnauthorizedOperation",
        http_status_code=403,
        expected_params={"MaxResults": VPC_PAGE_SIZE, "NextToken": "page-1"},
    )
    with pytest.raises(ClientError, match="UnauthorizedOperation"):
        aws.vpcs(REGION, MESH, {"vpc-a"})


def test_the_workers_tag_read_is_the_passs_whatever_the_named_vpcs(aws: Aws, ec2: Stubber) -> None:
    """The fan-out worker reads the tags again without named VPCs: the same world gives the
    same digest (another untagged VPC included), a tag gone another."""
    world = [ours("vpc-a"), ours("vpc-s", OWNER), vpc("vpc-named")]
    pages(ec2, world)
    pages(ec2, [*world, vpc("vpc-new")])
    pages(ec2, [vpc("vpc-a"), ours("vpc-s", OWNER), vpc("vpc-named")])
    in_pass = aws.vpcs(REGION, MESH, {"vpc-named", "vpc-a"}).tagged
    in_worker = aws.tagged_vpcs(REGION, MESH)
    untagged = aws.tagged_vpcs(REGION, MESH)
    state = RegionState(REGION)

    def digest(tags: TaggedVpcs) -> str:
        return state_digest(state, [], {REGION: tags})

    assert in_worker == in_pass
    assert digest(in_worker) == digest(in_pass)
    assert digest(untagged) != digest(in_pass)


def test_near_misses_never_fail_the_read_nor_change_its_digest(
    aws: Aws, ec2: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A near miss is only reported: where telling its owner apart needs the account id and
    that cannot be read, the read drops it instead of failing; and a fan-out order's digest of
    the tags does not see it (no change depends on it)."""

    def unreadable() -> str:
        raise ClientError({"Error": {"Code": "ExpiredToken", "Message": "x"}}, "GetCallerIdentity")

    monkeypatch.setattr(aws, "account_id", unreadable)
    pages(ec2, [vpc("vpc-near", **{MESH_TAG_KEY: MESH.upper()}), vpc("vpc-named")])
    assert aws.vpcs(REGION, MESH, {"vpc-named"}) == VpcRead(TaggedVpcs(), frozenset({"vpc-named"}))

    state = RegionState(REGION)
    plain = TaggedVpcs(owned=frozenset({"vpc-a"}))
    near = TaggedVpcs(owned=frozenset({"vpc-a"}), mistagged={"vpc-b": f"{MESH_TAG_KEY}= {MESH}"})
    assert state_digest(state, [], {REGION: near}) == state_digest(state, [], {REGION: plain})
