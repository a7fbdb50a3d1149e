"""`verify_mesh` on hand-made states: private, local, public, gaps, stale targets, loops,
conflicts, the most specific domain winning, and the three renderings."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from resolver_mesh.desired import HubSet, desired_rules, parse_hubs
from resolver_mesh.models import (
    HubItem,
    InterfaceEndpoint,
    ObservedAssociation,
    ObservedEndpoint,
    ObservedRule,
    RegionState,
    Target,
)
from resolver_mesh.names import creator_request_ids
from resolver_mesh.verify import (
    Matrix,
    matrix_mermaid,
    matrix_text,
    short_name,
    verify_mesh,
)

MESH = "resolver-mesh"
E1, E2, W2 = "us-east-1", "us-east-2", "us-west-2"
REGIONS = (E1, E2, W2)
WORKLOAD = "vpc-0000000000000000f"
KNOWN = frozenset(REGIONS)


def mesh(
    world: SimpleNamespace,
    converged: Any,
    items: dict[str, dict[str, Any]] | None = None,
    regions: tuple[str, ...] = REGIONS,
) -> tuple[Any, dict[str, RegionState]]:
    """The hubs and the converged states of a mesh (us-east-1 has a workload VPC)."""
    extra = {E1: {"vpc_ids": [WORKLOAD]}, **(items or {})}
    hub_set = parse_hubs([world.item(r, **extra.get(r, {})) for r in regions], KNOWN)
    assert not hub_set.errors
    states = {r: world.state(r) for r in regions}
    return hub_set, converged(MESH, desired_rules(MESH, hub_set, states), states)


def s3(region: str, vpc_id: str, private_dns: bool = True) -> InterfaceEndpoint:
    """An S3 interface endpoint with the three names AWS gives the service."""
    names = tuple(f"{n}.{region}.amazonaws.com." for n in ("s3", "s3-accesspoint", "s3-control"))
    return InterfaceEndpoint(
        f"vpce-{region}",
        vpc_id,
        f"com.amazonaws.{region}.s3",
        private_dns,
        "available",
        None,
        names,
    )


def with_endpoints(
    states: dict[str, RegionState], endpoints: dict[str, tuple[InterfaceEndpoint, ...]]
) -> dict[str, RegionState]:
    """The states with the interface endpoints of each hub Region's VPC, as observed."""
    return states | {r: replace(states[r], interface_endpoints=e) for r, e in endpoints.items()}


def rule(
    rule_id: str,
    domain: str,
    ips: tuple[str, ...],
    target_region: str | None = None,
    rule_type: str = "FORWARD",
) -> ObservedRule:
    """A rule of ours when `target_region` is given, else someone else's."""
    marker = (
        creator_request_ids(MESH, E1, domain, target_region)[0]
        if target_region
        else "someone-else-1"
    )
    return ObservedRule(
        id=rule_id,
        domain=domain,
        rule_type=rule_type,
        name=rule_id,
        status="COMPLETE",
        endpoint_id=None,
        targets=frozenset(Target(ip) for ip in ips),
        creator_request_id=marker,
    )


def add_rule(state: RegionState, new: ObservedRule, *vpcs: str) -> RegionState:
    associations = tuple(
        ObservedAssociation(f"assoc-{new.id}-{vpc}", new.id, vpc, "COMPLETE") for vpc in vpcs
    )
    return replace(
        state, rules=(*state.rules, new), associations=(*state.associations, *associations)
    )


def drop_association(state: RegionState, domain: str, vpc_id: str) -> RegionState:
    rule_ids = {r.id for r in state.rules if r.domain == domain}
    kept = tuple(
        a for a in state.associations if not (a.rule_id in rule_ids and a.vpc_id == vpc_id)
    )
    assert len(kept) == len(state.associations) - 1
    return replace(state, associations=kept)


def problems(matrix: Matrix) -> list[tuple[str, str, str]]:
    return [(c.vpc_id, c.name, c.status) for c in matrix.problems]


