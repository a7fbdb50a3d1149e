"""Spokes (direct and central), entries in other accounts, and sharing through AWS RAM: the
item contract, the desired rules, the plan and the guard. Pure: no AWS."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from resolver_mesh.desired import desired_rules, parse_hubs
from resolver_mesh.models import (
    Change,
    ChangeKind,
    ObservedAssociation,
    ObservedEndpoint,
    ObservedInvitation,
    ObservedRule,
    ObservedShare,
    RegionState,
    Target,
    location,
)
from resolver_mesh.names import creator_request_ids, owned_source, owned_target_region
from resolver_mesh.plan import make_plan, managed_rules
from resolver_mesh.safety import Guard, check_plan

from .builders import HOME, converged, hub_item, ids, region_state

MESH = "mesh"
A, B, C = "us-east-1", "us-west-2", "eu-west-1"
MEMBER = "222222222222"
OTHER = "333333333333"
ROLE = f"arn:aws:iam::{MEMBER}:role/resolver-mesh-member-mesh"
OTHER_ROLE = f"arn:aws:iam::{OTHER}:role/resolver-mesh-member-mesh"
SPOKE_VPC = "vpc-0000000000000aaaa"
SPOKE_OUT = "rslvr-out-0000000000000aaaa"
SPOKE2_VPC = "vpc-0000000000000bbbb"
SPOKE2_OUT = "rslvr-out-0000000000000bbbb"
SHARED_VPC = "vpc-0000000000000cccc"
SHARED_C, SHARED_D = f"vpc-{0xC:017x}", f"vpc-{0xD:017x}"  # shared_items' VPCs
KNOWN = {A, B, C}


def spoke(vpc: str = SPOKE_VPC, out: str = SPOKE_OUT, mode: str = "direct", **extra: Any) -> Any:
    return {"vpc_id": vpc, "outbound_endpoint_id": out, "mode": mode, **extra}


def spoke_endpoint(vpc: str = SPOKE_VPC, out: str = SPOKE_OUT, status: str = "OPERATIONAL") -> Any:
    return ObservedEndpoint(out, "OUTBOUND", status, vpc)


def in_member(**extra: Any) -> dict[str, Any]:
    return {"account_id": MEMBER, "role_arn": ROLE, **extra}


def plan_for(items: list[dict[str, Any]], states: dict[str, RegionState]) -> Any:
    hub_set = parse_hubs(items, KNOWN, HOME)
    desired = desired_rules(MESH, hub_set, states)
    plan = make_plan(MESH, desired, states, set(states), home_account=HOME)
    return hub_set, desired, plan


def errors_of(items: list[dict[str, Any]]) -> list[str]:
    return [str(e) for e in parse_hubs(items, KNOWN, HOME).errors]


# --- the item contract ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spokes", "fragment"),
    [
        ([spoke(mode="sideways")], "'direct' or 'central'"),
        ([spoke(parent_domain="amazonaws.com")], "only a central spoke"),
        ([spoke(mode="central", parent_domain="bad..name")], "parent_domain"),
        ([spoke(vpc=ids(A).vpc)], "already listed in vpc_id"),
        ([spoke(), spoke(out=SPOKE2_OUT)], "already listed in spokes"),
        ([spoke(outbound="x")], "Extra inputs are not permitted"),
        ([spoke(out="rslvr-in-0000000000000aaaa")], "rslvr-out-"),
        ([spoke(account_id=MEMBER)], "role_arn: required"),
        ([spoke(account_id=MEMBER, role_arn=OTHER_ROLE)], f"of account {OTHER}"),
        ([spoke(role_arn=ROLE)], "need an account_id"),
        ([spoke(**in_member(external_id="x"))], "external_id"),
    ],
)
def test_a_bad_spoke_names_the_item_and_field(spokes: list[Any], fragment: str) -> None:
    found = errors_of([hub_item(A, spokes=spokes), hub_item(B)])
    assert found, "expected an error"
    assert all(f"hub item '{A}'" in e for e in found)
    assert any("spokes" in e and fragment in e for e in found), found


def test_a_spoke_vpc_cannot_also_be_one_of_the_hubs_vpc_ids() -> None:
    found = errors_of([hub_item(A, vpc_ids=[SPOKE_VPC], spokes=[spoke()])])
    assert any("already listed in vpc_ids" in e for e in found)


def test_a_central_spoke_needs_a_hub_that_forwards() -> None:
    item = hub_item(A, outbound_endpoint_id=None, spokes=[spoke(mode="central")])
    item = {k: v for k, v in item.items() if v is not None}
    assert any("set outbound_endpoint_id" in e for e in errors_of([item]))


def test_a_shared_vpc_must_be_in_another_account_than_the_hub() -> None:
    shared = {"vpc_id": SHARED_VPC, "account_id": MEMBER, "role_arn": ROLE}
    found = errors_of([hub_item(A, **in_member(), shared_vpcs=[shared])])
    assert any("in the hub's own account; list it in vpc_ids" in e for e in found)


def test_naming_the_home_account_is_the_same_as_naming_none() -> None:
    home_role = f"arn:aws:iam::{HOME}:role/anything"
    item = hub_item(A, account_id=HOME, role_arn=home_role, spokes=[spoke(account_id=HOME)])
    hubs = parse_hubs([item], KNOWN, HOME)
    assert not hubs.errors
    assert hubs.hubs[A].account == ""
    assert hubs.hubs[A].spokes[0].account == ""
    assert hubs.accounts() == {}


def test_every_entry_must_reach_an_account_the_same_way() -> None:
    other_way = {"account_id": MEMBER, "role_arn": ROLE, "external_id": "another-id"}
    items = [hub_item(A, **in_member()), hub_item(B, spokes=[spoke(**other_way)])]
    found = parse_hubs(items, KNOWN, HOME).errors
    assert [(e.region, e.field) for e in found] == [(B, "role_arn")]
    assert "reached with another role_arn or external_id in the item of us-east-1" in str(found[0])


# --- desired rules ------------------------------------------------------------------------------


def three_hubs(**a_fields: Any) -> list[dict[str, Any]]:
    return [hub_item(A, **a_fields), hub_item(B), hub_item(C)]


def states_with_spoke(*spokes: Any, where: str = A) -> dict[str, RegionState]:
    states = {r: region_state(r) for r in (A, B, C)}
    if where == A:
        states[A] = replace(states[A], endpoints=(*states[A].endpoints, *spokes))
    else:
        states[where] = RegionState(A, account=MEMBER, endpoints=tuple(spokes))
    return states


def peer_domains(*regions: str) -> set[str]:
    return {f"{r}.{d}." for r in regions for d in ("amazonaws.com", "vpce.amazonaws.com")}


def test_a_direct_spoke_gets_a_copy_of_the_cross_region_rules_through_its_own_endpoint() -> None:
    _, desired, _ = plan_for(three_hubs(spokes=[spoke()]), states_with_spoke(spoke_endpoint()))
    mine = [r for r in desired.rules if r.source == SPOKE_VPC]
    hubs = [r for r in desired.rules if r.region == A and not r.source]
    assert {r.domain for r in mine} == {r.domain for r in hubs} == peer_domains(B, C)
    for rule in mine:
        assert rule.endpoint_id == SPOKE_OUT
        assert rule.vpc_ids == {SPOKE_VPC}
        assert rule.targets == frozenset(Target(ip) for ip in ids(rule.target_region).ips)
        assert rule.domain.startswith(rule.target_region)


def test_a_central_spoke_sends_every_peer_domain_to_its_own_hub() -> None:
    items = three_hubs(spokes=[spoke(mode="central")])
    _, desired, _ = plan_for(items, states_with_spoke(spoke_endpoint()))
    mine = [r for r in desired.rules if r.source == SPOKE_VPC]
    assert {r.domain for r in mine} == peer_domains(B, C)
    own_hub = frozenset(Target(ip) for ip in ids(A).ips)
    assert all(r.targets == own_hub and r.vpc_ids == {SPOKE_VPC} for r in mine)
    # No loop: never associated with the hub VPC that holds the inbound endpoint.
    assert all(ids(A).vpc not in r.vpc_ids for r in mine)
    # Each rule records whose domain it is, so a peer that cannot be read keeps them.
    assert {r.target_region for r in mine} == {B, C}


def test_a_central_spoke_with_a_parent_domain_has_one_rule() -> None:
    items = three_hubs(spokes=[spoke(mode="central", parent_domain="AmazonAWS.com")])
    _, desired, _ = plan_for(items, states_with_spoke(spoke_endpoint()))
    mine = [r for r in desired.rules if r.source == SPOKE_VPC]
    assert [(r.domain, r.target_region) for r in mine] == [("amazonaws.com.", A)]


def test_a_spoke_in_another_account_gets_its_rules_there() -> None:
    items = three_hubs(spokes=[spoke(**in_member())])
    member = location(A, MEMBER)
    hub_set, desired, plan = plan_for(items, states_with_spoke(spoke_endpoint(), where=member))
    assert set(hub_set.accounts()) == {MEMBER}
    mine = [r for r in desired.rules if r.source == SPOKE_VPC]
    assert mine
    assert {r.location for r in mine} == {member}
    creates = [c for c in plan.changes if c.kind is ChangeKind.CREATE_RULE and c.source]
    assert {(c.account, c.region) for c in creates} == {(MEMBER, A)}
    assert len(creates) == 4


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [
        (None, "error"),
        (ObservedEndpoint(SPOKE_OUT, "INBOUND", "OPERATIONAL", SPOKE_VPC), "error"),
        (spoke_endpoint(vpc=SPOKE2_VPC), "error"),
        (spoke_endpoint(status="CREATING"), "pending"),
        (spoke_endpoint(status="ACTION_NEEDED"), "degraded"),
    ],
)
def test_a_spoke_whose_endpoint_cannot_be_used_is_frozen(endpoint: Any, kind: str) -> None:
    """A degraded spoke endpoint freezes the spoke alone; a wrong one (missing, other direction,
    other VPC) makes the whole item doubtful: nothing changes in its Region."""
    items = three_hubs(spokes=[spoke()])
    good = states_with_spoke(spoke_endpoint())
    _, desired, _ = plan_for(items, good)
    kept = converged(MESH, desired, good)
    # Its rules, pointing to a peer whose IPs changed, would otherwise be updated.
    states = states_with_spoke(*([endpoint] if endpoint else []))
    states = {
        w: replace(s, rules=kept[w].rules, associations=kept[w].associations)
        for w, s in states.items()
    }
    states[B] = replace(
        states[B],
        endpoints=(
            ObservedEndpoint(ids(B).inbound, "INBOUND", "OPERATIONAL", ids(B).vpc, ("10.9.9.9",)),
            states[B].endpoints[1],
        ),
    )
    _, desired, plan = plan_for(items, states)
    assert (A, SPOKE_VPC) in desired.frozen_sources
    assert not [c for c in plan.changes if c.source == SPOKE_VPC]
    hub_updates = [c for c in plan.changes if c.region == A and c.kind is ChangeKind.UPDATE_RULE]
    if kind == "error":
        assert [(e.region, e.field) for e in desired.errors] == [(A, "spokes")]
        assert "entry 0" in desired.errors[0].message
        assert A in desired.frozen_regions
        assert not [c for c in plan.changes if c.region == A]
    else:
        assert len(hub_updates) == 2  # the hub itself goes on
        assert any(f"spoke {SPOKE_VPC} of hub {A}" in d for d in desired.degraded)
        assert (A in desired.pending) is (kind == "pending")


def test_a_disabled_spoke_loses_its_rules_and_nothing_else() -> None:
    good = states_with_spoke(spoke_endpoint())
    _, desired, _ = plan_for(three_hubs(spokes=[spoke()]), good)
    states = converged(MESH, desired, good)
    _, _, plan = plan_for(three_hubs(spokes=[spoke(enabled=False)]), states)
    assert {c.kind for c in plan.changes} == {ChangeKind.DISASSOCIATE, ChangeKind.DELETE_RULE}
    assert {c.source for c in plan.changes} == {SPOKE_VPC}
    assert sum(c.kind is ChangeKind.DELETE_RULE for c in plan.changes) == 4


# --- the plan ---------------------------------------------------------------------------------


def test_markers_record_the_spoke_and_keep_the_target_region() -> None:
    marker = creator_request_ids(MESH, A, "x.example.", B, SPOKE_VPC)[0]
    hub_marker = creator_request_ids(MESH, A, "x.example.", B)[0]
    assert marker.startswith(f"resolver-mesh/{MESH}/{B}/{SPOKE_VPC}/")
    assert (owned_target_region(marker, MESH), owned_source(marker, MESH)) == (B, SPOKE_VPC)
    assert (owned_target_region(hub_marker, MESH), owned_source(hub_marker, MESH)) == (B, "")
    assert marker != hub_marker


@pytest.mark.parametrize("mode", ["direct", "central"])
@pytest.mark.parametrize("where", [A, location(A, MEMBER)])
def test_spokes_converge_and_then_plan_nothing(mode: str, where: str) -> None:
    extra = in_member() if where != A else {}
    items = three_hubs(spokes=[spoke(mode=mode, **extra), spoke(SPOKE2_VPC, SPOKE2_OUT, "central")])
    states = states_with_spoke(spoke_endpoint(), where=where)
    states[A] = replace(
        states[A], endpoints=(*states[A].endpoints, spoke_endpoint(SPOKE2_VPC, SPOKE2_OUT))
    )
    _, desired, plan = plan_for(items, states)
    # hub + two spokes in A, each forwarding 4 peer domains; B's and C's hubs 4 each
    in_a = [c for c in plan.changes if c.region == A]
    assert sum(c.kind is ChangeKind.CREATE_RULE for c in in_a) == 12
    assert sum(c.kind is ChangeKind.ASSOCIATE for c in in_a) == 12
    assert plan.counts()["create_rule"] == 20
    _, _, again = plan_for(items, converged(MESH, desired, states))
    assert again.changes == ()


def test_a_vpc_moved_from_the_hub_to_a_spoke_leaves_the_hub_rule_first() -> None:
    before = three_hubs(vpc_ids=[SPOKE_VPC])
    states = states_with_spoke(spoke_endpoint())
    _, desired, _ = plan_for(before, states)
    states = converged(MESH, desired, states)
    _, _, plan = plan_for(three_hubs(spokes=[spoke()]), states)
    order = [(c.kind, c.domain, c.source) for c in plan.changes if c.vpc_id == SPOKE_VPC]
    for domain in peer_domains(B, C):
        leave = order.index((ChangeKind.DISASSOCIATE, domain, ""))
        join = order.index((ChangeKind.ASSOCIATE, domain, SPOKE_VPC))
        assert leave == join - 1  # AWS allows one rule per domain in a VPC


def test_a_central_spokes_rules_for_an_unreadable_peer_are_kept() -> None:
    items = three_hubs(spokes=[spoke(mode="central")])
    good = states_with_spoke(spoke_endpoint())
    _, desired, _ = plan_for(items, good)
    states = converged(MESH, desired, good)
    states[B] = RegionState(B, error="AccessDenied")
    _, desired, plan = plan_for(items, states)
    assert B in desired.protected_targets
    assert not [c for c in plan.changes if c.kind is ChangeKind.DELETE_RULE]


def test_rules_of_another_spoke_or_hub_are_not_mistaken_for_duplicates() -> None:
    items = three_hubs(spokes=[spoke()])
    good = states_with_spoke(spoke_endpoint())
    _, desired, _ = plan_for(items, good)
    states = converged(MESH, desired, good)
    rules = managed_rules(states[A], MESH)
    assert len(rules) == 8
    assert len({r.domain for r in rules}) == 4


# --- sharing ------------------------------------------------------------------------------------


def shared_items(*accounts: str) -> list[dict[str, Any]]:
    roles = {MEMBER: ROLE, OTHER: OTHER_ROLE}
    shared = [
        {"vpc_id": f"vpc-{n:017x}", "account_id": account, "role_arn": roles[account]}
        for n, account in enumerate(accounts, start=0xC)
    ]
    return three_hubs(shared_vpcs=shared)


def shared_world(*accounts: str) -> tuple[dict[str, RegionState], Any]:
    states = {r: region_state(r) for r in (A, B, C)}
    for account in accounts:
        states[location(A, account)] = RegionState(A, account=account)
    _, desired, _ = plan_for(shared_items(*accounts), states)
    return converged(MESH, desired, states), desired


def test_the_hub_rules_are_shared_with_the_accounts_of_its_shared_vpcs() -> None:
    states, _ = shared_world(MEMBER, OTHER)
    _, desired, plan = plan_for(shared_items(MEMBER, OTHER), states)
    assert [(s.region, s.owner, s.principal) for s in desired.shares] == [
        (A, "", MEMBER),
        (A, "", OTHER),
    ]
    [create] = [c for c in plan.changes if not c.follows]  # the members follow it (below)
    assert create.kind is ChangeKind.CREATE_SHARE
    assert create.location == A
    assert create.name == "resolver-mesh-mesh"
    assert create.principals == (MEMBER, OTHER)
    assert set(create.resources) == {r.arn for r in managed_rules(states[A], MESH)}


def share_of(states: dict[str, RegionState], *principals: str) -> ObservedShare:
    return ObservedShare(
        "arn:aws:ram:us-east-1:123456789012:resource-share/ours",
        "resolver-mesh-mesh",
        frozenset(r.arn for r in managed_rules(states[A], MESH)),
        frozenset(principals),
    )


def received(states: dict[str, RegionState], account: str, vpcs: tuple[str, ...]) -> RegionState:
    """The receiving location once the share is accepted: the hub's rules are visible."""
    rules = tuple(
        replace(r, share_status="SHARED_WITH_ME", owner_id=HOME)
        for r in managed_rules(states[A], MESH)
    )
    associations = tuple(
        ObservedAssociation(f"assoc-{r.id}-{v}", r.id, v, "COMPLETE") for r in rules for v in vpcs
    )
    return RegionState(A, rules=rules, associations=associations, account=account)


