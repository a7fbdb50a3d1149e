"""VPCs that join hubs by tag: who joins, who cannot and why, what the mesh then wants, and
what is kept while a location's tags cannot be read. Pure: no AWS."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from resolver_mesh.desired import (
    Desired,
    HubSet,
    Joined,
    JoinedVpc,
    TaggedVpcs,
    desired_rules,
    join_by_tag,
    parse_hubs,
    without_conflicting,
)
from resolver_mesh.models import (
    AccountAccess,
    ChangeKind,
    ObservedAssociation,
    ObservedRule,
    ObservedShare,
    Plan,
    RegionState,
    location,
)
from resolver_mesh.names import MESH_TAG_KEY
from resolver_mesh.plan import make_plan, managed_rules
from resolver_mesh.safety import Guard, check_plan

from .builders import HOME, converged, hub_item, ids, region_state
from .test_spokes_accounts import (
    MEMBER,
    OTHER,
    OTHER_ROLE,
    ROLE,
    SPOKE_OUT,
    SPOKE_VPC,
    in_member,
    received,
    share_of,
    spoke,
    spoke_endpoint,
)

MESH = "mesh"
SHARE_KINDS = {
    ChangeKind.CREATE_SHARE,
    ChangeKind.SHARE,
    ChangeKind.UNSHARE,
    ChangeKind.DELETE_SHARE,
}
A, B, C, D = "us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"
KNOWN = {A, B, C, D}
WORK = "vpc-00000000000001111"  # tagged in the home account, Region A
WORK_B = "vpc-00000000000002222"  # tagged in the home account, Region B
MEMBER_VPC = "vpc-00000000000003333"  # tagged in MEMBER, Region A
OTHER_VPC = "vpc-00000000000004444"  # tagged in OTHER, Region A
ACCESSES = {
    MEMBER: AccountAccess(account_id=MEMBER, role_arn=ROLE),
    OTHER: AccountAccess(account_id=OTHER, role_arn=OTHER_ROLE),
}


def hubs(*items: dict[str, Any]) -> HubSet:
    return parse_hubs(list(items) or [hub_item(A), hub_item(B), hub_item(C)], KNOWN, HOME)


def tags(**found: Any) -> dict[str, TaggedVpcs]:
    """Tag reads of Region A: `home=`, `member=`, `other=` VPC ids (a string is an error)."""
    accounts = {"home": "", "member": MEMBER, "other": OTHER}
    return {
        location(A, accounts[who]): TaggedVpcs(error=vpcs)
        if isinstance(vpcs, str)
        else TaggedVpcs(owned=frozenset(vpcs))
        for who, vpcs in found.items()
    }


def world(*accounts: str) -> dict[str, RegionState]:
    """The three hubs' Regions and Region A of `accounts`, all readable, nothing there yet."""
    states = {r: region_state(r) for r in (A, B, C)}
    for account in accounts:
        states[location(A, account)] = RegionState(A, account=account)
    return states


def desire(
    hub_set: HubSet, states: dict[str, RegionState], joined: Joined, home: str = HOME
) -> Desired:
    return desired_rules(MESH, hub_set, states, joined, home)


def plan(hub_set: HubSet, states: dict[str, RegionState], joined: Joined, home: str = HOME) -> Plan:
    desired = desire(hub_set, states, joined, home)
    return make_plan(MESH, desired, states, set(states), home_account=home)


def rule_vpcs(desired: Desired, where: str = A) -> set[frozenset[str]]:
    return {rule.vpc_ids for rule in desired.rules if rule.location == where}


# --- who joins ---------------------------------------------------------------------------------


def test_a_tagged_vpc_joins_its_regions_hub_as_workload_or_shared_vpc() -> None:
    joined = join_by_tag(MESH, hubs(), tags(home={WORK}, member={MEMBER_VPC}))
    assert joined.vpcs == (
        JoinedVpc(A, "", WORK, shared=False),
        JoinedVpc(A, MEMBER, MEMBER_VPC, shared=True),
    )
    assert joined.refused == ()
    assert joined.local(A) == {WORK}
    assert joined.shared(A) == {MEMBER: {MEMBER_VPC}}
    assert joined.unread == set()
    assert [v.as_dict() for v in joined.vpcs] == [
        {"region": A, "vpc_id": WORK, "role": "workload"},
        {"region": A, "account": MEMBER, "vpc_id": MEMBER_VPC, "role": "shared"},
    ]


