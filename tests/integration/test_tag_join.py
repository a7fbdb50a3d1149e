"""VPCs that join hubs by tag, end to end: the Lambda handler against the HTTP emulator, VPCs
tagged `resolver-mesh:mesh=<MESH_ID>` in the home account and in two member accounts (reached
by assuming their roles, listed in MEMBER_ROLES), in several hub Regions.

Every assertion reads the live state with plain boto3, in the account that holds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from meshkit import DEFAULT_MESH_ID, HOME_REGION, Mesh
from test_accounts_safety import MEMBER_HUB_CIDR, THIRD, THIRD_ROLE, domains, pair, reach, third
from test_spokes_accounts import EXTERNAL_ID, MEMBER, ROLE, member, of_vpc, rules_and_vpcs

from mesh_emulator.faults import FaultInjector, injected_faults
from mesh_emulator.scp import denied_regions
from mesh_emulator.server import LocalEmulator
from resolver_mesh.aws.session import VPC_PAGE_SIZE
from resolver_mesh.local.topology import (
    CachedClients,
    ClientFactory,
    build_hub,
    build_spoke,
    hub_item,
    spoke_item,
)

__all__ = ["member", "pair", "third"]  # fixtures shared with the other multi-account tests

TAG_KEY = "resolver-mesh:mesh"
# A location's one VPC read (DescribeVpcs of every VPC, which answers the tag join and the VPCs
# the items name) as its form body begins; a read of named VPCs alone has a `vpc-id` filter.
VPC_READ = f"Action=DescribeVpcs&Version=2016-11-15&MaxResults={VPC_PAGE_SIZE}"
NAMED_READ = "Filter.1.Name=vpc-id"
EAST_2, WEST_2 = "us-east-2", "us-west-2"
NO_HUB = "eu-west-1"  # swept (MESH_REGIONS), no hub item


def tagged_vpc(
    clients: ClientFactory, region: str, cidr: str, mesh_id: str = DEFAULT_MESH_ID
) -> str:
    ec2 = clients("ec2", region)
    vpc = str(ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"])
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": TAG_KEY, "Value": mesh_id}])
    return vpc


def untag(clients: ClientFactory, region: str, vpc: str) -> None:
    clients("ec2", region).delete_tags(Resources=[vpc], Tags=[{"Key": TAG_KEY}])


def used_by(clients: ClientFactory, region: str, vpc: str) -> set[str]:
    """The domains of the mesh's rules (own or shared) associated with `vpc`."""
    return set(of_vpc(rules_and_vpcs(clients, region), vpc))


def principals(clients: ClientFactory, region: str) -> set[str]:
    """The accounts the hub account's active shares of `region` are shared with."""
    ram = clients("ram", region)
    found: set[str] = set()
    for share in ram.get_resource_shares(resourceOwner="SELF")["resourceShares"]:
        if share["status"] != "ACTIVE":
            continue
        listed = ram.get_resource_share_associations(
            associationType="PRINCIPAL", resourceShareArns=[share["resourceShareArn"]]
        )["resourceShareAssociations"]
        found |= {a["associatedEntity"] for a in listed if a["status"] == "ASSOCIATED"}
    return found