def invited(states: dict[str, RegionState], account: str = MEMBER) -> ObservedInvitation:
    """The invitation `account` has to our share of the hub's rules (read where the hub is)."""
    ours = states[A].shares[0].arn
    return ObservedInvitation(f"arn:invitation-{account}", "resolver-mesh-mesh", HOME, ours)


def test_the_receiving_account_accepts_and_associates_its_vpcs_in_one_plan() -> None:
    states, _ = shared_world(MEMBER)
    states[A] = replace(states[A], shares=(share_of(states, MEMBER),))
    member = location(A, MEMBER)
    stranger = ObservedInvitation("arn:stranger", "resolver-mesh-mesh", OTHER, "arn:theirs")
    # a share of the hub account under our name but not tagged ours (so not read as ours)
    untagged = ObservedInvitation("arn:untagged", "resolver-mesh-mesh", HOME, "arn:untagged-share")
    invitation = invited(states)
    states[member] = replace(states[member], invitations=(invitation, stranger, untagged))
    _, _, plan = plan_for(shared_items(MEMBER), states)
    [accept, *associations] = plan.changes
    assert (accept.kind, accept.share_arn, accept.account) == (
        ChangeKind.ACCEPT_SHARE,
        invitation.arn,
        MEMBER,
    )
    # the hub's keeper rules, as read where the hub is, each on the listed VPC
    hub_rules = {r.id: r for r in managed_rules(states[A], MESH)}
    assert len(associations) == len(hub_rules) == 4
    for change in associations:
        rule = hub_rules[change.rule_id or ""]
        assert change.kind is ChangeKind.ASSOCIATE
        assert (change.account, change.vpc_id) == (MEMBER, SHARED_C)
        assert (change.domain, change.name) == (rule.domain, rule.name)
        assert change.target_region == owned_target_region(rule.creator_request_id, MESH)
        assert (change.owner, change.share_arn) == (HOME, invitation.arn)

    # once the rules are visible, the usual path: nothing waits for an invitation any more
    states[member] = received(states, MEMBER, ())
    _, _, plan = plan_for(shared_items(MEMBER), states)
    associations = [c for c in plan.changes if c.kind is ChangeKind.ASSOCIATE]
    assert len(associations) == len(plan.changes) == 4
    assert {(c.account, c.vpc_id, c.share_arn) for c in associations} == {(MEMBER, SHARED_C, None)}

    states[member] = received(states, MEMBER, (SHARED_C,))
    assert plan_for(shared_items(MEMBER), states)[2].changes == ()


