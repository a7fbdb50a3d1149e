"""check_plan: the mass-change guard (exact boundaries) and the per-Region quotas."""

from __future__ import annotations

from typing import Any

import pytest

from resolver_mesh.desired import desired_rules, parse_hubs
from resolver_mesh.models import (
    Change,
    ChangeKind,
    ObservedAssociation,
    ObservedRule,
    ObservedShare,
    Plan,
    RegionState,
    Target,
)
from resolver_mesh.names import creator_request_ids
from resolver_mesh.plan import make_plan
from resolver_mesh.safety import (
    ASSOCIATIONS_PER_REGION,
    RULES_PER_REGION,
    Guard,
    Verdict,
    check_plan,
)

MESH = "m"
R, R2 = "us-east-1", "us-east-2"
GUARD = Guard(max_fraction=0.5, min_rules=10)
TARGETS = (Target("10.0.0.1"),)


def rules(n: int, *, mesh: str | None = MESH, status: str = "COMPLETE") -> tuple[ObservedRule, ...]:
    """`n` FORWARD rules, ours (mesh), another mesh's, or unmanaged (mesh None)."""
    marker = creator_request_ids(mesh, R, "d.example", "eu-west-1")[-1] if mesh else "hand-made"
    return tuple(
        ObservedRule(
            id=f"rslvr-rr-{mesh}-{status}-{i}",
            domain=f"d{i}.example.",
            rule_type="FORWARD",
            name=f"n{i}",
            status=status,
            endpoint_id="rslvr-out-0000000000000000a",
            targets=frozenset(TARGETS),
            creator_request_id=marker,
        )
        for i in range(n)
    )


def changes(kind: ChangeKind, n: int, *, region: str = R, **fields: Any) -> list[Change]:
    return [Change(kind, region, f"c{i}.example.", **fields) for i in range(n)]


def verdict(
    managed: int,
    plan_changes: list[Change],
    *,
    force: bool = False,
    guard: Guard = GUARD,
) -> Verdict:
    states = {R: RegionState(R, rules=rules(managed))}
    return check_plan(Plan(changes=tuple(plan_changes)), states, {R}, MESH, guard, force=force)


DELETE = ChangeKind.DELETE_RULE
CREATE = ChangeKind.CREATE_RULE
UPDATE = ChangeKind.UPDATE_RULE


@pytest.mark.parametrize(
    ("managed", "plan_changes", "allowed", "words"),
    [
        pytest.param(10, changes(DELETE, 5), True, None, id="10-managed-5-deletes-exactly-half"),
        pytest.param(10, changes(DELETE, 6), False, "delete 6", id="10-managed-6-deletes"),
        pytest.param(9, changes(DELETE, 9), False, "every managed rule", id="9-of-9-deleted"),
        pytest.param(9, changes(DELETE, 8), True, None, id="9-managed-8-deletes-below-min"),
        pytest.param(1, changes(DELETE, 1), False, "every managed rule", id="1-of-1-deleted"),
        pytest.param(
            10,
            changes(DELETE, 3) + changes(UPDATE, 3, targets=TARGETS),
            False,
            "retarget 3",
            id="retargets-count-like-deletes",
        ),
        pytest.param(
            10, changes(UPDATE, 6, targets=TARGETS), False, "retarget 6", id="6-retargets"
        ),
        pytest.param(10, changes(UPDATE, 5, targets=TARGETS), True, None, id="5-retargets"),
        pytest.param(
            10,
            changes(DELETE, 5) + changes(UPDATE, 5, name="n"),
            True,
            None,
            id="renames-do-not-count",
        ),
        pytest.param(
            10, changes(DELETE, 5) + changes(CREATE, 100), True, None, id="creates-do-not-count"
        ),
        pytest.param(
            20,
            changes(DELETE, 20) + changes(CREATE, 20),
            False,
            "delete 20",
            id="replacing-everything-is-refused",
        ),
        pytest.param(0, [], True, None, id="nothing-managed-nothing-planned"),
        pytest.param(0, changes(CREATE, 10), True, None, id="first-reconcile-creates"),
        pytest.param(
            10,
            changes(ChangeKind.DISASSOCIATE, 10, vpc_id="vpc-1"),
            True,
            None,
            id="disassociations-alone-do-not-count",
        ),
    ],
)
def test_mass_change_boundaries(
    managed: int, plan_changes: list[Change], allowed: bool, words: str | None
) -> None:
    result = verdict(managed, plan_changes)
    assert result.allowed is allowed
    assert result.forced is False
    if words is None:
        assert result.refusals == ()
    else:
        assert len(result.refusals) == 1
        assert words in result.refusals[0]


