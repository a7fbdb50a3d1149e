"""The local emulator's CPU per call, by operation, serving a warm no-op's reads.

    .venv/bin/python benchmarks/emulator_costs.py [--members 20] [--regions 6] [--vpcs 2]
        [--latency 0.05] [--threads 32] [--repeats 3] [--baseline PATH] [--profile FILE]

The emulator runs in a process of its own (`LocalEmulator`), so that its CPU
(`time.process_time`, every thread) is its own; with `--baseline`, a second one runs another
checkout's `mesh_emulator` package (e.g. `../main/emulator`) beside it. In each, the world is
org_benchmark's (`build_world`: hubs in `--regions` Regions, `--members` member accounts with
`--vpcs` VPCs in each hub Region, reached through their member role), converged by one
reconcile in a fresh process; a second process runs a cold no-op and a warm one, whose
requests the emulator records (every read, with its member account's assumed-role
credentials). One pool of `--threads` client threads, each with its own kept-alive
connection, replays each operation's recorded requests (and all of them together), once
with every request held `--latency` seconds (`mesh_benchmark.injected_latency`) and once
without. Reported: calls, and the emulator's CPU per call, the least of `--repeats` replays,
the emulators taking turns (other processes on the machine only ever add to it).
`--profile FILE` writes a cProfile of this checkout's request threads (their CPU time,
`time.thread_time`) over one replay, for `pstats`.

A figure, not a test: it depends on the machine (2 CPUs shared by client and emulator).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import http.client
import io
import json
import os
import pstats
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "layers" / "core"))

MESH = "resolver-mesh"
TABLE = "resolver-mesh-org-benchmark"  # org_benchmark's table
_SERVICE = re.compile(r"Credential=[^/]+/\d{8}/[a-z0-9-]+/([a-z0-9-]+)/aws4_request")
Request = tuple[str, str, list[tuple[str, str]], bytes]  # method, target, headers, body


# --- the emulator's process -------------------------------------------------------------------


class _Recorder:
    """A WSGI middleware keeping every request it passes on (method, path, headers, body)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        query = environ.get("QUERY_STRING", "")
        headers = [
            (name[5:].replace("_", "-").title(), str(value))
            for name, value in environ.items()
            if name.startswith("HTTP_")
        ]
        if environ.get("CONTENT_TYPE"):
            headers.append(("Content-Type", environ["CONTENT_TYPE"]))
        with self._lock:
            self.requests.append(
                {
                    "method": environ["REQUEST_METHOD"],
                    "target": environ.get("PATH_INFO", "/") + (f"?{query}" if query else ""),
                    "headers": headers,
                    "body": base64.b64encode(body).decode(),
                }
            )
        return self.app(environ, start_response)


class _Profiles:
    """cProfile of every request thread, on CPU time, while `on`."""

    def __init__(self) -> None:
        self.on = False
        self.made: list[cProfile.Profile] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, handle: Callable[[Any], None]) -> Callable[[Any], None]:
        def profiled(handler: Any) -> None:
            if not self.on:
                handle(handler)
                return
            profile = getattr(self._local, "profile", None)
            if profile is None:
                profile = self._local.profile = cProfile.Profile(time.thread_time)
                with self._lock:
                    self.made.append(profile)
            profile.enable()
            try:
                handle(handler)
            finally:
                profile.disable()

        return profiled

    def dump(self, path: str) -> None:
        with self._lock:
            made, self.made = self.made, []
        self._local = threading.local()
        stats = pstats.Stats(*made) if made else None
        if stats is not None:
            stats.dump_stats(path)


def serve(emulator_path: str | None) -> None:
    """The emulator's process: one command a line on stdin, one answer a line on stdout."""
    if emulator_path:
        sys.path.insert(0, emulator_path)
    else:
        sys.path.insert(0, str(ROOT / "emulator"))
    from mesh_benchmark import injected_latency

    from mesh_emulator import keepalive
    from mesh_emulator.server import LocalEmulator

    profiles = _Profiles()
    handler = keepalive.KeepAliveRequestHandler
    handler.handle_one_request = profiles.wrap(handler.handle_one_request)  # type: ignore[method-assign]
    recorder: _Recorder | None = None
    with LocalEmulator() as emulator:
        print(emulator.endpoint_url, flush=True)
        latency: Any = None
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            answer: Any = "ok"
            if command == "cpu":
                answer = time.process_time()
            elif command == "record":
                recorder = _Recorder(emulator.wsgi_server().app)
                emulator.wsgi_server().app = recorder
            elif command == "recorded" and recorder is not None:
                emulator.wsgi_server().app = recorder.app
                Path(argument).write_text(json.dumps(recorder.requests))
                answer = len(recorder.requests)
            elif command == "latency":
                if latency is not None:
                    latency.__exit__(None, None, None)
                    latency = None
                if float(argument) > 0:
                    latency = injected_latency(emulator, float(argument))
                    latency.__enter__()
            elif command == "profile":
                profiles.on = True
            elif command == "profiled":
                profiles.on = False
                profiles.dump(argument)
            print(json.dumps(answer), flush=True)
            if command == "quit":
                break