def test_a_vpc_of_the_hubs_own_member_account_is_a_workload_vpc_and_home_is_shared() -> None:
    hub_set = hubs(hub_item(A, **in_member()), hub_item(B))
    joined = join_by_tag(MESH, hub_set, tags(home={WORK}, member={MEMBER_VPC}))
    assert joined.local(A) == {MEMBER_VPC}
    assert joined.shared(A) == {"": {WORK}}


@pytest.mark.parametrize(
    ("items", "vpc", "why"),
    [
        ([hub_item(B), hub_item(C)], WORK, f"there is no hub item for {A}"),
        ([hub_item(A, enabled=False), hub_item(B)], WORK, f"the hub of {A} is disabled"),
        ([hub_item(A, peers=["nowhere-1"]), hub_item(B)], WORK, f"the hub item of {A} has errors"),
        (
            [hub_item(A, spokes=[spoke()]), hub_item(B)],
            SPOKE_VPC,
            f"it is already listed as a spoke in the hub item of {A}",
        ),
        (
            [hub_item(A), hub_item(B, vpc_ids=[WORK])],
            WORK,
            f"it is already listed as a workload VPC (vpc_ids) in the hub item of {B}",
        ),
        (
            [hub_item(A), hub_item(B)],
            ids(B).vpc,
            f"it is already listed as the hub VPC in the hub item of {B}",
        ),
    ],
)
def test_a_tagged_vpc_that_cannot_join_gets_one_line_naming_vpc_account_region_and_why(
    items: list[dict[str, Any]], vpc: str, why: str
) -> None:
    joined = join_by_tag(MESH, hubs(*items), tags(home={vpc}))
    assert joined.vpcs == ()
    assert joined.refused == (
        f"{vpc} ({A}, the home account) is tagged {MESH_TAG_KEY}={MESH} but does not join:"
        f" {why}; nothing is done to it",
    )


def test_a_vpc_shared_into_a_member_account_joins_only_through_its_owner() -> None:
    read = {location(A, MEMBER): TaggedVpcs(foreign={OTHER_VPC: OTHER})}
    joined = join_by_tag(MESH, hubs(), read)
    assert joined.vpcs == ()
    [line] = joined.refused
    assert line.startswith(f"{OTHER_VPC} ({A}, account {MEMBER}) is tagged")
    assert f"account {OTHER} owns it" in line

    # where the owner's tags are read too, the VPC joins (or not) through the owner alone
    read[location(A, OTHER)] = TaggedVpcs(owned=frozenset({OTHER_VPC}))
    joined = join_by_tag(MESH, hubs(), read)
    assert joined.vpcs == (JoinedVpc(A, OTHER, OTHER_VPC, shared=True),)
    assert joined.refused == ()


def test_a_tag_that_misses_only_by_case_or_spaces_gets_a_line_and_joins_nothing() -> None:
    """A near miss of the mesh's tag (`TaggedVpcs.mistagged`) was most likely meant to join:
    it does not (AWS and the mesh compare tags exactly), and one line says why, even where a
    hub would take it; a location whose read failed says nothing."""
    read = {
        location(A, MEMBER): TaggedVpcs(mistagged={MEMBER_VPC: f"{MESH_TAG_KEY}= {MESH.upper()}"}),
        location(A, OTHER): TaggedVpcs(error="AccessDenied", mistagged={OTHER_VPC: "x"}),
    }
    joined = join_by_tag(MESH, hubs(), read)
    assert joined.vpcs == ()
    assert joined.refused == (
        f"{MEMBER_VPC} ({A}, account {MEMBER}) is tagged '{MESH_TAG_KEY}= {MESH.upper()}', not"
        f" {MESH_TAG_KEY}={MESH}: tags are compared exactly (case and spaces count), so it does"
        " not join; nothing is done to it",
    )


def test_a_near_miss_the_items_list_says_nothing_and_one_that_could_not_join_says_why() -> None:
    near = f"{MESH_TAG_KEY}={MESH.upper()}"
    hub_set = hubs(hub_item(A, vpc_ids=[WORK]), hub_item(B))
    read = {
        A: TaggedVpcs(mistagged={WORK: near}),  # listed: it uses the hub's rules anyway
        location(D, MEMBER): TaggedVpcs(mistagged={MEMBER_VPC: near}),  # no hub item in D
    }
    joined = join_by_tag(MESH, hub_set, read)
    assert joined.vpcs == ()
    [line] = joined.refused
    assert line.startswith(f"{MEMBER_VPC} ({D}, account {MEMBER}) is tagged '{near}', not")
    assert line.endswith(
        f"so it does not join (nor could it with that tag: there is no hub item for {D});"
        " nothing is done to it"
    )