def test_two_invitations_to_shares_of_ours_holding_one_rule_associate_it_once() -> None:
    """A duplicate share of ours (the hub deletes it in this plan) was also sent: both are
    accepted, and each rule goes on each listed VPC once."""
    states, _ = shared_world(MEMBER)
    share = share_of(states, MEMBER)
    duplicate = replace(share, arn=share.arn + "-duplicate")
    states[A] = replace(states[A], shares=(share, duplicate))
    member = location(A, MEMBER)
    second = replace(invited(states), arn="arn:invitation-2", share_arn=duplicate.arn)
    states[member] = replace(states[member], invitations=(invited(states), second))
    _, _, plan = plan_for(shared_items(MEMBER), states)
    in_member = [c for c in plan.changes if c.account == MEMBER]
    assert [c.kind for c in in_member[:2]] == [ChangeKind.ACCEPT_SHARE] * 2
    associations = in_member[2:]
    assert len({(c.domain, c.vpc_id) for c in associations}) == len(associations) == 4


def test_an_invitation_to_a_share_not_of_ours_gets_neither_acceptance_nor_association() -> None:
    states, _ = shared_world(MEMBER)
    states[A] = replace(states[A], shares=(share_of(states, MEMBER),))
    member = location(A, MEMBER)
    ours = invited(states)
    foreign = (
        replace(ours, arn="arn:untagged", share_arn="arn:untagged-share"),  # not tagged ours
        replace(ours, arn="arn:stranger", sender=OTHER),  # our share's ARN, another sender
    )
    states[member] = replace(states[member], invitations=foreign)
    assert plan_for(shared_items(MEMBER), states)[2].changes == ()