def test_refusal_says_what_and_why() -> None:
    (refusal,) = verdict(10, changes(DELETE, 6)).refusals
    assert "6" in refusal
    assert "10" in refusal
    assert "50%" in refusal


def test_force_allows_but_keeps_the_refusals() -> None:
    result = verdict(10, changes(DELETE, 6), force=True)
    assert result.allowed
    assert result.forced is True
    assert len(result.refusals) == 1


def test_force_on_an_allowed_plan() -> None:
    result = verdict(10, changes(DELETE, 1), force=True)
    assert result.allowed
    assert result.refusals == ()


def test_only_our_live_rules_in_readable_scope_are_counted() -> None:
    states = {
        R: RegionState(
            R,
            rules=rules(10)
            + rules(30, mesh="other")
            + rules(30, mesh=None)
            + rules(30, status="DELETING"),
        ),
        R2: RegionState(R2, rules=rules(10)),
        "eu-west-1": RegionState("eu-west-1", rules=rules(50), error="AccessDenied"),
    }
    plan = Plan(changes=tuple(changes(DELETE, 6)))
    everywhere = {R, R2, "eu-west-1"}
    assert not check_plan(plan, states, {R}, MESH, GUARD).allowed  # 6 of 10
    assert check_plan(plan, states, everywhere, MESH, GUARD).allowed  # 6 of 20


@pytest.mark.parametrize("mesh_id", ["m", "other"])
def test_another_mesh_does_not_count_our_rules(mesh_id: str) -> None:
    states = {R: RegionState(R, rules=rules(10))}
    plan = Plan(changes=tuple(changes(DELETE, 6)))
    assert check_plan(plan, states, {R}, mesh_id, GUARD).allowed is (mesh_id != MESH)


# --- the default guard against realistic meshes ----------------------------------------------

MESH_REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1")


def _remove_hubs(
    world: Any,
    converged: Any,
    hubs: int,
    keep: int,
    answer_only: tuple[str, ...] = (),
    extra_domains: dict[str, list[str]] | None = None,
) -> tuple[Plan, Verdict]:
    """A converged mesh of `hubs` hubs keeps only the first `keep`, checked like the engine."""
    regions = MESH_REGIONS[:hubs]
    states = {r: world.state(r) for r in regions}

    def item(region: str) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if region in answer_only:
            fields["outbound_endpoint_id"] = world.DROP
        if extra_domains and region in extra_domains:
            fields["domains"] = extra_domains[region]
        return world.item(region, **fields)

    before = desired_rules(MESH, parse_hubs([item(r) for r in regions], None), states)
    reality = converged(MESH, before, states)
    after_hubs = parse_hubs([item(r) for r in regions[:keep]], None)
    after = desired_rules(MESH, after_hubs, states)
    plan = make_plan(MESH, after, reality, set(regions))
    verdict = check_plan(plan, reality, set(regions), MESH, Guard(), staying=after_hubs.enabled)
    return plan, verdict


