"""Two or three reconciles of one mesh started at the same instant.

- Through the Lambda handler and through separate `Reconciler(Aws(settings))` instances, in
  threads of one process: the in-process lock makes them take turns, so exactly one creates
  every rule and the others find nothing to do.
- With the lock bypassed (`_run_locked` called directly), as two Lambda execution environments
  or a Lambda and the CLI would run: every reconciler reads the empty state and plans every
  create (a gate holds the first write of each until all have planned); the deterministic
  CreatorRequestId markers make the creates meet, so no rule exists twice.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from faultkit import (
    WRITE_OPERATIONS,
    FaultLedger,
    FaultMesh,
    Seen,
    Tap,
    lambda_app,
    lambda_environment,
    new_session,
    tapped,
)

from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.lambda_events import FakeLambdaContext
from resolver_mesh.models import Request

RULES = 4 * 3 * 2  # 4 hubs, 3 peers each, 2 domains per peer
# How long a thread waits for the others at a barrier: only a hang may reach it, never a slow
# machine (planning four Regions can take seconds when the machine is busy).
HANG = 120.0


def at_once(work: list[Callable[[], Any]]) -> list[Any]:
    """Run every callable in a thread of its own, all released by one barrier."""
    barrier = threading.Barrier(len(work), timeout=HANG)

    def start(job: Callable[[], Any]) -> Any:
        barrier.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        futures = [pool.submit(start, job) for job in work]
        return [future.result(timeout=2 * HANG) for future in futures]


class WriteGate:
    """Holds each reconciler's first write until every reconciler has planned.

    A reconciler writes only after it has read every Region and planned, so once all of them
    reach their first write, all of them have planned from the state before any write.
    """

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=HANG)

    def install(self, session: boto3.session.Session) -> boto3.session.Session:
        opened = threading.Event()
        first = threading.Lock()

        def before(model: Any, **_: Any) -> None:
            if model.name not in WRITE_OPERATIONS or opened.is_set():
                return
            if first.acquire(blocking=False):
                self.barrier.wait()
                opened.set()
            else:
                assert opened.wait(HANG), "the gate never opened"

        session.events.register("before-call.route53resolver", before)
        return session


def creates_by_marker(tap: Tap) -> dict[str, list[Seen]]:
    """Every CreateResolverRule the server saw, by CreatorRequestId."""
    found: dict[str, list[Seen]] = defaultdict(list)
    for seen in tap.seen:
        if seen.operation == "CreateResolverRule":
            found[seen.marker].append(seen)
    return found


def assert_each_rule_created_once(tap: Tap, rules: int, attempts_each: int = 1) -> None:
    """`rules` markers were created, each by exactly one successful create (and attempted by
    `attempts_each` reconcilers at least). Every other attempt met its marker taken
    (ResourceExists): a racing reconciler's create, a retry of a create whose reply came too
    late for the client (a busy machine may time out any call), or a marker AWS still remembers.
    """
    attempts = creates_by_marker(tap)
    created = {m: seen for m, seen in attempts.items() if any(s.status == 200 for s in seen)}
    assert len(created) == rules, sorted(created)
    for marker, seen in created.items():
        assert [s.status for s in seen].count(200) == 1, (marker, seen)
        assert len(seen) >= attempts_each, (marker, seen)
    refused = [s for seen in attempts.values() for s in seen if s.status != 200]
    assert all(s.error == "ResourceExistsException" for s in refused), refused


@pytest.mark.parametrize("parties", [2, 3])
def test_concurrent_lambda_invocations_create_each_rule_once(
    parties: int,
    make_fault_mesh: Callable[..., FaultMesh],
    emulator: LocalEmulator,
    monkeypatch: pytest.MonkeyPatch,
    ledger: FaultLedger,
) -> None:
    mesh = make_fault_mesh()
    app = lambda_app()
    monkeypatch.setattr(app, "_aws", None)  # a cold execution environment
    for name, value in lambda_environment(mesh).items():
        monkeypatch.setenv(name, value)
    event = {"action": "resync"}

    with tapped(emulator) as tap:
        results = at_once([lambda: app.lambda_handler(event, FakeLambdaContext())] * parties)

    with ledger.run(f"{parties} Lambda invocations at once", {"race": parties}):
        assert all(r["ok"] for r in results), results
        made = sorted(r["counts"]["create_rule"] for r in results)
        assert made == [0] * (parties - 1) + [RULES], made  # the ones that waited did nothing
        assert sorted(r["calls"]["writes"] > 0 for r in results) == [False] * (parties - 1) + [True]
        assert_each_rule_created_once(tap, RULES)
        mesh.assert_invariants()


@pytest.mark.parametrize("parties", [2, 3])
def test_concurrent_engines_in_one_process_take_turns(
    parties: int,
    make_fault_mesh: Callable[..., FaultMesh],
    emulator: LocalEmulator,
    ledger: FaultLedger,
) -> None:
    mesh = make_fault_mesh()
    engines = [mesh.engine() for _ in range(parties)]

    with tapped(emulator) as tap:
        reports = at_once(
            [lambda engine=engine: engine.run(Request(apply=True)) for engine in engines]
        )

    with ledger.run(f"{parties} engines at once", {"race": parties}):
        assert all(r.ok for r in reports), [r.as_dict() for r in reports]
        made = sorted(r.counts["create_rule"] for r in reports)
        assert made == [0] * (parties - 1) + [RULES], made
        assert_each_rule_created_once(tap, RULES)
        mesh.assert_invariants()


@pytest.mark.parametrize("parties", [2, 3])
def test_without_the_lock_the_markers_prevent_duplicates(
    parties: int,
    make_fault_mesh: Callable[..., FaultMesh],
    emulator: LocalEmulator,
    ledger: FaultLedger,
) -> None:
    mesh = make_fault_mesh()
    gate = WriteGate(parties)
    engines = [mesh.engine(gate.install(new_session())) for _ in range(parties)]

    with tapped(emulator) as tap:
        reports = at_once(
            [
                lambda engine=engine: engine._run_locked(Request(apply=True), time.monotonic())
                for engine in engines
            ]
        )

    with ledger.run(f"{parties} engines at once, lock bypassed", {"race": parties}):
        assert all(r.ok for r in reports), [r.as_dict() for r in reports]
        # every engine planned and "made" every rule: the creates really raced (each rule
        # was attempted by every engine) and met: one create per rule succeeded, the others
        # found the marker taken
        assert [r.counts["create_rule"] for r in reports] == [RULES] * parties
        assert_each_rule_created_once(tap, RULES, attempts_each=parties)
        mesh.assert_invariants()


@pytest.fixture
def aws_remembers_deleted_markers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Model an AWS that keeps refusing the CreatorRequestId of a rule deleted long ago."""
    from moto.route53resolver import exceptions
    from moto.route53resolver.models import Route53ResolverBackend

    remembered: set[str] = set()
    create = Route53ResolverBackend.create_resolver_rule
    delete = Route53ResolverBackend.delete_resolver_rule

    def remembering_create(self: Any, *args: Any, **kwargs: Any) -> Any:
        marker = kwargs.get("creator_request_id")
        if marker in remembered:
            raise exceptions.ResourceExistsException(f"'{marker}' was used before")
        return create(self, *args, **kwargs)

    def remembering_delete(self: Any, resolver_rule_id: str) -> Any:
        rule = delete(self, resolver_rule_id)
        remembered.add(rule.creator_request_id)
        return rule

    monkeypatch.setattr(Route53ResolverBackend, "create_resolver_rule", remembering_create)
    monkeypatch.setattr(Route53ResolverBackend, "delete_resolver_rule", remembering_delete)


@pytest.mark.usefixtures("aws_remembers_deleted_markers")
def test_a_hub_that_rejoins_is_recreated_once_even_by_racing_reconcilers(
    make_fault_mesh: Callable[..., FaultMesh],
    emulator: LocalEmulator,
    ledger: FaultLedger,
) -> None:
    mesh = make_fault_mesh()
    mesh.converge()
    mesh.remove("us-west-2")
    mesh.converge()  # its rules, and their first-generation markers, are gone
    mesh.put("us-west-2")
    gate = WriteGate(2)
    engines = [mesh.engine(gate.install(new_session())) for _ in range(2)]

    with tapped(emulator) as tap:
        reports = at_once(
            [
                lambda engine=engine: engine._run_locked(Request(apply=True), time.monotonic())
                for engine in engines
            ]
        )

    with ledger.run("2 engines at once after a rejoin, lock bypassed", {"race": 2}):
        assert all(r.ok for r in reports), [r.as_dict() for r in reports]
        # the first-generation markers were refused; both walked to the second and met there:
        # us-west-2's 6 rules + 6 rules targeting it, each created once
        assert_each_rule_created_once(tap, 12, attempts_each=2)
        mesh.assert_invariants()