def test_nothing_is_accepted_or_associated_while_the_hubs_location_is_not_read() -> None:
    states, _ = shared_world(MEMBER)
    states[A] = replace(states[A], shares=(share_of(states, MEMBER),))
    member = location(A, MEMBER)
    states[member] = replace(states[member], invitations=(invited(states),))
    states[A] = RegionState(A, error="ThrottlingException")
    _, _, plan = plan_for(shared_items(MEMBER), states)
    assert [c for c in plan.changes if c.account == MEMBER] == []


def test_only_the_hub_rules_the_accepted_share_holds_are_associated() -> None:
    states, _ = shared_world(MEMBER)
    share = share_of(states, MEMBER)
    [held, *_] = sorted(share.resources)
    states[A] = replace(states[A], shares=(replace(share, resources=frozenset({held})),))
    member = location(A, MEMBER)
    states[member] = replace(states[member], invitations=(invited(states),))
    _, _, plan = plan_for(shared_items(MEMBER), states)
    in_member = [c for c in plan.changes if c.account == MEMBER]
    assert [c.kind for c in in_member] == [ChangeKind.ACCEPT_SHARE, ChangeKind.ASSOCIATE]
    [rule] = [r for r in managed_rules(states[A], MESH) if r.arn == held]
    assert in_member[1].rule_id == rule.id
    # the hub adds the others to its share in the same plan; the next pass associates them
    [extend] = [c for c in plan.changes if c.kind is ChangeKind.SHARE]
    assert len(extend.resources) == 3


def their_rule() -> ObservedRule:
    """A rule of another owner for B's domain, which a receiving VPC may use."""
    return ObservedRule(
        "rslvr-rr-theirs",
        f"{B}.amazonaws.com.",
        "FORWARD",
        "t",
        "COMPLETE",
        None,
        frozenset(),
        "someone-else",
    )


def test_an_accepted_share_finds_the_same_conflicts_as_a_visible_one() -> None:
    states, _ = shared_world(MEMBER)
    states[A] = replace(states[A], shares=(share_of(states, MEMBER),))
    member = location(A, MEMBER)
    theirs = their_rule()
    states[member] = replace(
        states[member],
        invitations=(invited(states),),
        rules=(theirs,),
        associations=(ObservedAssociation("x", theirs.id, SHARED_C, "COMPLETE"),),
    )
    _, _, plan = plan_for(shared_items(MEMBER), states)
    [conflict] = plan.conflicts
    assert (conflict.account, conflict.vpc_id, conflict.their_rule_id) == (
        MEMBER,
        SHARED_C,
        theirs.id,
    )
    assert conflict.our_rule_id in {r.id for r in managed_rules(states[A], MESH)}
    associations = [c for c in plan.changes if c.kind is ChangeKind.ASSOCIATE]
    assert len(associations) == 3
    assert f"{B}.amazonaws.com." not in {c.domain for c in associations}


