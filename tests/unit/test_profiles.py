"""The Profile planner (resolver_mesh.profiles), pure: hub items and observed states in, the
narrowed rules and the Profile changes out, merged into the rule plan as a reconcile does."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from resolver_mesh import profiles as profiles_module
from resolver_mesh.desired import (
    TaggedVpcs,
    desired_rules,
    join_by_tag,
    parse_hubs,
    without_conflicting,
)
from resolver_mesh.models import (
    Change,
    ChangeKind,
    Delivery,
    ObservedAssociation,
    ObservedProfile,
    ObservedProfileAssociation,
    ObservedProfileResource,
    ObservedRule,
    ObservedShare,
    Plan,
    ProfileState,
    RegionState,
)
from resolver_mesh.plan import SERVED_BY_PROFILE, make_plan
from resolver_mesh.profiles import (
    PROFILE_LEAVES,
    ProfilePlan,
    plan_profiles,
    vpc_deliveries,
    with_profile_changes,
)
from resolver_mesh.safety import Guard, check_plan

from .builders import HOME, converged, hub_item, ids, plan_as_reconcile, region_state

MESH = "mesh"
R, R2 = "us-east-1", "us-east-2"
HUB_VPC = ids(R).vpc
WORKLOAD = "vpc-0aaaaaaaaaaaaaaa1"
OURS = ObservedProfile("rp-ours", f"arn:aws:route53profiles:{R}:1:profile/rp-ours", "n", ours=True)
THEIRS = ObservedProfile("rp-theirs", f"arn:aws:route53profiles:{R}:1:profile/rp-theirs", "x")


def world(**fields: Any) -> tuple[Any, dict[str, RegionState]]:
    """Two hubs (us-east-1 with a workload VPC), converged in rules mode."""
    items = [hub_item(R, vpc_ids=[WORKLOAD], **fields), hub_item(R2)]
    hub_set = parse_hubs(items, frozenset({R, R2}))
    states = {region: region_state(region) for region in (R, R2)}
    return hub_set, converged(MESH, desired_rules(MESH, hub_set, states), states)


def plan_of(
    hub_set: Any, states: dict[str, RegionState], default: Delivery = "rules"
) -> tuple[Plan, ProfilePlan]:
    desired = desired_rules(MESH, hub_set, states)
    profiles = plan_profiles(MESH, hub_set, desired, states, set(states), default)
    plan = make_plan(MESH, profiles.desired, states, set(states))
    return with_profile_changes(plan, profiles), profiles


def kinds(plan: Plan, region: str = R) -> list[str]:
    return [c.kind.value for c in plan.changes if c.region == region]


def hub_arns(state: RegionState) -> list[str]:
    return sorted(rule.arn for rule in state.rules)


def with_profile(
    state: RegionState,
    vpcs: dict[str, str],
    *,
    resource_status: str = "COMPLETE",
    direct: bool = True,
    profile: ObservedProfile = OURS,
) -> RegionState:
    """`state` with `profile` holding all its rules and associated with `vpcs` (VPC: status);
    `direct=False` drops the direct associations."""
    resources = tuple(
        ObservedProfileResource(f"rpr-{n}", profile.id, arn, resource_status)
        for n, arn in enumerate(hub_arns(state))
    )
    associations = tuple(
        ObservedProfileAssociation(f"rpassoc-{vpc}", profile.id, vpc, status)
        for vpc, status in vpcs.items()
    )
    found = ProfileState((profile,), associations, resources if profile.ours else ())
    return replace(state, profiles=found, associations=state.associations if direct else ())


def test_deliveries_come_from_the_vpc_then_the_item_then_the_mesh() -> None:
    hub_set, _ = world(delivery="profile", vpc_delivery={WORKLOAD: "rules"})
    assert vpc_deliveries(hub_set.hubs[R], "rules") == {HUB_VPC: "profile", WORKLOAD: "rules"}
    plain, _ = world()
    assert set(vpc_deliveries(plain.hubs[R], "profile").values()) == {"profile"}


def test_an_unknown_delivery_and_a_stranger_vpc_are_errors_naming_the_field() -> None:
    items = [
        hub_item(R, delivery="profiles"),
        hub_item(R2, vpc_delivery={WORKLOAD: "profile"}),
    ]
    hub_set = parse_hubs(items, frozenset({R, R2}))
    assert sorted((e.region, e.field) for e in hub_set.errors) == [
        (R, "delivery"),
        (R2, "vpc_delivery"),
    ]


def test_rules_mode_with_profiles_read_and_none_of_ours_plans_nothing() -> None:
    hub_set, states = world()
    states[R] = replace(states[R], profiles=ProfileState())
    plan, profiles = plan_of(hub_set, states)
    assert plan.changes == ()
    assert profiles.active == set()


def test_profile_mode_first_makes_the_profile_and_keeps_the_direct_rules() -> None:
    hub_set, states = world()
    states = {w: replace(s, profiles=ProfileState()) for w, s in states.items()}
    plan, _ = plan_of(hub_set, states, "profile")
    assert kinds(plan) == ["create_profile"] + ["profile_add_rule"] * 2 + ["associate_profile"] * 2
    assert {c.profile_id for c in plan.changes} == {None}  # the Profile made in this run
    assert {c.vpc_id for c in plan.changes if c.vpc_id} == {HUB_VPC, WORKLOAD, ids(R2).vpc}


def test_direct_rules_go_only_once_the_profile_serves_them() -> None:
    hub_set, states = world()
    states[R] = with_profile(states[R], {HUB_VPC: "COMPLETE", WORKLOAD: "CREATING"})
    plan, profiles = plan_of(hub_set, states, "profile")
    gone = {(c.kind, c.vpc_id) for c in plan.changes if c.region == R}
    assert gone == {(ChangeKind.DISASSOCIATE, HUB_VPC)}
    assert len(kinds(plan)) == 2  # the hub VPC's 2 rules; the workload VPC waits
    assert profiles.pending == [f"{R}: Profile on {WORKLOAD} CREATING"]
    # the Profile serves those names: the guard does not count them as lost (2 of the 10 uses
    # of our rules, 4 of them through the Profile, would be more than this strict guard's 15%)
    strict = Guard(max_fraction=0.15, min_rules=1)
    assert check_plan(plan, states, set(states), MESH, strict, staying={R, R2}).allowed
    undone = replace(
        plan, changes=tuple(replace(c, reason="VPC no longer listed") for c in plan.changes)
    )
    assert not check_plan(undone, states, set(states), MESH, strict, staying={R, R2}).allowed


def test_a_rule_still_creating_in_the_profile_keeps_its_direct_association() -> None:
    hub_set, states = world()
    vpcs = {HUB_VPC: "COMPLETE", WORKLOAD: "COMPLETE"}
    states[R] = with_profile(states[R], vpcs, resource_status="CREATING")
    plan, profiles = plan_of(hub_set, states, "profile")
    assert kinds(plan) == []
    assert len(profiles.pending) == 2


def test_a_converged_profile_mesh_plans_nothing() -> None:
    hub_set, states = world()
    vpcs = {HUB_VPC: "COMPLETE", WORKLOAD: "COMPLETE"}
    states[R] = with_profile(states[R], vpcs, direct=False)
    plan, _ = plan_of(hub_set, states, "profile")
    assert kinds(plan) == []


def test_a_vpc_that_has_neither_waits_for_the_profile() -> None:
    hub_set, states = world()
    states[R] = with_profile(states[R], {HUB_VPC: "COMPLETE"}, direct=False)
    plan, _ = plan_of(hub_set, states, "profile")
    assert kinds(plan) == ["associate_profile"]  # no direct association for the workload VPC


def test_a_foreign_profile_is_kept_and_its_vpc_gets_the_rules() -> None:
    hub_set, states = world()
    foreign = ProfileState(
        (THEIRS,), (ObservedProfileAssociation("rpassoc-x", THEIRS.id, WORKLOAD, "COMPLETE"),)
    )
    states[R] = replace(states[R], profiles=foreign)
    plan, profiles = plan_of(hub_set, states, "profile")
    assert not [c for c in plan.changes if c.vpc_id == WORKLOAD]
    assert any(WORKLOAD in note and THEIRS.id in note for note in profiles.notes)
    associated = [c.vpc_id for c in plan.changes if c.kind is ChangeKind.ASSOCIATE_PROFILE]
    assert associated == [HUB_VPC]  # us-east-2's Profiles were not read: nothing there


@pytest.mark.parametrize(
    ("direct", "expected"),
    [(True, ["disassociate_profile", "disassociate_profile", "delete_profile"]), (False, [])],
)
def test_back_to_rules_the_profile_leaves_once_the_rules_are_direct(
    direct: bool, expected: list[str]
) -> None:
    """Once every VPC has the rules directly, our Profile leaves them, then goes: no VPC keeps
    it, so it is deleted in the same plan, after them."""
    hub_set, states = world()
    states[R] = with_profile(states[R], {HUB_VPC: "COMPLETE", WORKLOAD: "COMPLETE"}, direct=direct)
    plan, _ = plan_of(hub_set, states, "rules")
    assert [k for k in kinds(plan) if "profile" in k] == expected
    if not direct:
        assert kinds(plan) == ["associate"] * 4


def test_an_unused_profile_of_ours_is_deleted_and_a_foreign_one_never() -> None:
    hub_set, states = world()
    states[R] = with_profile(states[R], {})
    plan, _ = plan_of(hub_set, states, "rules")
    assert kinds(plan) == ["delete_profile"]
    states[R] = with_profile(states[R], {}, profile=THEIRS)
    plan, _ = plan_of(hub_set, states, "rules")
    assert kinds(plan) == []


def test_a_failed_resource_is_reported_and_left_alone() -> None:
    hub_set, states = world()
    vpcs = {HUB_VPC: "COMPLETE", WORKLOAD: "COMPLETE"}
    states[R] = with_profile(states[R], vpcs, resource_status="FAILED")
    plan, profiles = plan_of(hub_set, states, "profile")
    assert len(profiles.failed) == 2
    assert kinds(plan) == []


def test_a_rule_leaves_the_profile_before_it_is_deleted() -> None:
    """The peer gone, the hub wants no rule: each rule leaves the Profile before it is
    deleted, and the Profile, which would hold nothing, leaves its VPCs and goes (before, its
    VPCs kept it empty, and once the item went too nothing led back to it)."""
    _, states = world()
    vpcs = {HUB_VPC: "COMPLETE", WORKLOAD: "COMPLETE"}
    states[R] = with_profile(states[R], vpcs, direct=False)
    alone = parse_hubs([hub_item(R, vpc_ids=[WORKLOAD])], frozenset({R, R2}))
    plan, _ = plan_of(alone, states, "profile")
    assert kinds(plan) == (
        ["profile_remove_rule"] * 2
        + ["disassociate_profile"] * 2
        + ["delete_profile"]
        + ["delete_rule"] * 2
    )


def test_an_unreadable_or_unread_location_gets_no_profile_change() -> None:
    hub_set, states = world()
    states[R] = replace(states[R], error="ThrottlingException")
    plan, profiles = plan_of(hub_set, states, "profile")
    assert kinds(plan) == []
    assert R not in profiles.active
    assert kinds(plan, R2) == []  # us-east-2's Profiles were not read: nothing planned there


def vpcs_world(count: int, associated: int = 0) -> tuple[Any, dict[str, RegionState]]:
    """us-east-1's hub in `profile` delivery with `count` VPCs (its own included), the first
    `associated` of them already on our Profile; us-east-2 not read for Profiles."""
    workloads = [f"vpc-{n:017x}" for n in range(1, count)]
    items = [hub_item(R, vpc_ids=workloads, delivery="profile"), hub_item(R2)]
    hub_set = parse_hubs(items, frozenset({R, R2}))
    vpcs = sorted([HUB_VPC, *workloads])[:associated]
    held = tuple(ObservedProfileAssociation(f"rpassoc-{v}", OURS.id, v, "COMPLETE") for v in vpcs)
    found = ProfileState((OURS,), held) if associated else ProfileState()
    return hub_set, {R: region_state(R, profiles=found), R2: region_state(R2)}


def associated_vpcs(plan: Plan) -> list[str | None]:
    return [c.vpc_id for c in plan.changes if c.kind is ChangeKind.ASSOCIATE_PROFILE]


@pytest.mark.parametrize(
    ("count", "near", "over"), [(899, False, False), (900, True, False), (1000, True, False)]
)
def test_vpcs_up_to_the_quota_are_associated_and_noted_from_nine_tenths(
    count: int, near: bool, over: bool
) -> None:
    hub_set, states = vpcs_world(count)
    plan, profiles = plan_of(hub_set, states)
    assert len(associated_vpcs(plan)) == count
    noted = [n for n in profiles.notes if "VPCs associated with the Profile" in n]
    assert noted == (
        [
            f"{R}: {count} VPCs associated with the Profile after this plan, close to"
            " the quota of 1000"
        ]
        if near
        else []
    )
    assert profiles.failed == []


def test_one_vpc_over_the_quota_associates_none_and_they_fall_back_to_rules() -> None:
    hub_set, states = vpcs_world(1001)
    plan, profiles = plan_of(hub_set, states)
    assert associated_vpcs(plan) == []
    assert ChangeKind.CREATE_PROFILE not in {c.kind for c in plan.changes}
    assert profiles.failed == [
        f"{R}: 1001 more VPCs would take the Profile to 1001 VPCs, over the quota of 1000 VPCs"
        " per Profile: none is associated, they get the rules associated directly"
    ]
    # the rules stay meant for every VPC: associated directly, as in `rules` delivery
    assert all(len(r.vpc_ids) == 1001 for r in profiles.desired.rules if r.region == R)


def test_vpcs_already_on_the_profile_count_and_keep_it_when_new_ones_would_overflow() -> None:
    hub_set, states = vpcs_world(1001, associated=999)
    plan, profiles = plan_of(hub_set, states)
    assert associated_vpcs(plan) == []
    assert "2 more VPCs would take the Profile to 1001 VPCs" in profiles.failed[0]
    assert ChangeKind.DISASSOCIATE_PROFILE not in {c.kind for c in plan.changes}
    exactly, states = vpcs_world(1000, associated=999)
    plan, profiles = plan_of(exactly, states)
    assert len(associated_vpcs(plan)) == 1
    assert profiles.failed == []


def test_vpcs_of_other_accounts_count_against_the_owners_profile() -> None:
    """The shared VPC of another account takes the hub's Profile; `taken` other VPCs of that
    account already hold it, and the hub's own 2 VPCs use `profile` delivery too."""

    def plan_with(taken: int) -> tuple[Plan, ProfilePlan]:
        hub_set, states = shared_world("profile")
        item = hub_item(R, vpc_ids=[WORKLOAD], delivery="profile")
        item["shared_vpcs"] = [s.model_dump() for s in hub_set.hubs[R].shared_vpcs]
        hub_set = parse_hubs([item, hub_item(R2)], frozenset({R, R2}), HOME)
        held = tuple(
            ObservedProfileAssociation(f"rpassoc-{n}", OURS.id, f"vpc-{n:017x}", "COMPLETE")
            for n in range(taken)
        )
        there = states[THERE]
        assert there.profiles is not None
        states[THERE] = replace(there, profiles=replace(there.profiles, associations=held))
        return plan_shared(hub_set, states)

    plan, profiles = plan_with(997)  # 997 + 3 new = 1000
    assert sorted(map(str, associated_vpcs(plan))) == sorted([HUB_VPC, WORKLOAD, SHARED_VPC])
    assert profiles.failed == []
    plan, profiles = plan_with(998)  # 998 + 3 new = 1001: none, in either account
    assert associated_vpcs(plan) == []
    assert profiles.failed == [
        f"{R}: 3 more VPCs would take the Profile to 1001 VPCs, over the quota of 1000 VPCs per"
        " Profile: none is associated, they get the rules associated directly"
    ]
    # the shared VPC stays with the share's VPCs: it gets the shared rules instead
    assert any(SHARED_VPC in share.vpc_ids for share in profiles.desired.shares)


