"""Throttling, 5xx errors, lost replies and timeouts injected at a chosen rate, over HTTP.

Each scenario starts from a converged mesh (or none, for the cold converge), changes the table
or a hub, and reconciles while `injected_faults` disturbs every Route 53 Resolver request with
probability `rate`. The run either converges at once (report ok), or a call exhausted its
attempts and the report says so; then every safety invariant must still hold and one clean
reconcile must converge. Last, a hubs table that cannot be read at all (every DynamoDB call
fails) must change nothing anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from faultkit import (
    HOME,
    SLOW_REPLY_DELAY,
    SLOW_REPLY_TIMEOUT,
    FaultLedger,
    FaultMesh,
    tapped,
)

from mesh_emulator.faults import injected_faults
from mesh_emulator.server import LocalEmulator
from resolver_mesh.report import Report

# (rate, seed, max_attempts): the usual attempts (8) at three rates and several seeds, and one
# case where calls run out of attempts (2 at rate 0.5), so that failed runs are exercised too.
CASES = [
    pytest.param(0.1, 11, 8, id="rate0.1-seed11"),
    pytest.param(0.3, 11, 8, id="rate0.3-seed11"),
    pytest.param(0.3, 23, 8, id="rate0.3-seed23"),
    pytest.param(0.5, 11, 8, id="rate0.5-seed11"),
    pytest.param(0.5, 23, 8, id="rate0.5-seed23"),
    pytest.param(0.5, 53, 2, id="rate0.5-seed53-exhausting"),
]
# What an exhausted call may leave in a report: the fault itself, or a change skipped because
# the change it depends on failed.
EXPLAINED = (
    "ThrottlingException",
    "InternalServiceErrorException",
    "ReadTimeoutError",
    "Read timeout",
    "was not created",
    "depends on failed",
)


def cold_converge(mesh: FaultMesh) -> None:
    """All four hubs registered, nothing reconciled yet."""


def hub_joins(mesh: FaultMesh) -> None:
    mesh.remove("eu-west-1")
    mesh.converge()
    mesh.put("eu-west-1")


def hub_removed(mesh: FaultMesh) -> None:
    mesh.converge()
    mesh.remove("us-west-2")


def inbound_ip_change(mesh: FaultMesh) -> None:
    mesh.converge()
    mesh.add_inbound_ip("us-east-2")


def vpc_ids_change(mesh: FaultMesh) -> None:
    mesh.converge()
    _, second = mesh.hubs[HOME].workload_vpc_ids
    mesh.set_vpc_ids(HOME, [second])  # the first VPC leaves, the second joins


SCENARIOS: dict[str, Callable[[FaultMesh], None]] = {
    "cold-converge": cold_converge,
    "hub-joins": hub_joins,
    "hub-removed": hub_removed,
    "inbound-ip-change": inbound_ip_change,
    "vpc-ids-change": vpc_ids_change,
}


def assert_explained(report: Report) -> None:
    """A failed run failed because of the faults, and says so; it refused and conflicted nothing."""
    result = report.as_dict()
    assert result["errors"], result
    assert not result["refused"], result["refused"]
    assert not result["conflicts"], result["conflicts"]
    for error in result["errors"]:
        assert error["kind"] in ("apply", "region"), error
        assert any(reason in error["message"] for reason in EXPLAINED), error


@pytest.mark.parametrize(("rate", "seed", "max_attempts"), CASES)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_reconcile_under_injected_faults(
    scenario: str,
    rate: float,
    seed: int,
    max_attempts: int,
    make_fault_mesh: Callable[..., FaultMesh],
    emulator: LocalEmulator,
    ledger: FaultLedger,
) -> None:
    mesh = make_fault_mesh()
    SCENARIOS[scenario](mesh)
    assert mesh.planned_writes() > 0

    # on leaving, `tapped` waits until every delayed request has landed
    with (
        injected_faults(emulator, rate, seed=seed, delay=SLOW_REPLY_DELAY) as injector,
        tapped(emulator),
    ):
        report = mesh.reconcile(max_attempts=max_attempts, **SLOW_REPLY_TIMEOUT)
    injected: Any = injector.injected
    assert sum(injected.values()) > 0, "no fault was injected"

    with ledger.run(f"{scenario} rate={rate} seed={seed} attempts={max_attempts}", injected):
        if max_attempts < 3:
            assert not report.ok, "with 2 attempts at rate 0.5, some call must have run out"
        if report.ok:
            mesh.assert_invariants()
        else:
            assert_explained(report)
            mesh.assert_invariants(converged=False)
            ledger.recovered += 1
            follow_up = mesh.reconcile()
            assert follow_up.ok, follow_up.as_dict()
            mesh.assert_invariants()


def test_an_unreadable_hubs_table_changes_nothing_anywhere(
    make_fault_mesh: Callable[..., FaultMesh], emulator: LocalEmulator, ledger: FaultLedger
) -> None:
    """Every DynamoDB call fails: the reconcile says so and makes no write at all."""
    mesh = make_fault_mesh()
    mesh.converge()
    mesh.remove("us-west-2")  # a plan with deletions, were the table readable
    assert mesh.planned_writes() > 0

    with (
        injected_faults(
            emulator, 1.0, kinds=("throttle", "error"), services=("DynamoDB",)
        ) as injector,
        tapped(emulator) as tap,
    ):
        result = mesh.reconcile(max_attempts=3).as_dict()

    with ledger.run("hubs table unreadable", injector.injected):
        assert result["ok"] is False
        assert [e["kind"] for e in result["errors"]] == ["table"], result["errors"]
        assert "cannot read the hubs table" in result["errors"][0]["message"]
        assert injector.requests == 3  # the scan, attempted max_attempts times
        assert tap.writes() == []
        assert [s.operation for s in tap.seen if s.operation] == ["Scan"] * 3
        mesh.assert_invariants(converged=False)
        follow_up = mesh.reconcile()
        assert follow_up.ok, follow_up.as_dict()
        mesh.assert_invariants()