def accepting_with_a_shared_rule_on_the_vpc(
    offered: bool,
) -> tuple[ObservedRule, ObservedRule, list[Change]]:
    """The member accepts the hub's share while its VPC holds another shared rule of ours for
    the hub's domain (`offered`: by the hub location we read); the hub's rule for that domain,
    the other rule, and the member's planned changes."""
    states, _ = shared_world(MEMBER)
    states[A] = replace(states[A], shares=(share_of(states, MEMBER),))
    member = location(A, MEMBER)
    [old] = [r for r in managed_rules(states[A], MESH) if r.domain == f"{B}.amazonaws.com."]
    other = replace(old, id="rslvr-rr-other", arn=old.arn + "-other")
    if offered:
        states[A] = replace(states[A], rules=(*states[A].rules, other))
    seen = replace(other, share_status="SHARED_WITH_ME", owner_id=HOME)
    states[member] = replace(
        states[member],
        invitations=(invited(states),),
        rules=(seen,),
        associations=(ObservedAssociation("x", seen.id, SHARED_C, "COMPLETE"),),
    )
    _, _, plan = plan_for(shared_items(MEMBER), states)
    assert plan.conflicts == ()
    in_member = [c for c in plan.changes if c.account == MEMBER]
    assert in_member[0].kind is ChangeKind.ACCEPT_SHARE
    return old, seen, in_member


def test_an_older_shared_rule_of_ours_makes_way_for_the_rule_the_accepted_share_brings() -> None:
    """A shared rule of ours (an older share) already serves the domain on the VPC: AWS allows
    one rule per domain, so it leaves the VPC right before the new one takes its place, in the
    acceptance's plan (the apply frees the VPC only once the new rule is visible there)."""
    old, older, in_member = accepting_with_a_shared_rule_on_the_vpc(offered=True)
    associated = {c.domain for c in in_member if c.kind is ChangeKind.ASSOCIATE}
    assert len(associated) == 4
    [freeing] = [c for c in in_member if c.kind is ChangeKind.DISASSOCIATE]
    assert (freeing.rule_id, freeing.vpc_id, freeing.domain) == (older.id, SHARED_C, old.domain)
    taking = in_member[in_member.index(freeing) + 1]
    assert (taking.kind, taking.rule_id, taking.vpc_id) == (ChangeKind.ASSOCIATE, old.id, SHARED_C)
    assert taking.share_arn == in_member[0].share_arn  # applied once accepted, and arrived


def test_a_shared_rule_no_location_we_read_offers_keeps_its_vpc_in_the_acceptance() -> None:
    """A shared rule of ours whose owner's location is not read (not offered) is left alone:
    the VPC keeps it, and the accepted share's rule for that domain waits for a later pass."""
    old, _, in_member = accepting_with_a_shared_rule_on_the_vpc(offered=False)
    assert not [c for c in in_member if c.kind is ChangeKind.DISASSOCIATE]
    associated = {c.domain for c in in_member if c.kind is ChangeKind.ASSOCIATE}
    assert len(associated) == 3
    assert old.domain not in associated


def test_the_guard_counts_associations_planned_with_an_acceptance_against_the_quota() -> None:
    states, _ = shared_world(MEMBER)
    states[A] = replace(states[A], shares=(share_of(states, MEMBER),))
    member = location(A, MEMBER)
    crowded = tuple(
        ObservedAssociation(f"a{n}", f"rslvr-rr-{n}", f"vpc-{n:017x}", "COMPLETE")
        for n in range(1997)
    )
    states[member] = replace(states[member], invitations=(invited(states),), associations=crowded)
    hub_set, _, plan = plan_for(shared_items(MEMBER), states)
    verdict = check_plan(plan, states, set(states), MESH, Guard(), staying=hub_set.enabled)
    assert not verdict.allowed
    assert verdict.refusals == (f"{member}: 2001 rule associations would exceed the quota of 2000",)


def test_a_shared_vpc_removed_is_disassociated_and_its_account_unshared() -> None:
    states, _ = shared_world(MEMBER, OTHER)
    states[A] = replace(states[A], shares=(share_of(states, MEMBER, OTHER),))
    for account, vpc in ((MEMBER, SHARED_C), (OTHER, SHARED_D)):
        states[location(A, account)] = received(states, account, (vpc,))
    _, _, plan = plan_for(shared_items(MEMBER), states)
    unshare = [c for c in plan.changes if c.kind is ChangeKind.UNSHARE]
    assert [(c.principals, c.resources) for c in unshare] == [((OTHER,), ())]
    leaving = [c for c in plan.changes if c.kind is ChangeKind.DISASSOCIATE]
    assert {(c.account, c.vpc_id) for c in leaving} == {(OTHER, SHARED_D)}
    assert not [c for c in plan.changes if c.kind is ChangeKind.DELETE_RULE]

    _, _, plan = plan_for(three_hubs(), states)
    kinds = {(c.kind, c.account) for c in plan.changes}
    assert (ChangeKind.DELETE_SHARE, "") in kinds
    assert {k for k, _ in kinds} == {ChangeKind.DELETE_SHARE, ChangeKind.DISASSOCIATE}


def test_a_deleted_hub_rule_leaves_the_share_before_it_is_deleted() -> None:
    states, _ = shared_world(MEMBER)
    states[A] = replace(states[A], shares=(share_of(states, MEMBER),))
    _, _, plan = plan_for(
        [shared_items(MEMBER)[0], hub_item(B), hub_item(C, enabled=False)], states
    )
    kinds = [c.kind for c in plan.changes if c.location == A]
    assert kinds.index(ChangeKind.UNSHARE) < kinds.index(ChangeKind.DELETE_RULE)
    [unshare] = [c for c in plan.changes if c.kind is ChangeKind.UNSHARE]
    assert len(unshare.resources) == 2
    assert not unshare.principals


def test_rules_shared_with_an_account_are_never_managed_there() -> None:
    states, _ = shared_world(MEMBER)
    member = location(A, MEMBER)
    states[member] = received(states, MEMBER, (SHARED_C,))
    assert managed_rules(states[member], MESH) == []
    _, _, plan = plan_for(three_hubs(), states)  # no shared VPC any more
    in_member = [c for c in plan.changes if c.account == MEMBER]
    assert {c.kind for c in in_member} == {ChangeKind.DISASSOCIATE}


def test_a_receiving_vpc_that_uses_another_rule_is_a_conflict() -> None:
    states, _ = shared_world(MEMBER)
    member = location(A, MEMBER)
    state = received(states, MEMBER, ())
    theirs = their_rule()
    states[member] = replace(
        state,
        rules=(*state.rules, theirs),
        associations=(ObservedAssociation("x", theirs.id, SHARED_C, "COMPLETE"),),
    )
    _, _, plan = plan_for(shared_items(MEMBER), states)
    assert [(c.account, c.their_rule_id) for c in plan.conflicts] == [(MEMBER, theirs.id)]
    assert len([c for c in plan.changes if c.kind is ChangeKind.ASSOCIATE]) == 3