def test_a_vpc_listed_and_tagged_is_simply_a_workload_vpc() -> None:
    shared = {"vpc_id": MEMBER_VPC, **in_member()}
    hub_set = hubs(hub_item(A, vpc_ids=[WORK], shared_vpcs=[shared]), hub_item(B), hub_item(C))
    joined = join_by_tag(MESH, hub_set, tags(home={WORK, ids(A).vpc}, member={MEMBER_VPC}))
    assert joined.refused == ()
    states = world(MEMBER)
    desired = desire(hub_set, states, joined)
    assert rule_vpcs(desired) == {frozenset({ids(A).vpc, WORK})}
    assert [(s.principal, s.vpc_ids) for s in desired.shares] == [(MEMBER, {MEMBER_VPC})]


def test_a_failed_tag_read_joins_nothing_and_refuses_nothing() -> None:
    joined = join_by_tag(MESH, hubs(hub_item(B)), tags(home="AccessDenied", member={WORK}))
    assert joined.unread == {A}
    assert [line.split()[0] for line in joined.refused] == [WORK]  # only the read one


# --- what the mesh then wants ------------------------------------------------------------------


def test_joined_vpcs_get_the_hub_rules_and_the_share_like_listed_ones() -> None:
    hub_set = hubs()
    joined = join_by_tag(MESH, hub_set, tags(home={WORK}, member={MEMBER_VPC}, other=set()))
    desired = desire(hub_set, world(MEMBER, OTHER), joined)
    assert rule_vpcs(desired) == {frozenset({ids(A).vpc, WORK})}
    assert desired.source_vpcs[(A, "")] == {ids(A).vpc, WORK}
    assert [(s.region, s.owner, s.principal, s.vpc_ids) for s in desired.shares] == [
        (A, "", MEMBER, {MEMBER_VPC})
    ]
    # the same as listing them in the item
    shared = {"vpc_id": MEMBER_VPC, **in_member()}
    listed = hubs(hub_item(A, vpc_ids=[WORK], shared_vpcs=[shared]), hub_item(B), hub_item(C))
    same = desire(listed, world(MEMBER, OTHER), Joined())
    assert same.rules == desired.rules
    assert same.shares == desired.shares


def test_listed_writes_the_joined_vpcs_into_their_hubs() -> None:
    hub_set = hubs()
    joined = join_by_tag(MESH, hub_set, tags(home={WORK}, member={MEMBER_VPC}))
    listed = joined.listed(hub_set, ACCESSES)
    assert listed.hubs[A].vpc_ids == (WORK,)
    [entry] = listed.hubs[A].shared_vpcs
    assert (entry.vpc_id, entry.account, entry.role_arn) == (MEMBER_VPC, MEMBER, ROLE)
    assert listed.hubs[B] == hub_set.hubs[B]


# --- joining and leaving, planned --------------------------------------------------------------


def converged_with(
    hub_set: HubSet, joined: Joined, *accounts: str
) -> tuple[dict[str, RegionState], Desired]:
    """The hub account's locations as a finished reconcile leaves them for `joined`."""
    states = world(*accounts)
    desired = desire(hub_set, states, joined)
    return converged(MESH, desired, states), desired


def test_a_vpc_joins_then_leaves_when_its_tag_goes_and_nothing_else_changes() -> None:
    hub_set = hubs()
    before, _ = converged_with(hub_set, join_by_tag(MESH, hub_set, tags(home=set())))
    joining = plan(hub_set, before, join_by_tag(MESH, hub_set, tags(home={WORK})))
    assert {(c.kind, c.vpc_id) for c in joining.changes} == {(ChangeKind.ASSOCIATE, WORK)}
    assert len(joining.changes) == 4  # one per peer domain

    after, _ = converged_with(hub_set, join_by_tag(MESH, hub_set, tags(home={WORK})))
    assert plan(hub_set, after, join_by_tag(MESH, hub_set, tags(home={WORK}))).changes == ()
    leaving = plan(hub_set, after, join_by_tag(MESH, hub_set, tags(home=set())))
    assert {(c.kind, c.vpc_id) for c in leaving.changes} == {(ChangeKind.DISASSOCIATE, WORK)}
    assert len(leaving.changes) == 4


