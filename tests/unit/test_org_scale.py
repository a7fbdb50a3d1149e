"""The pure steps at organisation scale: planning and checking read each desired rule, share
and change a fixed number of times, whatever the number of locations (counted, not timed)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from resolver_mesh import profiles, reconcile
from resolver_mesh.desired import Desired, Joined, JoinedVpc, desired_rules, parse_hubs
from resolver_mesh.models import (
    Change,
    ChangeKind,
    Plan,
    RegionState,
    location,
    split_location,
)
from resolver_mesh.plan import _RegionPlan, make_plan
from resolver_mesh.safety import Guard, check_plan

from .builders import HOME, converged, hub_item, region_state

MESH = "mesh"
HUBS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1")
READS_PER_ITEM = 6  # passes a step may make over one collection (check_plan makes 5)


class Counted(tuple[Any, ...]):
    """A tuple that counts the items handed out by every iteration over it."""

    visits: int

    def __new__(cls, items: Any) -> Counted:
        made = super().__new__(cls, items)
        made.visits = 0
        return made

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            self.visits += 1
            yield item


def account(index: int) -> str:
    return f"{100_000_000_001 + index:012d}"


def org(accounts: int) -> tuple[Desired, dict[str, RegionState]]:
    """Four hubs of the home account, converged, and `accounts` member accounts with one
    shared VPC each (round robin over the hubs)."""
    shared: dict[str, list[dict[str, str]]] = {region: [] for region in HUBS}
    states = {region: region_state(region) for region in HUBS}
    for index in range(accounts):
        member, region = account(index), HUBS[index % len(HUBS)]
        role = f"arn:aws:iam::{member}:role/resolver-mesh-member-{MESH}"
        shared[region].append(
            {"vpc_id": f"vpc-{index:017x}", "account_id": member, "role_arn": role}
        )
        states[location(region, member)] = RegionState(region, account=member)
    items = [hub_item(region, shared_vpcs=shared[region]) for region in HUBS]
    hub_set = parse_hubs(items, set(HUBS), HOME)
    assert not hub_set.errors
    desired = desired_rules(MESH, hub_set, states)
    return desired, converged(MESH, desired, states)


@pytest.mark.parametrize("accounts", [40, 160])
def test_make_plan_reads_each_desired_rule_and_share_a_fixed_number_of_times(
    accounts: int,
) -> None:
    desired, states = org(accounts)
    rules, shares = Counted(desired.rules), Counted(desired.shares)
    counted = replace(desired, rules=rules, shares=shares)
    plan = make_plan(MESH, counted, states, set(states), home_account=HOME)
    # the same plan as from plain tuples: one share created per hub, for its members, who
    # follow it in the same apply (accept, then each hub rule on their VPC)
    assert plan == make_plan(MESH, desired, states, set(states), home_account=HOME)
    kinds = Counter(c.kind for c in plan.changes)
    peer_domains = 2 * (len(HUBS) - 1)
    assert kinds == {
        ChangeKind.CREATE_SHARE: len(HUBS),
        ChangeKind.ACCEPT_SHARE: accounts,
        ChangeKind.ASSOCIATE: accounts * peer_domains,
    }
    assert all(c.follows for c in plan.changes if c.kind is not ChangeKind.CREATE_SHARE)
    assert plan.followed == tuple(sorted(HUBS))
    assert len(states) == accounts + len(HUBS)
    assert len(shares) == accounts
    assert 0 < rules.visits <= READS_PER_ITEM * len(rules)
    assert 0 < shares.visits <= READS_PER_ITEM * len(shares)


@pytest.mark.parametrize("accounts", [40, 160])
def test_check_plan_reads_each_change_a_fixed_number_of_times(accounts: int) -> None:
    _, states = org(accounts)
    members = [where for where, state in states.items() if state.account]
    changes = Counted(
        Change(
            ChangeKind.ASSOCIATE,
            states[where].region,
            f"d{n}.example.com.",
            rule_id=f"rslvr-rr-{n}",
            vpc_id="vpc-0000000000000aaaa",
            account=states[where].account,
        )
        for where in members
        for n in range(6)
    )
    verdict = check_plan(Plan(changes=changes), states, set(states), MESH, Guard())
    assert verdict.allowed
    assert 0 < changes.visits <= READS_PER_ITEM * len(changes)


def shared_org(accounts: int, **shared_fields: Any) -> Any:
    """The hubs of `org`, their items parsed, each member's VPC with `shared_fields`."""
    shared: dict[str, list[dict[str, str]]] = {region: [] for region in HUBS}
    for index in range(accounts):
        member = account(index)
        role = f"arn:aws:iam::{member}:role/resolver-mesh-member-{MESH}"
        shared[HUBS[index % len(HUBS)]].append(
            {"vpc_id": f"vpc-{index:017x}", "account_id": member, "role_arn": role} | shared_fields
        )
    items = [hub_item(region, shared_vpcs=shared[region]) for region in HUBS]
    return parse_hubs(items, set(HUBS), HOME)


