"""Make before break when a spoke VPC's own rules give way to the hub's: through our Route 53
Profile (`profile` delivery, in the hub's account and in a member account), and for a central
spoke's parent-domain rule, which covers every hub domain at once. Pure: no AWS."""

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
    ObservedProfile,
    ObservedProfileAssociation,
    ObservedProfileResource,
    ObservedShare,
    Plan,
    ProfileState,
    RegionState,
    location,
)
from resolver_mesh.plan import PARENT_MAKES_WAY, managed_rules
from resolver_mesh.profiles import SERVED_BY_PROFILE
from resolver_mesh.safety import Guard, check_plan

from .builders import HOME, converged, hub_item, plan_as_reconcile, region_state

MESH = "mesh"
A, B, C = "us-east-1", "us-west-2", "eu-west-1"
KNOWN = frozenset({A, B, C})
MEMBER = "222222222222"
ROLE = f"arn:aws:iam::{MEMBER}:role/resolver-mesh-member-mesh"
THERE = location(A, MEMBER)
SPOKE_VPC = "vpc-0000000000000aaaa"
SPOKE_OUT = "rslvr-out-0000000000000aaaa"
PROFILE = ObservedProfile(
    "rp-ours", f"arn:aws:route53profiles:{A}:{HOME}:profile/rp-ours", "n", ours=True
)
STRICT = Guard(0.05, 1)  # any association lost for good is refused
PEER_DOMAINS = {f"{r}.{d}." for r in (B, C) for d in ("amazonaws.com", "vpce.amazonaws.com")}


def items(**a_fields: Any) -> list[dict[str, Any]]:
    return [hub_item(A, **a_fields), hub_item(B), hub_item(C)]


def spoke_items(where: str, **spoke: Any) -> list[dict[str, Any]]:
    account = {"account_id": MEMBER, "role_arn": ROLE} if where == THERE else {}
    entry = {"vpc_id": SPOKE_VPC, "outbound_endpoint_id": SPOKE_OUT, "mode": "direct"}
    entry.update(account, **spoke)
    return items(spokes=[entry])


def shared_entry(delivery: str) -> dict[str, Any]:
    return {"vpc_id": SPOKE_VPC, "account_id": MEMBER, "role_arn": ROLE, "delivery": delivery}


def spoke_world(where: str, **spoke: Any) -> dict[str, RegionState]:
    """Three hubs converged with a spoke VPC in `where` (its own rules on it); every location's
    Profiles read, none there yet."""
    states = {r: region_state(r) for r in (A, B, C)}
    endpoint = ObservedEndpoint(SPOKE_OUT, "OUTBOUND", "OPERATIONAL", SPOKE_VPC)
    if where == A:
        states[A] = replace(states[A], endpoints=(*states[A].endpoints, endpoint))
    else:
        states[where] = RegionState(A, account=MEMBER, endpoints=(endpoint,))
    hub_set = parse_hubs(spoke_items(where, **spoke), KNOWN, HOME)
    states = converged(MESH, desired_rules(MESH, hub_set, states), states)
    return {w: replace(s, profiles=ProfileState()) for w, s in states.items()}


def plan_for(hub_items: list[dict[str, Any]], states: dict[str, RegionState]) -> Plan:
    return plan_as_reconcile(MESH, parse_hubs(hub_items, KNOWN, HOME), states)[0]


def with_our_profile(
    states: dict[str, RegionState], where: str, status: str = "COMPLETE"
) -> dict[str, RegionState]:
    """Our Profile in the hub's location, holding its hub rules, on SPOKE_VPC in `where`
    (`status`); seen through the share where that is another account."""
    hub_rules = [r for r in managed_rules(states[A], MESH) if r.endpoint_id != SPOKE_OUT]
    resources = tuple(
        ObservedProfileResource(f"rpr-{n}", PROFILE.id, rule.arn, "COMPLETE")
        for n, rule in enumerate(hub_rules)
    )
    on_vpc = (ObservedProfileAssociation("rpassoc-spoke", PROFILE.id, SPOKE_VPC, status),)
    states = dict(states)
    states[A] = replace(
        states[A],
        profiles=ProfileState((PROFILE,), on_vpc if where == A else (), resources),
    )
    if where != A:
        seen = replace(PROFILE, ours=False, share_status="SHARED_WITH_ME")
        states[where] = replace(states[where], profiles=ProfileState((seen,), on_vpc))
    return states