@pytest.mark.parametrize(
    "error", ["ThrottlingException: Rate exceeded", "UnauthorizedOperation: denied"]
)
def test_while_the_hub_accounts_tags_are_unknown_its_joined_vpcs_keep_the_rules(
    error: str,
) -> None:
    hub_set = hubs()
    states, _ = converged_with(hub_set, join_by_tag(MESH, hub_set, tags(home={WORK})))
    unknown = join_by_tag(MESH, hub_set, tags(home=error))
    assert plan(hub_set, states, unknown).changes == ()
    # the rest keeps reconciling: a VPC listed in the item is still associated
    listed = hubs(hub_item(A, vpc_ids=[WORK_B]), hub_item(B), hub_item(C))
    changes = plan(listed, states, unknown).changes
    assert {(c.kind, c.vpc_id) for c in changes} == {(ChangeKind.ASSOCIATE, WORK_B)}


def test_a_new_rule_reaches_the_vpcs_of_an_unknown_location_too() -> None:
    """Kept means every VPC that uses the hub's rules keeps using them, new rules included."""
    two = hubs(hub_item(A), hub_item(B))
    states, _ = converged_with(two, join_by_tag(MESH, two, tags(home={WORK})))
    three = hubs()
    changes = plan(three, states, join_by_tag(MESH, three, tags(home="error"))).changes
    associated = {c.vpc_id for c in changes if c.kind is ChangeKind.ASSOCIATE and c.location == A}
    assert associated == {ids(A).vpc, WORK}
    assert not [c for c in changes if c.kind is ChangeKind.DISASSOCIATE]


def shared_states(
    hub_set: HubSet, *accounts: str, aws_arns: bool = False
) -> dict[str, RegionState]:
    """Converged for `accounts` joined by tag in Region A (one VPC each), share accepted;
    with `aws_arns`, rule ARNs end in the rule's id, as AWS's do."""
    vpcs = {MEMBER: MEMBER_VPC, OTHER: OTHER_VPC}
    read = {location(A, a): TaggedVpcs(owned=frozenset({vpcs[a]})) for a in accounts}
    states, _ = converged_with(hub_set, join_by_tag(MESH, hub_set, read | tags(home=set())))
    if aws_arns:
        arn = f"arn:aws:route53resolver:{A}:{HOME}:resolver-rule/"
        rules = tuple(replace(rule, arn=arn + rule.id) for rule in states[A].rules)
        states[A] = replace(states[A], rules=rules)
    states[A] = replace(states[A], shares=(share_of(states, *accounts),))
    for account in accounts:
        states[location(A, account)] = received(states, account, (vpcs[account],))
    return states


def test_a_converged_shared_join_plans_nothing() -> None:
    hub_set = hubs()
    states = shared_states(hub_set, MEMBER)
    read = tags(home=set(), member={MEMBER_VPC})
    assert plan(hub_set, states, join_by_tag(MESH, hub_set, read)).changes == ()


def test_the_last_tagged_vpc_of_an_account_leaving_unshares_the_account() -> None:
    hub_set = hubs()
    states = shared_states(hub_set, MEMBER, OTHER)
    read = tags(home=set(), member={MEMBER_VPC}, other=set())
    changes = plan(hub_set, states, join_by_tag(MESH, hub_set, read)).changes
    assert [(c.kind, c.principals) for c in changes if c.kind is ChangeKind.UNSHARE] == [
        (ChangeKind.UNSHARE, (OTHER,))
    ]
    leaving = {(c.account, c.vpc_id) for c in changes if c.kind is ChangeKind.DISASSOCIATE}
    assert leaving == {(OTHER, OTHER_VPC)}
    assert not [c for c in changes if c.kind is ChangeKind.DELETE_RULE]


@pytest.mark.parametrize("receiver", ["readable", "unreadable"])
def test_while_a_receiving_accounts_tags_are_unknown_its_share_and_vpcs_stay(
    receiver: str,
) -> None:
    hub_set = hubs()
    states = shared_states(hub_set, MEMBER, OTHER)
    if receiver == "unreadable":
        states[location(A, OTHER)] = RegionState(A, account=OTHER, error="AccessDenied")
    read = tags(home=set(), member={MEMBER_VPC}, other="AccessDenied: DescribeVpcs")
    assert plan(hub_set, states, join_by_tag(MESH, hub_set, read)).changes == ()


def test_an_account_whose_tags_were_not_looked_at_has_no_vpc_that_joins() -> None:
    """An account swept once more as it leaves the mesh: its tags are not read, and what its
    VPCs used goes (only a failed read keeps it)."""
    hub_set = hubs()
    states = shared_states(hub_set, MEMBER, OTHER)
    read = tags(home=set(), member={MEMBER_VPC})  # OTHER: not looked at
    changes = plan(hub_set, states, join_by_tag(MESH, hub_set, read)).changes
    unshared = [c.principals for c in changes if c.kind is ChangeKind.UNSHARE]
    assert unshared == [(OTHER,)]
    leaving = {(c.account, c.vpc_id) for c in changes if c.kind is ChangeKind.DISASSOCIATE}
    assert leaving == {(OTHER, OTHER_VPC)}


