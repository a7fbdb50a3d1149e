"""A reconcile killed after write k, for every k of a scenario, then one clean reconcile.

The scenario's number of writes comes from a dry run (the plan's counts). For each k the scene
is set up again and a reconcile runs with a `KillSwitch` that raises `Killed` once write k has
completed and before any later write, as if the process had died there (the switch must fire
at exactly k, also for the last k, so every scene had all the writes of the first). The
invariants that must survive a crash are checked on what it left, then a clean reconcile in a
new process must converge: no duplicate, no orphan, every unmanaged rule untouched, nothing
left to do.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from faultkit import HOME, FaultLedger, FaultMesh, Killed, KillSwitch, new_session


def kill_after_every_write(
    mesh: FaultMesh,
    ledger: FaultLedger,
    name: str,
    prepare: Callable[[], None],
    restore: Callable[[], None],
) -> int:
    """Runs the scene once per write; returns its number of writes."""
    prepare()
    writes = mesh.planned_writes()
    assert writes > 0
    for k in range(1, writes + 1):
        if k > 1:
            restore()
            prepare()  # were the scene any smaller, the switch would not fire at the last k
        switch = KillSwitch(after=k)
        with pytest.raises(Killed):
            mesh.reconcile(session=switch.install(new_session()))
        assert len(switch.completed) == k, (k, switch.completed)

        with ledger.run(f"{name}, killed after write {k} of {writes}", {"kill": 1}):
            mesh.assert_invariants(converged=False)
            # No force: a partial state never makes the guard refuse here (the kill only
            # removes work from the plan), and a refusal would be a finding.
            report = mesh.reconcile()
            assert report.ok, (k, report.as_dict())
            mesh.assert_invariants()
    return writes


def test_kill_during_a_cold_converge_of_three_hubs(
    make_fault_mesh: Callable[..., FaultMesh], ledger: FaultLedger
) -> None:
    mesh = make_fault_mesh(registered=(HOME, "us-east-2", "us-west-2"))
    name = "cold converge of 3 hubs"
    writes = kill_after_every_write(mesh, ledger, name, lambda: None, mesh.remove_managed_rules)
    # 12 rules (2 domains x 2 peers x 3 Regions), each associated with its hub VPC, and the
    # 4 rules of us-east-1 with its workload VPC too
    assert writes == 12 + 12 + 4


def test_kill_during_a_hub_removal_from_four(
    make_fault_mesh: Callable[..., FaultMesh], ledger: FaultLedger
) -> None:
    mesh = make_fault_mesh()
    mesh.converge()

    def restore() -> None:
        mesh.put("us-west-2")
        mesh.converge()

    def prepare() -> None:
        mesh.remove("us-west-2")

    writes = kill_after_every_write(mesh, ledger, "hub removal from 4", prepare, restore)
    # us-west-2's 6 own rules (1 VPC each) and the 2 rules for its domains in each of the 3
    # other Regions (us-east-1's with 2 VPCs): disassociate every VPC, then delete
    assert writes == 6 * 2 + 2 * 3 + 2 * 2 + 2 * 2


def test_kill_during_an_inbound_ip_change(
    make_fault_mesh: Callable[..., FaultMesh], ledger: FaultLedger
) -> None:
    mesh = make_fault_mesh()
    mesh.converge()
    added: list[str] = []

    def prepare() -> None:
        added.append(mesh.add_inbound_ip("us-east-2"))

    def restore() -> None:
        mesh.remove_inbound_ip("us-east-2", added.pop())
        mesh.converge()

    writes = kill_after_every_write(mesh, ledger, "inbound IP change", prepare, restore)
    assert writes == 3 * 2  # the 2 rules for us-east-2's domains in each other Region, in place
