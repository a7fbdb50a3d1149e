"""Organisation-scale meshes on the local emulator; a cold reconcile measured in a new process.

`build_org_mesh` gives hubs in a few Regions (the home account's) and N member accounts, each with
one VPC listed in a hub's `shared_vpcs` (the emulator lets `sts.assume_role` into
`arn:aws:iam::<id>:role/<name>` act as account `<id>`). `cold_run` starts a new Python process
that runs one reconcile, as a cold Lambda would, and reports its peak memory.

Invariants:
- The child process imports only what the Lambda imports (boto3 and resolver_mesh, no moto), so
  its peak memory (`VmHWM`) is the engine's; it talks to the emulator over 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from boto3.dynamodb.types import TypeSerializer

from resolver_mesh.local.topology import (
    ClientFactory,
    HubResources,
    assumed_clients,
    build_hub,
    create_hubs_table,
    hub_item,
)

FIRST_MEMBER = 100_000_000_001  # member account ids count up from here
MEMBER_VPC_CIDR = "10.200.0.0/16"  # every member's VPC: accounts never see each other's
MIB = 1024 * 1024
# What template.yaml sets in the function's environment for the process itself (not for the
# mesh): a cold run here has it too, so that its memory is the function's.
FUNCTION_PROCESS_ENVIRONMENT = {"MALLOC_ARENA_MAX": "2"}
_serializer = TypeSerializer()


def member_account(index: int) -> str:
    return f"{FIRST_MEMBER + index:012d}"


def member_role(account: str, mesh_id: str) -> str:
    return f"arn:aws:iam::{account}:role/resolver-mesh-member-{mesh_id}"


def build_org_mesh(
    client: ClientFactory,
    endpoint_url: str | None,
    regions: list[str],
    members: int,
    table: str,
    mesh_id: str,
) -> dict[str, HubResources]:
    """Hubs in `regions` (the first is home, where the table goes) and `members` accounts, each
    with one VPC in a hub's Region (round robin) listed in that hub's `shared_vpcs`."""
    hubs = {region: build_hub(client, region) for region in regions}
    create_hubs_table(client, regions[0], table)
    shared: dict[str, list[dict[str, str]]] = {region: [] for region in regions}
    for index in range(members):
        account = member_account(index)
        region = regions[index % len(regions)]
        role = member_role(account, mesh_id)
        ec2 = assumed_clients(client, role, None, endpoint_url)("ec2", region)
        vpc = ec2.create_vpc(CidrBlock=MEMBER_VPC_CIDR)["Vpc"]["VpcId"]
        shared[region].append({"vpc_id": vpc, "account_id": account, "role_arn": role})
    dynamodb = client("dynamodb", regions[0])
    for region, hub in hubs.items():
        item = hub_item(hub, **({"shared_vpcs": shared[region]} if shared[region] else {}))
        wire = {name: _serializer.serialize(value) for name, value in item.items()}
        dynamodb.put_item(TableName=table, Item=wire)
    return hubs


@dataclass(frozen=True)
class ColdRun:
    """One reconcile in a fresh process: its peak RSS, the same before the reconcile started
    (imports only), its wall time, the sockets it holds open at its end (the connections its
    clients keep for their next calls, as a warm function keeps them) and what it did."""

    peak_mib: float
    imports_mib: float
    seconds: float
    open_sockets: int
    calls: dict[str, int]
    counts: dict[str, int]
    ok: bool


def cold_run(environment: dict[str, str], *, apply: bool = True) -> ColdRun:
    """Run one reconcile (`apply`: as the scheduled resync does) in a new process with
    `environment` (emulator credentials and settings) added to this one's."""
    command = [sys.executable, "-m", "resolver_mesh.local.org"] + (["--apply"] if apply else [])
    done = subprocess.run(  # noqa: S603 (this interpreter, this module)
        command,
        env={**os.environ, **FUNCTION_PROCESS_ENVIRONMENT, **environment},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the cold run failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return ColdRun(**json.loads(done.stdout.strip().splitlines()[-1]))


def peak_mib() -> float:
    """Peak resident memory of this process since it started (`VmHWM`). Not `ru_maxrss`: Linux
    keeps that across exec, so a child would report its parent's peak when larger."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MIB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def open_sockets() -> int:
    """The sockets this process holds open (its file descriptors that are sockets; Linux)."""
    found = 0
    for descriptor in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed meanwhile
            found += os.readlink(f"/proc/self/fd/{descriptor}").startswith("socket:")
    return found


def _child(apply: bool) -> None:
    from resolver_mesh.aws.session import Aws
    from resolver_mesh.config import Settings
    from resolver_mesh.models import Request
    from resolver_mesh.reconcile import Reconciler, tune_collector

    tune_collector()  # as the function does
    imports = peak_mib()
    started = time.monotonic()
    aws = Aws(Settings.from_env())  # kept, as a warm function keeps it, with its clients
    report = Reconciler(aws).run(Request(apply=apply, trigger="cold run"))
    seconds = time.monotonic() - started
    sockets = open_sockets()
    result = ColdRun(
        peak_mib=peak_mib(),
        imports_mib=imports,
        seconds=seconds,
        open_sockets=sockets,
        calls=dict(report.calls),
        counts={kind: n for kind, n in report.counts.items() if n},
        ok=report.ok,
    )
    print(json.dumps(result.__dict__))


if __name__ == "__main__":
    _child("--apply" in sys.argv[1:])