def test_a_sixth_profile_is_never_made_and_the_vpcs_keep_their_rules() -> None:
    hub_set, states = world()
    others = tuple(
        ObservedProfile(f"rp-other{n}", f"arn:aws:route53profiles:{R}:1:profile/rp-other{n}", "o")
        for n in range(5)
    )
    states[R] = replace(states[R], profiles=ProfileState(others))
    plan, profiles = plan_of(hub_set, states, "profile")
    assert kinds(plan) == []  # converged in rules: the direct rules stay
    assert profiles.failed == [
        f"{R}: the account has 5 Profiles, the quota is 5 per account and Region: its VPCs get"
        " the rules associated directly"
    ]
    shared = replace(others[4], share_status="SHARED_WITH_ME")  # another account's: not counted
    states[R] = replace(states[R], profiles=ProfileState((*others[:4], shared)))
    plan, profiles = plan_of(hub_set, states, "profile")
    assert kinds(plan)[0] == "create_profile"
    assert f"{R}: 5 Profiles of the account after this plan, close to the quota of 5" in (
        profiles.notes
    )
    assert profiles.failed == []


def test_more_rules_than_a_profile_takes_are_never_added(monkeypatch: pytest.MonkeyPatch) -> None:
    """us-east-1 has 2 hub rules; the quota is lowered to test both sides of it."""
    hub_set, states = world()
    states = {w: replace(s, profiles=ProfileState()) for w, s in states.items()}
    monkeypatch.setattr(profiles_module, "MAX_RULES_PER_PROFILE", 2)
    plan, profiles = plan_of(hub_set, states, "profile")
    assert kinds(plan).count("profile_add_rule") == 2
    assert f"{R}: 2 rules in the Profile after this plan, close to the quota of 2" in (
        profiles.notes
    )
    monkeypatch.setattr(profiles_module, "MAX_RULES_PER_PROFILE", 1)
    plan, profiles = plan_of(hub_set, states, "profile")
    assert kinds(plan) == []
    assert profiles.failed[0].startswith(f"{R}: the Profile would hold 2 rules, over the quota")
    held = with_profile(states[R], {HUB_VPC: "COMPLETE", WORKLOAD: "COMPLETE"}, direct=False)
    assert held.profiles is not None
    one_held = replace(held.profiles, resources=held.profiles.resources[:1])
    states[R] = replace(held, profiles=one_held)
    plan, profiles = plan_of(hub_set, states, "profile")
    assert "profile_add_rule" not in kinds(plan)  # AWS would refuse the second rule
    # the VPCs fall back to rules: associated directly first, the Profile stays meanwhile
    assert kinds(plan) == ["associate"] * 4


