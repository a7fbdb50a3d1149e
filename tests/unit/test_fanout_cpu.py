"""A pass fans out when this one process could not make its calls in time: the estimate counts
the CPU of every call on the function's share of one core, not only the rate limits."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from resolver_mesh.aws.session import Aws
from resolver_mesh.config import Settings
from resolver_mesh.fanout import (
    CPU_SECONDS_PER_CALL,
    MEMORY_MB_PER_VCPU,
    FanoutSettings,
    apply_seconds,
    process_seconds,
)
from resolver_mesh.models import Change, ChangeKind, Plan
from resolver_mesh.reconcile import Reconciler, worker_cap
from resolver_mesh.report import Report


def test_process_seconds_follow_the_function_s_share_of_one_core() -> None:
    assert process_seconds(1000, None) == pytest.approx(1000 * CPU_SECONDS_PER_CALL)
    assert process_seconds(1000, MEMORY_MB_PER_VCPU) == pytest.approx(1000 * CPU_SECONDS_PER_CALL)
    half = process_seconds(1000, MEMORY_MB_PER_VCPU / 2)
    assert half == pytest.approx(2 * 1000 * CPU_SECONDS_PER_CALL)
    # more vCPUs do not run Python faster than one core
    assert process_seconds(1000, 10240) == pytest.approx(1000 * CPU_SECONDS_PER_CALL)
    assert process_seconds(0, 256) == 0


@dataclass
class Deadline:
    """The part of `Work` that `_fans_out` reads."""

    left: float
    settings: FanoutSettings = field(
        default_factory=lambda: FanoutSettings("apply", "reconcile", "work")
    )

    def seconds_left(self) -> float:
        return self.left


def wide_plan(locations: int, per_location: int) -> Plan:
    """`per_location` associations in each of `locations` member locations."""
    return Plan(
        changes=tuple(
            Change(
                ChangeKind.ASSOCIATE,
                "us-east-1",
                f"d{n}.example.",
                rule_id=f"rslvr-rr-{n}",
                vpc_id=f"vpc-{account}",
                account=f"{200000000000 + account:012d}",
            )
            for account in range(locations)
            for n in range(per_location)
        )
    )


@pytest.mark.parametrize(("memory", "fans_out"), [(1024, True), (4096, False)])
def test_a_plan_the_rate_limits_allow_but_one_core_cannot_make_fans_out(
    monkeypatch: pytest.MonkeyPatch, memory: int, fans_out: bool
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(memory))
    plan = wide_plan(locations=1800, per_location=20)  # 36,000 associations
    by_location = {change.location: 20 for change in plan.changes}
    # the rate limits alone: 20 calls per location at 5/s, or 36,000 over the workers
    assert apply_seconds(by_location, 5.0, worker_cap()) < 15
    aws = Aws(Settings(home_region="us-east-1", calls_per_second=5.0))
    reconciler = Reconciler(aws, work=Deadline(left=200.0))  # type: ignore[arg-type]
    report = Report(trigger="test", action="resync")
    assert reconciler._fans_out(plan, report) is fans_out
    # 39,600 calls (leases included) at 3 ms: about 205 s on 0.58 of a core, 119 s on a whole one
    if fans_out:
        assert any(note.startswith("fanned out: applying here would take") for note in report.notes)


def test_the_estimate_counts_a_followed_hubs_share_call_for_each_rule_it_creates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hub whose share its members follow adds each rule it creates to the share (one
    AssociateResourceShare each): with 2,000 rules, 4,000 calls, not 2,000, decide the fan-out."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(MEMORY_MB_PER_VCPU))
    hub, member = "us-east-1", f"us-east-1@{200000000000:012d}"
    creates = tuple(
        Change(ChangeKind.CREATE_RULE, "us-east-1", f"d{n}.example.") for n in range(2000)
    )
    share = Change(ChangeKind.CREATE_SHARE, "us-east-1", "", name="mesh-share")
    accept = Change(
        ChangeKind.ACCEPT_SHARE, "us-east-1", "", account=member.split("@")[1], follows=hub
    )
    followed, alone = Plan(changes=(share, *creates, accept)), Plan(changes=(share, *creates))
    # 2,001 changes, 2 or 4 leases: at 3 ms, 6.0 s of CPU alone, 12.0 s with the share calls
    assert process_seconds(2001 + 2, None) < 9.0 < process_seconds(2001 + 2000 + 4, None)
    aws = Aws(Settings(home_region="us-east-1", calls_per_second=1000.0))
    for plan, fans_out in ((alone, False), (followed, True)):
        reconciler = Reconciler(aws, work=Deadline(left=9.0 + 30))  # type: ignore[arg-type]
        assert reconciler._fans_out(plan, Report(trigger="test", action="resync")) is fans_out