@pytest.mark.parametrize(("hubs", "keep", "allowed"), [(5, 2, False), (5, 4, True), (3, 2, True)])
def test_a_pass_over_one_region_is_judged_as_the_whole_mesh_would_be(
    world: Any, converged: Any, hubs: int, keep: int, allowed: bool
) -> None:
    """A triggered pass reads and plans one Region: its slice of a mesh refused as a whole
    (3 hubs of 5 removed: 12 of the 16 rules of the Regions that stay) is refused too, though
    it holds fewer rules than `min_rules` (8); a change allowed as a whole is allowed there."""
    regions = MESH_REGIONS[:hubs]
    states = {r: world.state(r) for r in regions}
    before = desired_rules(MESH, parse_hubs([world.item(r) for r in regions], None), states)
    reality = converged(MESH, before, states)
    after_hubs = parse_hubs([world.item(r) for r in regions[:keep]], None)
    after = desired_rules(MESH, after_hubs, states)
    whole = make_plan(MESH, after, reality, set(regions))
    judged = check_plan(whole, reality, set(regions), MESH, Guard(), staying=after_hubs.enabled)
    assert judged.allowed is allowed
    for region in regions[:keep]:
        plan = make_plan(MESH, after, reality, {region})
        assert plan.counts()["delete_rule"]
        kept_rules = len(reality[region].rules)
        assert kept_rules < Guard().min_rules
        verdict = check_plan(
            plan, reality, {region}, MESH, Guard(), staying=after_hubs.enabled, partial=True
        )
        assert verdict.allowed is allowed
        if not allowed:
            assert "(a pass over some Regions, judged whatever its size)" in verdict.refusals[0]
        unjudged = check_plan(plan, reality, {region}, MESH, Guard(), staying=after_hubs.enabled)
        assert unjudged.allowed  # what a slice of the mesh got through before


def test_removing_one_hub_of_four_is_allowed(world: Any, converged: Any) -> None:
    plan, result = _remove_hubs(world, converged, hubs=4, keep=3)
    assert plan.counts()["delete_rule"] == 12  # of 24 managed rules, 6 in Regions that stay
    assert result.allowed
    assert result.refusals == ()


def test_removing_one_hub_of_three_is_allowed(world: Any, converged: Any) -> None:
    plan, result = _remove_hubs(world, converged, hubs=3, keep=2)
    assert plan.counts()["delete_rule"] == 8  # of 12; 4 of the 8 in the Regions that stay
    assert result.allowed


def test_removing_one_hub_of_a_mesh_with_an_answer_only_hub_is_allowed(
    world: Any, converged: Any
) -> None:
    plan, result = _remove_hubs(world, converged, hubs=4, keep=3, answer_only=("us-west-2",))
    assert plan.counts()["delete_rule"] == 10  # of 18 managed rules
    assert result.allowed


def test_removing_a_hub_with_three_domains_of_four_is_allowed(world: Any, converged: Any) -> None:
    domains = {"eu-west-1": ["{region}.amazonaws.com", "{region}.vpce.amazonaws.com", "x.{region}"]}
    plan, result = _remove_hubs(world, converged, hubs=4, keep=3, extra_domains=domains)
    assert plan.counts()["delete_rule"] == 15  # of 27 managed rules
    assert result.allowed


def test_removing_three_hubs_of_five_is_refused(world: Any, converged: Any) -> None:
    _, result = _remove_hubs(world, converged, hubs=5, keep=2)
    # The two Regions that stay hold 16 rules and would lose 12 of them.
    assert not result.allowed
    assert "delete 12 and retarget 0 of the 16" in result.refusals[0]


def test_without_staying_regions_every_region_counts(world: Any, converged: Any) -> None:
    regions = MESH_REGIONS[:3]
    states = {r: world.state(r) for r in regions}
    before = desired_rules(MESH, parse_hubs([world.item(r) for r in regions], None), states)
    reality = converged(MESH, before, states)
    after = desired_rules(MESH, parse_hubs([world.item(r) for r in regions[:2]], None), states)
    plan = make_plan(MESH, after, reality, set(regions))
    result = check_plan(plan, reality, set(regions), MESH, Guard())
    assert not result.allowed  # 8 of 12 when every Region counts
    assert "delete 8" in result.refusals[0]


def test_an_empty_table_never_reads_as_delete_everything(world: Any, converged: Any) -> None:
    plan, result = _remove_hubs(world, converged, hubs=2, keep=0)
    assert plan.counts()["delete_rule"] == 4
    assert not result.allowed
    assert "every managed rule (4)" in result.refusals[0]


# --- quotas ----------------------------------------------------------------------------------