def test_a_vpc_the_rules_are_meant_for_beyond_the_item_follows_the_hubs_delivery() -> None:
    """A VPC that joins by other means (by tag) is in the desired rules' VPCs only."""
    hub_set, states = world(delivery="profile")
    states = {w: replace(s, profiles=ProfileState()) for w, s in states.items()}
    joined = "vpc-0bbbbbbbbbbbbbbb2"
    desired = desired_rules(MESH, hub_set, states)
    rules = tuple(
        replace(r, vpc_ids=r.vpc_ids | {joined}) if r.region == R else r for r in desired.rules
    )
    profiles = plan_profiles(MESH, hub_set, replace(desired, rules=rules), states, {R}, "rules")
    associated = {c.vpc_id for c in profiles.changes[R] if c.kind is ChangeKind.ASSOCIATE_PROFILE}
    assert associated == {HUB_VPC, WORKLOAD, joined}


def test_the_profile_of_ours_that_vpcs_hold_is_the_one_kept() -> None:
    hub_set, states = world()
    stray = replace(OURS, id="rp-aaaa-stray")  # sorts first, but no VPC holds it
    state = with_profile(states[R], {HUB_VPC: "COMPLETE", WORKLOAD: "COMPLETE"}, direct=False)
    assert state.profiles is not None
    states[R] = replace(state, profiles=replace(state.profiles, profiles=(stray, OURS)))
    plan, profiles = plan_of(hub_set, states, "profile")
    assert kinds(plan) == []
    assert any(stray.id in note for note in profiles.notes)


MEMBER = "222222222222"
THERE = f"{R}@{MEMBER}"
SHARED_VPC = "vpc-0ccccccccccccccc3"