def own_changes(plan: Plan, where: str) -> list[Change]:
    """The changes to the spoke's own rules."""
    return [c for c in plan.changes if c.location == where and c.source == SPOKE_VPC]


def leaving_is_not_a_loss(plan: Plan, states: dict[str, RegionState]) -> bool:
    """The guard, strict, counts no association lost in the plan's disassociations (the rules'
    deletions are judged as rules), and would count them under another reason."""
    leaving = tuple(c for c in plan.changes if c.kind is ChangeKind.DISASSOCIATE)
    assert leaving

    def allowed(changes: tuple[Change, ...]) -> bool:
        guarded = replace(plan, changes=changes)
        return check_plan(guarded, states, set(states), MESH, STRICT, staying={A, B, C}).allowed

    assert not allowed(tuple(replace(c, reason="VPC no longer listed") for c in leaving))
    return allowed(leaving)


# --- `profile` delivery -------------------------------------------------------------------------


# How the spoke VPC moves to our Profile: a member's VPC listed in the hub's `shared_vpcs`, or
# one of the hub account's VPCs listed in the item itself.
TO_THE_PROFILE = {
    THERE: items(shared_vpcs=[shared_entry("profile")]),
    A: items(vpc_ids=[SPOKE_VPC], vpc_delivery={SPOKE_VPC: "profile"}),
}


@pytest.mark.parametrize("where", [THERE, A])
def test_a_spoke_vpc_keeps_its_rules_until_our_profile_serves_it(where: str) -> None:
    states = spoke_world(where)
    after = TO_THE_PROFILE[where]

    # 1. No Profile yet: the hub makes it (and shares it); the VPC keeps its own rules.
    plan = plan_for(after, states)
    assert ChangeKind.CREATE_PROFILE in {c.kind for c in plan.changes}
    assert own_changes(plan, where) == []
    assert sum(f"{where}: {SPOKE_VPC} keeps" in n for n in plan.notes) == len(PEER_DOMAINS)

    # 2. On its way (CREATING): still nothing of the rules.
    plan = plan_for(after, with_our_profile(states, where, "CREATING"))
    assert own_changes(plan, where) == []

    # 3. Serving: the own rules leave, the guard counts nothing lost, then they are deleted.
    states = with_our_profile(states, where)
    plan = plan_for(after, states)
    assert_leave_then_go(own_changes(plan, where), SERVED_BY_PROFILE)
    assert leaving_is_not_a_loss(plan, states)


def test_a_member_vpc_is_put_on_the_shared_profile_while_it_keeps_its_rules() -> None:
    """Between 1 and 2 above, in a member account: the Profile is shared and visible there;
    it is associated with the VPC, and nothing else changes there."""
    states = with_our_profile(spoke_world(THERE), THERE)
    not_on_it = replace(states[THERE].profiles, associations=())
    states[THERE] = replace(states[THERE], profiles=not_on_it)
    plan = plan_for(TO_THE_PROFILE[THERE], states)
    assert [c.kind for c in plan.changes if c.location == THERE] == [ChangeKind.ASSOCIATE_PROFILE]


def test_a_spoke_vpc_that_leaves_the_mesh_in_profile_mode_loses_its_rules_at_once() -> None:
    """Nothing takes the rules' place: no waiting (the mesh no longer serves the VPC)."""
    states = spoke_world(THERE)
    plan = plan_for(items(), states)
    kinds = [c.kind for c in own_changes(plan, THERE)]
    assert kinds == [ChangeKind.DISASSOCIATE] * 4 + [ChangeKind.DELETE_RULE] * 4


def assert_leave_then_go(changes: list[Change], reason: str) -> None:
    leaving = [c for c in changes if c.kind is ChangeKind.DISASSOCIATE]
    deleting = [c for c in changes if c.kind is ChangeKind.DELETE_RULE]
    assert changes == leaving + deleting
    assert {(c.domain, c.vpc_id, c.reason) for c in leaving} == {
        (d, SPOKE_VPC, reason) for d in {c.domain for c in deleting}
    }
    assert {c.rule_id for c in leaving} == {c.rule_id for c in deleting}
    assert deleting