# --- safety across accounts --------------------------------------------------------------------


def test_the_guard_counts_rules_in_every_account_and_shares_withdrawn() -> None:
    items = [
        hub_item(r, spokes=[spoke(f"vpc-{n:017x}", f"rslvr-out-{n:017x}", **in_member())])
        for n, r in enumerate((A, B, C), start=1)
    ]
    states = {r: region_state(r) for r in (A, B, C)}
    for n, r in enumerate((A, B, C), start=1):
        states[location(r, MEMBER)] = RegionState(
            r, account=MEMBER, endpoints=(spoke_endpoint(f"vpc-{n:017x}", f"rslvr-out-{n:017x}"),)
        )
    _, desired, _ = plan_for(items, states)
    states = converged(MESH, desired, states)
    assert sum(len(managed_rules(s, MESH)) for s in states.values()) == 24
    no_spokes = [hub_item(r) for r in (A, B, C)]
    hub_set, desired, plan = plan_for(no_spokes, states)
    guard = Guard(max_fraction=0.4)
    verdict = check_plan(plan, states, set(states), MESH, guard, staying=hub_set.enabled)
    assert not verdict.allowed
    assert "delete 12 and retarget 0 of the 24" in verdict.refusals[0]


def test_quotas_are_counted_per_account_and_warned_about_before_they_are_reached() -> None:
    rule = ObservedRule("r", "x.", "FORWARD", "n", "COMPLETE", None, frozenset(), "c")
    full = RegionState(A, rules=tuple(replace(rule, id=f"r{n}") for n in range(950)))
    states = {A: full, location(A, MEMBER): replace(full, account=MEMBER, rules=())}
    verdict = check_plan(
        make_plan(MESH, desired_rules(MESH, parse_hubs([], KNOWN), states), states, set(states)),
        states,
        set(states),
        MESH,
        Guard(),
    )
    assert verdict.allowed
    assert verdict.warnings == (f"{A}: 950 rules after this plan, close to the quota of 1000",)


# --- sharing: what the owner and the receivers see of each other --------------------------------


def shared_and_received(*vpcs: str) -> dict[str, RegionState]:
    """The hub's rules shared (SHARED_BY_ME) and received by MEMBER, on `vpcs` there."""
    states, _ = shared_world(MEMBER)
    by_me = tuple(replace(r, share_status="SHARED_BY_ME") for r in states[A].rules)
    states[A] = replace(states[A], rules=by_me, shares=(share_of(states, MEMBER),))
    states[location(A, MEMBER)] = received(states, MEMBER, vpcs)
    return states


def test_a_receiver_keeps_the_shared_rules_of_a_peer_that_cannot_be_read() -> None:
    states = shared_and_received(SHARED_C)
    states[B] = RegionState(B, error="AccessDenied")
    _, desired, plan = plan_for(shared_items(MEMBER), states)
    assert B in desired.protected_targets
    assert [c for c in plan.changes if c.account == MEMBER] == []


def test_a_receiver_ignores_shared_rules_that_no_hub_location_we_read_offers() -> None:
    states = shared_and_received(SHARED_C)
    member = location(A, MEMBER)
    forged = replace(
        states[member].rules[0],
        id="rslvr-rr-forged",
        arn=f"arn:aws:route53resolver:{A}:{OTHER}:resolver-rule/rslvr-rr-forged",
        owner_id=OTHER,
    )
    forged_on = ObservedAssociation("forged", forged.id, "vpc-0000000000000dddd", "COMPLETE")
    states[member] = replace(
        states[member],
        rules=(forged, *states[member].rules),
        associations=(*states[member].associations, forged_on),
    )
    _, _, plan = plan_for(shared_items(MEMBER), states)
    assert [c for c in plan.changes if c.rule_id == forged.id] == []
    assert plan.changes == ()


def test_the_owner_keeps_a_shared_rule_a_receiver_still_uses_and_the_receiver_waits() -> None:
    states = shared_and_received(SHARED_C)
    # B's vpce domain moves to C's hub: the owner makes a new rule and retires the old one.
    items = shared_items(MEMBER)
    items[1] = hub_item(B, domains=["{region}.amazonaws.com"])
    items[2] = hub_item(
        C,
        domains=[
            "{region}.amazonaws.com",
            "{region}.vpce.amazonaws.com",
            f"{B}.vpce.amazonaws.com",
        ],
    )
    _, _, plan = plan_for(items, states)
    retired = f"{B}.vpce.amazonaws.com."
    owner = [c for c in plan.changes if c.location == A and c.domain == retired]
    assert [c.kind for c in owner] == [
        ChangeKind.CREATE_RULE,
        ChangeKind.DISASSOCIATE,  # the old rule makes way on the hub's own VPC
        ChangeKind.ASSOCIATE,
    ]
    assert not [c for c in owner if c.kind is ChangeKind.DELETE_RULE]
    assert any("while another account may still use it" in n for n in plan.notes)
    assert plan.deferred_deletes == (A,)  # deleted later: the guard counts it now
    # The receiver keeps the old rule on its VPC until the new one is shared and visible.
    assert [c for c in plan.changes if c.account == MEMBER] == []


def test_a_receiver_switches_to_the_rule_the_hub_keeps_before_letting_go() -> None:
    states = shared_and_received(SHARED_C)
    member = location(A, MEMBER)
    old = states[member].rules[0]
    # A duplicate appears at the owner (e.g. a concurrent create) and is shared too.
    twin = replace(old, id="rslvr-rr-0000-twin", arn=old.arn + "-twin")
    states[A] = replace(
        states[A], rules=(*states[A].rules, replace(twin, share_status="SHARED_BY_ME"))
    )
    states[member] = replace(states[member], rules=(*states[member].rules, twin))
    _, _, plan = plan_for(shared_items(MEMBER), states)
    kept = {c.rule_id for c in plan.changes if c.kind is ChangeKind.DELETE_RULE}
    assert kept in ({old.id}, {twin.id}, set())
    in_member = [(c.kind, c.rule_id) for c in plan.changes if c.account == MEMBER]
    if in_member:  # the hub keeps the twin: the receiver moves, making way first
        assert in_member == [
            (ChangeKind.DISASSOCIATE, old.id),
            (ChangeKind.ASSOCIATE, twin.id),
        ]
        assert kept == set()  # the old one is still used: deleted on a later pass
    else:
        assert kept == {twin.id}  # the hub keeps the one in use; the unused twin goes