def shared_world(delivery: str) -> tuple[Any, dict[str, RegionState]]:
    """us-east-1's hub (its VPCs by rules) with a VPC of another account, Profile `OURS`
    holding all its rules; the other account sees the Profile through RAM."""
    shared = {
        "vpc_id": SHARED_VPC,
        "account_id": MEMBER,
        "role_arn": f"arn:aws:iam::{MEMBER}:role/mesh",
        "delivery": delivery,
    }
    items = [hub_item(R, vpc_ids=[WORKLOAD], shared_vpcs=[shared]), hub_item(R2)]
    hub_set = parse_hubs(items, frozenset({R, R2}), HOME)
    states = {R: region_state(R), R2: region_state(R2)}
    states = converged(MESH, desired_rules(MESH, hub_set, states), states)
    states[R] = with_profile(states[R], {})
    seen = replace(OURS, ours=False, share_status="SHARED_WITH_ME")
    states[THERE] = RegionState(R, account=MEMBER, profiles=ProfileState((seen,)))
    return hub_set, states


def plan_shared(hub_set: Any, states: dict[str, RegionState]) -> tuple[Plan, ProfilePlan]:
    return plan_as_reconcile(MESH, hub_set, states)


def test_a_shared_vpc_of_profile_delivery_gets_the_hubs_profile() -> None:
    hub_set, states = shared_world("profile")
    plan, profiles = plan_shared(hub_set, states)
    there = [c for c in plan.changes if c.location == THERE]
    assert [(c.kind, c.vpc_id, c.profile_id) for c in there if "profile" in c.kind.value] == [
        (ChangeKind.ASSOCIATE_PROFILE, SHARED_VPC, OURS.id)
    ]
    assert not [c for c in there if c.kind is ChangeKind.ASSOCIATE]  # waits for the Profile
    assert profiles.also_shared == {R: frozenset({OURS.arn})}
    created = [c for c in plan.changes if c.kind is ChangeKind.CREATE_SHARE]
    assert [OURS.arn in c.resources for c in created] == [True]


def test_a_profile_another_account_may_hold_is_never_deleted() -> None:
    hub_set, states = shared_world("rules")
    states[THERE] = replace(states[THERE], error="AccessDenied")
    plan, _ = plan_shared(hub_set, states)
    assert ChangeKind.DELETE_PROFILE not in {c.kind for c in plan.changes}
    readable, states = shared_world("rules")
    plan, _ = plan_shared(readable, states)
    assert ChangeKind.DELETE_PROFILE in {c.kind for c in plan.changes}


def test_an_overridden_direct_association_counts_as_in_place_for_the_way_back() -> None:
    hub_set, states = world()
    state = with_profile(states[R], {HUB_VPC: "COMPLETE", WORKLOAD: "COMPLETE"})
    overridden = tuple(replace(a, status="OVERRIDDEN") for a in state.associations)
    states[R] = replace(state, associations=overridden)
    plan, _ = plan_of(hub_set, states, "rules")
    assert kinds(plan) == ["disassociate_profile"] * 2 + ["delete_profile"]


@pytest.mark.parametrize(
    ("tags", "leaves"),
    [("read, still tagged", False), ("unread", False), ("read, tag gone", True)],
)
def test_a_vpc_joined_by_tag_keeps_our_profile_while_its_tags_cannot_be_read(
    tags: str, leaves: bool
) -> None:
    """A VPC of the hub's account that joined by tag and gets the rules only through our
    Profile: a failed tag read there is no reason to take the Profile off it (its DNS would
    lose every peer domain); only a tag read that no longer finds it is."""
    joining = "vpc-0bbbbbbbbbbbbbbb2"
    hub_set = parse_hubs([hub_item(R, delivery="profile"), hub_item(R2)], frozenset({R, R2}))
    states = {region: region_state(region) for region in (R, R2)}
    joined = join_by_tag(
        MESH, hub_set, {R: TaggedVpcs(owned=frozenset({joining})), R2: TaggedVpcs()}
    )
    states = converged(MESH, desired_rules(MESH, hub_set, states, joined), states)
    states[R] = with_profile(states[R], {HUB_VPC: "COMPLETE", joining: "COMPLETE"}, direct=False)
    states[R2] = replace(states[R2], profiles=ProfileState())
    read = {
        "read, still tagged": TaggedVpcs(owned=frozenset({joining})),
        "unread": TaggedVpcs(error="ThrottlingException: Rate exceeded"),
        "read, tag gone": TaggedVpcs(),
    }[tags]
    now = join_by_tag(MESH, hub_set, {R: read, R2: TaggedVpcs()})
    desired = desired_rules(MESH, hub_set, states, now)
    profiles = plan_profiles(MESH, hub_set, desired, states, set(states), "rules")
    plan = with_profile_changes(make_plan(MESH, profiles.desired, states, set(states)), profiles)
    changes = [(c.kind, c.vpc_id) for c in plan.changes]
    assert changes == ([(ChangeKind.DISASSOCIATE_PROFILE, joining)] if leaves else [])


JOINING = "vpc-0bbbbbbbbbbbbbbb2"


def joined_on_our_profile() -> tuple[Any, dict[str, RegionState], Any]:
    """us-east-1's hub delivers by Profile; `JOINING` joined it by tag and gets its rules
    through our Profile alone, as the hub VPC does. The hub set, the states, the join."""
    hub_set = parse_hubs([hub_item(R, delivery="profile"), hub_item(R2)], frozenset({R, R2}))
    states = {region: region_state(region) for region in (R, R2)}
    tagged = {R: TaggedVpcs(owned=frozenset({JOINING})), R2: TaggedVpcs()}
    joined = join_by_tag(MESH, hub_set, tagged)
    states = converged(MESH, desired_rules(MESH, hub_set, states, joined), states)
    states[R] = with_profile(states[R], {HUB_VPC: "COMPLETE", JOINING: "COMPLETE"}, direct=False)
    states[R2] = replace(states[R2], profiles=ProfileState())
    return hub_set, states, joined


def test_a_vpc_on_our_profile_stays_joined_when_another_rule_takes_one_domain() -> None:
    """Served by our Profile alone, a VPC that joined by tag uses our rules: another owner's
    rule for one domain does not make it leave (and lose the Profile, so every domain)."""
    joining = JOINING
    hub_set, states, joined = joined_on_our_profile()
    theirs = ObservedRule(
        "rslvr-rr-theirs", f"{R2}.amazonaws.com.", "FORWARD", "t", "COMPLETE", None, frozenset(), ""
    )
    states[R] = replace(
        states[R],
        rules=(*states[R].rules, theirs),
        associations=(
            *states[R].associations,
            ObservedAssociation("a-theirs", theirs.id, joining, "COMPLETE"),
        ),
    )
    desired = desired_rules(MESH, hub_set, states, joined)
    assert without_conflicting(MESH, joined, desired, states) is joined
    profiles = plan_profiles(MESH, hub_set, desired, states, set(states), "rules")
    plan = with_profile_changes(make_plan(MESH, profiles.desired, states, set(states)), profiles)
    assert not [c for c in plan.changes if c.vpc_id == joining]