@pytest.mark.parametrize("accounts", [40, 160])
def test_where_profiles_deliver_is_worked_out_once_per_hub_and_pass(
    accounts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    counted = profiles.shared_deliveries

    def counting(hub: Any, default: Any, joined: Any = None) -> Any:
        calls.append(hub.region)
        return counted(hub, default, joined)

    monkeypatch.setattr(reconcile, "shared_deliveries", counting)
    reads = reconcile._Reads.of(shared_org(accounts), "profile")
    assert sorted(calls) == sorted(HUBS)  # not once per receiving location
    assert len(reads.profile_deliveries) == len(HUBS) + accounts


def test_profiles_deliver_at_the_hub_and_where_its_shared_vpcs_take_them() -> None:
    hub_set = shared_org(8)
    hubs = {location(region, "") for region in HUBS}
    assert not reconcile._Reads.of(hub_set, "rules").profile_deliveries
    everywhere = reconcile._Reads.of(hub_set, "profile")
    assert everywhere.profile_deliveries == hubs | everywhere.share_receivers
    by_vpc = reconcile._Reads.of(shared_org(8, delivery="profile"), "rules")
    assert by_vpc.profile_deliveries == everywhere.profile_deliveries  # each VPC asks for it
    items = [hub_item(region) for region in HUBS[1:]]
    member, vpc = account(0), "vpc-0000000000000000a"
    role = f"arn:aws:iam::{member}:role/resolver-mesh-member-{MESH}"
    items.append(
        hub_item(
            HUBS[0],
            shared_vpcs=[
                {"vpc_id": vpc, "account_id": member, "role_arn": role, "delivery": "profile"},
                {
                    "vpc_id": "vpc-0000000000000000b",
                    "account_id": account(1),
                    "role_arn": role.replace(member, account(1)),
                },
            ],
        )
    )
    parsed = parse_hubs(items, set(HUBS), HOME)
    assert not parsed.errors
    one = reconcile._Reads.of(parsed, "rules")
    assert one.profile_deliveries == {location(HUBS[0], ""), location(HUBS[0], member)}


def read_in_full_before(hub_set: Any, default: Any, where: str, receivers: Any) -> bool:
    """Where a location read its Profiles in full before `_Reads.profile_deliveries`: asked of
    each location, with its Region's hub (the reference the set must equal)."""
    region, account = split_location(where)
    hub = hub_set.hubs.get(region)
    if hub is None or not hub.enabled:
        return False
    shared = profiles.shared_deliveries(hub, default)
    if hub.location == where and (
        "profile" in profiles.vpc_deliveries(hub, default).values()
        or any("profile" in modes.values() for modes in shared.values())
    ):
        return True
    return where in receivers and (
        (hub.delivery or default) == "profile" or "profile" in shared.get(account, {}).values()
    )


@pytest.mark.parametrize("default", ["rules", "profile"])
def test_where_profiles_deliver_is_what_each_location_found_before(default: Any) -> None:
    """Hubs that deliver by Profile, by rules, through one shared VPC or one own VPC, a
    disabled one, and receivers listed and joined by tag, in every Region."""
    role = "arn:aws:iam::{}:role/resolver-mesh-member-" + MESH
    member, other = account(0), account(1)

    def shared(vpc: str, who: str, **fields: Any) -> dict[str, Any]:
        return {"vpc_id": vpc, "account_id": who, "role_arn": role.format(who)} | fields

    items = [
        hub_item(
            HUBS[0], delivery="profile", shared_vpcs=[shared("vpc-0000000000000000a", member)]
        ),
        hub_item(
            HUBS[1],
            delivery="rules",
            shared_vpcs=[
                shared("vpc-0000000000000000b", member, delivery="profile"),
                shared("vpc-0000000000000000c", other),
            ],
        ),
        hub_item(HUBS[2], enabled=False, shared_vpcs=[shared("vpc-0000000000000000d", member)]),
        hub_item(
            HUBS[3],
            vpc_ids=["vpc-0000000000000000e"],
            vpc_delivery={"vpc-0000000000000000e": "profile"},
        ),
    ]
    hub_set = parse_hubs(items, set(HUBS), HOME)
    assert not hub_set.errors
    joined = Joined(
        vpcs=tuple(
            JoinedVpc(region, other, f"vpc-{index:017x}", shared=True)
            for index, region in enumerate(HUBS)
        )
    )
    reads = reconcile._Reads.of(hub_set, default, joined)
    every = {location(r, a) for r in HUBS for a in ("", member, other, account(2))}
    found = {
        where
        for where in every
        if read_in_full_before(hub_set, default, where, reads.share_receivers)
    }
    assert reads.profile_deliveries == found
    assert location(HUBS[0], other) in found  # joined by tag where the hub delivers by Profile
    assert location(HUBS[1], member) in found  # a shared VPC that asks for it
    assert not {location(HUBS[2], a) for a in ("", member, other)} & found  # disabled


class _CountedChange(Change):
    """A change that counts how often its domain is read."""

    reads: Counter[int] = Counter()

    def __getattribute__(self, name: str) -> Any:
        if name == "domain":
            _CountedChange.reads[id(self)] += 1
        return super().__getattribute__(name)


@pytest.mark.parametrize("size", [50, 400])
def test_a_locations_changes_are_ordered_reading_each_disassociation_a_fixed_number_of_times(
    size: int,
) -> None:
    """Every other association takes a VPC another rule of ours holds for its domain: that
    disassociation moves right before it; the one that frees nothing comes after them all."""

    def change(kind: ChangeKind, index: int, rule: str) -> Change:
        return _CountedChange(
            kind, "us-east-1", f"d{index}.example.", rule_id=rule, vpc_id=f"vpc-{index:017x}"
        )

    regional = _RegionPlan()
    regional.associations = [change(ChangeKind.ASSOCIATE, i, "rslvr-rr-new") for i in range(size)]
    # for the VPCs size, size - 2, ..., 2: all but the first free a VPC for an association
    regional.disassociations = [
        change(ChangeKind.DISASSOCIATE, i, "rslvr-rr-old") for i in range(size, 0, -2)
    ]
    _CountedChange.reads.clear()
    ordered = regional.changes()
    reads = max(_CountedChange.reads[id(d)] for d in regional.disassociations)

    assert reads <= 3  # grouped once, looked up once: not once per association
    lone, *freeing = regional.disassociations
    assert ordered[-1] is lone
    before = {ordered[at + 1].vpc_id: item for at, item in enumerate(ordered[:-1])}
    assert all(before[d.vpc_id] is d for d in freeing)
    assert [c for c in ordered if c.kind is ChangeKind.ASSOCIATE] == regional.associations
    assert len(ordered) == size + len(regional.disassociations)