def test_the_guard_counts_rules_taken_from_receiving_vpcs() -> None:
    states = shared_and_received(SHARED_C)
    hub_set, _, plan = plan_for(three_hubs(), states)
    taken = [c for c in plan.changes if c.kind is ChangeKind.DISASSOCIATE and c.owner]
    assert len(taken) == 4
    assert all(c.owner == HOME for c in taken)
    verdict = check_plan(
        plan, states, set(states), MESH, Guard(0.1, min_rules=1), staying=hub_set.enabled
    )
    assert not verdict.allowed
    assert "stop sharing" in verdict.refusals[0]


def test_a_spoke_vpc_that_becomes_a_shared_vpc_keeps_its_rules_until_the_hubs_take_over() -> None:
    """Make before break across accounts: a spoke VPC of a member account moved to the hub's
    `shared_vpcs` loses each of its own rules only right before the hub's shared rule for the
    domain is associated in its place; the rules go once they have left the VPC."""
    member = location(A, MEMBER)
    before = three_hubs(spokes=[spoke(**in_member())])
    states = states_with_spoke(spoke_endpoint(), where=member)
    states = converged(MESH, plan_for(before, states)[1], states)
    own = managed_rules(states[member], MESH)
    assert {r.domain for r in own} == peer_domains(B, C)
    after = three_hubs(shared_vpcs=[{"vpc_id": SPOKE_VPC, **in_member()}])

    # 1. The hub makes its share; the VPC keeps its own rules, nothing changes in the member.
    _, _, plan = plan_for(after, states)
    assert [(c.kind, c.location) for c in plan.changes] == [(ChangeKind.CREATE_SHARE, A)]
    assert sum(f"{member}: {SPOKE_VPC} keeps" in n for n in plan.notes) == 4
    guarded = check_plan(plan, states, set(states), MESH, Guard(), staying={})
    assert guarded.allowed

    # 2. With the invitation: accepted, then per domain the own rule leaves the VPC right
    #    before the hub's rule (on its way) takes its place; the own rules are deleted last.
    states[A] = replace(states[A], shares=(share_of(states, MEMBER),))
    states[member] = replace(states[member], invitations=(invited(states),))
    _, _, plan = plan_for(after, states)
    assert_swapped([c for c in plan.changes if c.account == MEMBER], own, arriving=True)
    # each own rule leaves its VPC for another of ours: the guard counts no association lost
    swaps = replace(plan, changes=tuple(c for c in plan.changes if c.kind in SWAP_KINDS))
    strict = Guard(0.2, 1)
    assert check_plan(swaps, states, set(states), MESH, strict, staying={A, B, C}).allowed
    leaves = replace(swaps, changes=tuple(c for c in swaps.changes if c.kind in SWAP_KINDS[:1]))
    assert not check_plan(leaves, states, set(states), MESH, strict, staying={A, B, C}).allowed

    # 3. With the hub's rules visible and no invitation (sharing within an organisation).
    shared = received(states, MEMBER, ())
    states[member] = replace(states[member], rules=own + list(shared.rules), invitations=())
    _, _, plan = plan_for(after, states)
    assert_swapped(list(plan.changes), own, arriving=False)

    # 4. Swapped: nothing more to do.
    states[member] = received(states, MEMBER, (SPOKE_VPC,))
    assert plan_for(after, states)[2].changes == ()


SWAP_KINDS = (ChangeKind.DISASSOCIATE, ChangeKind.ASSOCIATE)


def assert_swapped(changes: list[Change], own: list[ObservedRule], *, arriving: bool) -> None:
    if arriving:
        accept, *changes = changes
        assert accept.kind is ChangeKind.ACCEPT_SHARE
    by_domain = {r.domain: r for r in own}
    swaps, deletions = changes[: 2 * len(own)], changes[2 * len(own) :]
    for leave, take in zip(swaps[::2], swaps[1::2], strict=True):
        assert (leave.kind, take.kind) == (ChangeKind.DISASSOCIATE, ChangeKind.ASSOCIATE)
        assert leave.rule_id == by_domain[take.domain].id
        assert (
            (leave.domain, leave.vpc_id) == (take.domain, take.vpc_id) == (take.domain, SPOKE_VPC)
        )
        assert leave.reason == "makes way for the hub's shared rule"
        assert bool(take.share_arn) is arriving
    assert {c.domain for c in swaps} == set(by_domain)
    assert [(c.kind, c.rule_id) for c in deletions] == [
        (ChangeKind.DELETE_RULE, r.id) for r in sorted(own, key=lambda r: (r.domain, r.id))
    ]


def test_a_spoke_vpc_that_leaves_the_mesh_loses_its_rules_at_once() -> None:
    member = location(A, MEMBER)
    before = three_hubs(spokes=[spoke(**in_member())])
    states = states_with_spoke(spoke_endpoint(), where=member)
    states = converged(MESH, plan_for(before, states)[1], states)
    _, _, plan = plan_for(three_hubs(), states)
    kinds = [c.kind for c in plan.changes if c.location == member]
    assert kinds == [ChangeKind.DISASSOCIATE] * 4 + [ChangeKind.DELETE_RULE] * 4
    assert not [n for n in plan.notes if "keeps" in n]


def test_a_pass_over_one_region_lets_the_only_shared_vpc_of_an_account_go() -> None:
    """An event-triggered pass over Region A: the one VPC of the one account the hub shares
    with leaves. Its part of the mesh is small (4 rules); withdrawing every rule from that
    account is judged from MIN_RULES_FOR_GUARD on, as in a whole pass, not refused here."""
    states, _ = shared_world(MEMBER)
    states[A] = replace(states[A], shares=(share_of(states, MEMBER),))
    member = location(A, MEMBER)
    states[member] = received(states, MEMBER, (SHARED_C,))
    hub_set, _, plan = plan_for(three_hubs(), states)
    slice_of_it = {A, member}
    scoped = replace(plan, changes=tuple(c for c in plan.changes if c.location in slice_of_it))
    assert {c.kind for c in scoped.changes} >= {ChangeKind.DISASSOCIATE}
    verdict = check_plan(
        scoped, states, slice_of_it, MESH, Guard(), staying=hub_set.enabled, partial=True
    )
    assert verdict.allowed, verdict.refusals


# --- receivers that follow the share made in the same plan -----------------------------------


def follow_changes(plan: Any, account: str = MEMBER) -> list[Change]:
    return [c for c in plan.changes if c.account == account and c.follows]