class EmulatorProcess:
    """The emulator in a child process, driven through its stdin."""

    def __init__(self, emulator_path: str | None) -> None:
        command = [sys.executable, __file__, "--serve"]
        if emulator_path:
            command.append(emulator_path)
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.url = self._line()

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit("the emulator's process ended")
        return line.strip()

    def ask(self, command: str) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self._line())

    def close(self) -> None:
        self.ask("quit")
        self.process.wait(timeout=60)


# --- the warm no-op, recorded -----------------------------------------------------------------


def noop_child() -> None:
    """A cold no-op, then (after a line on stdin) a warm one in the same process."""
    from resolver_mesh.aws.session import Aws
    from resolver_mesh.config import Settings
    from resolver_mesh.models import Request as MeshRequest
    from resolver_mesh.reconcile import Reconciler

    aws = Aws(Settings.from_env())
    Reconciler(aws).run(MeshRequest(apply=True, trigger="emulator costs, cold"))
    print("cold", flush=True)
    sys.stdin.readline()
    report = Reconciler(aws).run(MeshRequest(apply=True, trigger="emulator costs, warm"))
    changed = {kind: n for kind, n in report.counts.items() if n}
    print(json.dumps({"ok": report.ok, "changed": changed}), flush=True)


def record_warm_noop(emulator: EmulatorProcess, environment: dict[str, str], path: Path) -> int:
    child = subprocess.Popen(
        [sys.executable, __file__, "--noop-child"],
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    if child.stdout.readline().strip() != "cold":
        raise SystemExit("the cold no-op failed")
    emulator.ask("record")
    child.stdin.write("go\n")
    child.stdin.flush()
    result = json.loads(child.stdout.readline())
    child.wait(timeout=60)
    recorded = int(emulator.ask(f"recorded {path}"))
    if not result["ok"] or result["changed"]:
        raise SystemExit(f"the warm run was not a no-op: {result}")
    return recorded


# --- replaying -------------------------------------------------------------------------------


def _operations() -> Callable[[str, str, str, bytes, dict[str, str]], str]:
    """A request's operation name, from its service's botocore model."""
    import botocore.session

    session = botocore.session.get_session()
    routes: dict[str, list[tuple[str, re.Pattern[str], str]]] = {}

    def rest_routes(service: str) -> list[tuple[str, re.Pattern[str], str]]:
        if service not in routes:
            model = session.get_service_model(service)
            found = []
            for name in model.operation_names:
                http = model.operation_model(name).http
                path = http["requestUri"].split("?")[0]
                pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path))
                found.append((http["method"], re.compile(f"^{pattern}$"), name))
            routes[service] = found
        return routes[service]

    def operation(service: str, method: str, target: str, body: bytes, headers: dict) -> str:
        if "X-Amz-Target" in headers:
            return headers["X-Amz-Target"].rpartition(".")[2]
        if method == "POST" and b"Action=" in body:
            return parse_qs(body.decode())["Action"][0]
        path = urlsplit(target).path
        for verb, pattern, name in rest_routes(service):
            if verb == method and pattern.match(path):
                return name
        return f"{method} {path}"

    return operation


def load(path: Path) -> list[tuple[str, Request]]:
    """(service operation, request) for every recorded request."""
    operation = _operations()
    loaded = []
    for raw in json.loads(path.read_text()):
        headers = [(name, value) for name, value in raw["headers"] if name.lower() != "host"]
        named = dict(headers)
        found = _SERVICE.search(named.get("Authorization", ""))
        service = found.group(1) if found else "unknown"
        body = base64.b64decode(raw["body"])
        name = operation(service, raw["method"], raw["target"], body, named)
        loaded.append((f"{service} {name}", (raw["method"], raw["target"], headers, body)))
    return loaded


def replay(url: str, requests: Iterable[Request], threads: int) -> None:
    """Send every request from `threads` threads, each over its own kept-alive connection;
    every answer must be a success."""
    parts = urlsplit(url)
    local = threading.local()

    def send(request: Request) -> None:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=60
            )
        method, target, headers, body = request
        connection.request(method, target, body=body, headers=dict(headers))
        response = connection.getresponse()
        payload = response.read()
        if response.status >= 300:
            raise SystemExit(f"{method} {target}: {response.status} {payload[:300]!r}")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, requests))


Prepared = tuple[EmulatorProcess, list[tuple[str, Request]]]  # an emulator, its recording