@pytest.mark.parametrize(("leaving", "allowed"), [(1, True), (4, False)])
def test_vpcs_on_our_profile_leaving_in_bulk_trip_the_guard(leaving: int, allowed: bool) -> None:
    """Tag-joined VPCs served by our Profile alone lose their tag: our Profile leaves each,
    and with it every rule it holds (2 here). Four of them are 8 of the 12 uses of our rules
    (the hub VPC's 2, the Profile's 2 on each of 4 VPCs, the other hub's 2): refused."""
    joining = [f"vpc-0bbbbbbbbbbbbbbb{n}" for n in range(4)]
    hub_set = parse_hubs([hub_item(R, delivery="profile"), hub_item(R2)], frozenset({R, R2}))
    states = {region: region_state(region) for region in (R, R2)}
    tagged = {R: TaggedVpcs(owned=frozenset(joining)), R2: TaggedVpcs()}
    joined = join_by_tag(MESH, hub_set, tagged)
    states = converged(MESH, desired_rules(MESH, hub_set, states, joined), states)
    on_profile = dict.fromkeys([HUB_VPC, *joining], "COMPLETE")
    states[R] = with_profile(states[R], on_profile, direct=False)
    states[R2] = replace(states[R2], profiles=ProfileState())
    now = join_by_tag(MESH, hub_set, {**tagged, R: TaggedVpcs(owned=frozenset(joining[leaving:]))})
    desired = desired_rules(MESH, hub_set, states, now)
    profiles = plan_profiles(MESH, hub_set, desired, states, set(states), "rules")
    plan = with_profile_changes(make_plan(MESH, profiles.desired, states, set(states)), profiles)
    assert [(c.kind, c.vpc_id) for c in plan.changes] == [
        (ChangeKind.DISASSOCIATE_PROFILE, vpc) for vpc in joining[:leaving]
    ]
    verdict = check_plan(plan, states, set(states), MESH, Guard(0.5, 1), staying={R, R2})
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.refusals[0].startswith("the plan would take 8 of the 12 associations")


OTHERS = [MEMBER, "333333333333", "444444444444", "555555555555"]
SECOND_VPC = "vpc-0ddddddddddddddd4"


def joined_world(
    on_profile: dict[str, list[str]], shared: bool = True
) -> tuple[Any, dict[str, RegionState]]:
    """us-east-1's hub delivers by Profile (`OURS`, holding its rules, on the hub VPC); in each
    account of `on_profile`, those VPCs (joined by tag) hold it through the hub's RAM share
    (`shared`: the share names the accounts and holds the rules and the Profile)."""
    hub_set = parse_hubs([hub_item(R, delivery="profile"), hub_item(R2)], frozenset({R, R2}), HOME)
    states = {R: region_state(R), R2: region_state(R2)}
    states = converged(MESH, desired_rules(MESH, hub_set, states), states)
    states[R] = with_profile(states[R], {HUB_VPC: "COMPLETE"}, direct=False)
    states[R2] = replace(states[R2], profiles=ProfileState())
    if shared:
        share = ObservedShare(
            f"arn:aws:ram:{R}:{HOME}:resource-share/s",
            f"resolver-mesh-{MESH}",
            frozenset([*hub_arns(states[R]), OURS.arn]),
            frozenset(on_profile),
        )
        states[R] = replace(states[R], shares=(share,))
    seen = replace(OURS, ours=False, share_status="SHARED_WITH_ME")
    for account, vpcs in on_profile.items():
        held = tuple(
            ObservedProfileAssociation(f"rpassoc-{vpc}", OURS.id, vpc, "COMPLETE") for vpc in vpcs
        )
        states[f"{R}@{account}"] = RegionState(
            R, account=account, profiles=ProfileState((seen,), held)
        )
    return hub_set, states


def plan_joined(
    hub_set: Any, states: dict[str, RegionState], tagged: dict[str, TaggedVpcs]
) -> tuple[Plan, ProfilePlan]:
    """Plan as a reconcile does, with the VPCs that joined by tag (`tagged`, by location) less
    those that would join only in part."""
    joined = join_by_tag(MESH, hub_set, {R: TaggedVpcs(), R2: TaggedVpcs(), **tagged})
    desired = desired_rules(MESH, hub_set, states, joined, HOME)
    whole = without_conflicting(MESH, joined, desired, states)
    return plan_as_reconcile(MESH, hub_set, states, whole)


def test_a_vpc_joined_by_tag_in_another_account_gets_the_hubs_profile() -> None:
    """Like a shared VPC its item would list: the hub's share holds the Profile, and the VPC
    gets the Profile, not one association per shared rule."""
    hub_set, states = joined_world({MEMBER: []}, shared=False)
    plan, profiles = plan_joined(
        hub_set, states, {THERE: TaggedVpcs(owned=frozenset({SHARED_VPC}))}
    )
    there = [(c.kind, c.vpc_id, c.profile_id) for c in plan.changes if c.location == THERE]
    assert there == [(ChangeKind.ASSOCIATE_PROFILE, SHARED_VPC, OURS.id)]
    assert profiles.also_shared == {R: frozenset({OURS.arn})}
    created = [c for c in plan.changes if c.kind is ChangeKind.CREATE_SHARE]
    assert [(OURS.arn in c.resources, c.principals) for c in created] == [(True, (MEMBER,))]


def test_a_vpc_joined_by_tag_in_another_account_on_the_profile_is_a_no_op() -> None:
    hub_set, states = joined_world({MEMBER: [SHARED_VPC]})
    plan, _ = plan_joined(hub_set, states, {THERE: TaggedVpcs(owned=frozenset({SHARED_VPC}))})
    assert plan.changes == ()


@pytest.mark.parametrize(
    ("tags", "leaves"),
    [("read, still tagged", False), ("unread", False), ("read, tag gone", True)],
)
def test_another_accounts_vpc_keeps_the_profile_while_its_tags_cannot_be_read(
    tags: str, leaves: bool
) -> None:
    """The account has a second VPC that stays joined, so it stays shared: only our Profile
    leaving the first VPC could take its DNS, and only a read that finds its tag gone does."""
    hub_set, states = joined_world({MEMBER: [SHARED_VPC, SECOND_VPC]})
    read = {
        "read, still tagged": TaggedVpcs(owned=frozenset({SHARED_VPC, SECOND_VPC})),
        "unread": TaggedVpcs(error="ThrottlingException: Rate exceeded"),
        "read, tag gone": TaggedVpcs(owned=frozenset({SECOND_VPC})),
    }[tags]
    plan, profiles = plan_joined(hub_set, states, {THERE: read})
    changes = [(c.kind, c.vpc_id, c.reason) for c in plan.changes]
    gone = [(ChangeKind.DISASSOCIATE_PROFILE, SHARED_VPC, PROFILE_LEAVES)]
    assert changes == (gone if leaves else [])
    assert profiles.also_shared == {R: frozenset({OURS.arn})}