def test_an_unknown_account_with_no_vpc_left_on_the_rules_stays_a_principal() -> None:
    hub_set = hubs()
    states = shared_states(hub_set, MEMBER, OTHER)
    states[location(A, OTHER)] = received(states, OTHER, ())  # shared, nothing associated yet
    read = tags(home=set(), member={MEMBER_VPC}, other="error")
    assert plan(hub_set, states, join_by_tag(MESH, hub_set, read)).changes == ()


def test_an_unknown_account_that_is_not_shared_with_is_not_added() -> None:
    hub_set = hubs()
    states = shared_states(hub_set, MEMBER)
    states[location(A, OTHER)] = RegionState(A, account=OTHER)
    read = tags(home=set(), member={MEMBER_VPC}, other="error")
    assert plan(hub_set, states, join_by_tag(MESH, hub_set, read)).changes == ()


def test_the_home_account_joins_a_hub_of_a_member_account_through_its_share() -> None:
    hub_set = hubs(hub_item(A, **in_member()), hub_item(B), hub_item(C))
    states = {r: region_state(r) for r in (B, C)}
    states[location(A, MEMBER)] = region_state(A, account=MEMBER)
    states[A] = RegionState(A)
    joined = join_by_tag(MESH, hub_set, tags(home={WORK}, member=set()))
    desired = desire(hub_set, states, joined)
    assert [(s.owner, s.principal, s.vpc_ids) for s in desired.shares] == [(MEMBER, "", {WORK})]
    states = converged(MESH, desired, states)
    changes = make_plan(MESH, desired, states, set(states), home_account=HOME).changes
    [create] = [c for c in changes if c.kind is ChangeKind.CREATE_SHARE]
    assert (create.account, create.principals) == (MEMBER, (HOME,))


def test_the_guard_counts_shared_rules_that_tagged_vpcs_leave() -> None:
    hub_set = hubs()
    states = shared_states(hub_set, MEMBER, OTHER)
    read = tags(home=set(), member=set(), other=set())
    leaving = plan(hub_set, states, join_by_tag(MESH, hub_set, read))
    kinds = {c.kind for c in leaving.changes}
    assert kinds == {ChangeKind.DELETE_SHARE, ChangeKind.DISASSOCIATE}
    managed = sum(len(managed_rules(s, MESH)) for s in states.values())
    shared_rules = len(managed_rules(states[A], MESH))
    assert shared_rules > 0.25 * managed
    strict = check_plan(leaving, states, set(states), MESH, Guard(0.25, 1), staying={A, B, C})
    assert not strict.allowed
    assert "stop sharing" in strict.refusals[0]
    lenient = check_plan(leaving, states, set(states), MESH, Guard(0.7, 1), staying={A, B, C})
    assert lenient.allowed


def test_a_spoke_vpc_is_never_kept_on_the_hub_rules_while_tags_are_unknown() -> None:
    """A VPC that was a workload VPC and is now a spoke leaves the hub's rules, whatever the
    tags: a spoke's rules are its own."""
    before = hubs(hub_item(A, vpc_ids=[SPOKE_VPC]), hub_item(B), hub_item(C))
    states, _ = converged_with(before, Joined())
    states[A] = replace(states[A], endpoints=(*states[A].endpoints, spoke_endpoint()))
    now = hubs(hub_item(A, spokes=[spoke()]), hub_item(B), hub_item(C))
    changes = plan(now, states, join_by_tag(MESH, now, tags(home="error"))).changes
    hub_rule_ids = {r.id for r in managed_rules(states[A], MESH)}
    leaving = {(c.rule_id, c.vpc_id) for c in changes if c.kind is ChangeKind.DISASSOCIATE}
    assert leaving == {(rule_id, SPOKE_VPC) for rule_id in hub_rule_ids}
    assert SPOKE_OUT in {c.endpoint_id for c in changes if c.kind is ChangeKind.CREATE_RULE}


