"""Parallelism sized by the locations: one worker per location up to a cap that the Lambda
thread quota and the function's memory set; the busiest locations start first (counted, not
timed)."""

from __future__ import annotations

import threading

import pytest

from resolver_mesh import reconcile
from resolver_mesh.reconcile import MAX_WORKERS, per_region, worker_cap

MEMORY_SETTING = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"


@pytest.mark.parametrize(
    ("memory_mib", "cap"),
    [(None, MAX_WORKERS), (128, 64), (256, 128), (1024, 512), (10240, 512), (1, 1)],
)
def test_worker_cap_follows_memory_up_to_the_thread_quota(
    memory_mib: int | None, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if memory_mib is None:
        monkeypatch.delenv(MEMORY_SETTING, raising=False)
    else:
        monkeypatch.setenv(MEMORY_SETTING, str(memory_mib))
    assert worker_cap() == cap
    assert worker_cap(memory_mib) == cap
    assert MAX_WORKERS * 2 <= 1024  # Lambda's processes/threads quota, with half to spare


def test_every_location_gets_its_own_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """300 locations wait at a barrier of 300: it opens only if all 300 run at once."""
    monkeypatch.delenv(MEMORY_SETTING, raising=False)
    locations = [f"us-east-1@{100_000_000_000 + n:012d}" for n in range(300)]
    barrier = threading.Barrier(len(locations), timeout=60)
    threads: set[int] = set()
    guard = threading.Lock()

    def work(where: str) -> str:
        with guard:
            threads.add(threading.get_ident())
        barrier.wait()
        return where.upper()

    results = per_region(work, locations)
    assert results == {where: where.upper() for where in locations}
    assert len(threads) == len(locations)


def test_workers_never_exceed_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_SETTING, "8")  # a cap of 4
    assert worker_cap() == 4
    running, peak = 0, 0
    guard = threading.Lock()
    four_running = threading.Barrier(4, timeout=60)

    def work(where: str) -> None:
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
        if where < "l04":  # the first four prove that four run at once
            four_running.wait()
        with guard:
            running -= 1

    per_region(work, [f"l{n:02d}" for n in range(40)])
    assert peak == 4


def test_busiest_locations_start_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconcile, "worker_cap", lambda: 1)
    started: list[str] = []
    calls = {"b": 3, "c": 40, "d": 7}  # "a" and "e" have no estimate: 0
    per_region(started.append, ["e", "d", "c", "b", "a"], calls)
    assert started == ["c", "d", "b", "a", "e"]


def test_no_locations_no_pool() -> None:
    assert per_region(lambda where: where, []) == {}