def test_the_hub_keeps_its_profile_shared_while_a_receivers_tags_cannot_be_read() -> None:
    """The only account that held it cannot tell its tags: no VPC of the hub's account needs
    the Profile, yet it is neither deleted nor taken out of the share."""
    _, states = joined_world({MEMBER: [SHARED_VPC]})
    rules_hub = parse_hubs([hub_item(R), hub_item(R2)], frozenset({R, R2}), HOME)
    unread = {THERE: TaggedVpcs(error="AccessDenied")}
    plan, profiles = plan_joined(rules_hub, states, unread)
    kinds_planned = {c.kind for c in plan.changes}
    assert ChangeKind.DELETE_PROFILE not in kinds_planned
    assert ChangeKind.UNSHARE not in kinds_planned
    assert profiles.also_shared == {R: frozenset({OURS.arn})}
    # Read, the tag gone: the account's last VPC leaves, so the account leaves the share (the
    # Profile with it), as when an item's last shared VPC of the account goes.
    plan, _ = plan_joined(rules_hub, states, {THERE: TaggedVpcs()})
    assert ChangeKind.DELETE_SHARE in {c.kind for c in plan.changes}


@pytest.mark.parametrize(("leaving", "allowed"), [(1, True), (3, False)])
def test_other_accounts_vpcs_leaving_our_profile_in_bulk_trip_the_guard(
    leaving: int, allowed: bool
) -> None:
    """Four accounts each hold our Profile on two VPCs joined by tag; in `leaving` of them one
    VPC loses its tag. Each such VPC loses every rule the Profile holds (the accounts stay
    shared for their other VPC), counted per VPC like the hub's own VPCs."""
    hub_set, states = joined_world({a: [SHARED_VPC, SECOND_VPC] for a in OTHERS})
    tagged = {
        f"{R}@{a}": TaggedVpcs(
            owned=frozenset({SECOND_VPC} if n < leaving else {SHARED_VPC, SECOND_VPC})
        )
        for n, a in enumerate(OTHERS)
    }
    plan, _ = plan_joined(hub_set, states, tagged)
    assert sorted((c.kind, c.account, c.reason) for c in plan.changes) == [
        (ChangeKind.DISASSOCIATE_PROFILE, a, PROFILE_LEAVES) for a in sorted(OTHERS[:leaving])
    ]
    verdict = check_plan(plan, states, set(states), MESH, Guard(0.25, 1), staying={R, R2})
    assert verdict.allowed is allowed
    if not allowed:  # the Profile's 2 rules on each of the 8 VPCs of the other accounts
        assert verdict.refusals[0].startswith(
            "the plan would take 6 of the 16 rules our shared Profiles give VPCs of other"
        )


def test_another_accounts_vpc_on_our_profile_stays_joined_when_a_rule_takes_one_domain() -> None:
    """Served by the hub's Profile alone, it uses our rules: a rule of its account's own for
    one hub domain makes it neither leave nor lose the Profile (every domain with it)."""
    hub_set, states = joined_world({MEMBER: [SHARED_VPC, SECOND_VPC]})
    received = tuple(
        replace(r, share_status="SHARED_WITH_ME", owner_id=HOME) for r in states[R].rules
    )
    theirs = ObservedRule(
        "rslvr-rr-theirs", received[0].domain, "FORWARD", "t", "COMPLETE", None, frozenset(), ""
    )
    states[THERE] = replace(
        states[THERE],
        rules=(*received, theirs),
        associations=(ObservedAssociation("a-theirs", theirs.id, SECOND_VPC, "COMPLETE"),),
    )
    both = TaggedVpcs(owned=frozenset({SHARED_VPC, SECOND_VPC}))
    plan, profiles = plan_joined(hub_set, states, {THERE: both})
    assert not [c for c in plan.changes if c.vpc_id == SECOND_VPC]
    assert not [line for line in profiles.notes if "does not join" in line]


def test_a_vpc_joined_by_tag_keeps_our_profile_while_every_peer_is_unreadable() -> None:
    """The hub then wants no rule of its own (each is kept for its unreadable target), yet the
    VPC still joins: neither it nor the hub VPC loses our Profile, and the Profile its rules."""
    hub_set, states, joined = joined_on_our_profile()
    states[R2] = RegionState(R2, error="ClientError: AccessDenied (AssumeRole)")
    desired = desired_rules(MESH, hub_set, states, joined)
    assert not [rule for rule in desired.rules if rule.location == R]
    profiles = plan_profiles(MESH, hub_set, desired, states, set(states), "rules", joined)
    planned = make_plan(
        MESH, profiles.desired, states, set(states), profile_serving=profiles.serving
    )
    assert with_profile_changes(planned, profiles).changes == ()


def test_an_account_whose_tags_are_unread_keeps_our_profile_shared_but_never_adds_it() -> None:
    """The hub's own VPC alone uses its Profile; MEMBER gets the rules through the share. An
    account whose tags cannot be read is no reason to put the Profile in the share, only to
    keep it there for an account the share already gives it to."""
    other = "333333333333"
    hub_set = parse_hubs(
        [hub_item(R, vpc_delivery={HUB_VPC: "profile"}), hub_item(R2)], frozenset({R, R2}), HOME
    )
    _, states = joined_world({}, shared=False)
    share = ObservedShare(
        f"arn:aws:ram:{R}:{HOME}:resource-share/s",
        f"resolver-mesh-{MESH}",
        frozenset(hub_arns(states[R])),
        frozenset({MEMBER}),
    )
    states[R] = replace(states[R], shares=(share,))
    for account in (MEMBER, other):
        states[f"{R}@{account}"] = RegionState(R, account=account, profiles=ProfileState())
    tagged = {
        THERE: TaggedVpcs(owned=frozenset({SHARED_VPC})),
        f"{R}@{other}": TaggedVpcs(error="ThrottlingException: Rate exceeded"),
    }
    _, profiles = plan_joined(hub_set, states, tagged)
    assert profiles.also_shared == {}
    given = replace(share, resources=share.resources | {OURS.arn}, principals={MEMBER, other})
    states[R] = replace(states[R], shares=(given,))
    _, profiles = plan_joined(hub_set, states, tagged)
    assert profiles.also_shared == {R: frozenset({OURS.arn})}


