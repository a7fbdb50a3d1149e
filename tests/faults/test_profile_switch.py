"""Switching a live mesh between `rules` and `profile`, killed after every write.

For each k the mesh starts converged in the mode it leaves, a reconcile in the other mode is
killed right after write k (Resolver and Profiles writes alike, see `faultkit.KillSwitch`),
and then, with the emulator's `rule_for` (direct associations and the VPC's Profile), every VPC
of every hub must still meet a rule of ours for every peer name. A clean reconcile then
converges in the new mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from faultkit import HOME, FaultMesh, Killed, KillSwitch, new_session

from mesh_emulator.route53profiles import rule_for

ACCOUNT = "123456789012"
HUBS = (HOME, "us-east-2")


def assert_every_vpc_resolves_every_peer(mesh: FaultMesh) -> None:
    resolver_rules: dict[str, dict[str, Any]] = {}
    for region in HUBS:
        for rule in mesh.observe(region).rules:
            resolver_rules[rule["Id"]] = rule
    for region in HUBS:
        item = mesh.items[region]
        for vpc in [item["vpc_id"], *item.get("vpc_ids", [])]:
            for peer in HUBS:
                if peer == region:
                    continue
                for domain in (f"{peer}.amazonaws.com.", f"{peer}.vpce.amazonaws.com."):
                    found = rule_for(ACCOUNT, region, vpc, f"host.{domain}")
                    assert found is not None, (region, vpc, domain)
                    rule = resolver_rules[found]
                    assert rule["DomainName"].lower() in (domain, domain.rstrip(".")), found
                    assert rule["CreatorRequestId"].startswith("resolver-mesh/"), found


def profiles_of(mesh: FaultMesh, region: str) -> list[dict[str, Any]]:
    return list(mesh.aws("route53profiles", region).list_profiles()["ProfileSummaries"])


def switch_with_kills(mesh: FaultMesh, to: str, back: str) -> int:
    """Kill a reconcile to `to` after every write k; returns the number of writes."""
    counting = KillSwitch()
    report = mesh.reconcile(session=counting.install(new_session()), delivery=to)
    assert report.ok, report.as_dict()
    writes = len(counting.completed)
    assert writes > 0
    for k in range(1, writes + 1):
        restored = mesh.reconcile(delivery=back)
        assert restored.ok, restored.as_dict()
        assert_every_vpc_resolves_every_peer(mesh)
        switch = KillSwitch(after=k)
        with pytest.raises(Killed):
            mesh.reconcile(session=switch.install(new_session()), delivery=to)
        assert len(switch.completed) == k
        assert_every_vpc_resolves_every_peer(mesh)
        report = mesh.reconcile(delivery=to)
        assert report.ok, (k, report.as_dict())
        assert_every_vpc_resolves_every_peer(mesh)
    return writes


def test_switching_rules_to_profile_and_back_never_loses_a_name(
    make_fault_mesh: Callable[..., FaultMesh],
) -> None:
    mesh = make_fault_mesh(registered=HUBS)
    assert mesh.reconcile(delivery="rules").ok
    assert_every_vpc_resolves_every_peer(mesh)

    writes = switch_with_kills(mesh, "profile", "rules")
    # per hub: the Profile, its 2 rules, its VPCs (2 in us-east-1), then each VPC's 2 rules go
    assert writes == (1 + 2 + 2 + 2 * 2) + (1 + 2 + 1 + 2)
    assert all(len(profiles_of(mesh, region)) == 1 for region in HUBS)
    again = mesh.reconcile(delivery="profile")
    assert again.ok, again.as_dict()
    assert again.calls["writes"] == 0

    writes = switch_with_kills(mesh, "rules", "profile")
    # per hub: each VPC's 2 rules, then the Profile leaves each VPC and is deleted
    assert writes == (2 * 2 + 2 + 1) + (2 + 1 + 1)
    assert all(profiles_of(mesh, region) == [] for region in HUBS)
    again = mesh.reconcile(delivery="rules")
    assert again.ok, again.as_dict()
    assert again.calls["writes"] == 0
