"""Spokes and other accounts end to end: the Lambda handler against the HTTP emulator, where a
second account is reached by assuming a role (moto keeps each account's state apart).

Every assertion reads the live state with plain boto3, in the account that holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from meshkit import HOME_REGION, Mesh, normalise, targets_of

from mesh_emulator.ram import arrival_lag
from resolver_mesh.aws import resolver
from resolver_mesh.aws.session import Aws
from resolver_mesh.aws.shares import RamRegion
from resolver_mesh.config import Settings
from resolver_mesh.local.topology import (
    CachedClients,
    ClientFactory,
    SpokeResources,
    assumed_clients,
    build_spoke,
    create_unmanaged_rule,
    spoke_item,
)
from resolver_mesh.models import AccountAccess, Change, ChangeKind
from resolver_mesh.reconcile import Reconciler

MEMBER = "222222222222"
ROLE = f"arn:aws:iam::{MEMBER}:role/resolver-mesh-member-resolver-mesh"
EXTERNAL_ID = "mesh-external-id"
PEER_DOMAINS = {
    f"{r}.{d}." for r in ("us-east-2", "us-west-2") for d in ("amazonaws.com", "vpce.amazonaws.com")
}


@pytest.fixture
def member(aws: ClientFactory, emulator: Any) -> CachedClients:
    """Clients of the second account, as its administrator would use them."""
    clients = assumed_clients(aws, ROLE, EXTERNAL_ID, emulator.endpoint_url)
    identity = clients("sts", HOME_REGION).get_caller_identity()
    assert identity["Account"] == MEMBER
    return clients


def rules_and_vpcs(clients: ClientFactory, region: str = HOME_REGION) -> dict[str, Any]:
    """Every rule (by id) of an account's Region with its VPCs, listed with plain boto3."""
    resolver = clients("route53resolver", region)
    rules = [
        r
        for page in resolver.get_paginator("list_resolver_rules").paginate()
        for r in page["ResolverRules"]
        if r["CreatorRequestId"].startswith("resolver-mesh/")
    ]
    associations = [
        a
        for page in resolver.get_paginator("list_resolver_rule_associations").paginate()
        for a in page["ResolverRuleAssociations"]
    ]
    return {
        r["Id"]: {
            **r,
            "vpcs": {a["VPCId"] for a in associations if a["ResolverRuleId"] == r["Id"]},
        }
        for r in rules
    }


def of_vpc(rules: dict[str, Any], vpc_id: str) -> dict[str, Any]:
    """The rules associated with one VPC, by domain (one each: AWS allows no more)."""
    found = [r for r in rules.values() if vpc_id in r["vpcs"]]
    by_domain = {normalise(r["DomainName"]): r for r in found}
    assert len(by_domain) == len(found), "two rules for one domain in one VPC"
    return by_domain


@pytest.fixture
def spokes(aws: ClientFactory) -> Callable[..., SpokeResources]:
    counter = iter(range(100, 200, 4))
    return lambda clients=aws, name="spoke": build_spoke(
        clients, HOME_REGION, f"10.{next(counter)}.0.0/16", name
    )


def test_direct_and_central_spokes_get_their_own_rules(
    mesh: Mesh, spokes: Callable[..., SpokeResources], aws: ClientFactory
) -> None:
    direct, central, parent = spokes(), spokes(), spokes()
    mesh.update(
        HOME_REGION,
        spokes=[
            spoke_item(direct, "direct"),
            spoke_item(central, "central"),
            spoke_item(parent, "central", parent_domain="amazonaws.com"),
        ],
    )
    result = mesh.resync()
    assert result["ok"], result["errors"]
    rules = rules_and_vpcs(aws)
    hub = mesh.hubs[HOME_REGION]

    hub_rules = of_vpc(rules, hub.vpc_id)
    direct_rules = of_vpc(rules, direct.vpc_id)
    assert set(hub_rules) == set(direct_rules) == PEER_DOMAINS
    for domain, rule in direct_rules.items():
        assert rule["ResolverEndpointId"] == direct.outbound_endpoint_id
        assert rule["vpcs"] == {direct.vpc_id}
        assert targets_of(rule) == targets_of(hub_rules[domain])  # the peer hub's inbound

    own_hub = mesh.inbound_ips(HOME_REGION)
    central_rules = of_vpc(rules, central.vpc_id)
    assert set(central_rules) == PEER_DOMAINS
    assert all(targets_of(r) == own_hub for r in central_rules.values())
    assert all(r["vpcs"] == {central.vpc_id} for r in central_rules.values())

    assert {d: targets_of(r) for d, r in of_vpc(rules, parent.vpc_id).items()} == {
        "amazonaws.com.": own_hub
    }
    assert mesh.resync()["counts"] == {k: 0 for k in result["counts"]}
    listed = mesh.cli("hubs", "list").out.splitlines()
    assert listed[0].split()[-4:] == ["ACCOUNT", "SPOKES", "SHARED", "DESCRIPTION"]
    [home] = [line for line in listed if line.startswith(HOME_REGION)]
    assert home.endswith(
        "-        2 central, 1 direct  0       -"
    )  # no account, 0 shared, no description

    mesh.update(HOME_REGION, spokes=None)
    removed = mesh.resync()
    assert removed["ok"], removed
    assert set(of_vpc(rules_and_vpcs(aws), hub.vpc_id)) == PEER_DOMAINS
    assert len(rules_and_vpcs(aws)) == 4