@pytest.mark.parametrize(("tags", "leaves"), [("unread", False), ("read, tag gone", True)])
def test_a_listed_accounts_tag_joined_vpc_keeps_our_profile_while_its_tags_are_unread(
    tags: str, leaves: bool
) -> None:
    """The item lists SECOND_VPC of MEMBER (so the account's receiving location is planned);
    SHARED_VPC joined by tag. Whether it still joins is unknown while the account's tags
    cannot be read: it keeps our Profile; read without its tag, it leaves."""
    listed = {
        "vpc_id": SECOND_VPC,
        "account_id": MEMBER,
        "role_arn": f"arn:aws:iam::{MEMBER}:role/mesh",
    }
    hub_set = parse_hubs(
        [hub_item(R, delivery="profile", shared_vpcs=[listed]), hub_item(R2)],
        frozenset({R, R2}),
        HOME,
    )
    _, states = joined_world({MEMBER: [SHARED_VPC, SECOND_VPC]})
    read = {
        "unread": TaggedVpcs(error="ThrottlingException: Rate exceeded"),
        "read, tag gone": TaggedVpcs(),
    }[tags]
    plan, profiles = plan_joined(hub_set, states, {THERE: read})
    gone = [(c.kind, c.reason) for c in plan.changes if c.vpc_id == SHARED_VPC]
    assert gone == ([(ChangeKind.DISASSOCIATE_PROFILE, PROFILE_LEAVES)] if leaves else [])
    assert not [c for c in plan.changes if c.vpc_id == SECOND_VPC]
    if not leaves:
        assert any("while the account's tags cannot be read" in n for n in profiles.notes)


def test_many_vpcs_of_few_accounts_leaving_our_profile_trip_the_guard() -> None:
    """Counted per VPC, not per account: in 2 of 4 accounts, 4 of their 5 VPCs lose the tag,
    8 of the 20 VPCs on the hub's Profile (the accounts stay shared for their fifth)."""
    vpcs = [f"vpc-0eeeeeeeeeeeeee{n:02d}" for n in range(5)]
    hub_set, states = joined_world(dict.fromkeys(OTHERS, vpcs))
    tagged = {
        f"{R}@{a}": TaggedVpcs(owned=frozenset(vpcs[4:] if n < 2 else vpcs))
        for n, a in enumerate(OTHERS)
    }
    plan, _ = plan_joined(hub_set, states, tagged)
    assert len(plan.changes) == 8
    verdict = check_plan(plan, states, set(states), MESH, Guard(0.3, 1), staying={R, R2})
    assert not verdict.allowed
    assert verdict.refusals[0].startswith("the plan would take 16 of the 40 rules our shared")


def test_the_hubs_own_vpcs_leaving_in_bulk_are_not_diluted_by_other_accounts_on_the_profile() -> (
    None
):
    """8 of the hub's 10 listed VPCs leave its item: refused, however many VPCs of other
    accounts hold its Profile (each side is judged on its own)."""
    own = [f"vpc-0aaaaaaaaaaaaaa{n:02d}" for n in range(10)]
    remote = [f"vpc-0eeeeeeeeeeeeee{n:02d}" for n in range(10)]
    _, states = joined_world(dict.fromkeys(OTHERS, remote))
    states[R] = with_profile(states[R], dict.fromkeys([HUB_VPC, *own], "COMPLETE"), direct=False)
    items = [hub_item(R, delivery="profile", vpc_ids=own[8:]), hub_item(R2)]
    hub_set = parse_hubs(items, frozenset({R, R2}), HOME)
    tagged = {f"{R}@{a}": TaggedVpcs(owned=frozenset(remote)) for a in OTHERS}
    plan, _ = plan_joined(hub_set, states, tagged)
    assert sorted(c.vpc_id for c in plan.changes) == own[:8]
    verdict = check_plan(plan, states, set(states), MESH, Guard(0.5, 1), staying={R, R2})
    assert not verdict.allowed
    assert verdict.refusals[0].startswith("the plan would take 16 of the 24 associations")


def test_shared_rules_leaving_vpcs_our_shared_profile_serves_are_not_withdrawn() -> None:
    """Other accounts' VPCs moving from the shared rules to our shared Profile: each direct
    association leaves once the Profile answers its domain there, which loses nothing."""
    _, states = joined_world({a: [SHARED_VPC] for a in OTHERS})
    moving = tuple(
        Change(
            ChangeKind.DISASSOCIATE,
            R,
            rule.domain,
            rule_id=rule.id,
            vpc_id=SHARED_VPC,
            account=account,
            owner=HOME,
            reason=SERVED_BY_PROFILE,
        )
        for account in OTHERS
        for rule in states[R].rules
    )
    verdict = check_plan(
        Plan(changes=moving), states, set(states), MESH, Guard(0.2, 1), staying={R, R2}
    )
    assert verdict.allowed, verdict.refusals
    leaving = tuple(replace(c, reason="VPC no longer listed") for c in moving)
    verdict = check_plan(
        Plan(changes=leaving), states, set(states), MESH, Guard(0.2, 1), staying={R, R2}
    )
    assert not verdict.allowed


def test_an_account_leaving_the_share_with_many_vpcs_on_our_profile_trips_the_guard() -> None:
    """One account holds our Profile on 17 of the 20 VPCs of other accounts; every one of them
    loses its tag. The account leaves the deliveries: our Profile leaves each of its VPCs, and
    the share stops naming it, which the guard counts once, 17 VPCs' worth."""
    many = [f"vpc-0eeeeeeeeeeeeee{n:02d}" for n in range(17)]
    held = {OTHERS[0]: many, **{a: [SHARED_VPC] for a in OTHERS[1:]}}
    hub_set, states = joined_world(held)
    tagged = {f"{R}@{a}": TaggedVpcs(owned=frozenset(vpcs)) for a, vpcs in held.items()}
    tagged[f"{R}@{OTHERS[0]}"] = TaggedVpcs()
    plan, _ = plan_joined(hub_set, states, tagged)
    assert sorted((c.kind.value, c.vpc_id or "", c.principals) for c in plan.changes) == sorted(
        [("disassociate_profile", vpc, ()) for vpc in many] + [("unshare", "", (OTHERS[0],))]
    )
    verdict = check_plan(plan, states, set(states), MESH, Guard(0.25, 1), staying={R, R2})
    assert not verdict.allowed
    assert verdict.refusals[0].startswith("the plan would take 34 of the 40 rules our shared")


def test_a_duplicate_share_deleted_while_the_keeper_gives_the_profile_loses_nothing() -> None:
    """Two shares of ours give the Profile to the same accounts: deleting the duplicate takes
    nothing from their VPCs; deleting both would take everything."""
    _, states = joined_world({a: [SHARED_VPC, SECOND_VPC] for a in OTHERS})
    [keeper] = states[R].shares
    duplicate = replace(keeper, arn=keeper.arn + "-2")
    states[R] = replace(states[R], shares=(keeper, duplicate))

    def deleting(*shares: ObservedShare) -> Plan:
        return Plan(
            changes=tuple(
                Change(
                    ChangeKind.DELETE_SHARE,
                    R,
                    "",
                    share_arn=s.arn,
                    resources=tuple(sorted(s.resources)),
                    principals=tuple(sorted(s.principals)),
                )
                for s in shares
            )
        )

    guard = Guard(0.5, 1)
    assert check_plan(deleting(duplicate), states, set(states), MESH, guard).allowed
    both = check_plan(deleting(keeper, duplicate), states, set(states), MESH, guard)
    assert not both.allowed
    assert "rules our shared Profiles give VPCs of other accounts" in both.refusals[-1]


