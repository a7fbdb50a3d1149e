"""The reconciler's cold start against a bare boto3 handler, in fresh processes.

    .venv/bin/python benchmarks/cold_start.py [--runs 9] [--no-layer] [--importtime]

Each measurement is a new Python process that times, from its first line, the import and the
initialisation a first invoke pays, and reports its peak RSS (`ru_maxrss`):
- bare: a handler module that imports boto3 and creates the clients the reconciler creates on
  a first invoke (DynamoDB in the home Region, Route 53 Resolver and EC2 in one Region);
- reconciler: `functions/reconciler/app.py` imported with the layer's package on `sys.path`
  (Powertools Logger and Metrics are built at import), then `_reconciler()` as the first invoke
  runs it, and the same three clients made through `resolver_mesh.aws.session.Aws`.
The two alternate, so that a busy moment of the machine hits both alike. Clients are created
against `AWS_ENDPOINT_URL=http://127.0.0.1:9` with dummy credentials: creating a client makes
no call. The medians, their ratio (target <= 1.3) and the peak RSS (target < 128 MiB) are
printed, then the layer's size: built as `sam build` would (pip for manylinux2014_aarch64 and
Python 3.12, plus the package), unpacked and zipped. `--importtime` lists the modules the
reconciler imports beyond the bare handler, by cumulative import time (`python -X importtime`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYER_SOURCE = ROOT / "layers" / "core"
FUNCTION = ROOT / "functions" / "reconciler"
HOME_REGION = "us-east-1"
OTHER_REGION = "us-east-2"
TARGET_RATIO = 1.3
TARGET_MIB = 128

_CONFIG = (
    "Config(retries={'total_max_attempts': 1, 'mode': 'standard'}, connect_timeout=5.0,"
    " read_timeout=20.0, max_pool_connections=4)"
)
BARE = f"""
import time
_t0 = time.perf_counter()
import boto3
from botocore.config import Config
session = boto3.session.Session()
config = {_CONFIG}
clients = [
    session.client("dynamodb", region_name={HOME_REGION!r}, config=config),
    session.client("route53resolver", region_name={OTHER_REGION!r}, config=config),
    session.client("ec2", region_name={OTHER_REGION!r}, config=config),
]
_t1 = time.perf_counter()
"""


def reconciler_code(layer: Path) -> str:
    """The first invoke's initialisation, with the layer's modules at `layer`."""
    return f"""
import time
_t0 = time.perf_counter()
import sys
sys.path[:0] = [{str(layer)!r}, {str(FUNCTION)!r}]
import app
aws = app._reconciler().aws
clients = [
    aws.hubs_table().client,
    aws.resolver({OTHER_REGION!r}).client,
    aws.client("ec2", {OTHER_REGION!r}),
]
_t1 = time.perf_counter()
"""


RECONCILER = reconciler_code(LAYER_SOURCE)
REPORT = """
import json, resource
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": _t1 - _t0, "maxrss_kib": peak}))
"""


def child_environment() -> dict[str, str]:
    """Only what the children need: the emulator-less endpoint, dummy credentials, no config."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": HOME_REGION,
        "AWS_DEFAULT_REGION": HOME_REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "HUBS_TABLE_NAME": "resolver-mesh-hubs",
        "MESH_ID": "resolver-mesh",
        "POWERTOOLS_SERVICE_NAME": "resolver-mesh",
        "POWERTOOLS_METRICS_NAMESPACE": "ResolverMesh",
    }