def applied(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [c for c in result["changes"] if c["kind"] == kind and c["status"] == "applied"]


@pytest.fixture
def members(mesh: Mesh, member: CachedClients, third: CachedClients) -> Mesh:
    """The seed mesh, with MEMBER and THIRD listed in MEMBER_ROLES (no item names them)."""
    roles = f"{ROLE}|{EXTERNAL_ID},{THIRD_ROLE}|{EXTERNAL_ID}"
    mesh.monkeypatch.setenv("MEMBER_ROLES", roles)
    return mesh


@pytest.fixture
def tag_reads(emulator: LocalEmulator) -> Iterator[FaultInjector]:
    """Counts the tag reads (each location's one VPC read) that reach the emulator."""
    with injected_faults(emulator, 0.0, services=(), queries=(VPC_READ,)) as counter:
        yield counter


def test_vpcs_join_and_leave_by_tag_across_accounts_and_regions(
    members: Mesh, member: CachedClients, third: CachedClients, aws: ClientFactory
) -> None:
    home_east_2 = tagged_vpc(aws, EAST_2, "10.201.0.0/16")
    member_east_1 = tagged_vpc(member, HOME_REGION, "10.202.0.0/16")
    member_west_2 = tagged_vpc(member, WEST_2, "10.203.0.0/16")
    third_east_1 = tagged_vpc(third, HOME_REGION, "10.204.0.0/16")

    result = members.resync()
    assert result["ok"], result["errors"]
    assert sorted(result["joined"], key=lambda v: (v["region"], v["vpc_id"])) == sorted(
        [
            {"region": HOME_REGION, "account": MEMBER, "vpc_id": member_east_1, "role": "shared"},
            {"region": HOME_REGION, "account": THIRD, "vpc_id": third_east_1, "role": "shared"},
            {"region": EAST_2, "vpc_id": home_east_2, "role": "workload"},
            {"region": WEST_2, "account": MEMBER, "vpc_id": member_west_2, "role": "shared"},
        ],
        key=lambda v: (v["region"], v["vpc_id"]),
    )
    assert result["not_joined"] == []
    assert used_by(aws, EAST_2, home_east_2) == domains(HOME_REGION, WEST_2)
    assert used_by(member, HOME_REGION, member_east_1) == domains(EAST_2, WEST_2)
    assert used_by(third, HOME_REGION, third_east_1) == domains(EAST_2, WEST_2)
    assert used_by(member, WEST_2, member_west_2) == domains(HOME_REGION, EAST_2)
    assert principals(aws, HOME_REGION) == {MEMBER, THIRD}
    assert principals(aws, WEST_2) == {MEMBER}

    again = members.resync()
    assert again["ok"], again["errors"]
    assert again["changes"] == []
    assert again["calls"]["writes"] == 0

    # The tag goes: the VPC leaves, and the account its last VPC of the Region was in is unshared.
    untag(member, WEST_2, member_west_2)
    left = members.resync()
    assert left["ok"], left["errors"]
    assert used_by(member, WEST_2, member_west_2) == set()
    assert principals(aws, WEST_2) == set()
    assert used_by(member, HOME_REGION, member_east_1) == domains(EAST_2, WEST_2)  # untouched

    # The VPC is deleted: gone from the tag read, it leaves; its account is unshared.
    resolver = third("route53resolver", HOME_REGION)
    for rule_id in of_vpc(rules_and_vpcs(third), third_east_1).values():
        resolver.disassociate_resolver_rule(ResolverRuleId=rule_id["Id"], VPCId=third_east_1)
    third("ec2", HOME_REGION).delete_vpc(VpcId=third_east_1)
    gone = members.resync()
    assert gone["ok"], gone["errors"]
    assert principals(aws, HOME_REGION) == {MEMBER}
    assert rules_and_vpcs(third) == {}

    untag(aws, EAST_2, home_east_2)
    home_left = members.resync()
    assert home_left["ok"], home_left["errors"]
    assert {c["vpc_id"] for c in applied(home_left, "disassociate")} == {home_east_2}
    assert used_by(aws, EAST_2, home_east_2) == set()
    assert [v["vpc_id"] for v in home_left["joined"]] == [member_east_1]
    assert members.resync()["changes"] == []


def test_one_tag_read_per_location_whatever_the_number_of_vpcs(
    members: Mesh, member: CachedClients, aws: ClientFactory, tag_reads: FaultInjector
) -> None:
    for n in range(3):
        tagged_vpc(member, HOME_REGION, f"10.21{n}.0.0/16")
        tagged_vpc(aws, HOME_REGION, f"10.22{n}.0.0/16")
    assert members.resync()["ok"]
    before = tag_reads.requests
    quiet = members.resync()
    assert quiet["changes"] == []
    assert len(quiet["joined"]) == 6
    # Rules: the home account in every swept Region, members in the hub Regions (3 hub items,
    # 2 member accounts). Tags: every swept Region of every account.
    swept = quiet["regions"]
    assert len(swept) == len(members.mesh_regions) + 2 * 3
    assert tag_reads.requests - before == 3 * len(members.mesh_regions)


def test_a_no_op_makes_one_vpc_read_per_location_for_the_tags_and_the_named_vpcs(
    members: Mesh,
    member: CachedClients,
    third: CachedClients,
    aws: ClientFactory,
    emulator: LocalEmulator,
) -> None:
    """Member VPCs listed in `shared_vpcs` (one also tagged), others joined by tag only, and a
    home VPC listed in `vpc_ids`: the one DescribeVpcs of each location answers both the tag
    join and which named VPCs exist; none is read again with a `vpc-id` filter."""
    listed = str(member("ec2", HOME_REGION).create_vpc(CidrBlock="10.250.0.0/16")["Vpc"]["VpcId"])
    both = tagged_vpc(third, HOME_REGION, "10.251.0.0/16")
    by_tag = tagged_vpc(member, WEST_2, "10.252.0.0/16")
    home_listed = str(aws("ec2", EAST_2).create_vpc(CidrBlock="10.253.0.0/16")["Vpc"]["VpcId"])
    members.update(
        HOME_REGION,
        shared_vpcs=[{"vpc_id": listed, **reach(MEMBER)}, {"vpc_id": both, **reach(THIRD)}],
    )
    members.update(EAST_2, vpc_ids=[home_listed])
    assert members.resync()["ok"]
    assert used_by(member, HOME_REGION, listed) == domains(EAST_2, WEST_2)
    assert used_by(third, HOME_REGION, both) == domains(EAST_2, WEST_2)
    assert used_by(member, WEST_2, by_tag) == domains(HOME_REGION, EAST_2)
    assert used_by(aws, EAST_2, home_listed) == domains(HOME_REGION, WEST_2)

    every = dict(services=(), queries=("Action=DescribeVpcs",))
    with (
        injected_faults(emulator, 0.0, **every) as reads,
        injected_faults(emulator, 0.0, **every, regions=(HOME_REGION,)) as home_region_reads,
        injected_faults(emulator, 0.0, services=(), queries=(NAMED_READ,)) as named_reads,
    ):
        quiet = members.resync()
    assert quiet["ok"], quiet["errors"]
    assert quiet["changes"] == []
    assert quiet["calls"]["writes"] == 0
    assert [v["vpc_id"] for v in quiet["joined"]] == [both, by_tag]
    swept = quiet["regions"]
    assert {f"{HOME_REGION}@{MEMBER}", f"{HOME_REGION}@{THIRD}", f"{WEST_2}@{MEMBER}"} <= set(swept)
    # Every swept Region of every account reads its VPCs once (the tag join needs it): one
    # call each, no more; the members' Regions without a hub read nothing else.
    assert reads.requests == 3 * len(members.mesh_regions)
    assert home_region_reads.requests == len([w for w in swept if w.startswith(HOME_REGION)]) == 3
    assert named_reads.requests == 0


def test_where_the_vpc_read_fails_the_named_vpcs_are_read_on_their_own(
    members: Mesh, member: CachedClients, aws: ClientFactory, emulator: LocalEmulator
) -> None:
    """The one VPC read fails: the tags there are unknown (kept), and the VPCs the items name
    are read on their own, so a missing one is still an item error naming its field; when
    that read fails too, the location cannot be read. Nothing is deleted either way."""
    listed = str(member("ec2", HOME_REGION).create_vpc(CidrBlock="10.250.0.0/16")["Vpc"]["VpcId"])
    joined = tagged_vpc(member, WEST_2, "10.252.0.0/16")
    members.update(HOME_REGION, shared_vpcs=[{"vpc_id": listed, **reach(MEMBER)}])
    assert members.resync()["ok"]
    home_before, member_before = members.snapshot(), rules_and_vpcs(member, HOME_REGION)
    west_before = rules_and_vpcs(member, WEST_2)
    assert used_by(member, WEST_2, joined) == domains(HOME_REGION, EAST_2)

    missing = "vpc-0123456789abcdef0"
    members.update(HOME_REGION, shared_vpcs=[{"vpc_id": missing, **reach(MEMBER)}])
    with (
        injected_faults(emulator, 1.0, kinds=("denied",), services=(), queries=(VPC_READ,)),
        injected_faults(emulator, 0.0, services=(), queries=(NAMED_READ,)) as named_reads,
    ):
        doubtful = members.resync()
    assert not doubtful["ok"]
    # read on their own: the hub VPCs (one in each hub's location) and the member's VPC
    assert named_reads.requests == len(members.items) + 1
    assert any(
        e["region"] == HOME_REGION
        and "field 'shared_vpcs'" in e["message"]
        and missing in e["message"]
        for e in doubtful["errors"]
    ), doubtful["errors"]
    tags = {e["region"] for e in doubtful["errors"] if e["kind"] == "tags"}
    assert tags == set(doubtful["regions"])
    assert not [c for c in doubtful["changes"] if c["status"] == "applied"]
    assert members.snapshot() == home_before
    assert rules_and_vpcs(member, HOME_REGION) == member_before
    assert rules_and_vpcs(member, WEST_2) == west_before

    members.update(HOME_REGION, shared_vpcs=[{"vpc_id": listed, **reach(MEMBER)}])
    with injected_faults(
        emulator, 1.0, kinds=("denied",), services=(), queries=("Action=DescribeVpcs",)
    ):
        unread = members.resync()
    assert not unread["ok"]
    where = f"{HOME_REGION}@{MEMBER}"
    assert any(
        e["kind"] == "region" and e["region"] == where and "UnauthorizedOperation" in e["message"]
        for e in unread["errors"]
    ), unread["errors"]
    assert not [c for c in unread["changes"] if c["status"] == "applied"]
    assert members.snapshot() == home_before
    assert rules_and_vpcs(member, HOME_REGION) == member_before
    assert rules_and_vpcs(member, WEST_2) == west_before


def test_a_tagged_vpc_that_cannot_join_is_reported_once_and_left_alone(
    members: Mesh, member: CachedClients, aws: ClientFactory
) -> None:
    spoke = build_spoke(aws, HOME_REGION, "10.230.0.0/16", "spoke")
    members.update(HOME_REGION, spokes=[spoke_item(spoke, "direct")])
    lonely = tagged_vpc(aws, NO_HUB, "10.231.0.0/16")
    member_lonely = tagged_vpc(member, NO_HUB, "10.234.0.0/16")
    other_mesh = tagged_vpc(member, HOME_REGION, "10.232.0.0/16", mesh_id="another-mesh")
    ec2 = aws("ec2", HOME_REGION)
    ec2.create_tags(Resources=[spoke.vpc_id], Tags=[{"Key": TAG_KEY, "Value": DEFAULT_MESH_ID}])
    members.update(WEST_2, enabled=False)
    disabled = tagged_vpc(member, WEST_2, "10.233.0.0/16")
    # near misses: a hub would take them, but tags are compared exactly
    spaced = tagged_vpc(aws, HOME_REGION, "10.235.0.0/16", mesh_id=f" {DEFAULT_MESH_ID} ")
    upper = str(member("ec2", HOME_REGION).create_vpc(CidrBlock="10.236.0.0/16")["Vpc"]["VpcId"])
    upper_tag = {"Key": TAG_KEY.title(), "Value": DEFAULT_MESH_ID.upper()}
    member("ec2", HOME_REGION).create_tags(Resources=[upper], Tags=[upper_tag])

    result = members.resync()
    assert result["ok"], result["errors"]
    assert result["joined"] == []
    lines = result["not_joined"]
    assert len(lines) == 6, lines
    [spaced_line] = [line for line in lines if spaced in line]
    assert spaced_line == (
        f"{spaced} ({HOME_REGION}, the home account) is tagged '{TAG_KEY}= {DEFAULT_MESH_ID} ',"
        f" not {TAG_KEY}={DEFAULT_MESH_ID}: tags are compared exactly (case and spaces count), so"
        " it does not join; nothing is done to it"
    )
    [upper_line] = [line for line in lines if upper in line]
    assert f"({HOME_REGION}, account {MEMBER}) is tagged" in upper_line
    assert f"'{TAG_KEY.title()}={DEFAULT_MESH_ID.upper()}'" in upper_line
    assert used_by(aws, HOME_REGION, spaced) == used_by(member, HOME_REGION, upper) == set()
    [no_hub] = [line for line in lines if lonely in line]
    assert f"({NO_HUB}, the home account)" in no_hub
    assert "no hub item" in no_hub
    [member_no_hub] = [line for line in lines if member_lonely in line]
    assert f"({NO_HUB}, account {MEMBER})" in member_no_hub
    assert "no hub item" in member_no_hub
    [spoke_line] = [line for line in lines if spoke.vpc_id in line]
    assert "already listed as a spoke" in spoke_line
    [disabled_line] = [line for line in lines if disabled in line]
    assert f"({WEST_2}, account {MEMBER})" in disabled_line
    assert "disabled" in disabled_line
    assert all(other_mesh not in line for line in lines)  # another mesh's tag is not ours
    assert used_by(aws, NO_HUB, lonely) == set()
    assert rules_and_vpcs(aws, NO_HUB) == {}
    assert rules_and_vpcs(member, NO_HUB) == {}
    # An event from that Region (a tag, a VPC) reads it in every account, and says so again.
    event = members.resync(regions=[NO_HUB])
    assert event["ok"], event["errors"]
    assert sorted(line for line in event["not_joined"] if "no hub item" in line) == sorted(
        [no_hub, member_no_hub]
    )
    assert event["changes"] == []
    assert used_by(member, HOME_REGION, other_mesh) == set()
    assert used_by(member, WEST_2, disabled) == set()
    spoke_rules = rules_and_vpcs(aws)
    assert {d for d, r in of_vpc(spoke_rules, spoke.vpc_id).items()} == domains(EAST_2)

    text = members.cli("apply")
    assert text.code == 0, text.out
    assert "Not joined:" in text.out
    assert text.out.count(lonely) == 1
    assert text.out.count(member_lonely) == 1


def test_the_cli_shows_who_joined(members: Mesh, member: CachedClients, aws: ClientFactory) -> None:
    vpc = tagged_vpc(member, HOME_REGION, "10.240.0.0/16")
    done = members.cli("apply", "--json")
    assert done.code == 0, done.out
    assert done.json["joined"] == [
        {"region": HOME_REGION, "account": MEMBER, "vpc_id": vpc, "role": "shared"}
    ]
    text = members.cli("plan")
    assert "Joined by tag:" in text.out
    assert f"{vpc} (account {MEMBER}) uses the hub of {HOME_REGION} (shared)" in text.out


def test_a_failing_tag_read_keeps_what_joined_and_the_rest_keeps_reconciling(
    members: Mesh, member: CachedClients, aws: ClientFactory, emulator: LocalEmulator
) -> None:
    home_east_2 = tagged_vpc(aws, EAST_2, "10.201.0.0/16")
    member_east_1 = tagged_vpc(member, HOME_REGION, "10.202.0.0/16")
    assert members.resync()["ok"]
    untag(aws, EAST_2, home_east_2)
    untag(member, HOME_REGION, member_east_1)
    listed = aws("ec2", EAST_2).create_vpc(CidrBlock="10.205.0.0/16")["Vpc"]["VpcId"]
    members.update(EAST_2, vpc_ids=[listed])

    hubs = {HOME_REGION, EAST_2, WEST_2}
    tags_only = {f"{r}@{a}" for r in set(members.mesh_regions) - hubs for a in (MEMBER, THIRD)}
    for kind in ("denied", "throttle"):
        with injected_faults(
            emulator, 1.0, kinds=(kind,), services=(), queries=(VPC_READ,)
        ) as injector:
            result = members.resync()
        assert injector.injected[kind] > 0
        assert not result["ok"]
        failed = [e for e in result["errors"] if e["kind"] == "tags"]
        assert {e["region"] for e in failed} == set(result["regions"])
        # A member's Region without a hub, where only tags are read (nothing is planned): a
        # note for them all, not an error.
        assert result["denied_regions"] == []
        [unread] = [n for n in result["notes"] if n.startswith("tags not read: ")]
        assert all(f"{r} ({MEMBER}, {THIRD})" in unread for r in set(members.mesh_regions) - hubs)
        assert len(tags_only) == 4
        assert all("keep them" in e["message"] for e in failed)
        kinds = {c["kind"] for c in result["changes"]}
        assert not kinds & {"disassociate", "unshare", "delete_share", "delete_rule"}
        assert used_by(aws, EAST_2, home_east_2) == domains(HOME_REGION, WEST_2)
        assert used_by(member, HOME_REGION, member_east_1) == domains(EAST_2, WEST_2)
        assert principals(aws, HOME_REGION) == {MEMBER}
        # the listed VPC joined meanwhile: the rest of the item keeps reconciling
        assert used_by(aws, EAST_2, listed) == domains(HOME_REGION, WEST_2)

    # Tags unreadable in us-east-1 only: the member's VPC there stays; us-east-2's VPC leaves.
    with injected_faults(
        emulator, 1.0, kinds=("error",), services=(), queries=(VPC_READ,), regions=(HOME_REGION,)
    ):
        partial = members.resync()
    assert {e["region"] for e in partial["errors"]} == {
        HOME_REGION,
        f"{HOME_REGION}@{MEMBER}",
        f"{HOME_REGION}@{THIRD}",
    }
    assert used_by(aws, EAST_2, home_east_2) == set()
    assert used_by(member, HOME_REGION, member_east_1) == domains(EAST_2, WEST_2)

    healed = members.resync()
    assert healed["ok"], healed["errors"]
    assert used_by(member, HOME_REGION, member_east_1) == set()
    assert principals(aws, HOME_REGION) == set()


def test_the_mass_change_guard_holds_when_many_tagged_vpcs_leave_at_once(
    members: Mesh, member: CachedClients, third: CachedClients, aws: ClientFactory
) -> None:
    vpcs = {
        (member, HOME_REGION): tagged_vpc(member, HOME_REGION, "10.202.0.0/16"),
        (member, WEST_2): tagged_vpc(member, WEST_2, "10.203.0.0/16"),
        (third, HOME_REGION): tagged_vpc(third, HOME_REGION, "10.204.0.0/16"),
    }
    assert members.resync()["ok"]
    for (clients, region), vpc in vpcs.items():
        untag(clients, region, vpc)
    refused = members.resync()
    assert refused["refused"], refused
    assert not [c for c in refused["changes"] if c["status"] == "applied"]
    for (clients, region), vpc in vpcs.items():
        assert used_by(clients, region, vpc), (region, vpc)

    forced = members.resync(force=True)
    assert forced["ok"], forced["errors"]
    for (clients, region), vpc in vpcs.items():
        assert used_by(clients, region, vpc) == set()


def test_a_tagged_vpc_where_another_rule_holds_a_hub_domain_does_not_join_until_it_goes(
    members: Mesh, member: CachedClients, aws: ClientFactory
) -> None:
    """The member's own rule for one of the domains the hub forwards holds the VPC: it does
    not join (reported once, in `not_joined`), gets none of the hub's rules and no share;
    once that rule is off the VPC, the VPC joins whole."""
    vpc = tagged_vpc(member, HOME_REGION, "10.205.0.0/16")
    resolver_api = member("route53resolver", HOME_REGION)
    taken = f"{EAST_2}.amazonaws.com"
    theirs = resolver_api.create_resolver_rule(
        CreatorRequestId="theirs", DomainName=taken, RuleType="SYSTEM", Name="theirs"
    )["ResolverRule"]["Id"]
    association = resolver_api.associate_resolver_rule(ResolverRuleId=theirs, VPCId=vpc)

    result = members.resync()
    assert result["ok"], result["errors"]
    assert result["joined"] == []
    [line] = result["not_joined"]
    assert f"{vpc} ({HOME_REGION}, account {MEMBER})" in line
    assert f"rule {theirs}, not ours, holds {taken}." in line
    assert used_by(member, HOME_REGION, vpc) == set()
    assert MEMBER not in principals(aws, HOME_REGION)
    assert not [c for c in result["changes"] if c.get("account") == MEMBER]
    verified = members.cli("verify", "--json")  # as the reconcile has it: a note, not a row
    assert verified.code == 0, verified.out
    assert vpc not in {v["vpc_id"] for v in verified.json["vpcs"]}
    assert line in verified.json["notes"]

    resolver_api.disassociate_resolver_rule(
        ResolverRuleId=theirs, VPCId=association["ResolverRuleAssociation"]["VPCId"]
    )
    joined = members.resync()
    assert joined["ok"], joined["errors"]
    assert [(j["account"], j["vpc_id"]) for j in joined["joined"]] == [(MEMBER, vpc)]
    assert used_by(member, HOME_REGION, vpc) == domains(EAST_2, WEST_2)


def test_verify_shows_tag_joined_vpcs_like_listed_ones(
    members: Mesh, member: CachedClients, aws: ClientFactory
) -> None:
    home_east_2 = tagged_vpc(aws, EAST_2, "10.201.0.0/16")
    member_east_1 = tagged_vpc(member, HOME_REGION, "10.202.0.0/16")
    assert members.resync()["ok"]
    result = members.cli("verify", "--json")
    assert result.code == 0, result.out
    roles = {(v["vpc_id"], v["role"], v.get("account", "")) for v in result.json["vpcs"]}
    assert {(home_east_2, "workload", ""), (member_east_1, "shared", MEMBER)} <= roles
    cells = {(c["vpc_id"], c["name"]): c for c in result.json["cells"]}
    assert cells[member_east_1, "us-west-2.amazonaws.com."]["status"] == "private"
    assert cells[home_east_2, "us-east-1.amazonaws.com."]["status"] == "private"


def test_a_home_vpc_joins_a_hub_of_a_member_account_through_its_share(
    pair: Mesh, member: CachedClients, aws: ClientFactory
) -> None:
    west = build_hub(member, WEST_2, MEMBER_HUB_CIDR)
    pair.put(hub_item(west, **reach()))
    member_vpc = tagged_vpc(member, WEST_2, "10.241.0.0/16")  # the hub's account: a workload
    home_vpc = tagged_vpc(aws, WEST_2, "10.242.0.0/16")  # another account: shared
    result = pair.resync()
    assert result["ok"], result["errors"]
    assert sorted(result["joined"], key=lambda v: v["vpc_id"]) == sorted(
        [
            {"region": WEST_2, "account": MEMBER, "vpc_id": member_vpc, "role": "workload"},
            {"region": WEST_2, "vpc_id": home_vpc, "role": "shared"},
        ],
        key=lambda v: v["vpc_id"],
    )
    peers = domains(HOME_REGION, EAST_2)
    assert used_by(member, WEST_2, member_vpc) == peers
    assert used_by(aws, WEST_2, home_vpc) == peers
    assert principals(member, WEST_2) == {aws("sts", HOME_REGION).get_caller_identity()["Account"]}
    assert pair.resync()["changes"] == []

    untag(aws, WEST_2, home_vpc)
    left = pair.resync()
    assert left["ok"], left["errors"]
    assert used_by(aws, WEST_2, home_vpc) == set()
    assert principals(member, WEST_2) == set()
    assert used_by(member, WEST_2, member_vpc) == peers


def test_a_region_denied_in_every_account_is_one_note_where_no_hub_is(
    members: Mesh, member: CachedClients, emulator: LocalEmulator
) -> None:
    """An SCP denies a swept Region without a hub in every account: the home account's reads
    there are denied (not an error on a full resync, an error where a request names it), and
    the members' tag reads one note, never an error: nothing is planned there."""
    assert members.resync()["ok"]
    with denied_regions(emulator, [NO_HUB]):
        full = members.resync()
        named = members.resync(regions=[NO_HUB])
    assert full["ok"], full["errors"]
    assert full["denied_regions"] == [NO_HUB]
    for report in (full, named):
        [note] = [n for n in report["notes"] if n.startswith("tags not read: ")]
        assert note.startswith(f"tags not read: {NO_HUB} ({MEMBER}, {THIRD}): no hub item there")
        assert "AccessDenied" in note or "UnauthorizedOperation" in note
    assert not named["ok"]
    assert [(e["kind"], e["region"]) for e in named["errors"]] == [("region", NO_HUB)]


def test_member_roles_naming_the_reconcilers_own_account_change_nothing(
    members: Mesh, member: CachedClients, aws: ClientFactory
) -> None:
    """The home account listed in MEMBER_ROLES is still the home account: its tagged VPC
    joins once, as a workload VPC, and no share is made for the account itself."""
    home_role = "arn:aws:iam::123456789012:role/resolver-mesh-member-resolver-mesh"
    roles = f"{ROLE}|{EXTERNAL_ID},{home_role}"
    members.monkeypatch.setenv("MEMBER_ROLES", roles)
    vpc = tagged_vpc(aws, EAST_2, "10.205.0.0/16")
    result = members.resync()
    assert result["ok"], result["errors"]
    assert result["joined"] == [{"region": EAST_2, "vpc_id": vpc, "role": "workload"}]
    assert not [c for c in result["changes"] if c["kind"] in ("create_share", "accept_share")]
    assert not [r for r in result["regions"] if "@123456789012" in r]
    assert used_by(aws, EAST_2, vpc) == domains(HOME_REGION, WEST_2)
    assert principals(aws, EAST_2) == set()