def quota_verdict(
    existing_rules: int,
    existing_associations: int,
    plan_changes: list[Change],
    *,
    force: bool = False,
    extra: tuple[ObservedRule, ...] = (),
) -> Verdict:
    observed = rules(existing_rules, mesh=None) + extra
    associations = tuple(
        ObservedAssociation(f"a{i}", observed[i % len(observed)].id, f"vpc-{i}", "COMPLETE")
        for i in range(existing_associations)
    )
    states = {
        R: RegionState(R, rules=observed, associations=associations),
        R2: RegionState(R2),
    }
    plan = Plan(changes=tuple(plan_changes))
    return check_plan(plan, states, {R, R2}, MESH, GUARD, force=force)


@pytest.mark.parametrize(
    ("existing", "plan_changes", "refused"),
    [
        pytest.param(994, changes(CREATE, 6), False, id="exactly-1000"),
        pytest.param(995, changes(CREATE, 6), True, id="1001"),
        pytest.param(995, changes(CREATE, 6) + changes(DELETE, 1), False, id="delete-makes-room"),
        pytest.param(1000, changes(CREATE, 1, region=R2), False, id="other-region-has-room"),
    ],
)
def test_rules_per_region_quota(existing: int, plan_changes: list[Change], refused: bool) -> None:
    result = quota_verdict(existing, 1, plan_changes)
    assert bool(result.refusals) is refused
    assert result.allowed is not refused
    if refused:
        (refusal,) = result.refusals
        assert refusal.startswith(f"{R}:")
        assert str(RULES_PER_REGION) in refusal


def test_rules_being_deleted_do_not_count_against_the_quota() -> None:
    result = quota_verdict(995, 1, changes(CREATE, 5), extra=rules(10, status="DELETING"))
    assert result.refusals == ()


def test_rule_quota_is_not_lifted_by_force() -> None:
    result = quota_verdict(995, 1, changes(CREATE, 6), force=True)
    assert not result.allowed
    assert result.forced is False
    assert any(R in r and "quota" in r for r in result.refusals)


@pytest.mark.parametrize(
    ("existing", "plan_changes", "refused"),
    [
        pytest.param(1997, changes(ChangeKind.ASSOCIATE, 3, vpc_id="v"), False, id="exactly-2000"),
        pytest.param(1998, changes(ChangeKind.ASSOCIATE, 3, vpc_id="v"), True, id="2001"),
        pytest.param(
            1998,
            changes(ChangeKind.ASSOCIATE, 3, vpc_id="v")
            + changes(ChangeKind.DISASSOCIATE, 1, vpc_id="v"),
            False,
            id="disassociation-makes-room",
        ),
    ],
)
def test_associations_per_region_quota(
    existing: int, plan_changes: list[Change], refused: bool
) -> None:
    result = quota_verdict(10, existing, plan_changes)
    assert bool(result.refusals) is refused
    if refused:
        (refusal,) = result.refusals
        assert refusal.startswith(f"{R}:")
        assert str(ASSOCIATIONS_PER_REGION) in refusal
        forced = quota_verdict(10, existing, plan_changes, force=True)
        assert not forced.allowed
        assert forced.forced is False


@pytest.mark.parametrize(
    ("managed", "deferred", "deleted", "allowed", "words"),
    [
        pytest.param(4, 4, 0, False, "every managed rule (4)", id="all-4-deferred"),
        pytest.param(4, 2, 2, False, "every managed rule (4)", id="2-deferred-2-deleted"),
        pytest.param(4, 3, 0, True, None, id="3-of-4-deferred-below-min"),
        pytest.param(10, 6, 0, False, "delete 6", id="6-of-10-deferred"),
        pytest.param(10, 3, 2, True, None, id="5-of-10-exactly-half"),
        pytest.param(10, 3, 3, False, "delete 6", id="3-deferred-3-deleted"),
    ],
)
def test_rules_kept_until_receivers_let_go_count_as_deleted_by_the_first_pass(
    managed: int, deferred: int, deleted: int, allowed: bool, words: str | None
) -> None:
    """A rule shared with other accounts is retired in two passes: first off their VPCs (which
    the guard does not count as deletions), then deleted. The first pass is judged with the
    deletions it begins, so that a plan the guard refuses is never half applied."""
    states = {R: RegionState(R, rules=rules(managed))}
    plan = Plan(
        changes=tuple(changes(DELETE, deleted)),
        deferred_deletes=(R,) * deferred,
    )
    result = check_plan(plan, states, {R}, MESH, GUARD)
    assert result.allowed is allowed
    if words is None:
        assert result.refusals == ()
    else:
        (refusal,) = result.refusals
        assert words in refusal