def test_a_rule_taken_out_of_the_share_and_off_receiving_vpcs_counts_once() -> None:
    hub_set = hubs()
    states = shared_states(hub_set, MEMBER, OTHER, aws_arns=True)
    read = tags(home=set(), member=set(), other=set())
    leaving = plan(hub_set, states, join_by_tag(MESH, hub_set, read))
    [withdrawn] = [c for c in leaving.changes if c.kind is ChangeKind.DELETE_SHARE]
    assert len(withdrawn.resources) == 4
    taken = [c for c in leaving.changes if c.kind is ChangeKind.DISASSOCIATE]
    assert len(taken) == 8  # the same 4 rules, off one VPC in each of two accounts
    verdict = check_plan(leaving, states, set(states), MESH, Guard(0.3, 1), staying={A, B, C})
    assert verdict.refusals == (
        "the plan would delete 0 and retarget 0 and stop sharing 4 of the 12 managed rules"
        " in Regions whose hub stays, more than 30%",
    )
    allowed = check_plan(leaving, states, set(states), MESH, Guard(0.5, 1), staying={A, B, C})
    assert allowed.allowed


# --- a tagged VPC that would join only in part ----------------------------------------------


def foreign_rule(domain: str, vpc: str) -> tuple[ObservedRule, ObservedAssociation]:
    """A FORWARD rule of another owner for `domain`, and its association with `vpc`."""
    rule = ObservedRule(
        f"rslvr-rr-theirs-{vpc[-4:]}",
        domain,
        "FORWARD",
        "theirs",
        "COMPLETE",
        None,
        frozenset(),
        "",
    )
    return rule, ObservedAssociation(f"assoc-{rule.id}", rule.id, vpc, "COMPLETE")


def with_rules(state: RegionState, *found: tuple[ObservedRule, ObservedAssociation]) -> RegionState:
    return replace(
        state,
        rules=state.rules + tuple(r for r, _ in found),
        associations=state.associations + tuple(a for _, a in found),
    )


@pytest.mark.parametrize("who", ["home", "member"])
def test_a_tagged_vpc_where_another_owner_holds_a_hub_domain_does_not_join_at_all(
    who: str,
) -> None:
    """The issue's contract: a tagged VPC that conflicts is reported once and nothing is done
    to it: no rule for its other domains, no share for its account."""
    vpc, account = (WORK, "") if who == "home" else (MEMBER_VPC, MEMBER)
    hub_set = hubs()
    states = world(MEMBER)
    where = location(A, account)
    states[where] = with_rules(states[where], foreign_rule(f"{B}.amazonaws.com.", vpc))
    joined = join_by_tag(MESH, hub_set, tags(**{who: {vpc}}))
    whole = without_conflicting(MESH, joined, desire(hub_set, states, joined), states)

    assert whole.vpcs == ()
    [line] = whole.refused
    assert line.startswith(f"{vpc} (us-east-1, ")
    assert f"rule rslvr-rr-theirs-{vpc[-4:]}, not ours, holds {B}.amazonaws.com." in line
    assert line.endswith("nothing is done to it")
    changes = plan(hub_set, states, whole).changes
    assert not [c for c in changes if c.vpc_id == vpc or (account and c.account == account)]
    assert not [c for c in changes if c.kind is ChangeKind.CREATE_SHARE]


@pytest.mark.parametrize("who", ["home", "member"])
def test_a_hub_item_in_doubt_elsewhere_lets_no_conflicting_tagged_vpc_join(who: str) -> None:
    """A bad item for hub B keeps our rules to B as they are (protected), so they are no
    longer desired; their domains still count: the tagged VPC whose B domain another owner
    holds stays out, and nothing is done to it (no association, no share)."""
    vpc, account = (WORK, "") if who == "home" else (MEMBER_VPC, MEMBER)
    good = hubs()
    before = converged(
        MESH, desire(good, world(MEMBER), join_by_tag(MESH, good, tags())), world(MEMBER)
    )
    where = location(A, account)
    before[where] = with_rules(before[where], foreign_rule(f"{B}.amazonaws.com.", vpc))
    in_doubt = hubs(hub_item(A), {**hub_item(B), "domains": "x"}, hub_item(C))
    assert in_doubt.errors  # B's item cannot be used
    joined = join_by_tag(MESH, in_doubt, tags(**{who: {vpc}}))
    desired = desire(in_doubt, before, joined)
    assert B in desired.protected_targets
    whole = without_conflicting(MESH, joined, desired, before)

    assert whole.vpcs == ()
    [line] = whole.refused
    assert f"holds {B}.amazonaws.com." in line
    changes = plan(in_doubt, before, whole).changes  # as the reconciler plans, with `whole`
    assert not [c for c in changes if c.vpc_id == vpc or (account and c.account == account)]