def test_a_converged_mesh_resolves_every_peer_name_privately(
    world: SimpleNamespace, converged: Any
) -> None:
    hub_set, states = mesh(world, converged)
    endpoints = {r: (s3(r, world.ids(r).vpc),) for r in REGIONS}
    matrix = verify_mesh(MESH, hub_set, with_endpoints(states, endpoints))

    assert matrix.ok, matrix_text(matrix)
    # rows: every hub VPC and workload VPC; columns: 6 domains and 3 x 3 S3 names
    assert [(r.region, r.role) for r in matrix.rows] == [
        (E1, "hub"),
        (E1, "workload"),
        (E2, "hub"),
        (W2, "hub"),
    ]
    assert len(matrix.columns) == 15
    assert matrix.counts()["private"] == 4 * 10  # every row: 2 peers x (2 domains + 3 S3)
    assert matrix.counts()["local"] == 4 * 5
    assert matrix.cell(WORKLOAD, "s3-control.us-east-2.amazonaws.com").via == E2
    cell = matrix.cell(WORKLOAD, "s3.us-east-2.amazonaws.com")
    assert cell.status == "private"
    assert cell.via == E2
    assert cell.rule_domain == "us-east-2.amazonaws.com."  # through the Region's rule
    assert cell.targets == tuple(sorted(world.ids(E2).ips))
    assert matrix.cell(world.ids(E2).vpc, "us-east-2.vpce.amazonaws.com").status == "local"


def test_a_missing_association_is_a_gap(world: SimpleNamespace, converged: Any) -> None:
    hub_set, states = mesh(world, converged)
    states[E1] = drop_association(states[E1], "us-west-2.vpce.amazonaws.com.", WORKLOAD)

    matrix = verify_mesh(MESH, hub_set, states)

    assert problems(matrix) == [(WORKLOAD, "us-west-2.vpce.amazonaws.com.", "gap")]
    assert not matrix.ok
    assert matrix.cell(world.ids(E1).vpc, "us-west-2.vpce.amazonaws.com").status == "private"
    assert "GAP" in matrix_text(matrix)


def test_a_hub_that_does_not_forward_is_public_not_a_gap(
    world: SimpleNamespace, converged: Any
) -> None:
    items = {W2: {"outbound_endpoint_id": world.DROP}, E2: {"peers": []}}
    hub_set, states = mesh(world, converged, items)

    matrix = verify_mesh(MESH, hub_set, states)

    assert matrix.ok, matrix_text(matrix)
    assert matrix.cell(world.ids(W2).vpc, "us-east-1.amazonaws.com").status == "public"
    assert matrix.cell(world.ids(E2).vpc, "us-west-2.amazonaws.com").status == "public"
    assert matrix.cell(WORKLOAD, "us-west-2.amazonaws.com").status == "private"


def test_targets_no_longer_attached_are_stale(world: SimpleNamespace, converged: Any) -> None:
    hub_set, states = mesh(world, converged)
    old, kept = world.ids(E2).ips
    states[E2] = world.state(E2, endpoints=world.endpoints(E2, inbound_ips=(kept, "10.99.0.53")))
    states[E2] = replace(states[E2], rules=converged_rules(world, converged, E2, hub_set))

    matrix = verify_mesh(MESH, hub_set, states)

    stale = [c for c in matrix.problems if c.status == "stale"]
    assert {(c.region, c.name) for c in stale} == {
        (region, f"{E2}.{suffix}amazonaws.com.") for region in (E1, W2) for suffix in ("", "vpce.")
    } | {(E1, f"{E2}.{suffix}amazonaws.com.") for suffix in ("", "vpce.")}
    cell = matrix.cell(WORKLOAD, "us-east-2.amazonaws.com")
    assert cell.stale_ips == (old,)
    assert cell.missing_ips == ("10.99.0.53",)
    assert "→ us-east-2 STALE" in matrix_text(matrix)


def test_a_rule_whose_targets_are_all_gone_is_stale_by_its_marker(
    world: SimpleNamespace, converged: Any
) -> None:
    hub_set, states = mesh(world, converged)
    states[E2] = replace(states[E2], endpoints=world.endpoints(E2, inbound_ips=("10.99.0.1",)))

    cell = verify_mesh(MESH, hub_set, states).cell(WORKLOAD, "us-east-2.amazonaws.com")

    assert (cell.status, cell.via) == ("stale", E2)
    assert cell.stale_ips == tuple(sorted(world.ids(E2).ips))