def test_an_account_the_new_share_takes_in_follows_it_in_the_same_plan() -> None:
    """The hub makes its share (its rules exist): the member accepts it once it is made, then
    puts each hub rule on its listed VPC, in that order; nothing is left for a next pass."""
    states, _ = shared_world(MEMBER, OTHER)
    _, _, plan = plan_for(shared_items(MEMBER, OTHER), states)
    hub_rules = {r.domain: r for r in managed_rules(states[A], MESH)}
    for account, vpc in ((MEMBER, SHARED_C), (OTHER, SHARED_D)):
        accept, *associations = follow_changes(plan, account)
        assert (accept.kind, accept.follows, accept.share_arn) == (ChangeKind.ACCEPT_SHARE, A, None)
        assert [(c.kind, c.vpc_id, c.follows, c.owner) for c in associations] == [
            (ChangeKind.ASSOCIATE, vpc, A, HOME)
        ] * len(hub_rules)
        for change in associations:
            rule = hub_rules[change.domain]
            assert (change.rule_id, change.name) == (rule.id, rule.name)
    assert plan.followed == (A,)


def test_rules_the_hub_creates_in_the_same_plan_are_followed_by_domain() -> None:
    """From nothing: the hub's rules have no id yet; the member's associations name their
    domain, and the apply takes the ids the hub's creations return."""
    states = {r: region_state(r) for r in (A, B, C)}
    states[location(A, MEMBER)] = RegionState(A, account=MEMBER)
    _, _, plan = plan_for(shared_items(MEMBER), states)
    created = {c.domain for c in plan.changes if c.kind is ChangeKind.CREATE_RULE and c.region == A}
    accept, *associations = follow_changes(plan)
    assert accept.kind is ChangeKind.ACCEPT_SHARE
    assert {c.domain for c in associations} == created == peer_domains(B, C)
    assert {c.rule_id for c in associations} == {None}
    assert plan.followed == (A,)


def test_a_vpc_where_something_holds_the_domain_is_left_to_the_next_pass() -> None:
    """A rule not ours on the VPC for one domain: that domain is not followed there (the next
    pass plans it with its conflict, as without following), the others are, and the share
    change is not followed whole (another pass follows)."""
    states, _ = shared_world(MEMBER)
    member = location(A, MEMBER)
    theirs = replace(their_rule(), domain=sorted(peer_domains(B, C))[0])
    held = ObservedAssociation("assoc-theirs", theirs.id, SHARED_C, "COMPLETE")
    states[member] = replace(states[member], rules=(theirs,), associations=(held,))
    _, _, plan = plan_for(shared_items(MEMBER), states)
    followed = {c.domain for c in follow_changes(plan) if c.kind is ChangeKind.ASSOCIATE}
    assert followed == peer_domains(B, C) - {theirs.domain}
    assert plan.followed == ()


def test_nothing_is_followed_without_a_share_change_for_the_account() -> None:
    """The share exists and names the account already (its invitation not seen yet), or the
    account cannot be read: nothing follows; the usual path (invitation, then associations)
    takes over."""
    states, _ = shared_world(MEMBER)
    states[A] = replace(states[A], shares=(share_of(states, MEMBER),))
    _, _, plan = plan_for(shared_items(MEMBER), states)
    assert follow_changes(plan) == []
    assert plan.followed == ()

    states, _ = shared_world(MEMBER)
    states[location(A, MEMBER)] = RegionState(A, account=MEMBER, error="AccessDenied")
    _, _, plan = plan_for(shared_items(MEMBER), states)
    assert [c.kind for c in plan.changes] == [ChangeKind.CREATE_SHARE]
    assert plan.followed == ()


def test_a_share_that_also_grows_for_accounts_already_in_it_is_not_followed_whole() -> None:
    """A new account is added while the hub creates a rule (a new peer): the new account
    follows, but an account already in the share gets the new rule only through the next
    pass, so the share change is not followed whole."""
    states, _ = shared_world(MEMBER)
    share = share_of(states, MEMBER)
    states[A] = replace(states[A], shares=(share,))
    states[location(A, MEMBER)] = received(states, MEMBER, (SHARED_C,))
    states[location(A, OTHER)] = RegionState(A, account=OTHER)
    dropped = sorted(peer_domains(B, C))[0]
    kept = tuple(r for r in states[A].rules if r.domain != dropped)
    states[A] = replace(states[A], rules=kept)
    _, _, plan = plan_for(shared_items(MEMBER, OTHER), states)
    assert ChangeKind.CREATE_RULE in {c.kind for c in plan.changes if c.location == A}
    assert follow_changes(plan, OTHER)
    assert plan.followed == ()


def test_the_guard_counts_follow_associations_against_the_quota() -> None:
    states, _ = shared_world(MEMBER)
    member = location(A, MEMBER)
    crowded = tuple(
        ObservedAssociation(f"a{n}", f"rslvr-rr-{n}", f"vpc-{n:017x}", "COMPLETE")
        for n in range(1997)
    )
    states[member] = replace(states[member], associations=crowded)
    hub_set, _, plan = plan_for(shared_items(MEMBER), states)
    assert follow_changes(plan)
    verdict = check_plan(plan, states, set(states), MESH, Guard(), staying=hub_set.enabled)
    assert verdict.refusals == (f"{member}: 2001 rule associations would exceed the quota of 2000",)


def test_a_rule_the_hub_adopts_is_not_followed_before_it_is_in_the_share() -> None:
    """With ADOPT_UNMANAGED the hub takes over a rule not ours yet: the share it makes holds
    only the rules that were ours when read, so the member does not follow the adopted one
    (it would wait for a rule that does not come); the next pass shares and associates it."""
    states, _ = shared_world(MEMBER)
    [first, *rest] = sorted(managed_rules(states[A], MESH), key=lambda r: r.domain)
    unowned = replace(first, creator_request_id="by-hand", owner_tag=None, target_tag=None)
    states[A] = replace(states[A], rules=(unowned, *rest))
    hub_set = parse_hubs(shared_items(MEMBER), KNOWN, HOME)
    desired = desired_rules(MESH, hub_set, states)
    plan = make_plan(MESH, desired, states, set(states), adopt=True, home_account=HOME)
    assert ChangeKind.ADOPT_RULE in {c.kind for c in plan.changes}
    followed = {c.domain for c in follow_changes(plan) if c.kind is ChangeKind.ASSOCIATE}
    assert followed == {r.domain for r in rest}
    assert plan.followed == ()