def test_a_spoke_in_another_account_is_reconciled_through_the_assumed_role(
    mesh: Mesh, spokes: Callable[..., SpokeResources], member: CachedClients, aws: ClientFactory
) -> None:
    spoke = spokes(member, "member-spoke")
    entry = spoke_item(spoke, "direct", account_id=MEMBER, role_arn=ROLE, external_id=EXTERNAL_ID)
    mesh.update(HOME_REGION, spokes=[entry])
    result = mesh.resync()
    assert result["ok"], result["errors"]
    assert f"{HOME_REGION}@{MEMBER}" in result["regions"]
    in_member = rules_and_vpcs(member)
    assert set(of_vpc(in_member, spoke.vpc_id)) == PEER_DOMAINS
    assert all(r["OwnerId"] == MEMBER for r in in_member.values())
    assert not of_vpc(rules_and_vpcs(aws), spoke.vpc_id)  # nothing of it at home
    assert mesh.resync()["counts"]["create_rule"] == 0

    mesh.update(HOME_REGION, spokes=[{**entry, "enabled": False}])
    assert mesh.resync()["ok"]
    assert rules_and_vpcs(member) == {}


def test_a_member_spoke_whose_endpoint_is_gone_is_reported_and_kept(
    mesh: Mesh, spokes: Callable[..., SpokeResources], member: CachedClients
) -> None:
    spoke = spokes(member, "member-spoke")
    entry = spoke_item(
        spoke,
        "central",
        account_id=MEMBER,
        role_arn=f"arn:aws:iam::{MEMBER}:role/does-not-matter-to-moto",
        external_id=EXTERNAL_ID,
    )
    mesh.update(HOME_REGION, spokes=[entry])
    assert mesh.resync()["ok"]
    before = rules_and_vpcs(member)
    assert len(before) == 4
    # Break the member's endpoint record: the spoke is reported and its rules kept.
    mesh.update(
        HOME_REGION, spokes=[{**entry, "outbound_endpoint_id": "rslvr-out-0123456789abcdef0"}]
    )
    result = mesh.resync()
    assert not result["ok"]
    [error] = [e for e in result["errors"] if e["kind"] == "hub_item"]
    assert error["field"] == "spokes"
    assert "rslvr-out-0123456789abcdef0" in error["message"]
    assert rules_and_vpcs(member) == before


def test_a_shared_vpc_in_another_account_gets_the_hub_rules_through_ram(
    mesh: Mesh, member: CachedClients, aws: ClientFactory
) -> None:
    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    shared = {"vpc_id": vpc, "account_id": MEMBER, "role_arn": ROLE, "external_id": EXTERNAL_ID}
    mesh.update(HOME_REGION, shared_vpcs=[shared])
    result = mesh.resync()
    assert result["ok"], result["errors"]
    kinds = {c["kind"] for c in result["changes"] if c["status"] == "applied"}
    assert {"create_share", "accept_share", "associate"} <= kinds
    hub_rules = rules_and_vpcs(aws)
    seen = rules_and_vpcs(member)
    assert set(seen) == set(hub_rules)  # the hub's own rules, seen from the member
    assert all(r["ShareStatus"] == "SHARED_WITH_ME" for r in seen.values())
    assert set(of_vpc(seen, vpc)) == PEER_DOMAINS
    again = mesh.resync()
    assert [c for c in again["changes"]] == [], again["changes"]

    mesh.update(HOME_REGION, shared_vpcs=None)
    withdrawn = mesh.resync()
    assert withdrawn["ok"], withdrawn["errors"]
    assert rules_and_vpcs(member) == {}
    shares = aws("ram", HOME_REGION).get_resource_shares(resourceOwner="SELF")["resourceShares"]
    assert all(s["status"] in ("DELETED", "DELETING") for s in shares)
    assert len(rules_and_vpcs(aws)) == 4  # the hub's own rules stay


def share_with_member(mesh: Mesh, member: CachedClients) -> str:
    """A VPC of the member account listed as a shared VPC of the home hub; its id."""
    vpc: str = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    shared = {"vpc_id": vpc, "account_id": MEMBER, "role_arn": ROLE, "external_id": EXTERNAL_ID}
    mesh.update(HOME_REGION, shared_vpcs=[shared])
    return vpc


def test_an_invited_account_accepts_and_associates_in_the_pass_that_shares(
    mesh: Mesh, member: CachedClients, aws: ClientFactory
) -> None:
    """The hub creates and shares its rules; the member follows in the same apply: once the
    share is made, it accepts the invitation, then associates the shared rules; no second
    pass is needed."""
    vpc = share_with_member(mesh, member)
    result = mesh.resync()
    assert result["ok"], result["errors"]
    assert not [n for n in result["notes"] if "passes" in n]
    in_member = [c for c in result["changes"] if c.get("account") == MEMBER]
    assert [c["kind"] for c in in_member] == ["accept_share"] + ["associate"] * 4
    assert {c["status"] for c in in_member} == {"applied"}
    assert {c["follows"] for c in in_member} == {HOME_REGION}
    assert {c["share_arn"] for c in in_member} == {in_member[0]["share_arn"]}
    assert ":resource-share-invitation/" in in_member[0]["share_arn"]
    assert set(of_vpc(rules_and_vpcs(member), vpc)) == PEER_DOMAINS
    assert {c["rule_id"] for c in in_member[1:]} == set(rules_and_vpcs(aws))
    assert mesh.resync()["changes"] == []


