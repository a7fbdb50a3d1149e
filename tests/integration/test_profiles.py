"""Route 53 Profiles as the delivery, end to end: the Lambda handler against the HTTP emulator.

Resolution is checked with the emulator's `rule_for`, which answers which rule a query in a VPC
meets (direct associations and the VPC's Profile, most specific domain first). The live state
is read with plain boto3 in the account that holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from meshkit import DEFAULT_MESH_ID, HOME_REGION, Mesh, domains_of, normalise

from mesh_emulator.route53profiles import rule_for
from resolver_mesh.aws.profiles import ProfilesRegion
from resolver_mesh.local.topology import (
    CachedClients,
    ClientFactory,
    assumed_clients,
    build_hub,
    build_spoke,
    create_unmanaged_rule,
    spoke_item,
)

HOME_ACCOUNT = "123456789012"
MEMBER = "222222222222"
ROLE = f"arn:aws:iam::{MEMBER}:role/resolver-mesh-member-resolver-mesh"
EXTERNAL_ID = "mesh-external-id"
MEMBER_REGION = "us-west-2"
EAST_2 = "us-east-2"
REGIONS = (HOME_REGION, "us-east-2", MEMBER_REGION)
ACCESS = {"account_id": MEMBER, "role_arn": ROLE, "external_id": EXTERNAL_ID}
TAG_KEY = "resolver-mesh:mesh"


@pytest.fixture
def member(aws: ClientFactory, emulator: Any) -> CachedClients:
    """Clients of the second account, as its administrator would use them."""
    return assumed_clients(aws, ROLE, EXTERNAL_ID, emulator.endpoint_url)


@pytest.fixture
def profile_mesh(
    make_mesh: Callable[..., Mesh], member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> Mesh:
    """Three hubs, the one of us-west-2 in a second account, all delivering through Profiles
    (the mesh's `DELIVERY`); us-east-1 has a workload VPC."""
    monkeypatch.setenv("DELIVERY", "profile")
    return make_mesh(
        REGIONS,
        hubs={MEMBER_REGION: build_hub(member, MEMBER_REGION)},
        items={MEMBER_REGION: ACCESS},
    )


def clients_of(mesh: Mesh, member: CachedClients, region: str) -> ClientFactory:
    return member if mesh.items[region].get("account_id") == MEMBER else mesh.aws


def account_of(mesh: Mesh, region: str) -> str:
    return str(mesh.items[region].get("account_id", HOME_ACCOUNT))


def vpcs_of(item: Mapping[str, Any]) -> list[str]:
    return [item["vpc_id"], *item.get("vpc_ids", [])]


def peer_domains(mesh: Mesh, region: str) -> set[str]:
    return {d for peer, item in mesh.items.items() if peer != region for d in domains_of(item)}


def assert_every_vpc_resolves_every_peer(mesh: Mesh, member: CachedClients) -> None:
    """Each VPC of each hub meets a rule of ours for every name of every peer hub."""
    for region, item in mesh.items.items():
        resolver = clients_of(mesh, member, region)("route53resolver", region)
        rules = {
            r["Id"]: r
            for page in resolver.get_paginator("list_resolver_rules").paginate()
            for r in page["ResolverRules"]
        }
        for vpc in vpcs_of(item):
            for domain in peer_domains(mesh, region):
                found = rule_for(account_of(mesh, region), region, vpc, f"host.{domain}")
                assert found is not None, (region, vpc, domain)
                rule = rules[found]
                assert normalise(rule["DomainName"]) == domain, (region, vpc, domain)
                assert rule["CreatorRequestId"].startswith("resolver-mesh/"), (region, vpc)


def our_profile(clients: ClientFactory, region: str) -> dict[str, Any]:
    """Our Profile of a location: its id, its rules' ARNs and its VPCs (exactly one Profile)."""
    profiles = clients("route53profiles", region)
    summaries = profiles.list_profiles()["ProfileSummaries"]
    ours = [
        p
        for p in summaries
        if profiles.list_tags_for_resource(ResourceArn=p["Arn"])["Tags"].get("resolver-mesh:owner")
        == "resolver-mesh"
    ]
    assert len(ours) == 1, summaries
    profile_id = ours[0]["Id"]
    resources = profiles.list_profile_resource_associations(ProfileId=profile_id)
    associations = profiles.list_profile_associations(ProfileId=profile_id)
    return {
        "id": profile_id,
        "rules": {r["ResourceArn"] for r in resources["ProfileResourceAssociations"]},
        "statuses": {r["Status"] for r in resources["ProfileResourceAssociations"]},
        "vpcs": {a["ResourceId"] for a in associations["ProfileAssociations"]},
    }


def direct_vpcs(clients: ClientFactory, region: str) -> set[str]:
    """The VPCs that have a rule of ours associated directly."""
    resolver = clients("route53resolver", region)
    ours = {
        r["Id"]
        for r in resolver.list_resolver_rules(MaxResults=100)["ResolverRules"]
        if r["CreatorRequestId"].startswith("resolver-mesh/")
    }
    return {
        a["VPCId"]
        for page in resolver.get_paginator("list_resolver_rule_associations").paginate()
        for a in page["ResolverRuleAssociations"]
        if a["ResolverRuleId"] in ours
    }


def hub_rule_arns(clients: ClientFactory, region: str) -> set[str]:
    resolver = clients("route53resolver", region)
    return {
        r["Arn"]
        for r in resolver.list_resolver_rules(MaxResults=100)["ResolverRules"]
        if r["CreatorRequestId"].startswith("resolver-mesh/")
    }


def test_profile_mode_converges_over_three_regions_and_two_accounts(
    profile_mesh: Mesh, member: CachedClients
) -> None:
    result = profile_mesh.resync()
    assert result["ok"], result
    # 12 rules (3 Regions x 2 peers x 2 domains); per Region one Profile, its 4 rules and its
    # VPCs (2 in us-east-1): no rule association at all
    assert result["calls"]["writes"] == 12 + 3 * (1 + 4) + (2 + 1 + 1)
    assert result["counts"]["associate"] == 0
    for region in REGIONS:
        clients = clients_of(profile_mesh, member, region)
        profile = our_profile(clients, region)
        assert profile["rules"] == hub_rule_arns(clients, region)
        assert len(profile["rules"]) == 4  # 2 peers x 2 domains
        assert profile["statuses"] == {"COMPLETE"}
        assert profile["vpcs"] == set(vpcs_of(profile_mesh.items[region]))
        assert direct_vpcs(clients, region) == set(), "a VPC kept direct associations"
    assert_every_vpc_resolves_every_peer(profile_mesh, member)

    again = profile_mesh.resync()
    assert again["ok"], again
    assert again["calls"]["writes"] == 0
    assert [c for c in again["changes"] if c["status"] == "applied"] == []


def test_a_profile_changed_by_hand_is_repaired(profile_mesh: Mesh, member: CachedClients) -> None:
    assert profile_mesh.resync()["ok"]
    profiles = profile_mesh.aws("route53profiles", HOME_REGION)
    profile = our_profile(profile_mesh.aws, HOME_REGION)
    removed = sorted(profile["rules"])[0]
    profiles.disassociate_resource_from_profile(ProfileId=profile["id"], ResourceArn=removed)
    workload = profile_mesh.items[HOME_REGION]["vpc_ids"][0]
    profiles.disassociate_profile(ProfileId=profile["id"], ResourceId=workload)
    assert removed not in our_profile(profile_mesh.aws, HOME_REGION)["rules"]  # reads settle

    result = profile_mesh.resync()
    assert result["ok"], result
    kinds = sorted(c["kind"] for c in result["changes"] if c["status"] == "applied")
    assert kinds == ["associate_profile", "profile_add_rule"]
    repaired = our_profile(profile_mesh.aws, HOME_REGION)
    assert removed in repaired["rules"]
    assert workload in repaired["vpcs"]
    assert_every_vpc_resolves_every_peer(profile_mesh, member)


def test_a_vpc_with_a_foreign_profile_keeps_it_and_gets_rules(
    profile_mesh: Mesh, member: CachedClients
) -> None:
    profiles = profile_mesh.aws("route53profiles", HOME_REGION)
    foreign = profiles.create_profile(Name="someone-elses", ClientToken="foreign-1")["Profile"]
    workload = profile_mesh.items[HOME_REGION]["vpc_ids"][0]
    profiles.associate_profile(Name="theirs", ProfileId=foreign["Id"], ResourceId=workload)

    result = profile_mesh.resync()
    assert result["ok"], result
    assert any(workload in note and foreign["Id"] in note for note in result["notes"])
    held = profiles.list_profile_associations(ResourceId=workload)["ProfileAssociations"]
    assert [a["ProfileId"] for a in held] == [foreign["Id"]]
    assert direct_vpcs(profile_mesh.aws, HOME_REGION) == {workload}
    assert our_profile(profile_mesh.aws, HOME_REGION)["vpcs"] == {
        profile_mesh.items[HOME_REGION]["vpc_id"]
    }
    assert_every_vpc_resolves_every_peer(profile_mesh, member)
    assert profile_mesh.resync()["calls"]["writes"] == 0


def test_a_hub_item_and_a_vpc_override_the_mesh_delivery(
    make_mesh: Callable[..., Mesh], member: CachedClients
) -> None:
    mesh = make_mesh(REGIONS[:2])
    workload = mesh.items[HOME_REGION]["vpc_ids"][0]
    mesh.update(HOME_REGION, delivery="profile", vpc_delivery={workload: "rules"})
    result = mesh.resync()
    assert result["ok"], result
    assert our_profile(mesh.aws, HOME_REGION)["vpcs"] == {mesh.items[HOME_REGION]["vpc_id"]}
    assert direct_vpcs(mesh.aws, HOME_REGION) == {workload}
    assert direct_vpcs(mesh.aws, "us-east-2") == {mesh.items["us-east-2"]["vpc_id"]}
    assert mesh.aws("route53profiles", "us-east-2").list_profiles()["ProfileSummaries"] == []
    assert_every_vpc_resolves_every_peer(mesh, member)


def test_an_unknown_delivery_is_an_item_error_naming_the_field(
    make_mesh: Callable[..., Mesh],
) -> None:
    mesh = make_mesh(REGIONS[:2])
    assert mesh.resync()["ok"]
    mesh.update(HOME_REGION, delivery="profiles")
    result = mesh.resync()
    errors = [e for e in result["errors"] if e["kind"] == "hub_item"]
    assert [(e["region"], e["field"]) for e in errors] == [(HOME_REGION, "delivery")]
    assert result["calls"]["writes"] == 0


def test_a_failed_profile_read_freezes_the_location(
    profile_mesh: Mesh, member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resolver_mesh.aws.profiles import ProfilesRegion

    assert profile_mesh.resync()["ok"]
    before = our_profile(profile_mesh.aws, HOME_REGION)

    def broken(self: ProfilesRegion, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("ListProfiles failed")

    monkeypatch.setattr(ProfilesRegion, "read", broken)
    result = profile_mesh.resync()
    assert not result["ok"]
    assert result["calls"]["writes"] == 0
    assert our_profile(profile_mesh.aws, HOME_REGION) == before
    assert_every_vpc_resolves_every_peer(profile_mesh, member)


def test_verify_reasons_through_the_profile(profile_mesh: Mesh) -> None:
    assert profile_mesh.resync()["ok"]
    result = profile_mesh.cli("verify", "--json")
    assert result.code == 0, result.out
    data = result.json
    private = [c for c in data["cells"] if c["status"] == "private"]
    assert private
    assert data["counts"]["gap"] == 0
    assert all(c.get("profile_id", "").startswith("rp-") for c in private)
    assert " P" in profile_mesh.cli("verify").out
    mermaid = profile_mesh.cli("verify", "--format", "mermaid").out
    assert '-->|"Profile: ' in mermaid


def test_a_shared_vpc_of_another_account_gets_the_hubs_profile_through_ram(
    make_mesh: Callable[..., Mesh], member: CachedClients
) -> None:
    mesh = make_mesh(REGIONS[:2])
    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.108.0.0/16")["Vpc"]["VpcId"]
    shared = {"vpc_id": vpc, "delivery": "profile", **ACCESS}
    mesh.update(HOME_REGION, shared_vpcs=[shared])
    result = mesh.resync()
    assert result["ok"], result

    profile = our_profile(mesh.aws, HOME_REGION)
    held = member("route53profiles", HOME_REGION).list_profile_associations(ResourceId=vpc)
    assert [a["ProfileId"] for a in held["ProfileAssociations"]] == [profile["id"]]
    assert direct_vpcs(member, HOME_REGION) == set()  # no shared rule associated there
    for domain in peer_domains(mesh, HOME_REGION):
        found = rule_for(MEMBER, HOME_REGION, vpc, f"host.{domain}")
        assert found is not None, domain
    assert direct_vpcs(mesh.aws, HOME_REGION) == set(vpcs_of(mesh.items[HOME_REGION]))
    verified = mesh.cli("verify", "--json")
    assert verified.code == 0, verified.out
    cells = [c for c in verified.json["cells"] if c["vpc_id"] == vpc]
    assert cells
    assert {c["status"] for c in cells} <= {"private", "local"}
    assert all(c.get("profile_id") == profile["id"] for c in cells if c["status"] == "private")
    again = mesh.resync()
    assert again["ok"], again
    assert again["calls"]["writes"] == 0

    mesh.update(HOME_REGION, shared_vpcs=[{**shared, "delivery": "rules"}])
    back = mesh.resync()
    assert back["ok"], back
    assert (
        member("route53profiles", HOME_REGION).list_profile_associations(ResourceId=vpc)[
            "ProfileAssociations"
        ]
        == []
    )
    for domain in peer_domains(mesh, HOME_REGION):
        assert rule_for(MEMBER, HOME_REGION, vpc, f"host.{domain}") is not None, domain


def test_vpcs_joined_by_tag_in_another_account_get_the_hubs_profile_through_ram(
    make_mesh: Callable[..., Mesh], member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VPC of a member account tagged to join a hub that delivers by Profile: used like a
    shared VPC its item would list, it gets the hub's Profile through the share, not one
    association per shared rule; it loses the Profile when its tag goes, while the account's
    other VPC keeps it."""
    monkeypatch.setenv("MEMBER_ROLES", f"{ROLE}|{EXTERNAL_ID}")
    mesh = make_mesh(REGIONS[:2])
    mesh.update(HOME_REGION, delivery="profile")
    ec2 = member("ec2", HOME_REGION)
    vpcs = [ec2.create_vpc(CidrBlock=f"10.{n}.0.0/16")["Vpc"]["VpcId"] for n in (110, 111)]
    ec2.create_tags(Resources=vpcs, Tags=[{"Key": TAG_KEY, "Value": DEFAULT_MESH_ID}])
    result = mesh.resync()
    assert result["ok"], result
    assert sorted(v["vpc_id"] for v in result["joined"] if v.get("account") == MEMBER) == sorted(
        vpcs
    )

    profile = our_profile(mesh.aws, HOME_REGION)
    holders = member("route53profiles", HOME_REGION)
    for vpc in vpcs:
        held = holders.list_profile_associations(ResourceId=vpc)["ProfileAssociations"]
        assert [a["ProfileId"] for a in held] == [profile["id"]]
        for domain in peer_domains(mesh, HOME_REGION):
            assert rule_for(MEMBER, HOME_REGION, vpc, f"host.{domain}") is not None, domain
    assert direct_vpcs(member, HOME_REGION) == set()  # no shared rule associated there
    again = mesh.resync()
    assert again["ok"], again
    assert again["calls"]["writes"] == 0

    ec2.delete_tags(Resources=[vpcs[0]], Tags=[{"Key": TAG_KEY}])
    left = mesh.resync()
    assert left["ok"], left
    assert holders.list_profile_associations(ResourceId=vpcs[0])["ProfileAssociations"] == []
    for domain in peer_domains(mesh, HOME_REGION):
        assert rule_for(MEMBER, HOME_REGION, vpcs[0], f"host.{domain}") is None, domain
        assert rule_for(MEMBER, HOME_REGION, vpcs[1], f"host.{domain}") is not None, domain

    # Its last VPC leaves too: the account leaves the share, the Profile with it.
    ec2.delete_tags(Resources=[vpcs[1]], Tags=[{"Key": TAG_KEY}])
    gone = mesh.resync()
    assert gone["ok"], gone
    assert sorted((c["kind"], c["status"]) for c in gone["changes"]) == [
        ("delete_share", "applied"),  # the hub's location
        ("disassociate_profile", "applied"),  # the account's: its VPC on the Profile
    ]
    assert holders.list_profile_associations(ResourceId=vpcs[1])["ProfileAssociations"] == []


def test_a_live_shared_vpc_moves_to_the_profile_without_losing_a_name(
    make_mesh: Callable[..., Mesh], member: CachedClients
) -> None:
    mesh = make_mesh(REGIONS[:2])
    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.108.0.0/16")["Vpc"]["VpcId"]
    shared = {"vpc_id": vpc, **ACCESS}
    mesh.update(HOME_REGION, shared_vpcs=[shared])
    assert mesh.resync()["ok"]
    assert direct_vpcs(member, HOME_REGION) == {vpc}

    mesh.update(HOME_REGION, shared_vpcs=[{**shared, "delivery": "profile"}])
    for _ in range(3):  # one pass at a time would do too: every step keeps the names
        result = mesh.resync()
        assert result["ok"], result
        for domain in peer_domains(mesh, HOME_REGION):
            assert rule_for(MEMBER, HOME_REGION, vpc, f"host.{domain}") is not None, domain
    assert direct_vpcs(member, HOME_REGION) == set()
    held = member("route53profiles", HOME_REGION).list_profile_associations(ResourceId=vpc)
    assert len(held["ProfileAssociations"]) == 1
    assert mesh.resync()["calls"]["writes"] == 0


@pytest.mark.parametrize("spoke_mode", ["direct", "central"])
def test_a_member_spoke_moves_to_the_profile_without_losing_a_name(
    make_mesh: Callable[..., Mesh],
    member: CachedClients,
    monkeypatch: pytest.MonkeyPatch,
    spoke_mode: str,
) -> None:
    """A spoke VPC of a member account (its own rules; a central spoke's one parent-domain
    rule) becomes a shared VPC of `profile` delivery: its rules stay while the hub's Profile is
    made, shared, associated and on its way (CREATING for a while), and go once it serves."""
    from mesh_emulator import route53profiles

    mesh = make_mesh(REGIONS[:2])
    spoke = build_spoke(member, HOME_REGION, "10.112.0.0/16", "member-spoke")
    parent = {"parent_domain": "amazonaws.com"} if spoke_mode == "central" else {}
    mesh.update(HOME_REGION, spokes=[spoke_item(spoke, spoke_mode, **parent, **ACCESS)])
    assert mesh.resync()["ok"]
    own = hub_rule_arns(member, HOME_REGION)
    assert direct_vpcs(member, HOME_REGION) == {spoke.vpc_id}
    assert {arn.split(":")[4] for arn in own} == {MEMBER}

    shared = {"vpc_id": spoke.vpc_id, "delivery": "profile", **ACCESS}
    mesh.update(HOME_REGION, spokes=None, shared_vpcs=[shared])
    monkeypatch.setattr(route53profiles.SETTINGS, "pending_reads", 2)
    for _ in range(5):  # a pass at a time: every step keeps every name
        result = mesh.resync()
        assert result["ok"], result
        for domain in peer_domains(mesh, HOME_REGION):
            found = rule_for(MEMBER, HOME_REGION, spoke.vpc_id, f"host.{domain}")
            assert found is not None, domain
    assert not own & hub_rule_arns(member, HOME_REGION)  # the own rules are gone
    held = member("route53profiles", HOME_REGION).list_profile_associations(ResourceId=spoke.vpc_id)
    assert [a["Status"] for a in held["ProfileAssociations"]] == ["COMPLETE"]
    assert mesh.resync()["calls"]["writes"] == 0


def test_profile_states_on_their_way_are_waited_on_bounded(
    profile_mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mesh_emulator import route53profiles
    from resolver_mesh.aws.session import Aws
    from resolver_mesh.config import Settings
    from resolver_mesh.models import Request
    from resolver_mesh.reconcile import Reconciler

    monkeypatch.setattr(route53profiles.SETTINGS, "pending_reads", 4)
    profile_mesh.activate()
    request = Request(apply=True)
    slept: list[float] = []
    reports = Reconciler(Aws(Settings.from_env())).run_until_ready(
        request, 0.0, 10.0, sleep=slept.append, profiles_wait_seconds=120.0
    )
    assert reports[0].profiles_pending
    assert any("Profile" in p for p in reports[0].pending)
    assert len(reports) > 1
    assert slept == [10.0] * (len(reports) - 1)
    assert all(r.ok for r in reports), [r.as_dict() for r in reports]
    assert reports[-1].pending == []
    assert reports[-1].changes == []

    profile = our_profile(profile_mesh.aws, HOME_REGION)  # a VPC taken off by hand
    workload = profile_mesh.items[HOME_REGION]["vpc_ids"][0]
    profile_mesh.aws("route53profiles", HOME_REGION).disassociate_profile(
        ProfileId=profile["id"], ResourceId=workload
    )
    monkeypatch.setattr(route53profiles.SETTINGS, "pending_reads", 100)
    once = Reconciler(Aws(Settings.from_env())).run_until_ready(request, 0.0, 10.0)
    assert len(once) == 1  # no wait asked for: the next trigger looks again
    assert once[0].profiles_pending


def test_an_account_at_its_profiles_quota_keeps_the_rules_and_says_why(
    make_mesh: Callable[..., Mesh], member: CachedClients
) -> None:
    """us-east-1's account already has the 5 Profiles AWS allows (the emulator refuses a
    sixth): the hub's VPCs keep the rules associated directly, us-east-2 moves to its Profile."""
    mesh = make_mesh(REGIONS[:2])
    assert mesh.resync()["ok"]
    profiles = mesh.aws("route53profiles", HOME_REGION)
    for n in range(5):
        profiles.create_profile(Name=f"team-{n}", ClientToken=f"team-{n}")
    mesh.update(HOME_REGION, delivery="profile")
    mesh.update("us-east-2", delivery="profile")
    for _ in range(3):
        result = mesh.resync()
        assert [e["message"] for e in result["errors"]] == [
            f"{HOME_REGION}: the account has 5 Profiles, the quota is 5 per account and Region:"
            " its VPCs get the rules associated directly"
        ]
        assert_every_vpc_resolves_every_peer(mesh, member)
    assert result["calls"]["writes"] == 0
    assert result["calls"]["failed_writes"] == 0  # AWS was never asked for a sixth
    assert len(profiles.list_profiles()["ProfileSummaries"]) == 5
    assert direct_vpcs(mesh.aws, HOME_REGION) == set(vpcs_of(mesh.items[HOME_REGION]))
    assert our_profile(mesh.aws, "us-east-2")["vpcs"] == {mesh.items["us-east-2"]["vpc_id"]}
    assert direct_vpcs(mesh.aws, "us-east-2") == set()


def test_a_rule_not_ours_that_wins_over_our_profile_is_a_conflict_in_either_account(
    make_mesh: Callable[..., Mesh], member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VPC on our Profile that has a rule not ours associated for a domain the Profile holds
    resolves that domain through their rule (local settings take precedence over a Profile's):
    reported as a conflict, as with `rules`, whether the VPC is the hub's or another account's,
    while the Profile still answers its other domains and nothing of theirs is touched."""
    monkeypatch.setenv("DELIVERY", "profile")
    mesh = make_mesh(REGIONS[:2])
    peer = "us-east-2"
    taken, other = sorted(domains_of(mesh.items[peer]))
    hub = mesh.hubs[HOME_REGION]
    workload = vpcs_of(mesh.items[HOME_REGION])[-1]
    remote = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.109.0.0/16")["Vpc"]["VpcId"]
    mesh.update(HOME_REGION, shared_vpcs=[{"vpc_id": remote, **ACCESS}])
    home_rule = create_unmanaged_rule(
        mesh.aws, HOME_REGION, taken, hub.outbound_endpoint_id, "10.250.0.10", vpc_id=workload
    )
    theirs = member("route53resolver", HOME_REGION).create_resolver_rule(
        CreatorRequestId="someone-else-remote", Name="theirs", RuleType="SYSTEM", DomainName=taken
    )["ResolverRule"]["Id"]
    member("route53resolver", HOME_REGION).associate_resolver_rule(
        ResolverRuleId=theirs, VPCId=remote, Name="theirs"
    )

    first = mesh.resync()
    again = mesh.resync()

    assert again["calls"]["writes"] == 0, again
    for result in (first, again):
        assert not result["ok"], result
        conflicts = {
            (c.get("account", HOME_ACCOUNT), c["vpc_id"], c["their_rule_id"], c["domain"])
            for c in result["conflicts"]
        }
        assert conflicts == {
            (HOME_ACCOUNT, workload, home_rule, taken),
            (MEMBER, remote, theirs, taken),
        }, result["conflicts"]
        assert all(c["through_profile"] for c in result["conflicts"])
        assert all("does not answer there" in c["message"] for c in result["conflicts"])
    profile = our_profile(mesh.aws, HOME_REGION)
    assert {workload, hub.vpc_id} <= profile["vpcs"]
    for account, vpc, rule in ((HOME_ACCOUNT, workload, home_rule), (MEMBER, remote, theirs)):
        assert rule_for(account, HOME_REGION, vpc, f"host.{taken}") == rule
        answered = rule_for(account, HOME_REGION, vpc, f"host.{other}")
        assert answered is not None
        assert answered not in (home_rule, theirs)
    # the hub VPC, without a rule of theirs, has no conflict
    assert rule_for(HOME_ACCOUNT, HOME_REGION, hub.vpc_id, f"host.{taken}") != home_rule

    verified = mesh.cli("verify", "--json")
    cells = {(c["vpc_id"], c["name"]): c for c in verified.json["cells"]}
    for vpc, rule in ((workload, home_rule), (remote, theirs)):  # verify says the same
        assert (cells[(vpc, taken)]["status"], cells[(vpc, taken)]["rule_id"]) == (
            "conflict",
            rule,
        )
        assert cells[(vpc, other)]["profile_id"] == profile["id"]


def ours_left(clients: ClientFactory, region: str) -> list[str]:
    """The Profiles of ours (our name) the account owns in the Region."""
    summaries = clients("route53profiles", region).list_profiles()["ProfileSummaries"]
    return [
        p["Id"]
        for p in summaries
        if p["Name"] == f"resolver-mesh-{DEFAULT_MESH_ID}" and p["ShareStatus"] != "SHARED_WITH_ME"
    ]


def test_a_disabled_hubs_profile_leaves_every_vpc_and_goes_in_one_reconcile(
    make_mesh: Callable[..., Mesh], member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disabling the peer empties us-east-1's Profile (its VPCs keep it while their hub is
    enabled); disabling us-east-1 then takes our Profile off its VPCs and off the VPC of
    another account that held it through RAM, and deletes it, in one reconcile: though the
    location holds no rule of ours any more, its item (disabled) leads to its Profiles."""
    monkeypatch.setenv("DELIVERY", "profile")
    mesh = make_mesh(REGIONS[:2])
    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.110.0.0/16")["Vpc"]["VpcId"]
    mesh.update(HOME_REGION, shared_vpcs=[{"vpc_id": vpc, **ACCESS}])
    assert mesh.resync()["ok"]
    held = member("route53profiles", HOME_REGION).list_profile_associations(ResourceId=vpc)
    assert [a["ProfileId"] for a in held["ProfileAssociations"]] == ours_left(mesh.aws, HOME_REGION)

    mesh.update("us-east-2", enabled=False)
    peer_gone = mesh.resync(force=True)
    assert peer_gone["ok"], peer_gone
    assert ours_left(mesh.aws, "us-east-2") == []  # deleted in the reconcile that emptied it
    mesh.update(HOME_REGION, enabled=False)
    disabled = mesh.resync(force=True)
    again = mesh.resync(force=True)

    assert disabled["ok"], disabled
    assert ours_left(mesh.aws, HOME_REGION) == []
    for clients, account in ((mesh.aws, HOME_ACCOUNT), (member, MEMBER)):
        profiles = clients("route53profiles", HOME_REGION)
        assert profiles.list_profile_associations()["ProfileAssociations"] == [], account
    assert again["calls"]["writes"] == 0, again


def removed_hub_held_elsewhere(
    make_mesh: Callable[..., Mesh], member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> Mesh:
    """Three hubs delivering through Profiles; a VPC of the member account (in MEMBER_ROLES,
    so read with no item naming it) holds us-east-2's Profile through RAM; then the item of
    us-east-2 is removed."""
    monkeypatch.setenv("DELIVERY", "profile")
    monkeypatch.setenv("MEMBER_ROLES", f"{ROLE}|{EXTERNAL_ID}")
    mesh = make_mesh(REGIONS, hubs={})
    vpc = member("ec2", EAST_2).create_vpc(CidrBlock="10.111.0.0/16")["Vpc"]["VpcId"]
    mesh.update(EAST_2, shared_vpcs=[{"vpc_id": vpc, **ACCESS}])
    assert mesh.resync()["ok"]
    held = member("route53profiles", EAST_2).list_profile_associations(ResourceId=vpc)
    assert [a["ProfileId"] for a in held["ProfileAssociations"]] == ours_left(mesh.aws, EAST_2)
    mesh.remove(EAST_2)
    return mesh


def assert_nothing_of_ours_left(mesh: Mesh, member: CachedClients) -> None:
    assert ours_left(mesh.aws, EAST_2) == []
    for clients, account in ((mesh.aws, HOME_ACCOUNT), (member, MEMBER)):
        profiles = clients("route53profiles", EAST_2)
        assert profiles.list_profile_associations()["ProfileAssociations"] == [], account
    assert mesh.observe(EAST_2).managed() == []


@pytest.mark.parametrize("swept", [True, False], ids=["region-swept", "region-not-swept"])
def test_a_removed_hubs_profile_held_by_another_account_goes_too(
    make_mesh: Callable[..., Mesh],
    member: CachedClients,
    monkeypatch: pytest.MonkeyPatch,
    swept: bool,
) -> None:
    """Removing the item of a hub whose Profile a VPC of another account holds through RAM:
    that VPC lets go, then the Profile and the rules of ours there go, in one reconcile of
    three passes: the item no longer leads there, so the hub's rules stay (and lead the next
    pass back) until the Profile is deleted. Before, the rules went at once and the Profile
    stayed for good, associated with nothing. Not `swept` (MESH_REGIONS leaves the Region
    out), only our rules forwarding there lead the pass to it, and what it finds there of our
    shares decides which accounts' Profiles are read."""
    mesh = removed_hub_held_elsewhere(make_mesh, member, monkeypatch)
    if not swept:
        mesh.mesh_regions = tuple(r for r in REGIONS if r != EAST_2)
    first = mesh.resync(force=True)
    again = mesh.resync(force=True)

    assert first["ok"], first
    if not swept:  # the VPCs let go and the rules go, but nothing leads back to the Profile
        for clients in (mesh.aws, member):
            held = clients("route53profiles", EAST_2).list_profile_associations()
            assert held["ProfileAssociations"] == []
        assert mesh.observe(EAST_2).managed() == []
        assert len(ours_left(mesh.aws, EAST_2)) == 1  # the limit the README states
        assert again["calls"]["writes"] == 0, again
        return
    gone = [(c["kind"], c.get("domain")) for c in first["changes"] if c["region"] == EAST_2]
    assert ("delete_profile", None) in gone, gone
    # the hub's rules there went after its Profile: they led the pass that deleted it there
    deleted = [i for i, (kind, _) in enumerate(gone) if kind == "delete_rule"]
    assert len(deleted) == 4, gone
    assert min(deleted) > gone.index(("delete_profile", None)), gone
    assert_nothing_of_ours_left(mesh, member)
    assert again["calls"]["writes"] == 0, again


def test_rules_that_lead_back_to_a_profile_that_failed_to_go_stay(
    make_mesh: Callable[..., Mesh], member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the removed hub's Profile cannot be deleted (AWS still holds it after every wait),
    the hub's rules there stay: the next reconcile finds the Region through them and deletes
    the Profile, then them; the rules skipped are no errors of their own."""
    mesh = removed_hub_held_elsewhere(make_mesh, member, monkeypatch)
    delete = ProfilesRegion.delete_profile
    refused: list[str] = []

    def refuse_once(self: ProfilesRegion, profile_id: str) -> None:
        if not refused:
            refused.append(profile_id)
            raise RuntimeError(f"injected: {profile_id} still held")
        delete(self, profile_id)

    monkeypatch.setattr(ProfilesRegion, "delete_profile", refuse_once)
    failed = mesh.resync(force=True)
    assert not failed["ok"]
    assert [e["message"].split(":")[0] for e in failed["errors"]] == [
        f"delete_profile resolver-mesh-{DEFAULT_MESH_ID} in {EAST_2}"
    ], failed["errors"]
    skipped = [c for c in failed["changes"] if c["status"] == "skipped"]
    assert [c["kind"] for c in skipped] == ["delete_rule"] * 4, skipped
    assert len(mesh.observe(EAST_2).managed()) == 4

    after = mesh.resync(force=True)
    assert after["ok"], after
    assert_nothing_of_ours_left(mesh, member)