def test_a_rule_of_another_owner_for_a_domain_no_hub_forwards_is_no_conflict() -> None:
    hub_set = hubs()
    states = world()
    states[A] = with_rules(states[A], foreign_rule("corp.example.com.", WORK))
    joined = join_by_tag(MESH, hub_set, tags(home={WORK}))
    assert without_conflicting(MESH, joined, desire(hub_set, states, joined), states) is joined


def test_a_joined_vpc_that_uses_our_rules_stays_when_another_owner_takes_one_domain() -> None:
    """A conflict that comes after the VPC joined is one domain's: the VPC keeps the others."""
    hub_set = hubs()
    joined = join_by_tag(MESH, hub_set, tags(home={WORK}))
    states = converged(MESH, desire(hub_set, world(), joined), world())
    taken = f"{B}.amazonaws.com."
    ours = next(r for r in managed_rules(states[A], MESH) if r.domain == taken)
    states[A] = replace(
        states[A],
        associations=tuple(
            a for a in states[A].associations if (a.rule_id, a.vpc_id) != (ours.id, WORK)
        ),
    )
    states[A] = with_rules(states[A], foreign_rule(taken, WORK))
    assert without_conflicting(MESH, joined, desire(hub_set, states, joined), states) is joined
    result = plan(hub_set, states, joined)
    assert [(c.domain, c.vpc_id) for c in result.conflicts] == [(taken, WORK)]
    assert not [c for c in result.changes if c.vpc_id == WORK]


def test_only_the_vpc_where_another_owner_holds_a_hub_domain_stays_out() -> None:
    hub_set = hubs()
    states = world()
    free = "vpc-00000000000005555"
    states[A] = with_rules(states[A], foreign_rule(f"{C}.vpce.amazonaws.com.", WORK))
    joined = join_by_tag(MESH, hub_set, tags(home={WORK, free}))
    whole = without_conflicting(MESH, joined, desire(hub_set, states, joined), states)
    assert [v.vpc_id for v in whole.vpcs] == [free]
    assert [line.split(" ")[0] for line in whole.refused] == [WORK]


@pytest.mark.parametrize(("leaving", "allowed"), [(2, True), (5, False)])
def test_vpcs_leaving_in_bulk_trip_the_guard_as_rules_would(leaving: int, allowed: bool) -> None:
    """A tag automation gone wrong: the hub account's VPCs that joined by tag lose their tag
    at once. Taking our rules off more than half of the VPCs they serve is refused unless
    forced, as deleting more than half of the rules is (here 20 of the 32 associations)."""
    hub_set = hubs()
    vpcs = [f"vpc-{n:017x}" for n in range(0x10, 0x15)]
    joined = join_by_tag(MESH, hub_set, tags(home=set(vpcs)))
    states = converged(MESH, desire(hub_set, world(), joined), world())
    after = join_by_tag(MESH, hub_set, tags(home=set(vpcs[leaving:])))
    leaving_plan = plan(hub_set, states, after)
    assert {c.vpc_id for c in leaving_plan.changes} == set(vpcs[:leaving])
    assert {c.kind for c in leaving_plan.changes} == {ChangeKind.DISASSOCIATE}
    verdict = check_plan(leaving_plan, states, set(states), MESH, Guard(), staying={A, B, C})
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.refusals == (
            "the plan would take 20 of the 32 associations of our rules off VPCs in Regions"
            " whose hub stays, more than 50%",
        )
        forced = check_plan(
            leaving_plan, states, set(states), MESH, Guard(), staying={A, B, C}, force=True
        )
        assert forced.allowed


@pytest.mark.parametrize("adopt", [False, True])
def test_a_rule_the_hub_would_adopt_is_no_reason_not_to_join(adopt: bool) -> None:
    """With ADOPT_UNMANAGED, the hand-made rule on a tagged VPC of the hub's account becomes
    ours in the plan (its domain has no rule of ours there): the VPC joins and keeps it."""
    hub_set = hubs()
    states = world()
    domain = f"{B}.amazonaws.com."
    states[A] = with_rules(states[A], foreign_rule(domain, WORK))
    joined = join_by_tag(MESH, hub_set, tags(home={WORK}))
    whole = without_conflicting(MESH, joined, desire(hub_set, states, joined), states, adopt)
    assert (whole is joined) is adopt
    if adopt:
        desired = desire(hub_set, states, whole)
        changes = make_plan(MESH, desired, states, set(states), adopt=True, home_account=HOME)
        taken = [c for c in changes.changes if c.domain == domain and c.location == A]
        assert taken[0].kind is ChangeKind.ADOPT_RULE
        assert not [c for c in taken if c.kind is ChangeKind.DISASSOCIATE and c.vpc_id == WORK]