# --- a central spoke's parent-domain rule --------------------------------------------------------


def test_a_central_spokes_parent_rule_stays_until_every_hub_domain_is_on_the_vpc() -> None:
    parent = {"mode": "central", "parent_domain": "amazonaws.com"}
    states = spoke_world(THERE, **parent)
    [own] = managed_rules(states[THERE], MESH)
    assert own.domain == "amazonaws.com."
    after = items(shared_vpcs=[shared_entry("rules")])

    # 1. No share yet: the member follows the share the hub makes in this plan (the apply
    #    puts the hub's rules on the VPC once each is made and shared), but the parent rule
    #    stays: a fanned-out pass would drop those follow changes. The next pass lets it go
    #    (so the share change is not followed whole).
    plan = plan_for(after, states)
    there = [c for c in plan.changes if c.location == THERE]
    assert [(c.kind, c.follows) for c in there] == [(ChangeKind.ACCEPT_SHARE, A)] + [
        (ChangeKind.ASSOCIATE, A)
    ] * 4
    assert own_changes(plan, THERE) == []
    assert any(f"{THERE}: {SPOKE_VPC} keeps {own.id}" in n for n in plan.notes)
    assert plan.followed == ()

    # 2. The hub's rules visible there, none on the VPC yet: they are associated, then the
    #    parent leaves (after them: the apply keeps it if one of them does not come).
    hub_rules = [r for r in managed_rules(states[A], MESH) if r.endpoint_id != SPOKE_OUT]
    share = ObservedShare(
        "arn:share", "n", frozenset(r.arn for r in hub_rules), frozenset({MEMBER})
    )
    states[A] = replace(states[A], shares=(share,))
    shared = tuple(replace(r, share_status="SHARED_WITH_ME", owner_id=HOME) for r in hub_rules)
    states[THERE] = replace(states[THERE], rules=(own, *shared))
    plan = plan_for(after, states)
    there = [c for c in plan.changes if c.location == THERE]
    assert [c.kind for c in there] == [ChangeKind.ASSOCIATE] * 4 + [
        ChangeKind.DISASSOCIATE,
        ChangeKind.DELETE_RULE,
    ]
    assert {c.domain for c in there[:4]} == PEER_DOMAINS
    assert (there[4].rule_id, there[4].vpc_id, there[4].reason) == (
        own.id,
        SPOKE_VPC,
        PARENT_MAKES_WAY,
    )
    assert leaving_is_not_a_loss(plan, states)

    # 3. Three of four on the VPC, the fourth not visible: the parent stays.
    on_vpc = tuple(
        ObservedAssociation(f"assoc-{r.id}", r.id, SPOKE_VPC, "COMPLETE") for r in shared[:3]
    )
    states[THERE] = replace(
        states[THERE],
        rules=(own, *shared[:3]),
        associations=(*states[THERE].associations, *on_vpc),
    )
    plan = plan_for(after, states)
    assert own_changes(plan, THERE) == []

    # 4. All four there: the parent leaves and is deleted.
    last = ObservedAssociation(f"assoc-{shared[3].id}", shared[3].id, SPOKE_VPC, "COMPLETE")
    states[THERE] = replace(
        states[THERE],
        rules=(own, *shared),
        associations=(*states[THERE].associations, last),
    )
    plan = plan_for(after, states)
    assert [(c.kind, c.reason) for c in plan.changes if c.location == THERE] == [
        (ChangeKind.DISASSOCIATE, PARENT_MAKES_WAY),
        (ChangeKind.DELETE_RULE, own_changes(plan, THERE)[1].reason),
    ]
    assert leaving_is_not_a_loss(plan, states)


def test_a_central_spokes_parent_rule_stays_until_our_profile_serves_the_vpc() -> None:
    states = spoke_world(THERE, mode="central", parent_domain="amazonaws.com")
    after = items(shared_vpcs=[shared_entry("profile")])
    assert own_changes(plan_for(after, states), THERE) == []
    assert own_changes(plan_for(after, with_our_profile(states, THERE, "CREATING")), THERE) == []
    states = with_our_profile(states, THERE)
    plan = plan_for(after, states)
    assert_leave_then_go(own_changes(plan, THERE), PARENT_MAKES_WAY)
    assert leaving_is_not_a_loss(plan, states)


