"""The rate limit: no Region ever sees more than CALLS_PER_SECOND calls start in one second.

A two-hub mesh converges, then resyncs, with `calls_per_second=5` and no faults. The start of
every Route 53 Resolver call (botocore's `before-call`, on the engine's own session) is
recorded per Region; the hubs table has a rate budget of its own and is not counted.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from faultkit import HOME, FaultMesh, new_session

from resolver_mesh.models import Request

PER_SECOND = 5
# A call is recorded a moment after the limiter let it go (parameter validation, thread
# scheduling on a busy machine): calls spaced exactly 1/5 s apart can be recorded a few
# milliseconds closer. The windows are shortened by this much to absorb that, no more.
JITTER = 0.05


def test_no_region_sees_more_than_five_calls_start_in_any_second(
    make_fault_mesh: Callable[..., FaultMesh],
) -> None:
    regions = (HOME, "us-east-2")
    mesh = make_fault_mesh(registered=regions, regions=regions)
    starts: dict[str, list[float]] = defaultdict(list)

    def record(context: Any, **_: Any) -> None:
        starts[context["client_region"]].append(time.monotonic())

    session = new_session()
    session.events.register("before-call.route53resolver", record)
    engine = mesh.engine(session, calls_per_second=PER_SECOND)  # one process, both runs

    began = time.monotonic()
    reports = [engine.run(Request(apply=True)) for _ in range(2)]
    took = time.monotonic() - began

    assert all(r.ok for r in reports), [r.as_dict() for r in reports]
    assert sum(reports[0].counts.values()) > 0
    assert sum(reports[1].counts.values()) == 0
    assert set(starts) == set(regions)
    for region, times in starts.items():
        times.sort()
        assert len(times) > 2 * PER_SECOND, (region, len(times))  # enough calls to be limited
        busiest = max(
            bisect.bisect_left(times, start + 1.0 - JITTER) - i for i, start in enumerate(times)
        )
        assert busiest <= PER_SECOND, (region, busiest)
        closest = min(b - a for a, b in itertools.pairwise(times))
        assert closest >= 1.0 / PER_SECOND - JITTER, (region, closest)
    # the limit was what paced the run: the busiest Region needed about n/5 seconds
    assert took >= (max(len(t) for t in starts.values()) - 1) / PER_SECOND - JITTER
    mesh.assert_invariants()