def test_our_rule_forwarding_to_the_wrong_hub_is_stale(
    world: SimpleNamespace, converged: Any
) -> None:
    hub_set, states = mesh(world, converged, {W2: {"outbound_endpoint_id": world.DROP}})
    wrong = rule("rslvr-rr-wrong", "us-east-2.amazonaws.com.", world.ids(W2).ips, E2)
    states[E1] = drop_association(states[E1], "us-east-2.amazonaws.com.", WORKLOAD)
    states[E1] = add_rule(states[E1], wrong, WORKLOAD)

    cell = verify_mesh(MESH, hub_set, states).cell(WORKLOAD, "us-east-2.amazonaws.com")

    assert (cell.status, cell.via) == ("stale", W2)
    assert cell.detail == "forwarded to us-west-2, but us-east-2 owns it"


def converged_rules(
    world: SimpleNamespace, converged: Any, region: str, hub_set: Any
) -> tuple[ObservedRule, ...]:
    states = {r: world.state(r) for r in REGIONS}
    return tuple(converged(MESH, desired_rules(MESH, hub_set, states), states)[region].rules)


def test_a_new_ip_not_targeted_yet_still_resolves_privately(
    world: SimpleNamespace, converged: Any
) -> None:
    hub_set, states = mesh(world, converged)
    ips = (*world.ids(E2).ips, "10.99.0.53")
    states[E2] = replace(states[E2], endpoints=world.endpoints(E2, inbound_ips=ips))

    matrix = verify_mesh(MESH, hub_set, states)

    assert matrix.ok
    cell = matrix.cell(WORKLOAD, "us-east-2.amazonaws.com")
    assert (cell.status, cell.missing_ips) == ("private", ("10.99.0.53",))
    assert "→ us-east-2 ✓*" in matrix_text(matrix)


def test_a_hub_vpc_that_forwards_its_own_domain_back_is_a_loop(
    world: SimpleNamespace, converged: Any
) -> None:
    hub_set, states = mesh(world, converged)
    # someone forwards us-east-2.amazonaws.com from us-east-2's hub VPC to us-east-1's inbound
    back = rule("rslvr-rr-back", "us-east-2.amazonaws.com.", world.ids(E1).ips)
    states[E2] = add_rule(states[E2], back, world.ids(E2).vpc)

    matrix = verify_mesh(MESH, hub_set, states)

    loop = matrix.cell(world.ids(E1).vpc, "us-east-2.amazonaws.com")
    assert loop.status == "loop"
    assert loop.path == (E1, E2, E1)
    assert matrix.cell(world.ids(W2).vpc, "us-east-2.amazonaws.com").path == (W2, E2, E1, E2)
    # in us-east-2 itself, a rule that is not ours wins over answering locally
    assert matrix.cell(world.ids(E2).vpc, "us-east-2.amazonaws.com").status == "conflict"
    assert matrix.cell(world.ids(E1).vpc, "us-east-2.vpce.amazonaws.com").status == "private"
    assert "LOOP" in matrix_text(matrix)


def test_two_rules_for_one_domain_in_one_vpc_conflict(
    world: SimpleNamespace, converged: Any
) -> None:
    hub_set, states = mesh(world, converged)
    theirs = rule("rslvr-rr-theirs", "us-west-2.amazonaws.com.", world.ids(W2).ips)
    states[E1] = add_rule(states[E1], theirs, WORKLOAD)

    matrix = verify_mesh(MESH, hub_set, states)

    assert problems(matrix) == [(WORKLOAD, "us-west-2.amazonaws.com.", "conflict")]
    assert "rslvr-rr-theirs" in matrix.problems[0].detail


def test_a_more_specific_rule_not_ours_wins_and_conflicts(
    world: SimpleNamespace, converged: Any
) -> None:
    hub_set, states = mesh(world, converged)
    theirs = rule("rslvr-rr-s3", "s3.us-east-2.amazonaws.com.", ("192.168.0.2",))
    states[E1] = add_rule(states[E1], theirs, world.ids(E1).vpc)
    endpoints = {E2: (s3(E2, world.ids(E2).vpc),)}

    matrix = verify_mesh(MESH, hub_set, with_endpoints(states, endpoints))

    assert problems(matrix) == [(world.ids(E1).vpc, "s3.us-east-2.amazonaws.com.", "conflict")]
    # the workload VPC does not have that rule: our broader rule answers there
    assert matrix.cell(WORKLOAD, "s3.us-east-2.amazonaws.com").status == "private"


