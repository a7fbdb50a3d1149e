"""The rate limit: no Region ever has more than CALLS_PER_SECOND calls let go in one second.

A two-hub mesh converges, then resyncs, with `calls_per_second=5` and no faults. Each Region's
limiter is given a clock that records the instant it lets each call go (`GrantLog`); botocore's
`before-call` (on the engine's own session) counts the calls made in each Region on its
Route 53 Resolver budget (Route 53 Resolver and EC2; the hubs table has a budget of its own). The
grants, not the calls' start times, are checked: on a busy machine a thread may start its call
any time after its grant, which no client-side limiter can prevent.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from faultkit import HOME, FaultMesh, new_session

from resolver_mesh.aws.calls import RateLimiter
from resolver_mesh.models import Request

PER_SECOND = 5
EPSILON = 1e-6  # floating-point sums of 1/5 s intervals
ON_THE_RESOLVER_BUDGET = ("route53resolver", "ec2", "route53profiles")  # Profiles: see README


class GrantLog:
    """A clock and a sleep for one `RateLimiter` that record when it lets each call go.

    `acquire` reads the clock once (under its lock) and then sleeps, if at all, until the call's
    turn: the grant is the clock's reading plus that sleep.
    """

    def __init__(self) -> None:
        self.grants: list[float] = []
        self._index = threading.local()
        self._lock = threading.Lock()

    def clock(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._index.value = len(self.grants)
            self.grants.append(now)
        return now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.grants[self._index.value] += seconds
        time.sleep(seconds)


def test_no_region_lets_more_than_five_calls_go_in_any_second(
    make_fault_mesh: Callable[..., FaultMesh],
) -> None:
    regions = (HOME, "us-east-2")
    mesh = make_fault_mesh(registered=regions, regions=regions)
    calls: Counter[str] = Counter()

    def count(model: Any, context: Any, **_: Any) -> None:
        if model.service_model.service_name in ON_THE_RESOLVER_BUDGET:
            calls[context["client_region"]] += 1

    session = new_session()
    session.events.register("before-call", count)
    engine = mesh.engine(session, calls_per_second=PER_SECOND)  # one process, both runs
    logs = {region: GrantLog() for region in regions}
    for region, log in logs.items():
        engine.aws.caller(region).limiter = RateLimiter(PER_SECOND, log.clock, log.sleep)

    began = time.monotonic()
    reports = [engine.run(Request(apply=True)) for _ in range(2)]
    took = time.monotonic() - began

    assert all(r.ok for r in reports), [r.as_dict() for r in reports]
    assert sum(reports[0].counts.values()) > 0
    assert sum(reports[1].counts.values()) == 0
    for region, log in logs.items():
        grants = sorted(log.grants)
        assert len(grants) == calls[region], (region, len(grants), calls[region])  # all limited
        assert len(grants) > 2 * PER_SECOND, (region, len(grants))  # enough calls to be limited
        busiest = max(
            bisect.bisect_left(grants, start + 1.0 - EPSILON) - i for i, start in enumerate(grants)
        )
        assert busiest <= PER_SECOND, (region, busiest)
        closest = min(b - a for a, b in itertools.pairwise(grants))
        assert closest >= 1.0 / PER_SECOND - EPSILON, (region, closest)
    # the limit was what paced the run: the busiest Region needed at least (n - 1) / 5 seconds
    assert took >= (max(len(log.grants) for log in logs.values()) - 1) / PER_SECOND - EPSILON
    mesh.assert_invariants()