def test_a_hub_account_central_spoke_keeps_its_parent_rule_after_the_hub_rules() -> None:
    states = spoke_world(A, mode="central", parent_domain="amazonaws.com")
    plan = plan_for(items(vpc_ids=[SPOKE_VPC]), states)
    at_a = [c for c in plan.changes if c.location == A]
    associations = [c for c in at_a if c.kind is ChangeKind.ASSOCIATE]
    assert {c.domain for c in associations} == PEER_DOMAINS
    [leave] = [c for c in at_a if c.kind is ChangeKind.DISASSOCIATE]
    assert leave.reason == PARENT_MAKES_WAY
    assert at_a.index(leave) > max(at_a.index(c) for c in associations)
    assert leaving_is_not_a_loss(plan, states)


def test_a_parent_rule_whose_vpc_leaves_the_mesh_goes_at_once() -> None:
    states = spoke_world(THERE, mode="central", parent_domain="amazonaws.com")
    plan = plan_for(items(), states)
    assert [c.kind for c in own_changes(plan, THERE)] == [
        ChangeKind.DISASSOCIATE,
        ChangeKind.DELETE_RULE,
    ]
    assert own_changes(plan, THERE)[0].reason != PARENT_MAKES_WAY


def parent_moving_with_three_of_four_in_place(fourth: str) -> tuple[Plan, dict[str, RegionState]]:
    """A member central spoke moved to `shared_vpcs`, the hub's share there and its rules
    visible; three on the VPC COMPLETE, the fourth `fourth` (a status, or "unread": its hub's
    Region could not be read)."""
    states = spoke_world(THERE, mode="central", parent_domain="amazonaws.com")
    [own] = managed_rules(states[THERE], MESH)
    hub_rules = [r for r in managed_rules(states[A], MESH) if r.endpoint_id != SPOKE_OUT]
    share = ObservedShare(
        "arn:share", "n", frozenset(r.arn for r in hub_rules), frozenset({MEMBER})
    )
    states[A] = replace(states[A], shares=(share,))
    shared = sorted(
        (replace(r, share_status="SHARED_WITH_ME", owner_id=HOME) for r in hub_rules),
        key=lambda r: r.domain,
    )
    statuses = ["COMPLETE"] * 3 + [fourth if fourth != "unread" else "COMPLETE"]
    on_vpc = tuple(
        ObservedAssociation(f"assoc-{r.id}", r.id, SPOKE_VPC, status)
        for r, status in zip(shared, statuses, strict=True)
    )
    states[THERE] = replace(
        states[THERE], rules=(own, *shared), associations=(*states[THERE].associations, *on_vpc)
    )
    if fourth == "unread":  # the fourth's target Region: its hub cannot be read
        target = shared[3].domain.split(".")[0]
        states[target] = RegionState(target, error="AccessDenied")
    return plan_for(items(shared_vpcs=[shared_entry("rules")]), states), states


@pytest.mark.parametrize("fourth", ["FAILED", "CREATING"])
def test_a_parent_rule_stays_while_a_hub_rule_on_the_vpc_is_not_in_place(fourth: str) -> None:
    plan, _ = parent_moving_with_three_of_four_in_place(fourth)
    assert own_changes(plan, THERE) == []
    plan, _ = parent_moving_with_three_of_four_in_place("COMPLETE")
    assert [c.kind for c in own_changes(plan, THERE)] == [
        ChangeKind.DISASSOCIATE,
        ChangeKind.DELETE_RULE,
    ]


def test_a_parent_rule_stays_while_a_hub_cannot_be_read() -> None:
    """The unread hub's domains are not among the domains the hub is known to forward: what
    the parent rule answers for them, nothing else may."""
    plan, _ = parent_moving_with_three_of_four_in_place("unread")
    assert own_changes(plan, THERE) == []


def test_own_rules_stay_while_our_profile_failed_on_the_vpc() -> None:
    states = with_our_profile(spoke_world(THERE), THERE, "FAILED")
    plan = plan_for(items(shared_vpcs=[shared_entry("profile")]), states)
    assert own_changes(plan, THERE) == []
    assert any(f"{THERE}: {SPOKE_VPC} keeps" in n for n in plan.notes)