def test_shared_rules_that_arrive_after_the_acceptance_are_waited_for(
    mesh: Mesh, member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RAM makes an accepted share's rules available a moment later (the emulator's arrival
    lag): the association waits for them (bounded) and succeeds in the same pass."""
    monkeypatch.setattr(resolver, "ARRIVAL_WAITS", (0.2, 0.4, 0.8))  # more than the lag
    vpc = share_with_member(mesh, member)
    with arrival_lag(0.3):
        result = mesh.resync()
    assert result["ok"], result["errors"]
    assert not [n for n in result["notes"] if "passes" in n]
    assert set(of_vpc(rules_and_vpcs(member), vpc)) == PEER_DOMAINS


def test_shared_rules_that_do_not_arrive_in_time_ask_for_another_pass_without_an_error(
    mesh: Mesh, member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resolver, "ARRIVAL_WAITS", (0.05, 0.05))
    vpc = share_with_member(mesh, member)
    with arrival_lag(3600.0):
        result = mesh.resync()
        assert result["ok"], result["errors"]
        assert result["errors"] == []
        waiting = [c for c in result["changes"] if c["status"] == "waiting"]
        assert [(c["kind"], c["account"], c["vpc_id"]) for c in waiting] == [
            ("associate", MEMBER, vpc)
        ] * 4
        assert result["counts"]["accept_share"] == 1
        in_member = [c for c in result["changes"] if c.get("account") == MEMBER]
        assert [c["kind"] for c in in_member] == ["accept_share"] + ["associate"] * 4
        assert [c for c in in_member if c["status"] == "applied"] == in_member[:1]
        assert {c["message"] for c in waiting} == {
            f"{c['rule_id']} is not visible in {HOME_REGION} yet, 0.1 s after its share was"
            " accepted; the next pass associates it"
            for c in waiting
        }
        # the pass it asked for ran: the rules are not visible there yet, nothing to do
        assert "sharing across accounts or Route 53 Profiles took 2 passes" in result["notes"]
        assert rules_and_vpcs(member) == {}
    later = mesh.resync()  # they have arrived: the usual path associates them
    assert later["ok"], later["errors"]
    assert later["counts"]["associate"] == 4
    assert set(of_vpc(rules_and_vpcs(member), vpc)) == PEER_DOMAINS


def test_associations_whose_share_was_not_accepted_are_not_attempted(
    mesh: Mesh, member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    vpc = share_with_member(mesh, member)

    def refused(self: RamRegion, invitation_arn: str) -> None:
        raise RuntimeError(f"injected: {invitation_arn} not accepted")

    with monkeypatch.context() as patch:
        patch.setattr(RamRegion, "accept", refused)
        result = mesh.resync()
    assert not result["ok"]
    in_member = [c for c in result["changes"] if c.get("account") == MEMBER]
    # following the share in its first pass, then through its invitation in the second
    refused_then_skipped = [("accept_share", "failed")] + [("associate", "skipped")] * 4
    assert [(c["kind"], c["status"]) for c in in_member] == refused_then_skipped * 2
    assert [bool(c.get("follows")) for c in in_member] == [True] * 5 + [False] * 5
    assert {c["message"] for c in in_member if c["kind"] == "associate"} == {
        "the share that brings the rule was not accepted"
    }
    in_member_errors = [e["message"] for e in result["errors"] if MEMBER in e["message"]]
    assert len(in_member_errors) == 2  # one per refused acceptance, none for what it skipped
    assert in_member_errors[0].startswith(f"accept_share (follows {HOME_REGION}) in ")
    assert all(m.startswith("accept_share ") and "injected" in m for m in in_member_errors)
    assert rules_and_vpcs(member) == {}
    again = mesh.resync()
    assert again["ok"], again["errors"]
    assert set(of_vpc(rules_and_vpcs(member), vpc)) == PEER_DOMAINS


def test_verify_follows_spokes_and_shared_vpcs_into_every_account(
    mesh: Mesh, spokes: Callable[..., SpokeResources], member: CachedClients, aws: ClientFactory
) -> None:
    access = {"account_id": MEMBER, "role_arn": ROLE, "external_id": EXTERNAL_ID}
    direct, central = spokes(), spokes(member, "member-spoke")
    shared = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    mesh.update(
        HOME_REGION,
        spokes=[
            spoke_item(direct, "direct"),
            spoke_item(central, "central", parent_domain="amazonaws.com", **access),
        ],
        shared_vpcs=[{"vpc_id": shared, **access}],
    )
    assert mesh.resync()["ok"]
    result = mesh.cli("verify", "--json")
    assert result.code == 0, result.out
    matrix = result.json
    roles = {(v["vpc_id"], v["role"], v.get("account", "")) for v in matrix["vpcs"]}
    assert {
        (direct.vpc_id, "direct spoke", ""),
        (central.vpc_id, "central spoke", MEMBER),
        (shared, "shared", MEMBER),
    } <= roles
    cells = {(c["vpc_id"], c["name"]): c for c in matrix["cells"]}
    peer = "us-west-2.amazonaws.com."
    assert cells[direct.vpc_id, peer]["status"] == "private"
    assert cells[direct.vpc_id, peer]["via"] == "us-west-2"
    assert cells[shared, peer]["via"] == "us-west-2"
    assert cells[central.vpc_id, peer]["status"] == "private"
    assert "through its hub" in cells[central.vpc_id, peer]["detail"]
    own = "us-east-1.amazonaws.com."
    assert cells[central.vpc_id, own]["status"] == "private"  # its hub answers its own names

    # The shared VPC loses its association by hand: verify says so.
    resolver = member("route53resolver", HOME_REGION)
    rule_id = cells[shared, peer]["rule_id"]
    resolver.disassociate_resolver_rule(ResolverRuleId=rule_id, VPCId=shared)
    broken = mesh.cli("verify", "--json")
    assert broken.code == 1
    gaps = {(c["vpc_id"], c["name"], c["status"]) for c in broken.json["problems"]}
    # the rule covered the domain and the S3 endpoint's names inside it
    s3 = {f"{name}.us-west-2.amazonaws.com." for name in ("s3", "s3-accesspoint", "s3-control")}
    assert gaps == {(shared, name, "gap") for name in (peer, *s3)}


def test_a_shared_rule_that_does_not_arrive_is_waited_for_once_per_pass(
    mesh: Mesh, member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two listed VPCs wait for the same rules: each rule's wait (its association tried again
    after each of `ARRIVAL_WAITS`) is made for the VPC planned first only; the other is
    `waiting` at once, without a call."""
    monkeypatch.setattr(resolver, "ARRIVAL_WAITS", (0.05, 0.05))
    first = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    second = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.201.0.0/16")["Vpc"]["VpcId"]
    listed = [
        {"vpc_id": vpc, "account_id": MEMBER, "role_arn": ROLE, "external_id": EXTERNAL_ID}
        for vpc in (first, second)
    ]
    mesh.update(HOME_REGION, shared_vpcs=listed)
    tries: list[str] = []
    associate = resolver.ResolverRegion.associate

    def counted(self: Any, rule_id: str, vpc_id: str, name: str) -> None:
        tries.append(vpc_id)
        associate(self, rule_id, vpc_id, name)

    monkeypatch.setattr(resolver.ResolverRegion, "associate", counted)
    with arrival_lag(3600.0):
        result = mesh.resync()
    assert result["ok"], result["errors"]
    waiting = [c for c in result["changes"] if c["status"] == "waiting"]
    assert sorted(c["vpc_id"] for c in waiting) == sorted([first, second] * 4)
    # the VPC planned first (by id) tries each of the 4 rules, then again after each of the 2
    # waits; the other tries none
    assert sorted(tries.count(vpc) for vpc in (first, second)) == [0, 4 * (1 + 2)]


