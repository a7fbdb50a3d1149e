"""The planner as tables of current / desired / expected changes, plus idempotency by simulation.

A row of `expected` is (kind, domain, vpc_id or None, rule_id or None); rule_id None on an
ASSOCIATE means "the rule created earlier in this plan".
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from resolver_mesh.desired import Desired, desired_rules, parse_hubs
from resolver_mesh.models import (
    Change,
    ChangeKind,
    DesiredRule,
    ObservedAssociation,
    ObservedRule,
    Plan,
    RegionState,
    Target,
    location,
)
from resolver_mesh.names import creator_request_ids, owned_target_region, rule_name
from resolver_mesh.plan import make_plan

MESH = "m"
R = "us-east-1"  # the Region being planned
T1, T2 = "us-east-2", "us-west-2"  # target hubs
OUT = "rslvr-out-0000000000000000a"
OTHER_OUT = "rslvr-out-0000000000000000b"
V1, V2, V3 = "vpc-00000000000000001", "vpc-00000000000000002", "vpc-00000000000000003"
D1 = "us-east-2.amazonaws.com."
D2 = "us-east-2.vpce.amazonaws.com."
D3 = "us-west-2.amazonaws.com."
IPS = {T1: ("10.1.0.10", "10.1.1.10"), T2: ("10.2.0.10", "10.2.1.10")}
NEW_IPS = ("10.1.0.99", "10.1.1.99")

CREATE, UPDATE = ChangeKind.CREATE_RULE.value, ChangeKind.UPDATE_RULE.value
ASSOC, DISASSOC = ChangeKind.ASSOCIATE.value, ChangeKind.DISASSOCIATE.value
DELETE = ChangeKind.DELETE_RULE.value


def targets(ips: tuple[str, ...]) -> frozenset[Target]:
    return frozenset(Target(ip) for ip in ips)


@dataclass(frozen=True)
class Row:
    """One observed rule and the VPCs it is associated with."""

    rule: ObservedRule
    vpcs: tuple[str, ...] = ()
    association_status: str = "COMPLETE"


def ours(
    rule_id: str,
    domain: str,
    target: str = T1,
    *,
    vpcs: tuple[str, ...] = (),
    ips: tuple[str, ...] | None = None,
    mesh: str = MESH,
    status: str = "COMPLETE",
    name: str | None = None,
    endpoint: str = OUT,
    rule_type: str = "FORWARD",
    association_status: str = "COMPLETE",
) -> Row:
    rule = ObservedRule(
        id=rule_id,
        domain=domain,
        rule_type=rule_type,
        name=rule_name(mesh, domain) if name is None else name,
        status=status,
        endpoint_id=endpoint,
        targets=targets(IPS[target] if ips is None else ips),
        creator_request_id=creator_request_ids(mesh, "r", rule_id, target)[-1],
    )
    return Row(rule, vpcs, association_status)


def theirs(
    rule_id: str,
    domain: str,
    *,
    vpcs: tuple[str, ...] = (),
    rule_type: str = "FORWARD",
    status: str = "COMPLETE",
) -> Row:
    rule = ObservedRule(
        id=rule_id,
        domain=domain,
        rule_type=rule_type,
        name="hand-made",
        status=status,
        endpoint_id=OTHER_OUT if rule_type == "FORWARD" else None,
        targets=targets(("192.168.0.2",)) if rule_type == "FORWARD" else frozenset(),
        creator_request_id="console-2024-01-01",
    )
    return Row(rule, vpcs)


def want(
    domain: str,
    target: str = T1,
    *,
    vpcs: tuple[str, ...] = (V1,),
    ips: tuple[str, ...] | None = None,
    no_targets: bool = False,
    name: str | None = None,
    endpoint: str = OUT,
    region: str = R,
) -> DesiredRule:
    return DesiredRule(
        region=region,
        domain=domain,
        target_region=target,
        endpoint_id=endpoint,
        name=rule_name(MESH, domain) if name is None else name,
        vpc_ids=frozenset(vpcs),
        targets=None if no_targets else targets(IPS[target] if ips is None else ips),
    )


def state(*rows: Row, region: str = R) -> RegionState:
    associations = tuple(
        ObservedAssociation(f"rslvr-rrassoc-{row.rule.id}-{vpc}", row.rule.id, vpc, status)
        for row in rows
        for vpc, status in ((v, row.association_status) for v in row.vpcs)
    )
    return RegionState(region, rules=tuple(row.rule for row in rows), associations=associations)


def rows_of(plan: Plan) -> list[tuple[str, str, str | None, str | None]]:
    return [(c.kind.value, c.domain, c.vpc_id, c.rule_id) for c in plan.changes]


@dataclass(frozen=True)
class Case:
    id: str
    current: list[Row]
    desired: list[DesiredRule]
    expected: list[tuple[str, str, str | None, str | None]]
    conflicts: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    protected: tuple[str, ...] = ()


CASES = [
    Case(
        "empty-creates-before-associates",
        current=[],
        desired=[want(D1, vpcs=(V1, V2)), want(D2, vpcs=(V1, V2))],
        expected=[
            (CREATE, D1, None, None),
            (CREATE, D2, None, None),
            (ASSOC, D1, V1, None),
            (ASSOC, D1, V2, None),
            (ASSOC, D2, V1, None),
            (ASSOC, D2, V2, None),
        ],
    ),
    Case(
        "converged-is-empty",
        current=[ours("r1", D1, vpcs=(V1, V2)), ours("r2", D3, T2, vpcs=(V1, V2))],
        desired=[want(D1, vpcs=(V1, V2)), want(D3, T2, vpcs=(V1, V2))],
        expected=[],
    ),
    Case(
        "targets-changed-update-in-place",
        current=[ours("r1", D1, vpcs=(V1,))],
        desired=[want(D1, ips=NEW_IPS)],
        expected=[(UPDATE, D1, None, "r1")],
    ),
    Case(
        "name-changed-update",
        current=[ours("r1", D1, vpcs=(V1,), name="old-name")],
        desired=[want(D1)],
        expected=[(UPDATE, D1, None, "r1")],
    ),
    Case(
        "endpoint-changed-update",
        current=[ours("r1", D1, vpcs=(V1,), endpoint=OTHER_OUT)],
        desired=[want(D1)],
        expected=[(UPDATE, D1, None, "r1")],
    ),
    Case(
        "vpc-added-associate",
        current=[ours("r1", D1, vpcs=(V1,))],
        desired=[want(D1, vpcs=(V1, V2))],
        expected=[(ASSOC, D1, V2, "r1")],
    ),
    Case(
        "vpc-removed-disassociate",
        current=[ours("r1", D1, vpcs=(V1, V2))],
        desired=[want(D1, vpcs=(V1,))],
        expected=[(DISASSOC, D1, V2, "r1")],
    ),
    Case(
        "unwanted-managed-rule-disassociated-then-deleted",
        current=[ours("r1", D1, vpcs=(V1, V2))],
        desired=[],
        expected=[(DISASSOC, D1, V1, "r1"), (DISASSOC, D1, V2, "r1"), (DELETE, D1, None, "r1")],
    ),
    Case(
        "mixed-plan-makes-before-it-breaks",
        current=[ours("r1", D1, vpcs=(V1,)), ours("r3", D3, T2, vpcs=(V1, V2))],
        desired=[want(D2), want(D3, T2, ips=NEW_IPS, vpcs=(V1,))],
        expected=[
            (CREATE, D2, None, None),
            (UPDATE, D3, None, "r3"),
            (ASSOC, D2, V1, None),
            (DISASSOC, D1, V1, "r1"),
            (DISASSOC, D3, V2, "r3"),
            (DELETE, D1, None, "r1"),
        ],
    ),
    Case(
        "unmanaged-rule-not-associated-is-untouched",
        current=[theirs("x1", D1)],
        desired=[want(D1)],
        expected=[(CREATE, D1, None, None), (ASSOC, D1, V1, None)],
    ),
    Case(
        "unmanaged-rule-in-the-vpc-is-a-conflict",
        current=[theirs("x1", D1, vpcs=(V1,)), ours("r1", D1, vpcs=())],
        desired=[want(D1, vpcs=(V1, V2))],
        expected=[(ASSOC, D1, V2, "r1")],
        conflicts=[(D1, V1, "x1", "r1")],
    ),
    Case(
        "unmanaged-rule-in-the-vpc-conflicts-with-a-rule-to-be-created",
        current=[theirs("x1", D1, vpcs=(V2,))],
        desired=[want(D1, vpcs=(V1, V2))],
        expected=[(CREATE, D1, None, None), (ASSOC, D1, V1, None)],
        conflicts=[(D1, V2, "x1", None)],
    ),
    Case(
        "unmanaged-unwanted-rules-are-never-deleted",
        current=[theirs("x1", D1, vpcs=(V1,)), theirs("x2", D2)],
        desired=[],
        expected=[],
    ),
    Case(
        "another-mesh-rule-is-never-changed",
        current=[
            ours("o1", D1, vpcs=(V3,), mesh="other", ips=NEW_IPS, name="other-name"),
            ours("o2", D2, vpcs=(V1,), mesh="other"),
            ours("o3", D3, T2, vpcs=(V2,), mesh="m-2"),  # "m-2" is not "m"
        ],
        desired=[want(D1)],
        expected=[(CREATE, D1, None, None), (ASSOC, D1, V1, None)],
    ),
    Case(
        "another-mesh-rule-in-the-vpc-is-a-conflict",
        current=[ours("o1", D1, vpcs=(V1,), mesh="other")],
        desired=[want(D1)],
        expected=[(CREATE, D1, None, None)],
        conflicts=[(D1, V1, "o1", None)],
    ),
    Case(
        "duplicates-keep-the-one-with-more-desired-vpcs",
        current=[ours("r-a", D1, vpcs=(V3,)), ours("r-b", D1, vpcs=(V1, V2))],
        desired=[want(D1, vpcs=(V1, V2, V3))],
        expected=[
            (DISASSOC, D1, V3, "r-a"),
            (ASSOC, D1, V3, "r-b"),
            (DELETE, D1, None, "r-a"),
        ],
    ),
    Case(
        "duplicates-tie-keeps-the-lowest-id",
        current=[ours("r-b", D1), ours("r-a", D1)],
        desired=[want(D1)],
        expected=[(ASSOC, D1, V1, "r-a"), (DELETE, D1, None, "r-b")],
    ),
    Case(
        "duplicate-in-an-unwanted-vpc-is-disassociated-late",
        current=[ours("r-a", D1, vpcs=(V1,)), ours("r-b", D1, vpcs=(V3,))],
        desired=[want(D1, vpcs=(V1, V2))],
        expected=[
            (ASSOC, D1, V2, "r-a"),
            (DISASSOC, D1, V3, "r-b"),
            (DELETE, D1, None, "r-b"),
        ],
    ),
    Case(
        "rule-of-another-target-region-is-replaced",
        current=[ours("r-old", D1, T2, vpcs=(V1, V2))],
        desired=[want(D1, T1, vpcs=(V1, V2))],
        expected=[
            (CREATE, D1, None, None),
            (DISASSOC, D1, V1, "r-old"),
            (ASSOC, D1, V1, None),
            (DISASSOC, D1, V2, "r-old"),
            (ASSOC, D1, V2, None),
            (DELETE, D1, None, "r-old"),
        ],
    ),
    Case(
        "deleting-rule-of-ours-is-ignored",
        current=[ours("r-gone", D1, status="DELETING"), ours("r-gone2", D2, status="DELETING")],
        desired=[want(D1)],
        expected=[(CREATE, D1, None, None), (ASSOC, D1, V1, None)],
    ),
    Case(
        "deleting-rule-of-theirs-is-no-conflict",
        current=[theirs("x1", D1, vpcs=(V1,), status="DELETING")],
        desired=[want(D1)],
        expected=[(CREATE, D1, None, None), (ASSOC, D1, V1, None)],
    ),
    Case(
        "deleting-association-is-ignored",
        current=[ours("r1", D1, vpcs=(V1,), association_status="DELETING")],
        desired=[want(D1)],
        expected=[(ASSOC, D1, V1, "r1")],
    ),
    Case(
        "deleting-association-of-unwanted-rule-is-not-disassociated-again",
        current=[ours("r1", D1, vpcs=(V1,), association_status="DELETING")],
        desired=[],
        expected=[(DELETE, D1, None, "r1")],
    ),
    Case(
        "rules-targeting-a-protected-region-are-kept",
        current=[ours("r1", D1, vpcs=(V1,)), ours("r2", D3, T2, vpcs=(V1,))],
        desired=[want(D3, T2)],
        expected=[],
        notes=["r1", T1],
        protected=(T1,),
    ),
    Case(
        "no-targets-and-no-rule-no-create",
        current=[],
        desired=[want(D1, no_targets=True)],
        expected=[],
        notes=[D1, T1],
    ),
    Case(
        "no-targets-keeps-existing-targets",
        current=[ours("r1", D1, vpcs=(V1,), ips=("10.1.0.1",))],
        desired=[want(D1, no_targets=True, vpcs=(V1, V2))],
        expected=[(ASSOC, D1, V2, "r1")],
    ),
    Case(
        "system-and-recursive-rules-are-not-ours",
        current=[
            ours("s1", D2, rule_type="SYSTEM", vpcs=(V2,)),
            ours("s2", "corp.example.com.", rule_type="SYSTEM"),
            theirs("rslvr-autodefined-rr-internet-resolver", ".", rule_type="RECURSIVE"),
            ours("s3", D1, rule_type="SYSTEM"),
        ],
        desired=[want(D1)],
        expected=[(CREATE, D1, None, None), (ASSOC, D1, V1, None)],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_plan_table(case: Case) -> None:
    current = state(*case.current)
    desired = Desired(rules=tuple(case.desired), protected_targets=frozenset(case.protected))

    plan = make_plan(MESH, desired, {R: current}, {R})

    assert rows_of(plan) == case.expected
    conflicts = [(c.domain, c.vpc_id, c.their_rule_id, c.our_rule_id) for c in plan.conflicts]
    assert conflicts == case.conflicts
    for words in case.notes:
        assert any(words in note for note in plan.notes), plan.notes
    if not case.notes:
        assert plan.notes == ()
    # Never a write against a rule that is not ours (not FORWARD, other owner or deleting).
    mine = {
        row.rule.id
        for row in case.current
        if row.rule.rule_type == "FORWARD"
        and row.rule.status != "DELETING"
        and owned_target_region(row.rule.creator_request_id, MESH)
    }
    assert {c.rule_id for c in plan.changes if c.rule_id} <= mine


def test_create_and_update_carry_the_rule_fields() -> None:
    desired = Desired(rules=(want(D1, ips=NEW_IPS, name="n1"), want(D3, T2)))
    current = state(ours("r3", D3, T2, vpcs=(V1,), ips=NEW_IPS))
    plan = make_plan(MESH, desired, {R: current}, {R})
    create, update = plan.changes[0], plan.changes[1]

    assert (create.kind, create.region, create.target_region) == (ChangeKind.CREATE_RULE, R, T1)
    assert create.name == "n1"
    assert create.endpoint_id == OUT
    assert create.targets == tuple(sorted(targets(NEW_IPS)))
    assert all(t.port == 53 for t in create.targets)
    assert update.kind is ChangeKind.UPDATE_RULE
    assert update.rule_id == "r3"
    assert update.targets == tuple(sorted(targets(IPS[T2])))
    assert "targets" in update.reason


@pytest.mark.parametrize(
    "row",
    [
        ours("r1", D1, vpcs=(V1,), name="old-name"),
        ours("r1", D1, vpcs=(V1,), endpoint=OTHER_OUT),
    ],
    ids=["name", "endpoint"],
)
def test_update_without_new_targets_never_sends_targets(row: Row) -> None:
    plan = make_plan(MESH, Desired(rules=(want(D1),)), {R: state(row)}, {R})
    (update,) = plan.changes
    assert update.kind is ChangeKind.UPDATE_RULE
    assert update.targets == ()
    assert update.name == rule_name(MESH, D1)
    assert update.endpoint_id == OUT


def test_update_with_no_targets_but_a_new_name_does_not_retarget() -> None:
    row = ours("r1", D1, vpcs=(V1,), name="old", ips=("10.1.0.1",))
    plan = make_plan(MESH, Desired(rules=(want(D1, no_targets=True),)), {R: state(row)}, {R})
    (update,) = plan.changes
    assert update.kind is ChangeKind.UPDATE_RULE
    assert update.targets == ()


def test_conflict_text_names_both_rules_and_the_vpc() -> None:
    current = state(theirs("x1", D1, vpcs=(V1,)), ours("r1", D1))
    plan = make_plan(MESH, Desired(rules=(want(D1),)), {R: current}, {R})
    (conflict,) = plan.conflicts
    text = str(conflict)
    for words in ("x1", "r1", V1, D1, R):
        assert words in text


# --- Regions: frozen, unreadable, out of scope ------------------------------------------------

R2 = "eu-west-1"


def _two_regions() -> tuple[Desired, dict[str, RegionState]]:
    desired = Desired(rules=(want(D1), want(D1, region=R2)))
    states = {R: state(ours("r-unwanted", D2, vpcs=(V1,))), R2: state(region=R2)}
    return desired, states


def test_frozen_region_changes_nothing() -> None:
    desired, states = _two_regions()
    desired = replace(desired, frozen_regions=frozenset({R}))
    plan = make_plan(MESH, desired, states, {R, R2})
    assert {c.region for c in plan.changes} == {R2}
    assert any(R in note for note in plan.notes)


@pytest.mark.parametrize("unreadable", ["error", "missing"])
def test_unreadable_region_changes_nothing(unreadable: str) -> None:
    desired, states = _two_regions()
    if unreadable == "error":
        states[R] = replace(states[R], error="ThrottlingException")
    else:
        del states[R]
    plan = make_plan(MESH, desired, states, {R, R2})
    assert {c.region for c in plan.changes} == {R2}
    assert any(R in note and "not read" in note for note in plan.notes)


def test_scope_limits_the_regions_changed() -> None:
    desired, states = _two_regions()
    assert {c.region for c in make_plan(MESH, desired, states, {R, R2}).changes} == {R, R2}
    assert {c.region for c in make_plan(MESH, desired, states, {R2}).changes} == {R2}
    assert make_plan(MESH, desired, states, set()).changes == ()


def test_regions_are_planned_in_name_order() -> None:
    desired, states = _two_regions()
    plan = make_plan(MESH, desired, states, {R, R2})
    regions = [c.region for c in plan.changes]
    assert regions == sorted(regions)


# --- a Region without a hub item: only our rules' trail leads there ------------------------

MEMBER_HERE = location(R, "222222222222")


def _trail_region(member: RegionState | None) -> tuple[Desired, dict[str, RegionState]]:
    """No hub item in R: the rules of ours there forward to hubs that stay (T1, T2)."""
    states = {R: state(ours("r-1", D1, vpcs=(V1,)), ours("r-2", D3, target=T2))}
    if member is not None:
        states[MEMBER_HERE] = member
    return Desired(rules=(), item_regions=frozenset({T1, T2})), states


@pytest.mark.parametrize("unread", ["error", "missing"])
def test_a_region_without_a_hub_item_keeps_our_rules_while_a_location_there_is_not_read(
    unread: str,
) -> None:
    member = RegionState(R, account="222222222222", error="ThrottlingException")
    desired, states = _trail_region(member if unread == "error" else None)
    plan = make_plan(MESH, desired, states, {R, MEMBER_HERE})
    assert plan.changes == ()
    assert plan.deferred_deletes == (R, R)  # the guard counts them as deleted by this plan
    kept = [n for n in plan.notes if n.startswith(f"{R}: kept") and MEMBER_HERE in n]
    assert [("r-1" in n, "r-2" in n) for n in kept] == [(True, False), (False, True)]

    desired, states = _trail_region(RegionState(R, account="222222222222"))  # read at last
    plan = make_plan(MESH, desired, states, {R, MEMBER_HERE})
    assert rows_of(plan) == [
        (DISASSOC, D1, V1, "r-1"),
        (DELETE, D1, None, "r-1"),
        (DELETE, D3, None, "r-2"),
    ]
    assert plan.deferred_deletes == ()


def test_the_note_of_a_rule_kept_names_a_few_of_the_locations_not_read() -> None:
    desired, states = _trail_region(None)
    unread = [location(R, f"22222222222{n}") for n in range(5)]
    plan = make_plan(MESH, desired, states, {R, *unread})
    kept = [n for n in plan.notes if n.startswith(f"{R}: kept")]
    assert len(kept) == 2
    assert all(", ".join(unread[:3]) + " and 2 more could not be read" in n for n in kept)
    assert not any(unread[3] in n for n in kept)


@pytest.mark.parametrize("why", ["hub item", "denied", "out of scope", "item Regions unknown"])
def test_an_unread_location_holds_back_nothing_where_every_pass_reads_it(why: str) -> None:
    """A Region with a hub item (enabled or not) is read in every account on every pass; a
    Region AWS denies by policy is never read; a location out of scope is not this pass's; a
    `Desired` that does not know the item Regions holds nothing back."""
    member = RegionState(R, account="222222222222", error="AccessDenied", denied=why == "denied")
    desired, states = _trail_region(member)
    if why == "hub item":
        desired = replace(desired, item_regions=frozenset({R, T1, T2}))
    if why == "item Regions unknown":
        desired = replace(desired, item_regions=None)
    scope = {R} if why == "out of scope" else {R, MEMBER_HERE}
    plan = make_plan(MESH, desired, states, scope)
    assert [c.kind.value for c in plan.changes] == [DISASSOC, DELETE, DELETE]
    assert plan.deferred_deletes == ()


# --- idempotency and convergence over random meshes ------------------------------------------

POOL = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "ap-south-1")
TEMPLATES = ("{region}.amazonaws.com", "{region}.vpce.amazonaws.com", "{region}.corp.example")


def random_world(
    rng: random.Random, world: Any, *, rich: bool = False
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Random hub items over part of POOL, and Region states (healthy, IPs may have moved).

    `rich`: the first two hubs are plain full-mesh members, so that there are rules.
    """
    regions = rng.sample(POOL, rng.randint(2, len(POOL)))
    items = []
    for n, region in enumerate(regions):
        fields: dict[str, Any] = {}
        if rich and n < 2:
            items.append(world.item(region))
            continue
        if rng.random() < 0.2:
            fields["outbound_endpoint_id"] = world.DROP
        if rng.random() < 0.4:
            count = rng.randint(1, 3)
            fields["vpc_ids"] = [f"vpc-{POOL.index(region):08x}{n:09x}" for n in range(count)]
        if rng.random() < 0.4:
            fields["domains"] = rng.sample(TEMPLATES, rng.randint(1, len(TEMPLATES)))
        if rng.random() < 0.2:
            fields["enabled"] = False
        if rng.random() < 0.3:
            others = [r for r in regions if r != region]
            fields["peers"] = rng.sample(others, rng.randint(0, len(others)))
        items.append(world.item(region, **fields))
    states = {}
    for region in POOL:
        ips = None
        if rng.random() < 0.3:
            ips = (f"10.200.{POOL.index(region)}.{rng.randint(1, 250)}",)
        states[region] = world.state(region, endpoints=world.endpoints(region, inbound_ips=ips))
    return items, states


