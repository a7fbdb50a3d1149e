"""desired_rules: which rules should exist, given hub items and the hubs' observed endpoints."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from resolver_mesh.desired import Desired, desired_rules, parse_hubs
from resolver_mesh.models import ObservedEndpoint, RegionState, Target
from resolver_mesh.names import rule_name

MESH = "test-mesh"
A, B, C = "us-east-1", "us-east-2", "us-west-2"
REGIONS = (A, B, C)


def desire(items: list[dict[str, Any]], states: dict[str, RegionState]) -> Desired:
    hub_set = parse_hubs(items, None)
    return desired_rules(MESH, hub_set, states)


def healthy(world: Any, *regions: str) -> dict[str, RegionState]:
    return {region: world.state(region) for region in regions or REGIONS}


def pairs(desired: Desired) -> Counter[tuple[str, str]]:
    """How many rules each (source Region, target Region) pair gets."""
    return Counter((rule.region, rule.target_region) for rule in desired.rules)


def test_full_mesh_of_three(world: Any) -> None:
    items = [world.item(region) for region in REGIONS]
    hub_set = parse_hubs(items, None)
    desired = desired_rules(MESH, hub_set, healthy(world))

    assert len(desired.rules) == 3 * 2 * 2
    assert len({(rule.region, rule.domain) for rule in desired.rules}) == 12
    assert desired.errors == ()
    assert desired.degraded == ()
    assert desired.frozen_regions == frozenset()
    assert desired.protected_targets == frozenset()
    for rule in desired.rules:
        source, target = hub_set.hubs[rule.region], hub_set.hubs[rule.target_region]
        assert rule.target_region != rule.region
        assert rule.domain in target.domain_names
        assert rule.domain not in source.domain_names
        assert rule.endpoint_id == world.ids(rule.region).outbound
        assert rule.name == rule_name(MESH, rule.domain)
        assert rule.vpc_ids == {world.ids(rule.region).vpc}
        assert rule.targets == {Target(ip, 53) for ip in world.ids(rule.target_region).ips}


def test_a_region_never_gets_rules_for_its_own_custom_domains(world: Any) -> None:
    items = [
        world.item(A, domains=["corp.example.com", "{region}.amazonaws.com"]),
        world.item(B),
        world.item(C),
    ]
    desired = desire(items, healthy(world))
    corp = [rule.region for rule in desired.rules if rule.domain == "corp.example.com."]
    assert sorted(corp) == [B, C]
    assert len(desired.rules) == 12


def test_peers_restrict_the_targets(world: Any) -> None:
    items = [world.item(A, peers=[B]), world.item(B), world.item(C)]
    desired = desire(items, healthy(world))
    assert pairs(desired) == {(A, B): 2, (B, A): 2, (B, C): 2, (C, A): 2, (C, B): 2}


def test_empty_peers_mean_no_rules_in_that_region(world: Any) -> None:
    items = [world.item(A, peers=[]), world.item(B), world.item(C)]
    desired = desire(items, healthy(world))
    assert {rule.region for rule in desired.rules} == {B, C}
    assert pairs(desired)[(B, A)] == 2


def test_hub_without_outbound_gets_no_rules_but_is_a_target(world: Any) -> None:
    items = [world.item(A), world.item(B), world.item(C, outbound_endpoint_id=world.DROP)]
    desired = desire(items, healthy(world))
    assert pairs(desired) == {(A, B): 2, (A, C): 2, (B, A): 2, (B, C): 2}
    assert desired.errors == ()


def test_disabled_hub_is_neither_source_nor_target(world: Any) -> None:
    items = [world.item(A), world.item(B), world.item(C, enabled=False)]
    # A disabled hub is as if absent: its Region is not even read.
    desired = desire(items, healthy(world, A, B))
    assert pairs(desired) == {(A, B): 2, (B, A): 2}
    assert desired.degraded == ()
    assert desired.frozen_regions == frozenset()
    assert desired.protected_targets == frozenset()


def _with_endpoints(world: Any, region: str, *endpoints: ObservedEndpoint) -> RegionState:
    return world.state(region, endpoints=endpoints)


@pytest.mark.parametrize(
    "problem",
    ["missing", "outbound-direction", "another-vpc"],
)
def test_unusable_inbound_is_an_item_error_that_freezes_and_protects(
    world: Any, problem: str
) -> None:
    c = world.ids(C)
    inbound, outbound = world.endpoints(C)
    broken = {
        "missing": (outbound,),
        "outbound-direction": (replace(inbound, direction="OUTBOUND"), outbound),
        "another-vpc": (replace(inbound, vpc_id="vpc-00000000000000000"), outbound),
    }[problem]
    states = healthy(world) | {C: _with_endpoints(world, C, *broken)}

    desired = desire([world.item(r) for r in REGIONS], states)

    errors = [(e.region, e.field) for e in desired.errors]
    assert errors == [(C, "inbound_endpoint_id")]
    assert c.inbound in desired.errors[0].message
    assert C in desired.protected_targets
    assert C in desired.frozen_regions  # its own Region changes nothing either
    assert all(rule.target_region != C for rule in desired.rules)
    assert pairs(desired)[(A, B)] == 2
    assert pairs(desired)[(B, A)] == 2


@pytest.mark.parametrize(
    ("inbound_status", "inbound_ips", "words"),
    [
        ("CREATING", None, "CREATING"),
        ("ACTION_NEEDED", None, "ACTION_NEEDED"),
        ("OPERATIONAL", (), "no ATTACHED IP"),
        ("OPERATIONAL", tuple(f"10.9.0.{n}" for n in range(1, 8)), "7 ATTACHED IPs"),
    ],
)
def test_degraded_inbound_keeps_rules_without_targets(
    world: Any, inbound_status: str, inbound_ips: tuple[str, ...] | None, words: str
) -> None:
    states = healthy(world) | {
        C: _with_endpoints(
            world,
            C,
            *world.endpoints(C, inbound_status=inbound_status, inbound_ips=inbound_ips),
        )
    }
    desired = desire([world.item(r) for r in REGIONS], states)

    assert len(desired.rules) == 12
    to_c = [rule for rule in desired.rules if rule.target_region == C]
    assert len(to_c) == 4
    assert all(rule.targets is None for rule in to_c)
    assert all(rule.targets for rule in desired.rules if rule.target_region != C)
    assert desired.errors == ()
    assert C not in desired.protected_targets
    assert C not in desired.frozen_regions
    assert len(desired.degraded) == 1
    assert C in desired.degraded[0]
    assert words in desired.degraded[0]


@pytest.mark.parametrize("problem", ["missing", "inbound-direction"])
def test_unusable_outbound_is_an_item_error_that_freezes_and_protects_its_region(
    world: Any, problem: str
) -> None:
    inbound, outbound = world.endpoints(C)
    broken = (
        (inbound,) if problem == "missing" else (inbound, replace(outbound, direction="INBOUND"))
    )
    states = healthy(world) | {C: _with_endpoints(world, C, *broken)}

    desired = desire([world.item(r) for r in REGIONS], states)

    assert [(e.region, e.field) for e in desired.errors] == [(C, "outbound_endpoint_id")]
    assert world.ids(C).outbound in desired.errors[0].message
    assert C in desired.frozen_regions
    assert C in desired.protected_targets  # a hub we doubt is not a target to rebuild either
    assert pairs(desired) == {(A, B): 2, (B, A): 2}


def test_outbound_not_operational_freezes_without_error(world: Any) -> None:
    states = healthy(world) | {
        C: _with_endpoints(world, C, *world.endpoints(C, outbound_status="UPDATING"))
    }
    desired = desire([world.item(r) for r in REGIONS], states)
    assert desired.errors == ()
    assert desired.frozen_regions == {C}
    assert all(rule.region != C for rule in desired.rules)
    assert any("UPDATING" in message for message in desired.degraded)


@pytest.mark.parametrize("unreadable", ["error", "not-read"])
def test_unreadable_region_is_frozen_and_protected(world: Any, unreadable: str) -> None:
    states = healthy(world, A, B)
    if unreadable == "error":
        states[C] = RegionState(C, error="AccessDeniedException")
    desired = desire([world.item(r) for r in REGIONS], states)

    assert C in desired.frozen_regions
    assert C in desired.protected_targets
    assert pairs(desired) == {(A, B): 2, (B, A): 2}
    assert len(desired.degraded) == 1
    assert C in desired.degraded[0]
    if unreadable == "error":
        assert "AccessDeniedException" in desired.degraded[0]


def test_invalid_item_is_frozen_and_protected(world: Any) -> None:
    items = [world.item(A), world.item(B), world.item(C, vpc_id="vpc-bad")]
    desired = desire(items, healthy(world))
    assert [(e.region, e.field) for e in desired.errors] == [(C, "vpc_id")]
    assert C in desired.frozen_regions
    assert C in desired.protected_targets
    assert pairs(desired) == {(A, B): 2, (B, A): 2}


@pytest.mark.parametrize(
    ("attached", "expected"),
    [
        (("fd00::10", "10.9.0.10", "fd00::11", "10.9.1.10"), {"10.9.0.10", "10.9.1.10"}),
        (("fd00::10", "fd00::11"), {"fd00::10", "fd00::11"}),
        (tuple(f"10.9.0.{n}" for n in range(1, 7)), {f"10.9.0.{n}" for n in range(1, 7)}),
        (("10.9.0.1", *(f"fd00::{n}" for n in range(1, 8))), {"10.9.0.1"}),
    ],
)
def test_target_ips_are_one_family_ipv4_first(
    world: Any, attached: tuple[str, ...], expected: set[str]
) -> None:
    states = healthy(world) | {
        C: _with_endpoints(world, C, *world.endpoints(C, inbound_ips=attached))
    }
    desired = desire([world.item(r) for r in REGIONS], states)
    to_c = [rule for rule in desired.rules if rule.target_region == C]
    assert len(to_c) == 4
    for rule in to_c:
        assert rule.targets == {Target(ip, 53) for ip in expected}
    assert desired.degraded == ()


def test_workload_vpcs_join_the_hub_vpc(world: Any) -> None:
    workloads = ["vpc-0000000000000000a", "vpc-0000000000000000b"]
    items = [world.item(A, vpc_ids=workloads), world.item(B), world.item(C)]
    desired = desire(items, healthy(world))
    for rule in desired.rules:
        if rule.region == A:
            assert rule.vpc_ids == {world.ids(A).vpc, *workloads}
        else:
            assert rule.vpc_ids == {world.ids(rule.region).vpc}


# --- freeze on any doubt: the VPCs an item names must exist, its endpoints must be the hub's ---


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("vpc_id", {"vpc_id": "vpc-0123456789abcdef0"}),
        ("vpc_ids", {"vpc_ids": ["vpc-0123456789abcdef0"]}),
    ],
)
def test_a_vpc_that_does_not_exist_freezes_and_protects(
    world: Any, field: str, change: dict[str, Any]
) -> None:
    states = healthy(world)
    states[C] = replace(states[C], vpcs=frozenset({world.ids(C).vpc}))
    desired = desire([world.item(A), world.item(B), world.item(C, **change)], states)

    assert (C, field) in [(e.region, e.field) for e in desired.errors]
    assert any(
        "vpc-0123456789abcdef0 does not exist in us-west-2" in e.message for e in desired.errors
    )
    assert C in desired.frozen_regions
    assert C in desired.protected_targets
    assert pairs(desired) == {(A, B): 2, (B, A): 2}


def test_vpcs_not_looked_at_are_not_doubted(world: Any) -> None:
    desired = desire(
        [world.item(r, vpc_ids=["vpc-0123456789abcdef0"]) for r in REGIONS], healthy(world)
    )
    assert desired.errors == ()


def test_an_outbound_endpoint_outside_the_hub_vpc_is_an_error(world: Any) -> None:
    inbound, outbound = world.endpoints(C)
    states = healthy(world) | {
        C: _with_endpoints(world, C, inbound, replace(outbound, vpc_id="vpc-0123456789abcdef0"))
    }
    desired = desire([world.item(r) for r in REGIONS], states)
    assert [(e.region, e.field) for e in desired.errors] == [(C, "outbound_endpoint_id")]
    assert "not in the hub VPC" in desired.errors[0].message
    assert {C} <= desired.frozen_regions & desired.protected_targets


def test_an_inbound_error_also_freezes_the_hubs_own_region(world: Any) -> None:
    """The reported defect: a mistyped vpc_id made the inbound endpoint an error, which only
    protected the hub's targets; its own Region went on and lost its associations."""
    states = healthy(world)
    desired = desire(
        [world.item(A), world.item(B), world.item(C, vpc_id="vpc-0123456789abcdef0")], states
    )
    assert (C, "inbound_endpoint_id") in [(e.region, e.field) for e in desired.errors]
    assert C in desired.frozen_regions
    assert all(rule.region != C for rule in desired.rules)
