"""Switching a live mesh between `rules` and `profile`, killed after every write.

For each k the mesh starts converged in the mode it leaves, a reconcile in the other mode is
killed right after write k (Resolver and Profiles writes alike, see `faultkit.KillSwitch`),
and then, with the emulator's `rule_for` (direct associations and the VPC's Profile), every VPC
of every hub must still meet a rule of ours for every peer name. A clean reconcile then
converges in the new mode.

The same for a VPC of another account (`shared_vpcs`): there the switch also kills after the
writes made with the assumed role and after RAM writes (the hub's share takes the Profile).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from faultkit import (
    HOME,
    KILLED_SERVICES,
    WRITE_OPERATIONS,
    FaultMesh,
    Killed,
    KillSwitch,
    new_session,
)

from mesh_emulator.route53profiles import rule_for
from resolver_mesh.aws.session import Aws
from resolver_mesh.local.topology import assumed_clients
from resolver_mesh.models import AccountAccess

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


MEMBER = "222222222222"
MEMBER_ROLE = f"arn:aws:iam::{MEMBER}:role/resolver-mesh-member-resolver-mesh"
EXTERNAL_ID = "mesh-external-id"
RAM_WRITES = frozenset(
    {
        "CreateResourceShare",
        "AssociateResourceShare",
        "DisassociateResourceShare",
        "DeleteResourceShare",
        "AcceptResourceShareInvitation",
    }
)
MAX_RUNS = 4  # reconciles (of up to three passes each) to finish a switch


def shared_switch(after: int | None = None) -> KillSwitch:
    return KillSwitch(
        after, services=(*KILLED_SERVICES, "ram"), writes=WRITE_OPERATIONS | RAM_WRITES
    )


@pytest.fixture
def switches(monkeypatch: pytest.MonkeyPatch) -> list[KillSwitch]:
    """The kill switch of the running reconcile, if any: installed on the sessions it makes
    with another account's role too (the member writes die with the process)."""
    active: list[KillSwitch] = []
    assumed_session = Aws._assumed_session

    def with_switch(aws: Aws, access: AccountAccess) -> Any:
        session = assumed_session(aws, access)
        for switch in active:
            switch.install(session)
        return session

    monkeypatch.setattr(Aws, "_assumed_session", with_switch)
    return active


def test_switching_a_shared_vpc_rules_to_profile_and_back_never_loses_a_name(
    make_fault_mesh: Callable[..., FaultMesh], switches: list[KillSwitch]
) -> None:
    mesh = make_fault_mesh(registered=HUBS)
    member = assumed_clients(mesh.aws, MEMBER_ROLE, EXTERNAL_ID, mesh.emulator.endpoint_url)
    vpc = member("ec2", HOME).create_vpc(CidrBlock="10.108.0.0/16")["Vpc"]["VpcId"]
    access = {"account_id": MEMBER, "role_arn": MEMBER_ROLE, "external_id": EXTERNAL_ID}

    def deliver(delivery: str) -> None:
        mesh.put(HOME, shared_vpcs=[{"vpc_id": vpc, "delivery": delivery, **access}])

    def assert_resolves() -> None:
        assert_every_vpc_resolves_every_peer(mesh)
        ours = {rule["Id"]: rule for rule in mesh.observe(HOME).rules}
        for peer in HUBS[1:]:
            for domain in (f"{peer}.amazonaws.com.", f"{peer}.vpce.amazonaws.com."):
                found = rule_for(MEMBER, HOME, vpc, f"host.{domain}")
                assert found is not None, (vpc, domain)
                assert ours[found]["DomainName"].lower() in (domain, domain.rstrip(".")), found

    def run(switch: KillSwitch | None = None) -> Any:
        switches[:] = [switch] if switch else []
        try:
            session = switch.install(new_session()) if switch else None
            return mesh.reconcile(session=session)
        finally:
            switches.clear()

    def settle(switch: KillSwitch | None = None) -> None:
        """Reconcile until a run writes nothing."""
        for _ in range(MAX_RUNS):
            report = run(switch)
            assert report.ok, report.as_dict()
            if report.calls["writes"] == 0:
                return
        raise AssertionError(f"not settled in {MAX_RUNS} reconciles")

    def run_until_killed(killer: KillSwitch) -> None:
        """The switch's reconciles (the kill may come in a later one) until the kill."""
        for _ in range(MAX_RUNS):
            run(killer)

    def switch_with_kills(to: str, back: str) -> int:
        counting = shared_switch()
        deliver(to)
        settle(counting)
        writes = len(counting.completed)
        assert writes > 0
        for k in range(1, writes + 1):
            deliver(back)
            settle()
            assert_resolves()
            deliver(to)
            killer = shared_switch(after=k)
            with pytest.raises(Killed):
                run_until_killed(killer)
            assert len(killer.completed) == k
            assert_resolves()
            settle()
            assert_resolves()
        return writes

    deliver("rules")
    settle()
    assert_resolves()
    profile_writes = switch_with_kills("profile", "rules")
    held = member("route53profiles", HOME).list_profile_associations(ResourceId=vpc)
    assert len(held["ProfileAssociations"]) == 1
    rules_writes = switch_with_kills("rules", "profile")
    held = member("route53profiles", HOME).list_profile_associations(ResourceId=vpc)
    assert held["ProfileAssociations"] == []
    # to `profile`: the Profile made with its 2 rules, added to the hub's share, associated in
    # the other account, then the 2 shared rules leave the VPC there (writes of both accounts
    # and RAM); back: the 2 shared rules first, then the Profile leaves, is deleted, unshared
    assert profile_writes == 1 + 2 + 1 + 1 + 2
    assert rules_writes == 2 + 1 + 1 + 1
