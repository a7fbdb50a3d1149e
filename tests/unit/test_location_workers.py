"""Parallelism sized by the locations: one worker per location up to a cap that the Lambda
thread quota and the function's memory set; the busiest locations start first (counted, not
timed)."""

from __future__ import annotations

import threading
import time

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


def test_workers_are_kept_for_later_phases(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second phase of 50 locations at once runs on the first phase's workers: every one
    finds the mark its thread got then, and the process holds no more threads."""
    monkeypatch.delenv(MEMORY_SETTING, raising=False)
    monkeypatch.setattr(reconcile, "_WORKERS", reconcile._Workers())
    locations = [f"eu-west-1@{100_000_000_000 + n:012d}" for n in range(50)]
    marks = threading.local()

    def phase(where: str, barrier: threading.Barrier) -> bool:
        kept = getattr(marks, "seen", False)
        marks.seen = True
        barrier.wait()
        return kept

    first = threading.Barrier(len(locations), timeout=60)
    assert not any(per_region(lambda where: phase(where, first), locations).values())
    threads = threading.active_count()
    second = threading.Barrier(len(locations), timeout=60)
    assert all(per_region(lambda where: phase(where, second), locations).values())
    assert threading.active_count() == threads


def test_workers_kept_never_outnumber_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Phase after phase at a cap of 4, the process gains exactly 4 workers."""
    monkeypatch.setenv(MEMORY_SETTING, "8")  # a cap of 4
    monkeypatch.setattr(reconcile, "_WORKERS", reconcile._Workers())
    threads = threading.active_count()
    for _ in range(5):
        four_running = threading.Barrier(4, timeout=60)

        def work(where: str, barrier: threading.Barrier = four_running) -> str:
            if where < "l04":  # the first four prove that four run at once
                barrier.wait()
            return where

        assert list(per_region(work, [f"l{n:02d}" for n in range(40)])) == [
            f"l{n:02d}" for n in range(40)
        ]
    assert threading.active_count() - threads == 4


def test_a_failure_is_raised_once_every_location_is_done() -> None:
    finished: list[str] = []
    guard = threading.Lock()

    def work(where: str) -> None:
        if where == "l03":
            raise ValueError(where)
        time.sleep(0.01)  # the others finish after the failure
        with guard:
            finished.append(where)

    with pytest.raises(ValueError, match="l03"):
        per_region(work, [f"l{n:02d}" for n in range(20)])
    assert sorted(finished) == [f"l{n:02d}" for n in range(20) if n != 3]


def test_a_wave_takes_locations_while_it_runs_and_adding_never_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The organisation's pages feed the first reads (`_Wave.add`): with every worker busy,
    adding more returns at once; they start, in the order added, as workers free up; a
    location added again is worked on once."""
    monkeypatch.setenv(MEMORY_SETTING, "4")  # a cap of 2
    turns = threading.Semaphore(0)  # one location may end per turn given
    started: list[str] = []
    guard = threading.Condition()

    def work(where: str) -> str:
        with guard:
            started.append(where)
            guard.notify_all()
        assert turns.acquire(timeout=60)
        return where.upper()

    def started_count(count: int) -> list[str]:
        with guard:
            assert guard.wait_for(lambda: len(started) >= count, timeout=60)
            return list(started)

    wave = reconcile._Wave(work)
    wave.add(["b", "a"])
    wave.add(["d", "c", "a"], {"d": 0, "c": 1})  # the busiest of a batch first
    wave.add(["e", "b"])  # three adds with both workers busy: none waited
    assert sorted(started_count(2)) == ["a", "b"]
    time.sleep(0.05)
    assert len(started) == 2  # at most the cap at once
    for count, following in ((3, "c"), (4, "d"), (5, "e")):
        turns.release()
        assert started_count(count)[-1] == following
    for _ in range(2):
        turns.release()
    assert wave.results() == {w: w.upper() for w in "abcde"}
    assert len(started) == 5


def test_a_wave_with_nothing_added_has_no_results() -> None:
    assert reconcile._Wave(str.upper).results() == {}