def simulate(states: dict[str, RegionState], plan: Plan) -> dict[str, RegionState]:
    """Apply `plan` as AWS would, refusing what AWS refuses (RSLVR-00802, rule in use)."""
    rules = {r: {rule.id: rule for rule in s.rules} for r, s in states.items()}
    links = {r: {(a.rule_id, a.vpc_id) for a in s.associations} for r, s in states.items()}
    created: dict[tuple[str, str], str] = {}
    for n, change in enumerate(plan.changes):
        region_rules, region_links = rules[change.region], links[change.region]
        apply_change(n, change, region_rules, region_links, created)
    return {
        region: replace(
            states[region],
            rules=tuple(rules[region].values()),
            associations=tuple(
                ObservedAssociation(f"a-{rule_id}-{vpc}", rule_id, vpc, "COMPLETE")
                for rule_id, vpc in sorted(links[region])
            ),
        )
        for region in states
    }


def apply_change(
    n: int,
    change: Change,
    rules: dict[str, ObservedRule],
    links: set[tuple[str, str]],
    created: dict[tuple[str, str], str],
) -> None:
    kind = change.kind
    if kind is ChangeKind.CREATE_RULE:
        assert change.target_region
        assert change.name
        assert change.endpoint_id
        assert change.targets
        rule_id = f"rslvr-rr-new-{n}"
        created[(change.region, change.domain)] = rule_id
        rules[rule_id] = ObservedRule(
            rule_id,
            change.domain,
            "FORWARD",
            change.name,
            "COMPLETE",
            change.endpoint_id,
            frozenset(change.targets),
            creator_request_ids(MESH, change.region, change.domain, change.target_region)[0],
        )
    elif kind is ChangeKind.UPDATE_RULE:
        assert change.rule_id in rules
        old = rules[change.rule_id]
        rules[old.id] = replace(
            old,
            name=change.name or old.name,
            endpoint_id=change.endpoint_id or old.endpoint_id,
            targets=frozenset(change.targets) if change.targets else old.targets,
        )
    elif kind is ChangeKind.ASSOCIATE:
        assert change.vpc_id
        rule_id = change.rule_id or created[(change.region, change.domain)]
        same_domain = [
            r for r, v in links if v == change.vpc_id and rules[r].domain == change.domain
        ]
        assert not same_domain, f"RSLVR-00802: {change} while {same_domain} is associated"
        links.add((rule_id, change.vpc_id))
    elif kind is ChangeKind.DISASSOCIATE:
        assert change.rule_id
        assert change.vpc_id
        links.remove((change.rule_id, change.vpc_id))
    else:
        assert change.rule_id
        assert not [v for r, v in links if r == change.rule_id], f"in use: {change}"
        del rules[change.rule_id]