def cpu_by_operation(
    prepared: dict[str, Prepared], threads: int, repeats: int, latency: float
) -> dict[str, dict[str, tuple[int, float]]]:
    """variant -> operation -> (calls per replay, emulator CPU per call in ms): the least of
    `repeats` replays of each operation's requests alone ("all": every request together),
    the variants taking turns, so that they meet the same load from other processes (which
    only ever adds CPU: cache misses, a colder core)."""
    figures: dict[str, dict[str, tuple[int, float]]] = {variant: {} for variant in prepared}
    groups: dict[str, dict[str, list[Request]]] = {}
    for variant, (emulator, recorded) in prepared.items():
        emulator.ask(f"latency {latency}")
        by_operation: dict[str, list[Request]] = defaultdict(list)
        for name, request in recorded:
            by_operation[name].append(request)
        groups[variant] = {"all": [request for _, request in recorded], **by_operation}
    for name in groups[next(iter(prepared))]:
        least: dict[str, float] = {}
        for _ in range(repeats):
            for variant, (emulator, _recorded) in prepared.items():
                requests = groups[variant].get(name, [])
                started = float(emulator.ask("cpu"))
                replay(emulator.url, requests, threads)
                cpu = float(emulator.ask("cpu")) - started
                least[variant] = min(least.get(variant, cpu), cpu)
        for variant in prepared:
            calls = len(groups[variant].get(name, []))
            figures[variant][name] = (calls, least[variant] * 1000 / max(calls, 1))
    for emulator, _recorded in prepared.values():
        emulator.ask("latency 0")
    return figures


def prepare(args: argparse.Namespace, emulator: EmulatorProcess, work: Path) -> Prepared:
    """Build and converge the world in `emulator`, then record a warm no-op's requests."""
    from mesh_benchmark import benchmark_regions, isolate_from_aws
    from org_benchmark import build_world, run_child

    from resolver_mesh.local.org import FUNCTION_PROCESS_ENVIRONMENT

    isolate_from_aws()
    regions = benchmark_regions(args.regions)
    sys.path.insert(0, str(ROOT / "emulator"))
    from mesh_emulator.server import emulator_environment

    os.environ.update(emulator_environment(emulator.url))
    started = time.monotonic()
    build_world(emulator.url, regions, args.members, args.vpcs)
    log(f"  world built in {time.monotonic() - started:.0f}s")
    environment = {
        "HUBS_TABLE_NAME": TABLE,
        "MESH_ID": MESH,
        "HOME_REGION": regions[0],
        "MESH_REGIONS": ",".join(regions),
        "CALLS_PER_SECOND": "1000",  # nothing is measured until the warm no-op
    }
    converge = run_child(environment, warm=False)
    if not converge.ok:
        raise SystemExit(f"the converge failed: {converge.errors}")
    log(f"  converged in {converge.seconds:.0f}s")
    child_environment = {
        **os.environ,
        **FUNCTION_PROCESS_ENVIRONMENT,
        **environment,
        "PYTHONPATH": str(ROOT / "layers" / "core"),
    }
    path = work / f"warm-noop-{id(emulator)}.json"
    calls = record_warm_noop(emulator, child_environment, path)
    log(f"  warm no-op recorded: {calls} requests")
    recorded = load(path)
    replay(emulator.url, (request for _, request in recorded), args.threads)  # warm-up
    return emulator, recorded


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--regions", type=int, default=6)
    parser.add_argument("--vpcs", type=int, default=2, help="VPCs per account and hub Region")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", help="another checkout's `emulator` folder to compare")
    parser.add_argument("--profile", help="write a cProfile of one replay here")
    parser.add_argument("--serve", nargs="?", const="", help=argparse.SUPPRESS)
    parser.add_argument("--noop-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve or None)
        return 0
    if args.noop_child:
        noop_child()
        return 0
    import tempfile

    variants: dict[str, str | None] = {"this checkout": None}
    if args.baseline:
        variants = {"baseline": str(Path(args.baseline).resolve()), **variants}
    prepared: dict[str, Prepared] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for variant, path in variants.items():
                log(f"{variant}: {args.members} member accounts, {args.regions} Regions")
                emulator = EmulatorProcess(path)
                prepared[variant] = prepare(args, emulator, Path(folder))
        log("replaying")
        results = {
            "plain": cpu_by_operation(prepared, args.threads, args.repeats, 0.0),
            "latency": cpu_by_operation(prepared, args.threads, args.repeats, args.latency),
        }
        if args.profile:
            emulator, recorded = prepared["this checkout"]
            emulator.ask("profile")
            replay(emulator.url, (request for _, request in recorded), args.threads)
            emulator.ask(f"profiled {args.profile}")
    finally:
        for emulator, _recorded in prepared.values():
            emulator.close()
    names = list(results["plain"]["this checkout"])
    heads = [f"{variant}, {mode} (ms)" for mode in results for variant in variants]
    print(
        f"{args.members} member accounts, {args.regions} Regions, {args.vpcs} VPCs per account"
        f" and Region; the warm no-op's reads replayed from {args.threads} threads; emulator"
        f" CPU per call (the least of {args.repeats} replays), without and with"
        f" {args.latency * 1000:.0f} ms latency.\n"
    )
    print("| operation | calls | " + " | ".join(heads) + " |")
    print("|---|---:|" + "---:|" * len(heads))
    for name in names:
        calls = results["plain"]["this checkout"][name][0]
        cells = [
            f"{results[mode][variant][name][1]:.2f}" for mode in results for variant in variants
        ]
        print(f"| {name} | {calls} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
