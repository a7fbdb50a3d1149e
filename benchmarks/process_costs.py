"""Where a warm no-op's CPU goes in the reconciling process, per AWS call, beyond botocore.

    .venv/bin/python benchmarks/process_costs.py [--members 40] [--regions 6] [--latency 0.05]
        [--rate 5] [--repeat 3]     # about 3 minutes

Issue 11's shape (org_benchmark.py's world: hubs in `--regions` Regions, `--members` member
accounts with 2 VPCs in every hub Region) on the local emulator (in this process), every
request held `--latency` seconds. A child process (only boto3 and resolver_mesh, as the
function) converges the mesh, makes one warm no-op to warm up, then measures:

- *reconcile*: the best of `--repeat` warm no-ops (`Reconciler(aws).run(...)`), its process
  CPU split by where the threads spent it, measured at the boundaries (`time.thread_time` on
  entry and exit, about a microsecond each): inside botocore's `BaseClient._make_api_call`;
  in the `Caller` around it (rate limit, retries, counting); in the location workers around
  their calls (building states, joins); in `per_region` in the main thread (starting the
  workers, collecting); elsewhere in the main thread (scope, plan, checks, report); and the
  rest (the workers' own start and end, and their loop between tasks);
- *replayed*: the very calls the no-op made (recorded with their arguments), again, with the
  same clients: by a thread per location through the `Caller` (rate limits as in a reconcile),
  by a thread per location straight to the client, and by one thread straight to the client
  (one location in `SERIAL_SAMPLE`: each call waits for its latency).

Reported per call: the process's user and system CPU (`os.times`), its voluntary and
involuntary context switches (`getrusage`), and the split above. Boundaries, not a profiler:
cProfile (even timed per thread by `time.thread_time`) inflates the pure planning steps'
many small Python calls several times over, and a sampler attributes a thread's CPU to where
it waits (in a socket read), not to where it spent it. Figures, not tests: a 2-core machine
shared with the emulator (in the parent process).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core"))
sys.path.insert(0, str(ROOT / "emulator"))
sys.path.insert(0, str(ROOT / "benchmarks"))

SPLIT = (
    ("botocore", "botocore (`BaseClient._make_api_call`)"),
    ("caller", "`Caller` around it (rate limit, retries, counts)"),
    ("workers", "location workers around their calls"),
    ("pool", "`per_region` in the main thread (starting workers, collecting)"),
    ("main", "main thread otherwise (scope, plan, checks, report)"),
    ("threads", "the rest (the workers' own start and end, their loop between tasks)"),
)
# The calls a reconcile made, by location ("main": the main thread's): method, caller, arguments.
Recorded = dict[str, list[tuple[Callable[..., Any], Any, dict[str, Any]]]]
RUNS = (
    "reconcile",
    "replayed through the Caller, a thread per location",
    "replayed straight, a thread per location",
    "replayed straight, one thread",
)
SERIAL_SAMPLE = 4  # one location in this many is replayed by one thread


class Split:
    """CPU by boundary, summed over threads: each thread adds what its outermost measured
    frame of a kind took, minus what inner measured frames took."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.in_main = 0.0  # of the totals, what the main thread's measured frames took
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextmanager
    def measured(self, kind: str) -> Iterator[None]:
        inner: Counter[str] = getattr(self._local, "inner", None) or Counter()
        self._local.inner = Counter()
        started = time.thread_time()
        try:
            yield
        finally:
            spent = time.thread_time() - started
            nested = self._local.inner
            own = spent - sum(nested.values())
            inner.update(nested)
            inner[kind] += own
            self._local.inner = inner
            if getattr(self._local, "depth", 0) == 1:  # the outermost wrapped frame
                with self._lock:
                    self.totals.update(inner)
                    if threading.current_thread() is threading.main_thread():
                        self.in_main += sum(inner.values())
                self._local.inner = None

    def wrap(self, kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def measured(*args: Any, **kwargs: Any) -> Any:
            self._local.depth = getattr(self._local, "depth", 0) + 1
            try:
                with self.measured(kind):
                    return function(*args, **kwargs)
            finally:
                self._local.depth -= 1

        return measured


def usage() -> dict[str, float]:
    times, rusage = os.times(), resource.getrusage(resource.RUSAGE_SELF)
    return {
        "user": times.user,
        "system": times.system,
        "voluntary": rusage.ru_nvcsw,
        "involuntary": rusage.ru_nivcsw,
    }


def since(before: dict[str, float]) -> dict[str, float]:
    now = usage()
    return {key: now[key] - before[key] for key in now}


def child(repeat: int) -> None:
    import botocore.client

    from resolver_mesh import reconcile
    from resolver_mesh.aws.calls import Caller
    from resolver_mesh.aws.session import Aws
    from resolver_mesh.config import Settings
    from resolver_mesh.models import Request
    from resolver_mesh.reconcile import Reconciler

    aws = Aws(Settings.from_env())
    converge = Reconciler(aws).run(Request(apply=True, trigger="converge"))
    if not converge.ok:
        raise SystemExit(f"converge failed: {converge.errors[:3]}")
    Reconciler(aws).run(Request(apply=True, trigger="warm-up"))

    def measured() -> tuple[dict[str, Any], Recorded]:
        """One warm no-op, its CPU split by boundary, and its calls by location."""
        split = Split()
        recorded: Recorded = defaultdict(list)
        plain_call, plain_make, plain_per_region = (
            Caller.__call__,
            botocore.client.BaseClient._make_api_call,
            reconcile.per_region,
        )
        at = threading.local()  # the location a worker works on

        def recording_call(caller: Caller, operation: Callable[..., Any], **kwargs: Any) -> Any:
            recorded[getattr(at, "where", "main")].append((operation, caller, kwargs))
            return plain_call(caller, operation, **kwargs)

        def measured_per_region(work: Callable[[str], Any], *args: Any, **kwargs: Any) -> Any:
            def located(where: str) -> Any:
                at.where = where
                return work(where)

            per_region = split.wrap("pool", plain_per_region)
            return per_region(split.wrap("workers", located), *args, **kwargs)

        Caller.__call__ = split.wrap("caller", recording_call)  # type: ignore[method-assign]
        botocore.client.BaseClient._make_api_call = split.wrap("botocore", plain_make)
        reconcile.per_region = measured_per_region
        try:
            main_started, before, wall = time.thread_time(), usage(), time.monotonic()
            report = Reconciler(aws).run(Request(apply=True, trigger="measured"))
            main_cpu = time.thread_time() - main_started
            spent, wall = since(before), time.monotonic() - wall
        finally:
            Caller.__call__ = plain_call  # type: ignore[method-assign]
            botocore.client.BaseClient._make_api_call = plain_make
            reconcile.per_region = plain_per_region
        if not report.ok or any(report.counts.values()):
            raise SystemExit(f"not a no-op: {report.counts} {report.errors[:3]}")
        totals = split.totals
        process = spent["user"] + spent["system"]
        main = main_cpu - split.in_main  # what the main thread did outside measured frames
        return {
            **spent,
            "wall": wall,
            "split": {
                **{kind: totals[kind] for kind in ("botocore", "caller", "workers", "pool")},
                "main": main,
                "threads": process - sum(totals.values()) - main,
            },
        }, recorded

    runs = [measured() for _ in range(repeat)]
    best, recorded = min(runs, key=lambda run: run[0]["user"] + run[0]["system"])
    result: dict[str, Any] = {
        "calls": sum(len(c) for c in recorded.values()),
        "locations": len(recorded),
        "reconcile": best,
    }
    by_location = [calls for calls in recorded.values() if calls]
    result["replayed through the Caller, a thread per location"] = replay(
        by_location, lambda op, caller, kwargs: caller(op, **kwargs), threaded=True
    )
    result["replayed straight, a thread per location"] = replay(
        by_location, lambda op, caller, kwargs: op(**kwargs), threaded=True
    )
    result["replayed straight, one thread"] = replay(  # a sample: they take 100 ms each
        by_location[::SERIAL_SAMPLE], lambda op, caller, kwargs: op(**kwargs), threaded=False
    )
    print(json.dumps(result))


def replay(
    by_location: list[list[tuple[Callable[..., Any], Any, dict[str, Any]]]],
    make: Callable[[Callable[..., Any], Any, dict[str, Any]], Any],
    threaded: bool,
) -> dict[str, float]:
    def work(calls: list[tuple[Callable[..., Any], Any, dict[str, Any]]]) -> None:
        for operation, caller, kwargs in calls:
            make(operation, caller, kwargs)

    before, wall = usage(), time.monotonic()
    if threaded:
        workers = [threading.Thread(target=work, args=(calls,)) for calls in by_location]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    else:
        for calls in by_location:
            work(calls)
    calls = sum(len(location) for location in by_location)
    return {**since(before), "wall": time.monotonic() - wall, "calls": calls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--members", type=int, default=40)
    parser.add_argument("--regions", type=int, default=6)
    parser.add_argument("--vpcs", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3, help="warm no-ops measured (the best)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.repeat)
        return 0
    from mesh_benchmark import benchmark_regions, injected_latency, isolate_from_aws
    from org_benchmark import MESH, TABLE, build_world

    from mesh_emulator.server import LocalEmulator, emulator_environment
    from resolver_mesh.local.org import FUNCTION_PROCESS_ENVIRONMENT

    isolate_from_aws()
    regions = benchmark_regions(args.regions)
    with LocalEmulator() as emulator:
        os.environ.update(emulator_environment(emulator.endpoint_url))
        build_world(emulator.endpoint_url, regions, args.members, args.vpcs)
        environment = {
            **os.environ,
            **FUNCTION_PROCESS_ENVIRONMENT,
            "HUBS_TABLE_NAME": TABLE,
            "MESH_ID": MESH,
            "HOME_REGION": regions[0],
            "MESH_REGIONS": ",".join(regions),
            "CALLS_PER_SECOND": str(args.rate),
            "PYTHONPATH": str(ROOT / "layers" / "core"),
        }
        command = [sys.executable, __file__, "--child", "--repeat", str(args.repeat)]
        with injected_latency(emulator, args.latency):
            done = subprocess.run(command, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the child failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(table(result, args))
    return 0


def table(result: dict[str, Any], args: argparse.Namespace) -> str:
    calls = result["calls"]
    lines = [
        f"{args.members} member accounts x {args.regions} Regions: a warm no-op's {calls} calls"
        f" from {result['locations']} locations, {args.latency * 1000:.0f} ms per call,"
        f" {args.rate:g} calls/s per location budget. Per call:",
        "",
        "| run | CPU (ms) | user | system | context switches (voluntary, involuntary) | wall (s) |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for run in RUNS:
        used = result[run]
        made = used.get("calls", calls)
        cpu = used["user"] + used["system"]
        lines.append(
            f"| {run} | {cpu * 1000 / made:.2f} | {used['user'] * 1000 / made:.2f}"
            f" | {used['system'] * 1000 / made:.2f} | {used['voluntary'] / made:.1f},"
            f" {used['involuntary'] / made:.1f} | {used['wall']:.1f} |"
        )
    split = result["reconcile"]["split"]
    lines += ["", "The reconcile's CPU by where it was spent, per call:", ""]
    lines += ["| where | CPU (ms) | share |", "|---|---:|---:|"]
    whole = sum(split.values()) or 1.0
    for where, label in SPLIT:
        lines.append(
            f"| {label} | {split[where] * 1000 / calls:.2f} | {split[where] / whole:.0%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