def assert_converged(desired: Desired, states: dict[str, RegionState]) -> None:
    for region, region_state in states.items():
        managed = [r for r in region_state.rules if owned_target_region(r.creator_request_id, MESH)]
        wanted = {r.domain: r for r in desired.rules if r.region == region}
        counts = Counter(r.domain for r in managed)
        assert counts == dict.fromkeys(wanted, 1), region
        for rule in managed:
            want_rule = wanted[rule.domain]
            assert owned_target_region(rule.creator_request_id, MESH) == want_rule.target_region
            assert rule.targets == want_rule.targets
            assert (rule.name, rule.endpoint_id) == (want_rule.name, want_rule.endpoint_id)
            vpcs = {a.vpc_id for a in region_state.associations if a.rule_id == rule.id}
            assert vpcs == want_rule.vpc_ids


def desire(items: list[dict[str, Any]], states: dict[str, RegionState]) -> Desired:
    desired = desired_rules(MESH, parse_hubs(items, POOL), states)
    assert desired.errors == ()
    return desired


@pytest.mark.parametrize("seed", range(6))
def test_converged_state_plans_nothing(world: Any, converged: Any, seed: int) -> None:
    items, states = random_world(random.Random(seed), world, rich=True)
    desired = desire(items, states)
    assert len(desired.rules) >= 2 * 2
    plan = make_plan(MESH, desired, converged(MESH, desired, states), POOL)
    assert plan.changes == ()
    assert plan.conflicts == ()


@pytest.mark.parametrize("seed", range(40))
def test_any_mesh_converges_in_one_plan_and_then_plans_nothing(
    world: Any, converged: Any, seed: int
) -> None:
    rng = random.Random(1000 + seed)
    before_items, before_states = random_world(rng, world, rich=True)
    after_items, after_states = random_world(rng, world)
    # Reality: what the old mesh left, plus hand-made rules that must survive untouched.
    reality = converged(MESH, desire(before_items, before_states), before_states)
    for region in POOL:
        extra = theirs(f"x-{region}", "legacy.example.", vpcs=(f"vpc-{seed:017x}",)).rule
        reality[region] = replace(reality[region], rules=(*reality[region].rules, extra))
    desired = desire(after_items, after_states)

    plan = make_plan(MESH, desired, reality, POOL)
    assert plan.conflicts == ()
    assert not [c for c in plan.changes if c.rule_id and c.rule_id.startswith("x-")]
    result = simulate(reality, plan)

    assert_converged(desired, result)
    for region in POOL:
        assert f"x-{region}" in {r.id for r in result[region].rules}
    again = make_plan(MESH, desired, result, POOL)
    assert again.changes == ()
