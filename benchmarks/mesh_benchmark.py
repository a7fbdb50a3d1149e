"""How close a reconcile comes to the physical minimum of the Route 53 Resolver rate limit.

    .venv/bin/python benchmarks/mesh_benchmark.py [--regions 3,8,16,30] [--latency 0.05] [--rate 5]

For each mesh size N, on the local emulator (moto on 127.0.0.1, nothing else is contacted):
1. builds N hubs (VPC, inbound and outbound Resolver endpoints, S3 interface endpoint), one per
   Region, and registers them in the hubs table, with no simulated latency;
2. then wraps the emulator's WSGI app in a `LatencyInjector` that holds every request for
   `--latency` seconds (the server is threaded: concurrent requests overlap, as in AWS) and
   counts the requests per Region, read from the SigV4 credential scope;
3. measures three reconciles with `CALLS_PER_SECOND=--rate` over the N Regions, each with a
   fresh `Aws` (clients, rate limiters) as a CLI run or a cold Lambda would have:
   - cold: converging from nothing (2(N-1) rules and as many associations per Region);
   - no-op: a second reconcile straight after (no write);
   - change: one hub's inbound endpoint gets a new IP (2 rules updated in each other Region).

The lower bound of a run is the number of calls made in its busiest Region divided by the rate:
the rate limiter lets no Region go faster. The ratio wall / lower bound says what the engine
loses beyond that limit (phase boundaries, latency not hidden, CPU). The Markdown table is
printed at the end; `--json FILE` also writes the raw figures, `--gaps` prints where the
busiest Region of each run waited longer than the limiter's interval.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core"))

import boto3  # noqa: E402

from mesh_emulator.server import LocalEmulator, emulator_environment  # noqa: E402
from resolver_mesh.aws.session import Aws  # noqa: E402
from resolver_mesh.config import Settings  # noqa: E402
from resolver_mesh.local.topology import (  # noqa: E402
    KNOWN_REGIONS,
    CachedClients,
    HubResources,
    build_hub,
    create_hubs_table,
    hub_item,
)
from resolver_mesh.models import Request  # noqa: E402
from resolver_mesh.reconcile import Reconciler  # noqa: E402
from resolver_mesh.report import Report  # noqa: E402

HOME_REGION = "us-east-1"
TABLE = "resolver-mesh-bench"
# SigV4: `Credential=AKID/20250101/us-east-2/route53resolver/aws4_request`
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_HOST = re.compile(r"\.([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com")

StartResponse = Callable[..., Any]


def request_scope(environ: dict[str, Any]) -> tuple[str, str]:
    """(Region, service) of a request: from its signature, else from its host name."""
    found = _SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    if found:
        return found.group(1), found.group(2)
    host = _HOST.search(str(environ.get("HTTP_HOST", "")))
    return (host.group(1) if host else "unknown"), "unknown"


class LatencyInjector:
    """A WSGI middleware that holds every request for `latency` seconds and counts it by
    Region and service, with its start time (for `--gaps`). `latency = 0` only counts."""

    def __init__(self, app: Any, latency: float) -> None:
        self.app = app
        self.latency = latency
        self.by_region: Counter[str] = Counter()
        self.by_service: Counter[tuple[str, str]] = Counter()
        self.starts: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.by_region.clear()
            self.by_service.clear()
            self.starts.clear()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        region, service = request_scope(environ)
        with self._lock:
            self.by_region[region] += 1
            self.by_service[region, service] += 1
            self.starts.setdefault(region, []).append(time.monotonic())
        if self.latency > 0:
            time.sleep(self.latency)
        return self.app(environ, start_response)  # type: ignore[no-any-return]


@contextmanager
def injected_latency(emulator: LocalEmulator, latency: float) -> Iterator[LatencyInjector]:
    """Hold every request to `emulator` for `latency` seconds for the duration of the block."""
    with emulator.wrapped(lambda app: LatencyInjector(app, latency)) as injector:
        yield injector


@dataclass
class Run:
    """The figures of one measured reconcile."""

    run: str
    regions: int
    reads: int
    writes: int
    wall: float
    busiest_region: str
    busiest_calls: int
    lower_bound: float
    ratio: float
    changes: dict[str, int] = field(default_factory=dict)
    gaps: list[tuple[float, float]] = field(default_factory=list)


def benchmark_regions(count: int) -> list[str]:
    """`count` Regions botocore knows Route 53 Resolver in, the home Region first, in the
    order the local topology assigns CIDR blocks (so that no two hubs' networks overlap)."""
    session = boto3.session.Session()
    known = set(session.get_available_regions("route53resolver"))
    ordered = [HOME_REGION, *(r for r in KNOWN_REGIONS if r in known and r != HOME_REGION)]
    if count > len(ordered):
        raise SystemExit(f"at most {len(ordered)} Regions are available, asked for {count}")
    return ordered[:count]


def _gaps(starts: list[float], interval: float, since: float) -> list[tuple[float, float]]:
    """(when, how long) for every pause between two calls longer than 1.5 x `interval`."""
    ordered = sorted(starts)
    return [
        (round(a - since, 3), round(b - a, 3))
        for a, b in itertools.pairwise(ordered)
        if b - a > 1.5 * interval
    ]


def measure(
    name: str,
    settings: Settings,
    session: boto3.session.Session,
    injector: LatencyInjector,
    freeze: bool = True,
) -> Run:
    injector.reset()
    if freeze:
        # The emulator shares this process: its heap (moto's models of every service and
        # Region) would make each full collection stop every thread for 0.2-0.5 s, a pause a
        # Lambda's small heap does not have. Move what exists now out of the collector's way.
        gc.collect()
        gc.freeze()
    started = time.monotonic()
    report: Report = Reconciler(Aws(settings, session)).run(Request(apply=True, trigger=name))
    wall = time.monotonic() - started
    if not report.ok:
        raise SystemExit(f"{name}: the reconcile failed: {json.dumps(report.as_dict())[:2000]}")
    busiest, calls = max(injector.by_region.items(), key=lambda kv: (kv[1], kv[0]))
    reads, writes = report.calls["reads"], report.calls["writes"]
    attempts = sum(report.calls.values())  # failed attempts reached the emulator too
    if attempts != sum(injector.by_region.values()):
        raise SystemExit(
            f"{name}: the report counts {attempts} calls, the emulator saw"
            f" {sum(injector.by_region.values())}: {dict(injector.by_service)}"
        )
    bound = calls / settings.calls_per_second
    return Run(
        run=name,
        regions=len(settings.mesh_regions),
        reads=reads,
        writes=writes,
        wall=round(wall, 2),
        busiest_region=busiest,
        busiest_calls=calls,
        lower_bound=round(bound, 2),
        ratio=round(wall / bound, 2),
        changes={k: v for k, v in report.counts.items() if v},
        gaps=_gaps(injector.starts[busiest], 1 / settings.calls_per_second, started),
    )


def bench_mesh(
    emulator: LocalEmulator,
    session: boto3.session.Session,
    count: int,
    latency: float,
    rate: float,
    log: Callable[[str], None],
    freeze: bool = True,
) -> tuple[list[Run], float]:
    """Build a mesh of `count` hubs, then time the three reconciles. Returns the runs and the
    time it took to build the hubs."""
    emulator.reset()
    regions = benchmark_regions(count)
    client = CachedClients(session)

    started = time.monotonic()
    hubs: dict[str, HubResources] = {region: build_hub(client, region) for region in regions}
    create_hubs_table(client, HOME_REGION, TABLE)
    table = Aws(Settings(table_name=TABLE, home_region=HOME_REGION), session).hubs_table()
    for hub in hubs.values():
        table.put_item(hub_item(hub))
    built = time.monotonic() - started
    log(f"  {count} hubs built and registered in {built:.1f}s")

    settings = Settings(
        table_name=TABLE,
        home_region=HOME_REGION,
        mesh_regions=tuple(regions),
        calls_per_second=rate,
    )
    rules = 2 * (count - 1) * count  # two domains per peer hub, in every Region
    runs = []
    with injected_latency(emulator, latency) as injector:
        cold = measure("cold converge", settings, session, injector, freeze)
        expected = {"create_rule": rules, "associate": rules}
        if cold.changes != expected:
            raise SystemExit(f"cold converge made {cold.changes}, expected {expected}")
        runs.append(cold)
        log(f"  cold converge: {cold.wall}s")
        noop = measure("no-op", settings, session, injector, freeze)
        if noop.writes:
            raise SystemExit(f"the no-op made {noop.writes} writes")
        runs.append(noop)
        log(f"  no-op: {noop.wall}s")

        changed = regions[1]  # not the home Region: its calls are not the busiest anyway
        new_ip(client, hubs[changed])
        change = measure("single change", settings, session, injector, freeze)
        if change.changes != {"update_rule": 2 * (count - 1)}:
            raise SystemExit(f"the single change made {change.changes}")
        runs.append(change)
        log(f"  single change ({changed}'s inbound endpoint gets an IP): {change.wall}s")
    return runs, built


def new_ip(client: Callable[[str, str], Any], hub: HubResources) -> None:
    """Give the hub's inbound endpoint one more IP (.53 of its first subnet)."""
    ec2 = client("ec2", hub.region)
    cidr = ec2.describe_subnets(SubnetIds=[hub.subnet_ids[0]])["Subnets"][0]["CidrBlock"]
    client("route53resolver", hub.region).associate_resolver_endpoint_ip_address(
        ResolverEndpointId=hub.inbound_endpoint_id,
        IpAddress={"SubnetId": hub.subnet_ids[0], "Ip": f"{cidr.rsplit('.', 2)[0]}.0.53"},
    )


def markdown(runs: list[Run]) -> str:
    head = (
        "| run | Regions | reads | writes | wall (s) | busiest Region: calls "
        "| lower bound (s) | wall / bound |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---|---:|---:|"]
    for run in runs:
        lines.append(
            f"| {run.run} | {run.regions} | {run.reads} | {run.writes} | {run.wall:.2f} "
            f"| {run.busiest_region}: {run.busiest_calls} | {run.lower_bound:.2f} "
            f"| {run.ratio:.2f} |"
        )
    return "\n".join(lines)


def isolate_from_aws() -> None:
    """Only the emulator: no profile, no config file, no per-service endpoint."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL_") or name in ("AWS_PROFILE", "AWS_REGION"):
            del os.environ[name]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regions", default="3,8,16,30", help="mesh sizes (comma-separated)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added per call")
    parser.add_argument("--rate", type=float, default=5.0, help="calls per second per Region")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--gaps", action="store_true", help="print the busiest Region's pauses")
    parser.add_argument(
        "--no-freeze",
        dest="freeze",
        action="store_false",
        help="leave the emulator's heap to the garbage collector during the runs",
    )
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.regions.split(",") if n.strip()]

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    isolate_from_aws()
    started = time.monotonic()
    runs: list[Run] = []
    build_times: dict[int, float] = {}
    with LocalEmulator() as emulator:
        os.environ.update(emulator_environment(emulator.endpoint_url))
        session = boto3.session.Session()
        for count in sizes:
            log(f"mesh of {count} Regions (latency {args.latency}s, {args.rate} calls/s)")
            mesh_runs, build_times[count] = bench_mesh(
                emulator, session, count, args.latency, args.rate, log, args.freeze
            )
            runs += mesh_runs
    total = time.monotonic() - started

    print(
        f"Simulated latency {args.latency * 1000:.0f} ms per call, {args.rate:g} calls/s per"
        f" Region, {os.cpu_count()} CPUs; benchmark took {total:.0f}s"
        f" (building hubs: {sum(build_times.values()):.0f}s)."
    )
    print()
    print(markdown(runs))
    if args.gaps:
        for run in runs:
            pauses = ", ".join(f"{d}s at {t}s" for t, d in run.gaps) or "none"
            print(f"\n{run.regions} Regions, {run.run}, {run.busiest_region}: pauses {pauses}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "latency": args.latency,
                    "rate": args.rate,
                    "seconds": round(total, 1),
                    "build_seconds": build_times,
                    "runs": [asdict(run) for run in runs],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