@pytest.mark.parametrize(
    "error",
    [
        {"peers": ["nowhere-1"]},  # the item validates, but not against the others
        {"vpc_ids": "not a list"},  # the item itself does not validate
    ],
)
def test_the_accounts_an_item_with_errors_names_are_still_read(error: dict[str, Any]) -> None:
    """MEMBER is named only by hub B's item, which has an error; its VPC joined hub A by tag.
    Its tags are read all the same, so it stays joined and shared (dropped, the account would
    read as one whose VPCs left)."""
    entry = {"vpc_id": "vpc-0000000000000bbbb", "account_id": MEMBER, "role_arn": ROLE}
    bad = hubs(hub_item(A), hub_item(B, shared_vpcs=[entry], **error), hub_item(C))
    assert B in bad.invalid_regions
    assert B not in bad.hubs
    assert bad.accounts() == {}  # the valid items' accounts; the others, where no role is
    assert bad.named_by_invalid == {MEMBER: AccountAccess(account_id=MEMBER, role_arn=ROLE)}
    good = hubs(hub_item(A), hub_item(B, shared_vpcs=[entry]), hub_item(C))
    assert {a: (e.account, e.role_arn) for a, e in good.accounts().items()} == {
        MEMBER: (MEMBER, ROLE)
    }
    assert good.named_by_invalid == {}
    unnamed = hubs(hub_item(A), hub_item(B, shared_vpcs="not a list"), hub_item(C))
    assert unnamed.named_by_invalid == {}


def test_a_vpc_listed_and_tagged_with_a_conflict_is_reconciled_as_listed_and_not_refused() -> None:
    """The item lists it: it gets the hub's other domains and a conflict for the one another
    owner holds, as any listed VPC; no line says that nothing is done to it."""
    hub_set = hubs(hub_item(A, vpc_ids=[WORK]), hub_item(B), hub_item(C))
    states = world()
    states[A] = with_rules(states[A], foreign_rule(f"{B}.amazonaws.com.", WORK))
    joined = join_by_tag(MESH, hub_set, tags(home={WORK}))
    whole = without_conflicting(MESH, joined, desire(hub_set, states, joined), states)
    assert whole is joined
    assert whole.refused == ()
    planned = plan(hub_set, states, whole)
    associated = {c.domain for c in planned.changes if c.vpc_id == WORK}
    assert associated
    assert f"{B}.amazonaws.com." not in associated


def test_a_hub_with_no_rule_to_share_keeps_no_share() -> None:
    """A lone hub forwards nothing: a member VPC joining it makes no share, and an empty
    share of ours left from before is deleted (nothing in it would lead a pass back to it)."""
    hub_set = hubs(hub_item(A))
    states = world(MEMBER)
    joined = join_by_tag(MESH, hub_set, tags(home=set(), member={MEMBER_VPC}))
    assert [s.principal for s in desire(hub_set, states, joined).shares] == [MEMBER]
    assert not [c for c in plan(hub_set, states, joined).changes if c.kind in SHARE_KINDS]

    empty = ObservedShare(
        share_of(states).arn, "resolver-mesh-mesh", frozenset(), frozenset({MEMBER})
    )
    states[A] = replace(states[A], shares=(empty,))
    changes = plan(hub_set, states, joined).changes
    assert [(c.kind, c.share_arn, c.reason) for c in changes if c.kind in SHARE_KINDS] == [
        (ChangeKind.DELETE_SHARE, empty.arn, "the hub has no rule to share")
    ]


def test_a_hub_that_adopts_every_rule_makes_its_share_in_the_same_pass() -> None:
    """With ADOPT_UNMANAGED, a hub whose rules are all adopted in one pass still makes the
    share its member needs: the adoption leads to the next pass, which shares the rules."""
    hub_set = hubs()
    states = shared_states(hub_set, MEMBER)
    unowned = tuple(
        replace(rule, creator_request_id="by-hand", owner_tag=None, target_tag=None)
        for rule in states[A].rules
    )
    states[A] = replace(states[A], rules=unowned, shares=())
    joined = join_by_tag(MESH, hub_set, tags(home=set(), member={MEMBER_VPC}))
    desired = desire(hub_set, states, joined)
    changes = make_plan(MESH, desired, states, set(states), adopt=True, home_account=HOME).changes
    kinds = [c.kind for c in changes if c.location == A]
    assert ChangeKind.ADOPT_RULE in kinds
    assert ChangeKind.CREATE_SHARE in kinds