def test_the_most_specific_domain_wins(world: SimpleNamespace, converged: Any) -> None:
    items = {
        W2: {"domains": ["corp.example"]},
        # without an outbound endpoint, us-east-2 has no corp.example rule to loop through
        E2: {"domains": ["east.corp.example"], "outbound_endpoint_id": world.DROP},
    }
    hub_set, states = mesh(world, converged, items)
    endpoints = {E2: (s3(E2, world.ids(E2).vpc),)}

    matrix = verify_mesh(MESH, hub_set, with_endpoints(states, endpoints))

    # by the owner's Region, then by name
    assert [(c.name, c.owner) for c in matrix.columns] == [
        ("us-east-1.amazonaws.com.", E1),
        ("us-east-1.vpce.amazonaws.com.", E1),
        ("east.corp.example.", E2),
        ("corp.example.", W2),
    ]
    # no hub forwards us-east-2's S3 names: not a mesh name, a note
    assert matrix.notes == (
        f"{E2}: vpce-{E2} answers s3.us-east-2.amazonaws.com,"
        " s3-accesspoint.us-east-2.amazonaws.com, s3-control.us-east-2.amazonaws.com"
        " in the hub VPC only: no hub forwards them",
    )
    cell = matrix.cell(WORKLOAD, "east.corp.example")
    assert (cell.status, cell.via, cell.rule_domain) == ("private", E2, "east.corp.example.")

    # without the more specific rule, the broader one sends east.corp.example to us-west-2,
    # which passes it on to us-east-2: a chain
    states[E1] = drop_association(states[E1], "east.corp.example.", WORKLOAD)
    cell = verify_mesh(MESH, hub_set, states).cell(WORKLOAD, "east.corp.example")
    assert (cell.status, cell.via, cell.rule_domain) == ("loop", W2, "corp.example.")
    assert cell.path == (E1, W2, E2)
    assert "a chain" in cell.detail


def test_a_hub_domain_inside_a_peers_domain_loops(world: SimpleNamespace, converged: Any) -> None:
    """us-east-2 answers east.corp.example, but its own VPC has the mesh's rule for
    corp.example (to us-west-2), which covers east.corp.example too: rules win over private
    hosted zones, so what reaches us-east-2's inbound endpoint goes on to us-west-2, whose
    rule for east.corp.example sends it back: a cycle."""
    items = {W2: {"domains": ["corp.example"]}, E2: {"domains": ["east.corp.example"]}}
    # The planner refuses such items now; rules made before (or by hand) can still loop.
    rejected = parse_hubs([world.item(r, **items.get(r, {})) for r in REGIONS], KNOWN)
    assert [(e.region, e.field) for e in rejected.errors] == [(E2, "domains")]
    hub_set = HubSet(
        hubs={
            r: HubItem.model_validate(
                world.item(r, **{E1: {"vpc_ids": [WORKLOAD]}, **items}.get(r, {}))
            )
            for r in REGIONS
        }
    )
    plain = {r: world.state(r) for r in REGIONS}
    states = converged(MESH, desired_rules(MESH, hub_set, plain), plain)

    matrix = verify_mesh(MESH, hub_set, states)

    cell = matrix.cell(WORKLOAD, "east.corp.example")
    assert (cell.status, cell.rule_domain) == ("loop", "east.corp.example.")
    assert cell.path == (E1, E2, W2, E2)
    assert matrix.cell(world.ids(E2).vpc, "east.corp.example").path == (E2, W2, E2)


def test_an_unreadable_region_is_unknown_and_an_error(
    world: SimpleNamespace, converged: Any
) -> None:
    hub_set, states = mesh(world, converged)
    states[W2] = RegionState(W2, error="AccessDenied")

    matrix = verify_mesh(MESH, hub_set, states)

    assert not matrix.ok
    assert any("us-west-2: cannot read" in e for e in matrix.errors)
    assert matrix.cell(world.ids(W2).vpc, "us-east-1.amazonaws.com").status == "unknown"
    assert matrix.cell(WORKLOAD, "us-west-2.amazonaws.com").status == "unknown"
    assert matrix.cell(WORKLOAD, "us-east-2.amazonaws.com").status == "private"