def run_once(python: str, code: str, *flags: str) -> dict[str, float]:
    done = subprocess.run(
        [python, *flags, "-c", code + REPORT],
        env=child_environment(),
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def import_times(python: str, code: str) -> dict[str, tuple[int, int]]:
    """(self, cumulative) import time in microseconds of every module the code imports."""
    done = subprocess.run(
        [python, "-X", "importtime", "-c", code],
        env=child_environment(),
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    times: dict[str, tuple[int, int]] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        times[name] = (int(own), int(cumulative))
    return times


def added_imports(python: str) -> list[tuple[str, float]]:
    """Milliseconds of import time (self time, summed per top-level package, the median of
    three runs) of the modules the reconciler imports and the bare handler does not."""
    totals: dict[str, list[float]] = {}
    for _ in range(3):
        base = import_times(python, BARE)
        run: dict[str, float] = {}
        for name, (own, _cumulative) in import_times(python, RECONCILER).items():
            if name in base:
                continue
            top = name if name.startswith("resolver_mesh.") else name.split(".")[0]
            top = ".".join(top.split(".")[:2]) if top.startswith("resolver_mesh.aws") else top
            run[top] = run.get(top, 0.0) + own / 1000
        for name, ms in run.items():
            totals.setdefault(name, []).append(ms)
    return sorted(
        ((name, statistics.median(ms)) for name, ms in totals.items()), key=lambda kv: -kv[1]
    )


def layer_size(python_version: str = "3.12") -> str:
    """The layer as `sam build` makes it (without SAM), unpacked and zipped; or why not."""
    with tempfile.TemporaryDirectory(prefix="resolver-mesh-layer-") as scratch:
        target = Path(scratch) / "python"
        pip = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-compile",
                "-r",
                str(LAYER_SOURCE / "requirements.txt"),
                "--target",
                str(target),
                "--platform",
                "manylinux2014_aarch64",
                "--only-binary=:all:",
                "--python-version",
                python_version,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if pip.returncode != 0:
            last = (pip.stderr.strip().splitlines() or ["no output"])[-1]
            return f"layer size skipped: pip could not download the dependencies ({last})"
        shutil.copytree(
            LAYER_SOURCE / "resolver_mesh",
            target / "resolver_mesh",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        unpacked = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
        archive = Path(scratch) / "layer.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for file in sorted(target.rglob("*")):
                if file.is_file():
                    zipped.write(file, file.relative_to(scratch))
        files = sum(1 for f in target.rglob("*") if f.is_file())
        return (
            f"layer (python{python_version}, arm64, {files} files):"
            f" {unpacked / 2**20:.1f} MiB unpacked, {archive.stat().st_size / 2**20:.1f} MiB zipped"
        )


def shipped_layer(scratch: Path, python: str) -> dict[str, Path] | str:
    """The layer's packages for this machine, installed the way `sam build` ships them: from
    wheels, with no bytecode (`.pyc` files in the zip would not validate anyway: SAM dates
    zip entries 1980). Also a copy compiled with hash-checked bytecode that does validate.
    Returns {variant: path}, or why it could not be built."""
    bare = scratch / "no-bytecode"
    pip = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--target",
            str(bare),
            "-r",
            str(LAYER_SOURCE / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if pip.returncode != 0:
        return (pip.stderr.strip().splitlines() or ["no output"])[-1]
    shutil.copytree(
        LAYER_SOURCE / "resolver_mesh",
        bare / "resolver_mesh",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    compiled = scratch / "hash-bytecode"
    shutil.copytree(bare, compiled)
    subprocess.run(
        [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(compiled)],
        capture_output=True,
        timeout=600,
        check=True,
    )
    return {"shipped": bare, "shipped-pyc": compiled}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="processes per variant (>= 7)")
    parser.add_argument("--python", default=sys.executable, help="interpreter to measure")
    parser.add_argument("--no-layer", action="store_true", help="skip building the layer")
    parser.add_argument("--importtime", action="store_true", help="what the reconciler adds")
    parser.add_argument(
        "--no-shipped",
        dest="shipped",
        action="store_false",
        help="skip the variants with the layer installed from wheels (as shipped)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.runs < 7:
        parser.error("--runs must be at least 7")

    version = subprocess.run(
        [args.python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    variants: dict[str, tuple[str, tuple[str, ...]]] = {
        "bare": (BARE, ()),
        "reconciler": (RECONCILER, ()),
    }
    scratch = Path(tempfile.mkdtemp(prefix="resolver-mesh-cold-"))
    shipped: dict[str, Path] | str = "skipped (--no-shipped)"
    try:
        if args.shipped:
            shipped = shipped_layer(scratch, args.python)
        if isinstance(shipped, dict):
            # -B: nothing may be written next to the layer (read-only /opt in Lambda)
            for name, path in shipped.items():
                variants[name] = (reconciler_code(path), ("-B",))
        for code, flags in variants.values():  # once each, unmeasured: caches written
            run_once(args.python, code, *flags)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, (code, flags) in variants.items():
                samples[name].append(run_once(args.python, code, *flags))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    figures = {
        name: {
            "median_seconds": statistics.median(s["seconds"] for s in runs),
            "min_seconds": min(s["seconds"] for s in runs),
            "max_seconds": max(s["seconds"] for s in runs),
            "peak_rss_mib": max(s["maxrss_kib"] for s in runs) / 1024,
        }
        for name, runs in samples.items()
    }
    bare, reconciler = figures["bare"], figures["reconciler"]
    ratio = reconciler["median_seconds"] / bare["median_seconds"]
    ratio_ok = "met" if ratio <= TARGET_RATIO else "NOT met"
    rss_ok = "met" if reconciler["peak_rss_mib"] < TARGET_MIB else "NOT met"
    print(f"Python {version}, {os.cpu_count()} CPUs, median of {args.runs} fresh processes each")
    print()
    print("| variant | import + init, median (min-max) | / bare | peak RSS |")
    print("|---|---:|---:|---:|")
    for name, text in (
        ("bare", "bare handler: boto3 + 3 clients"),
        ("reconciler", "reconciler: app.py + `_reconciler()` + 3 clients"),
        ("shipped", "reconciler, layer as `sam build` ships it (no .pyc)"),
        ("shipped-pyc", "reconciler, layer with hash-checked .pyc"),
    ):
        if name not in figures:
            continue
        f = figures[name]
        print(
            f"| {text} | {f['median_seconds'] * 1000:.0f} ms"
            f" ({f['min_seconds'] * 1000:.0f}-{f['max_seconds'] * 1000:.0f})"
            f" | {f['median_seconds'] / bare['median_seconds']:.2f}"
            f" | {f['peak_rss_mib']:.0f} MiB |"
        )
    print()
    print(f"ratio reconciler / bare: {ratio:.2f} (target <= {TARGET_RATIO}: {ratio_ok})")
    print(
        f"peak RSS of the reconciler: {reconciler['peak_rss_mib']:.0f} MiB"
        f" (target < {TARGET_MIB} MiB: {rss_ok})"
    )
    if isinstance(shipped, str):
        print(f"layer as shipped: {shipped}")

    if args.importtime:
        added = added_imports(args.python)
        print()
        print(
            "what the reconciler imports beyond the bare handler (self time, python -X importtime):"
        )
        for name, ms in added[:12]:
            print(f"  {ms:6.1f} ms  {name}")
        print(f"  {sum(ms for _, ms in added):6.1f} ms  in all ({len(added)} packages and modules)")

    layer = "layer size skipped (--no-layer)" if args.no_layer else layer_size()
    print()
    print(layer)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"python": version, "runs": args.runs, "figures": figures, "ratio": ratio},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