def test_the_home_account_losing_a_member_hubs_profile_counts() -> None:
    """A hub in a member account shares its Profile with the home account: the share names
    the home account by its id, while the home account's location is the Region alone."""
    _, states = joined_world({})
    hub_at = f"{R}@{MEMBER}"
    share = ObservedShare("arn:aws:ram:x:share/s", "n", frozenset({OURS.arn}), frozenset({HOME}))
    states[hub_at] = replace(states[R], account=MEMBER, shares=(share,))
    seen = replace(OURS, ours=False, share_status="SHARED_WITH_ME")
    vpcs = [f"vpc-0eeeeeeeeeeeeee{n:02d}" for n in range(4)]
    on = tuple(ObservedProfileAssociation(f"ra-{v}", OURS.id, v, "COMPLETE") for v in vpcs)
    states[R] = RegionState(R, profiles=ProfileState((seen,), on))
    unshare = Change(
        ChangeKind.UNSHARE, R, "", account=MEMBER, share_arn=share.arn, principals=(HOME,)
    )
    plan = Plan(changes=(unshare,))
    guard = Guard(0.5, 1)
    verdict = check_plan(plan, states, set(states), MESH, guard, home_account=HOME)
    assert not verdict.allowed
    assert "take 8 of the 8 rules our shared Profiles give" in verdict.refusals[-1]


@pytest.mark.parametrize("unread", ["the location", "its Profiles"])
@pytest.mark.parametrize("read", [1, 0])
def test_accounts_whose_profiles_were_not_read_count_when_the_share_leaves_them(
    unread: str, read: int
) -> None:
    """Three accounts hold our Profile through the share, on two VPCs each; two of them leave
    the share, but their Profiles could not be read (the whole location, as when the member
    role is refused, or the lean Profile read alone). Each counts as the accounts read that
    hold the same Profile, on average: two VPCs, so 8 of the 12 rules' worth leave, as if they
    had been read. With none read, one VPC each, 4 of 6."""
    accounts = OTHERS[:3]
    _, states = joined_world({a: [SHARED_VPC, SECOND_VPC] for a in accounts})
    for account in accounts[: 3 - read]:
        where = f"{R}@{account}"
        states[where] = (
            RegionState(R, account=account, error="AccessDenied: role refused")
            if unread == "the location"
            else replace(states[where], profiles=None, profiles_unread="AccessDenied")
        )
    [share] = states[R].shares
    unshare = Change(
        ChangeKind.UNSHARE, R, "", share_arn=share.arn, principals=tuple(sorted(accounts[:2]))
    )

    def verdict(fraction: float) -> Any:
        plan = Plan(changes=(unshare,))
        return check_plan(plan, states, set(states), MESH, Guard(fraction, 1), home_account=HOME)

    refused = verdict(0.5)
    assert not refused.allowed
    lost = "8 of the 12" if read else "4 of the 6"
    assert f"take {lost} rules our shared Profiles give VPCs" in refused.refusals[-1]
    assert verdict(0.7).allowed


def test_a_rule_not_ours_on_a_profile_vpc_is_a_conflict_for_its_domain_alone() -> None:
    """Our Profile on both VPCs of the hub; a rule not ours associated with the workload VPC
    for one hub domain wins there: one conflict for that VPC and domain. A rule not ours for a
    domain the Profile does not hold, one on its way out, and the same rule on a VPC that
    does not take our Profile are none."""
    hub_set, states = world(delivery="profile", vpc_delivery={HUB_VPC: "rules"})
    served = with_profile(states[R], {WORKLOAD: "COMPLETE"}, direct=False)
    held = {r.domain: r for r in served.rules}
    taken = sorted(held)[0]
    no_targets: frozenset[Any] = frozenset()
    theirs = [
        ObservedRule(
            f"rslvr-rr-theirs{n}", domain, kind, "theirs", "COMPLETE", None, no_targets, ""
        )
        for n, (domain, kind) in enumerate(
            [(taken, "FORWARD"), ("corp.example.com.", "FORWARD"), (sorted(held)[-1], "SYSTEM")],
            start=1,
        )
    ]
    associations = (
        ObservedAssociation("rslvr-rrassoc-1", "rslvr-rr-theirs1", WORKLOAD, "COMPLETE"),
        ObservedAssociation("rslvr-rrassoc-2", "rslvr-rr-theirs2", WORKLOAD, "COMPLETE"),
        ObservedAssociation("rslvr-rrassoc-3", "rslvr-rr-theirs3", WORKLOAD, "DELETING"),
        ObservedAssociation("rslvr-rrassoc-4", "rslvr-rr-theirs1", HUB_VPC, "COMPLETE"),
    )
    states[R] = replace(
        served,
        rules=served.rules + tuple(theirs),
        associations=served.associations + associations,
    )

    plan, profiles = plan_of(hub_set, states)

    [conflict] = [c for c in plan.conflicts if c.through_profile]
    assert (conflict.vpc_id, conflict.domain, conflict.their_rule_id) == (
        WORKLOAD,
        taken,
        "rslvr-rr-theirs1",
    )
    assert conflict.our_rule_id == held[taken].id
    assert "does not answer there" in str(conflict)
    assert profiles.conflicts == [conflict]
    # the hub VPC gets the rules directly: its conflict is the rule plan's, as ever
    assert [(c.vpc_id, c.through_profile) for c in plan.conflicts if c is not conflict] == [
        (HUB_VPC, False)
    ]


def test_back_to_rules_a_domain_a_rule_not_ours_answers_does_not_hold_the_profile() -> None:
    """Back to `rules`, the workload VPC has every hub domain directly but one, which a rule
    not ours associated with it answers (a conflict, as ever): our Profile's rule could not
    answer it there either, so the Profile leaves the VPC (before, it stayed for good)."""
    hub_set, states = world()
    state = with_profile(states[R], {HUB_VPC: "COMPLETE", WORKLOAD: "COMPLETE"})
    taken = sorted(r.domain for r in state.rules)[0]
    ours = {r.id for r in state.rules if r.domain == taken}
    no_targets: frozenset[Any] = frozenset()
    theirs = ObservedRule(
        "rslvr-rr-theirs", taken, "FORWARD", "t", "COMPLETE", None, no_targets, ""
    )
    kept = tuple(a for a in state.associations if not (a.vpc_id == WORKLOAD and a.rule_id in ours))
    mine = ObservedAssociation("rslvr-rrassoc-theirs", theirs.id, WORKLOAD, "COMPLETE")
    states[R] = replace(state, rules=(*state.rules, theirs), associations=(*kept, mine))

    plan, _ = plan_of(hub_set, states, "rules")

    leaving = [c.vpc_id for c in plan.changes if c.kind is ChangeKind.DISASSOCIATE_PROFILE]
    assert sorted(leaving) == sorted([HUB_VPC, WORKLOAD])
    assert [(c.vpc_id, c.domain, c.through_profile) for c in plan.conflicts] == [
        (WORKLOAD, taken, False)
    ]