def test_disabled_hubs_and_invalid_items(world: SimpleNamespace, converged: Any) -> None:
    hub_set, states = mesh(world, converged, {W2: {"enabled": False}})
    matrix = verify_mesh(MESH, hub_set, states)
    assert {row.region for row in matrix.rows} == {E1, E2}
    assert all(not c.name.startswith("us-west-2") for c in matrix.columns)
    # our rules to the disabled hub are still there, but no longer a mesh name: not a problem
    assert matrix.ok

    broken = parse_hubs([world.item(E1, vpc_id="nope")], KNOWN)
    assert not verify_mesh(MESH, broken, {}).ok


def test_endpoints_with_private_dns_off_are_a_note(world: SimpleNamespace, converged: Any) -> None:
    hub_set, states = mesh(world, converged)
    endpoints = {E2: (s3(E2, world.ids(E2).vpc, private_dns=False),)}
    matrix = verify_mesh(MESH, hub_set, with_endpoints(states, endpoints))
    assert all(c.kind == "domain" for c in matrix.columns)
    assert matrix.notes == (
        f"{E2}: vpce-{E2} has private DNS off, so public: s3.us-east-2.amazonaws.com,"
        " s3-accesspoint.us-east-2.amazonaws.com, s3-control.us-east-2.amazonaws.com",
    )


def test_text_json_and_mermaid(world: SimpleNamespace, converged: Any) -> None:
    hub_set, states = mesh(world, converged, regions=(E1, E2))
    states[E1] = drop_association(states[E1], "us-east-2.vpce.amazonaws.com.", WORKLOAD)
    matrix = verify_mesh(MESH, hub_set, states)

    text = matrix_text(matrix)
    header = text.splitlines()[1].split()
    assert header == ["VPC", "us-east-1", "us-east-1.vpce", "us-east-2", "us-east-2.vpce"]
    assert f"us-east-1 {WORKLOAD} (workload)" in text
    assert text.splitlines()[-1] == "NOT OK: 5 private, 6 local, 1 gap"

    data = matrix.as_dict()
    assert data["ok"] is False
    assert data["problems"] == [
        {
            "region": E1,
            "vpc_id": WORKLOAD,
            "name": "us-east-2.vpce.amazonaws.com.",
            "status": "gap",
            "detail": "no rule forwards it to us-east-2",
        }
    ]

    assert matrix_mermaid(matrix).splitlines() == [
        "graph LR",
        '  us_east_1["us-east-1"]',
        '  us_east_2["us-east-2"]',
        '  us_east_1 -.->|"GAP: us-east-2.vpce"| us_east_2',
        '  us_east_1 -->|"us-east-2, us-east-2.vpce"| us_east_2',
        '  us_east_2 -->|"us-east-1, us-east-1.vpce"| us_east_1',
    ]


def test_short_names() -> None:
    assert short_name("us-east-2.vpce.amazonaws.com.") == "us-east-2.vpce"
    assert short_name("corp.example.") == "corp.example"


SPOKE_VPC, SPOKE_OUT = "vpc-0000000000000aaaa", "rslvr-out-0000000000000aaaa"
SERVICES = ["{services}", "{region}.vpce.amazonaws.com"]


def kinesis(region: str, vpc_id: str) -> InterfaceEndpoint:
    return InterfaceEndpoint(
        f"vpce-kinesis-{region}",
        vpc_id,
        f"com.amazonaws.{region}.kinesis-streams",
        True,
        "available",
        dns_names=(f"kinesis.{region}.amazonaws.com.",),
    )