# --- shared rules withdrawn from some of the accounts that use them ---------------------------

A1, A2, A3 = "111111111111", "222222222222", "333333333333"
SHARE_ARN = "arn:aws:ram:us-east-1:123456789012:resource-share/s"


def shared_with(*accounts: str, managed: int = 12) -> dict[str, RegionState]:
    """The hub location: `managed` rules of ours, all in one share with `accounts`."""
    ours = rules(managed)
    share = ObservedShare(
        SHARE_ARN,
        "resolver-mesh-m",
        resources=frozenset(f"arn:aws:route53resolver:{R}:1:resolver-rule/{r.id}" for r in ours),
        principals=frozenset(accounts),
    )
    return {R: RegionState(R, rules=ours, shares=(share,))}


def unshare(states: dict[str, RegionState], *accounts: str) -> Change:
    """The share stops naming `accounts` (as the plan asks RAM: the principals alone; with
    resources too, DisassociateResourceShare would take those out for every account)."""
    return Change(ChangeKind.UNSHARE, R, "", share_arn=SHARE_ARN, principals=accounts)


def taken_off(states: dict[str, RegionState], account: str) -> list[Change]:
    """A receiving account's VPC lets go of every shared rule."""
    return [
        Change(
            ChangeKind.DISASSOCIATE,
            R,
            r.domain,
            rule_id=r.id,
            vpc_id="vpc-r",
            account=account,
            owner="123456789012",
        )
        for r in states[R].rules
    ]


def guard_on(states: dict[str, RegionState], plan_changes: list[Change], guard: Guard) -> Verdict:
    return check_plan(Plan(changes=tuple(plan_changes)), states, {R}, MESH, guard)


@pytest.mark.parametrize(
    ("receivers", "leaving", "fraction", "allowed"),
    [
        pytest.param(3, 1, 0.5, True, id="1-of-3-accounts-counts-a-third"),
        pytest.param(3, 1, 1 / 3, True, id="1-of-3-exactly-a-third-passes"),
        pytest.param(3, 1, 0.3, False, id="1-of-3-over-0.3"),
        pytest.param(3, 2, 0.5, False, id="2-of-3-over-half"),
        pytest.param(2, 1, 0.5, True, id="1-of-2-exactly-half-passes"),
        pytest.param(1, 1, 0.99, False, id="the-only-account-counts-every-rule"),
    ],
)
def test_a_rule_withdrawn_from_some_accounts_counts_for_their_part(
    receivers: int, leaving: int, fraction: float, allowed: bool
) -> None:
    accounts = (A1, A2, A3)[:receivers]
    states = shared_with(*accounts)
    plan_changes = [unshare(states, *accounts[:leaving])]
    for account in accounts[:leaving]:
        plan_changes += taken_off(states, account)  # and off their VPCs: the same rules
    result = guard_on(states, plan_changes, Guard(fraction, 10))
    assert result.allowed is allowed
    if not allowed:
        worth = round(12 * leaving / receivers, 1)
        assert f"stop sharing {worth:g} of the 12 managed rules" in result.refusals[0]


def test_a_rule_whose_receivers_are_unknown_counts_whole() -> None:
    states = {R: RegionState(R, rules=rules(12))}  # no share read: who else uses them is unknown
    taken = [
        Change(
            ChangeKind.DISASSOCIATE, R, r.domain, rule_id=r.id, vpc_id="v", account=A1, owner="o"
        )
        for r in states[R].rules[:7]
    ]
    [refusal] = guard_on(states, taken, GUARD).refusals
    assert "stop sharing 7 of the 12" in refusal
    assert guard_on(states, taken[:6], GUARD).allowed


def test_deleting_a_share_withdraws_its_rules_from_every_account() -> None:
    states = shared_with(A1, A2, A3)
    [share] = states[R].shares
    deleted = Change(
        ChangeKind.DELETE_SHARE, R, "", share_arn=SHARE_ARN, resources=tuple(share.resources)
    )
    [refusal] = guard_on(states, [deleted], GUARD).refusals
    assert "stop sharing 12 of the 12" in refusal