def test_a_receiver_that_sees_every_shared_rule_reads_no_invitation_nor_profiles(
    mesh: Mesh, member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invitations are read where a share of ours holds rules the account does not see: in
    the pass that accepts, not in the no-ops after it (an accepted share shows all it holds);
    Profiles are not read where no Profile of ours lives in the Region."""
    reads: list[str] = []
    pending, profiles = RamRegion.pending_invitations, Aws.profiles

    def counted(self: RamRegion) -> Any:
        reads.append("GetResourceShareInvitations")
        return pending(self)

    def counted_profiles(self: Aws, region: str) -> Any:
        if self.access is not None:  # the member's, not the hub's (it has rules of ours)
            reads.append(f"Profiles {region}@{self.access.account}")
        return profiles(self, region)

    monkeypatch.setattr(RamRegion, "pending_invitations", counted)
    monkeypatch.setattr(Aws, "profiles", counted_profiles)
    vpc = share_with_member(mesh, member)
    converged = mesh.resync()
    assert converged["ok"], converged["errors"]
    assert converged["counts"]["accept_share"] == 1
    assert reads == ["GetResourceShareInvitations"]  # the second pass's, which accepted
    assert set(of_vpc(rules_and_vpcs(member), vpc)) == PEER_DOMAINS
    again = mesh.resync()
    assert again["changes"] == [], again["changes"]
    assert reads == ["GetResourceShareInvitations"]  # none more


def freeing_for_a_shared_rule(
    mesh: Mesh, member: CachedClients, aws: ClientFactory
) -> tuple[Reconciler, list[Change], str, str]:
    """A member VPC with a rule of its own for a domain, and the hub's rule for that domain in
    a share of the home account that invites the member: the changes that accept the share,
    free the VPC of its rule and put the shared one on it, in one location's apply."""
    assert mesh.resync()["ok"]
    hub_rule = next(iter(rules_and_vpcs(aws).values()))
    domain = normalise(hub_rule["DomainName"])
    home_ram = aws("ram", HOME_REGION)
    home_ram.create_resource_share(
        name="resolver-mesh", resourceArns=[hub_rule["Arn"]], principals=[MEMBER]
    )
    invitation = member("ram", HOME_REGION).get_resource_share_invitations()
    invitation_arn = invitation["resourceShareInvitations"][0]["resourceShareInvitationArn"]
    resolver_api = member("route53resolver", HOME_REGION)
    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    own = resolver_api.create_resolver_rule(
        CreatorRequestId="own", DomainName=domain, RuleType="SYSTEM", Name="own"
    )["ResolverRule"]["Id"]
    resolver_api.associate_resolver_rule(ResolverRuleId=own, VPCId=vpc)
    changes = [
        Change(ChangeKind.ACCEPT_SHARE, HOME_REGION, "", share_arn=invitation_arn, account=MEMBER),
        Change(ChangeKind.DISASSOCIATE, HOME_REGION, domain, own, vpc, account=MEMBER),
        Change(
            ChangeKind.ASSOCIATE,
            HOME_REGION,
            domain,
            hub_rule["Id"],
            vpc,
            name=hub_rule["Name"],
            account=MEMBER,
            share_arn=invitation_arn,
        ),
    ]
    reconciler = Reconciler(Aws(Settings.from_env()))
    access = AccountAccess(account_id=MEMBER, role_arn=ROLE, external_id=EXTERNAL_ID)
    reconciler._accounts = {MEMBER: access}
    return reconciler, changes, vpc, hub_rule["Id"]


def test_a_vpc_is_freed_for_a_shared_rule_only_once_the_rule_has_arrived(
    mesh: Mesh, member: CachedClients, aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VPC whose own rule for a domain makes way for a shared rule accepted in the same
    apply keeps its rule while the shared one has not arrived: it is never left with none."""
    monkeypatch.setattr(resolver, "ARRIVAL_WAITS", (0.05, 0.05))
    reconciler, changes, vpc, _ = freeing_for_a_shared_rule(mesh, member, aws)
    where = f"{HOME_REGION}@{MEMBER}"
    with arrival_lag(3600.0):
        applied = reconciler._apply_location(where, changes)
        assert [r["status"] for r in applied.results] == ["applied", "waiting", "waiting"]
        assert applied.errors == []
        assert {r["message"] for r in applied.results[1:]} == {
            f"{changes[2].rule_id} is not visible in {HOME_REGION} yet, 0.1 s after its share"
            " was accepted; the next pass associates it"
        }
        held = of_vpc(rules_and_vpcs_of_any(member), vpc)
        assert [r["Name"] for r in held.values()] == ["own"]  # still there
    # the next pass sees the rule: it plans the swap without the acceptance
    again = reconciler._apply_location(where, [changes[1], replace(changes[2], share_arn=None)])
    assert [r["status"] for r in again.results] == ["applied", "applied"]
    held = of_vpc(rules_and_vpcs_of_any(member), vpc)
    assert [r["Id"] for r in held.values()] == [changes[2].rule_id]


def test_a_shared_rule_that_arrives_within_the_wait_takes_the_freed_vpc_in_one_apply(
    mesh: Mesh, member: CachedClients, aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resolver, "ARRIVAL_WAITS", (0.2, 0.4, 0.8))  # more than the lag
    reconciler, changes, vpc, rule_id = freeing_for_a_shared_rule(mesh, member, aws)
    with arrival_lag(0.3):
        applied = reconciler._apply_location(f"{HOME_REGION}@{MEMBER}", changes)
    assert [r["status"] for r in applied.results] == ["applied"] * 3
    assert [r["Id"] for r in of_vpc(rules_and_vpcs_of_any(member), vpc).values()] == [rule_id]


def rules_and_vpcs_of_any(clients: ClientFactory) -> dict[str, Any]:
    """Every rule an account sees in the home Region (not only the mesh's), with its VPCs."""
    resolver_api = clients("route53resolver", HOME_REGION)
    rules = resolver_api.list_resolver_rules()["ResolverRules"]
    associations = resolver_api.list_resolver_rule_associations()["ResolverRuleAssociations"]
    return {
        r["Id"]: {**r, "vpcs": {a["VPCId"] for a in associations if a["ResolverRuleId"] == r["Id"]}}
        for r in rules
    }


def test_a_vpc_is_not_freed_when_the_arrival_of_its_new_rule_cannot_be_read(
    mesh: Mesh, member: CachedClients, aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed read of the shared rule's arrival fails the disassociation (reported): the VPC
    keeps its rule, and the association that depended on it is skipped."""
    reconciler, changes, vpc, _ = freeing_for_a_shared_rule(mesh, member, aws)

    def unreadable(self: resolver.ResolverRegion, rule_id: str) -> None:
        raise RuntimeError(f"injected: cannot list the rules to find {rule_id}")

    monkeypatch.setattr(resolver.ResolverRegion, "await_arrival", unreadable)
    applied = reconciler._apply_location(f"{HOME_REGION}@{MEMBER}", changes)
    assert [r["status"] for r in applied.results] == ["applied", "failed", "skipped"]
    assert "injected: cannot list the rules" in applied.results[1]["message"]
    assert applied.results[2]["message"] == "a disassociation it depends on failed"
    held = of_vpc(rules_and_vpcs_of_any(member), vpc)
    assert [r["Name"] for r in held.values()] == ["own"]


@pytest.mark.parametrize("arrival", ["in time", "late"])
def test_a_member_spoke_that_becomes_a_shared_vpc_is_never_left_without_a_rule(
    mesh: Mesh,
    spokes: Callable[..., SpokeResources],
    member: CachedClients,
    aws: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
    arrival: str,
) -> None:
    """A spoke VPC of a member account moved to the hub's `shared_vpcs`: each of its own rules
    leaves it only right before the hub's shared rule takes its place, and is deleted once it
    has; while the shared rules have not arrived, the VPC keeps its own ones (no error)."""
    spoke = spokes(member, "member-spoke")
    access = {"account_id": MEMBER, "role_arn": ROLE, "external_id": EXTERNAL_ID}
    mesh.update(HOME_REGION, spokes=[spoke_item(spoke, "direct", **access)])
    assert mesh.resync()["ok"]
    own = of_vpc(rules_and_vpcs(member), spoke.vpc_id)
    assert set(own) == PEER_DOMAINS
    assert {r["OwnerId"] for r in own.values()} == {MEMBER}

    mesh.update(HOME_REGION, spokes=None, shared_vpcs=[{"vpc_id": spoke.vpc_id, **access}])
    monkeypatch.setattr(resolver, "ARRIVAL_WAITS", (0.05, 0.05))
    with arrival_lag(3600.0 if arrival == "late" else 0.0):
        result = mesh.resync()
        assert result["ok"], result["errors"]
        held = of_vpc(rules_and_vpcs(member), spoke.vpc_id)
        assert set(held) == PEER_DOMAINS  # every peer domain, all along
    if arrival == "late":
        assert {r["Id"] for r in held.values()} == {r["Id"] for r in own.values()}
        waiting = {
            (c["kind"], c["status"])
            for c in result["changes"]
            if c.get("rule_id") in {r["Id"] for r in own.values()}
        }
        assert waiting == {("disassociate", "waiting"), ("delete_rule", "waiting")}
        result = mesh.resync()  # arrived since: the swap
        assert result["ok"], result["errors"]
    swapped = rules_and_vpcs(member)
    assert set(of_vpc(swapped, spoke.vpc_id)) == PEER_DOMAINS
    assert {r["ShareStatus"] for r in swapped.values()} == {"SHARED_WITH_ME"}  # own ones gone
    assert mesh.resync()["changes"] == []


@pytest.mark.parametrize("back", ["put back", "not put back"])
def test_a_rule_that_made_way_goes_back_when_its_replacement_fails(
    mesh: Mesh,
    member: CachedClients,
    aws: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
    back: str,
) -> None:
    """The VPC's own rule left it for the shared rule, whose association then failed: the
    own rule is associated again (the VPC never stays without either for longer than that),
    and the failure says so; if even that fails, the error says the VPC has neither."""
    reconciler, changes, vpc, _ = freeing_for_a_shared_rule(mesh, member, aws)

    def refused(self: resolver.ResolverRegion, rule_id: str, vpc_id: str, name: str) -> None:
        raise RuntimeError(f"injected: {rule_id} refused on {vpc_id}")

    monkeypatch.setattr(resolver.ResolverRegion, "associate_arriving", refused)
    if back == "not put back":
        monkeypatch.setattr(resolver.ResolverRegion, "associate", refused)
    own = changes[1].rule_id
    deletion = Change(ChangeKind.DELETE_RULE, HOME_REGION, changes[1].domain, own, account=MEMBER)
    applied = reconciler._apply_location(f"{HOME_REGION}@{MEMBER}", [*changes, deletion])
    # the rule that made way is not deleted: the next pass decides again
    assert [r["status"] for r in applied.results] == ["applied", "applied", "failed", "waiting"]
    assert own in rules_and_vpcs_of_any(member)
    message = applied.results[2]["message"]
    assert message.startswith(f"RuntimeError: injected: {changes[2].rule_id} refused on {vpc};")
    held = of_vpc(rules_and_vpcs_of_any(member), vpc)
    if back == "put back":
        assert message.endswith(f"{own}, which made way for it, was put back on {vpc}")
        assert [r["Name"] for r in held.values()] == ["own"]
    else:
        assert f"{own}, which made way for it, could not be put back on {vpc}" in message
        assert held == {}
    assert [e["region"] for e in applied.errors] == [f"{HOME_REGION}@{MEMBER}"]


@pytest.mark.parametrize("associations", ["made", "refused"])
def test_a_central_spokes_parent_rule_leaves_only_once_every_shared_rule_is_on_the_vpc(
    mesh: Mesh,
    spokes: Callable[..., SpokeResources],
    member: CachedClients,
    monkeypatch: pytest.MonkeyPatch,
    associations: str,
) -> None:
    """A central spoke of a member account (one rule for its parent domain) moved to the hub's
    `shared_vpcs`: the parent rule covers every peer domain, so it stays until the shared rule
    of each is on the VPC: the member follows the share in its first pass (the parent stays:
    a fanned-out pass would not follow), and the next pass, seeing them there, lets it go and
    deletes it. When the shared rules cannot be associated, the parent planned to leave after
    them waits, and is not deleted; nothing is lost."""
    spoke = spokes(member, "member-central")
    access = {"account_id": MEMBER, "role_arn": ROLE, "external_id": EXTERNAL_ID}
    central = spoke_item(spoke, "central", parent_domain="amazonaws.com", **access)
    mesh.update(HOME_REGION, spokes=[central])
    assert mesh.resync()["ok"]
    [parent] = of_vpc(rules_and_vpcs(member), spoke.vpc_id).values()
    assert normalise(parent["DomainName"]) == "amazonaws.com."

    mesh.update(HOME_REGION, spokes=None, shared_vpcs=[{"vpc_id": spoke.vpc_id, **access}])
    if associations == "refused":
        associate = resolver.ResolverRegion.associate

        def refused(self: Any, rule_id: str, vpc_id: str, name: str) -> None:
            if vpc_id == spoke.vpc_id:
                raise RuntimeError(f"injected: {rule_id} refused")
            associate(self, rule_id, vpc_id, name)

        with monkeypatch.context() as patch:
            patch.setattr(resolver.ResolverRegion, "associate", refused)
            result = mesh.resync()
        assert not result["ok"]
        assert list(of_vpc(rules_and_vpcs(member), spoke.vpc_id)) == ["amazonaws.com."]
        waiting = {
            (c["kind"], c["status"]) for c in result["changes"] if c.get("rule_id") == parent["Id"]
        }
        assert waiting == {("disassociate", "waiting"), ("delete_rule", "waiting")}
    result = mesh.resync()
    assert result["ok"], result["errors"]
    assert set(of_vpc(rules_and_vpcs(member), spoke.vpc_id)) == PEER_DOMAINS
    assert parent["Id"] not in rules_and_vpcs(member)  # deleted
    assert mesh.resync()["changes"] == []


def test_followers_never_wait_on_a_hub_that_has_no_worker(
    mesh: Mesh, member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One worker for the whole apply: the hub that the member follows starts first, so the
    member's wait for the hub's share never holds the only worker (were it first, it would
    wait `FOLLOW_WAIT_SECONDS` and find no share)."""
    from resolver_mesh import reconcile

    monkeypatch.setattr(reconcile, "worker_cap", lambda memory_mib=None: 1)
    monkeypatch.setattr(reconcile, "FOLLOW_WAIT_SECONDS", 10.0)
    vpcs = [  # more changes in the member than at the hub: it would start first
        member("ec2", HOME_REGION).create_vpc(CidrBlock=f"10.{n}.0.0/16")["Vpc"]["VpcId"]
        for n in (200, 201, 202, 203)
    ]
    access = {"account_id": MEMBER, "role_arn": ROLE, "external_id": EXTERNAL_ID}
    mesh.update(HOME_REGION, shared_vpcs=[{"vpc_id": vpc, **access} for vpc in vpcs])
    result = mesh.resync()
    assert result["ok"], result["errors"]
    in_member = [c for c in result["changes"] if c.get("account") == MEMBER]
    at_hub = [c for c in result["changes"] if c["region"] == HOME_REGION and not c.get("account")]
    assert len(in_member) > len(at_hub)
    assert {c["status"] for c in in_member} == {"applied"}
    for vpc in vpcs:
        assert set(of_vpc(rules_and_vpcs(member), vpc)) == PEER_DOMAINS


def test_followers_of_a_share_that_was_not_made_wait_for_the_next_pass(
    mesh: Mesh, member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub's share cannot be made: its error says so; the member's follow changes wait
    (no error of theirs, nothing written there), and a later pass does it all."""

    def refused(self: RamRegion, *args: Any) -> str:
        raise RuntimeError("injected: no share")

    vpc = share_with_member(mesh, member)
    with monkeypatch.context() as patch:
        patch.setattr(RamRegion, "create_share", refused)
        result = mesh.resync()
    assert not result["ok"]
    assert {e["region"] for e in result["errors"]} == {HOME_REGION}
    in_member = [c for c in result["changes"] if c.get("account") == MEMBER]
    assert in_member
    assert {(c["status"], c["message"]) for c in in_member} == {
        ("waiting", f"{HOME_REGION} did not share its rules in this apply")
    }
    assert rules_and_vpcs(member) == {}
    again = mesh.resync()
    assert again["ok"], again["errors"]
    assert set(of_vpc(rules_and_vpcs(member), vpc)) == PEER_DOMAINS


def test_a_follower_that_finds_no_invitation_waits_once_for_the_share(
    mesh: Mesh, member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No invitation to be seen yet when the member follows (it may only be late): the
    acceptance finds no invitation (`no invitation`); its first rule is waited for, and when it
    does not come, the others are `waiting` at once, without a call; the next pass accepts the
    invitation it then sees and associates them."""
    monkeypatch.setattr(resolver, "ARRIVAL_WAITS", (0.05, 0.05))
    pending = RamRegion.pending_invitations
    reads: list[int] = []

    def late(self: RamRegion) -> Any:
        reads.append(1)
        return () if len(reads) == 1 else pending(self)

    tries: list[str] = []  # associations tried on the member's VPC
    associate = resolver.ResolverRegion.associate

    def counted(self: Any, rule_id: str, vpc_id: str, name: str) -> None:
        tries.append(vpc_id)
        associate(self, rule_id, vpc_id, name)

    monkeypatch.setattr(RamRegion, "pending_invitations", late)
    monkeypatch.setattr(resolver.ResolverRegion, "associate", counted)
    vpc = share_with_member(mesh, member)
    result = mesh.resync()
    assert result["ok"], result["errors"]
    followed = [c for c in result["changes"] if c.get("follows")]
    assert [c["status"] for c in followed] == ["no invitation"] + ["waiting"] * 4
    assert "sharing across accounts or Route 53 Profiles took 2 passes" in result["notes"]
    # one rule tried, then again after each wait; the second pass associates each rule once
    assert tries.count(vpc) == 1 + 2 + 4
    assert set(of_vpc(rules_and_vpcs(member), vpc)) == PEER_DOMAINS


def test_a_rule_the_followed_hub_cannot_add_to_its_share_is_an_error_and_waits(
    mesh: Mesh, member: CachedClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub makes its share first, then adds each rule it creates: when that fails, the
    creation says so (an error, the rule stays) and its followers wait; the share, holding
    nothing, is deleted, and the next pass makes it again with the rules in it (no rule to
    add: that works), which the member then takes."""
    vpc = share_with_member(mesh, member)

    def refused(self: RamRegion, share_arn: str, resources: Any, principals: Any) -> None:
        raise RuntimeError("injected: not added")

    with monkeypatch.context() as patch:
        patch.setattr(RamRegion, "share", refused)
        result = mesh.resync()
    assert not result["ok"]
    created = [
        c for c in result["changes"] if c["kind"] == "create_rule" and c["region"] == HOME_REGION
    ]
    assert created
    assert {c["status"] for c in created} == {"applied"}
    assert all(c["message"].startswith("created, but not added to ") for c in created)
    assert all(c["message"].endswith("RuntimeError: injected: not added") for c in created)
    made = [c for c in result["changes"] if c["kind"] == "create_share"]
    assert [len(c.get("resources", ())) for c in made] == [0, len(created)]
    followers = [c for c in result["changes"] if c.get("follows") and c["kind"] == "associate"]
    assert [c["status"] for c in followers] == ["waiting"] * 4 + ["applied"] * 4  # two passes
    assert set(of_vpc(rules_and_vpcs(member), vpc)) == PEER_DOMAINS
    assert mesh.resync()["changes"] == []


def our_shares(clients: ClientFactory, region: str = HOME_REGION) -> list[dict[str, Any]]:
    """The live resource shares an account owns in a Region, listed with plain boto3."""
    ram = clients("ram", region)
    return [
        share
        for page in ram.get_paginator("get_resource_shares").paginate(resourceOwner="SELF")
        for share in page["resourceShares"]
        if share["status"] == "ACTIVE"
    ]


def test_a_share_made_for_rules_none_of_which_were_created_is_deleted(
    mesh: Mesh, member: CachedClients, aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The followed hub makes its share first, for the rules it is about to create; when none
    of them can be created, the share it made holds nothing and would name the member with
    nothing to read it again: it is deleted in the same apply (a note says so), its followers
    associate nothing (every pass of the run tries again), and a later run makes it with its
    rules."""

    def refused(self: Any, *args: Any) -> str:
        raise RuntimeError("injected: no rule")

    vpc = share_with_member(mesh, member)
    with monkeypatch.context() as patch:
        patch.setattr(resolver.ResolverRegion, "create_rule", refused)
        result = mesh.resync()
    assert not result["ok"]
    made = [c for c in result["changes"] if c["kind"] == "create_share"]  # in each pass
    assert made
    assert {c["status"] for c in made} == {"applied"}
    dropped = [n for n in result["notes"] if "made for hub rules none of which came into it" in n]
    assert dropped  # (the report keeps the last pass's notes)
    assert our_shares(aws) == []
    followers = [c for c in result["changes"] if c.get("account") == MEMBER]
    assert {c["status"] for c in followers if c["kind"] == "associate"} <= {"waiting", "skipped"}
    assert rules_and_vpcs(member) == {}
    again = mesh.resync()
    assert again["ok"], again["errors"]
    assert len(our_shares(aws)) == 1
    assert set(of_vpc(rules_and_vpcs(member), vpc)) == PEER_DOMAINS
    assert not [n for n in again["notes"] if "none of which came" in n]


def test_rules_the_hub_adopts_are_shared_in_the_same_apply(
    mesh: Mesh, member: CachedClients, aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ADOPT_UNMANAGED, a hub whose rules are all adopted makes its share after adopting
    them, and the share holds them at once, as it would rules it created: the member accepts
    and associates them in the next pass (two, not three: a share made empty waited a pass
    for its rules)."""
    hub = mesh.hubs[HOME_REGION]
    assert hub.outbound_endpoint_id is not None
    adopted = {
        create_unmanaged_rule(aws, HOME_REGION, domain, hub.outbound_endpoint_id, "10.9.9.9")
        for domain in PEER_DOMAINS
    }
    monkeypatch.setenv("ADOPT_UNMANAGED", "true")
    vpc = share_with_member(mesh, member)
    result = mesh.resync()
    assert result["ok"], result["errors"]
    assert "sharing across accounts or Route 53 Profiles took 2 passes" in result["notes"]
    at_hub = [c for c in result["changes"] if c["region"] == HOME_REGION and not c.get("account")]
    assert {c["rule_id"] for c in at_hub if c["kind"] == "adopt_rule"} == adopted
    (made,) = [c for c in at_hub if c["kind"] == "create_share"]
    assert {arn.rsplit("/", 1)[-1] for arn in made["resources"]} == adopted
    associations = member("route53resolver", HOME_REGION).list_resolver_rule_associations(
        Filters=[{"Name": "VPCId", "Values": [vpc]}]
    )["ResolverRuleAssociations"]
    assert {a["ResolverRuleId"] for a in associations} == adopted