@pytest.mark.parametrize(
    "items",
    [
        {},
        {E2: {"domains": SERVICES}},
        {E2: {"domains": ["{services}", "{region}.corp.example"]}},
        {E2: {"domains": SERVICES}, E1: {"spokes": [{"mode": "direct"}]}},
        {E2: {"domains": SERVICES}, E1: {"spokes": [{"mode": "central"}]}},
    ],
    ids=["defaults", "services", "custom", "direct-spoke", "central-spoke"],
)
def test_verify_agrees_with_what_apply_builds(
    world: SimpleNamespace, converged: Any, items: dict[str, dict[str, Any]]
) -> None:
    """Whatever a hub's names: the rules `apply` wants, once made, verify as private (peers)
    and local (the hub's own names), with the hub as the owner of each of its names."""
    for entry in items.get(E1, {}).get("spokes", []):
        entry.update(vpc_id=SPOKE_VPC, outbound_endpoint_id=SPOKE_OUT)
    hub_set = parse_hubs(
        [world.item(r, **{E1: {"vpc_ids": [WORKLOAD]}, **items}.get(r, {})) for r in REGIONS],
        KNOWN,
    )
    assert not hub_set.errors
    spoke_endpoint = ObservedEndpoint(SPOKE_OUT, "OUTBOUND", "OPERATIONAL", SPOKE_VPC)
    plain = {r: world.state(r) for r in REGIONS}
    plain[E1] = replace(plain[E1], endpoints=(*plain[E1].endpoints, spoke_endpoint))
    east2 = world.ids(E2).vpc
    plain = with_endpoints(plain, {E2: (s3(E2, east2), kinesis(E2, east2))})
    states = converged(MESH, desired_rules(MESH, hub_set, plain), plain)

    matrix = verify_mesh(MESH, hub_set, states)

    assert matrix.ok, matrix_text(matrix)
    owners = {c.name: c.owner for c in matrix.columns}
    for name in ("s3", "s3-control", "s3-accesspoint", "kinesis"):
        assert owners[f"{name}.us-east-2.amazonaws.com."] == E2
    assert "kinesis-streams.us-east-2.amazonaws.com." not in owners
    for cell in matrix.cells:
        if owners[cell.name] == cell.region:
            assert (cell.status, cell.via) == ("local", None)
        elif cell.vpc_id == SPOKE_VPC and "central" in str(items):  # through its own hub
            assert (cell.status, cell.via) == ("private", E1)
        else:
            assert (cell.status, cell.via) == ("private", owners[cell.name])


def test_a_central_spoke_behind_an_unreadable_hub_is_unknown_not_a_gap(
    world: SimpleNamespace, converged: Any
) -> None:
    spoke = {"vpc_id": SPOKE_VPC, "outbound_endpoint_id": SPOKE_OUT, "mode": "central"}
    hub_set, states = mesh(world, converged, {E1: {"vpc_ids": [WORKLOAD], "spokes": [spoke]}})
    spoke_endpoint = ObservedEndpoint(SPOKE_OUT, "OUTBOUND", "OPERATIONAL", SPOKE_VPC)
    plain = {r: world.state(r) for r in REGIONS}
    plain[E1] = replace(plain[E1], endpoints=(*plain[E1].endpoints, spoke_endpoint))
    states = converged(MESH, desired_rules(MESH, hub_set, plain), plain)
    states[W2] = RegionState(W2, error="AccessDenied")

    matrix = verify_mesh(MESH, hub_set, states)

    cell = matrix.cell(SPOKE_VPC, "us-west-2.amazonaws.com")
    assert (cell.status, cell.via, cell.path) == ("unknown", E1, (E1, E1, W2))
    assert cell.detail == "us-west-2 could not be read: us-east-1 -> us-east-1 -> us-west-2"
    assert matrix.cell(world.ids(E1).vpc, "us-west-2.amazonaws.com").status == "unknown"
    assert matrix.cell(SPOKE_VPC, "us-east-2.amazonaws.com").status == "private"
    assert matrix.counts()["gap"] == 0
    assert "→ us-east-1 ?" in matrix_text(matrix)


def test_names_that_cannot_be_read_are_an_error(world: SimpleNamespace, converged: Any) -> None:
    hub_set, states = mesh(world, converged, {E2: {"domains": SERVICES}})
    unread = replace(s3(E2, world.ids(E2).vpc), dns_names=(), names_unread="AccessDenied")

    matrix = verify_mesh(MESH, hub_set, with_endpoints(states, {E2: (unread,)}))

    assert not matrix.ok
    assert matrix.errors == (
        f"{E2}: cannot read the private DNS names of com.amazonaws.{E2}.s3 (vpce-{E2}):"
        " AccessDenied",
    )
