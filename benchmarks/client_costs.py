"""What a member account costs in clients, over https as on AWS: memory and CPU per account.

    .venv/bin/python benchmarks/client_costs.py [--accounts 5 25] [--regions 6]

The local emulator speaks plain http, so it cannot show what TLS costs. Here every client
talks to an https endpoint on 127.0.0.1 (`mesh_emulator.tls.LoopbackTls`) verified with a CA
bundle the size of botocore's default (certifi's, with the endpoint's CA added). For N member
accounts, each reached by AssumeRole, a fresh process makes the four clients a member
location reads with (Route 53 Resolver, EC2, RAM, Route 53 Profiles) in each of `--regions`
Regions and makes one call with each (a new TLS connection each). Variants:

- *botocore*: a boto3 session per account from the assumed credentials, clients as botocore
  makes them (what a reconciler written without care for scale would do);
- *mesh, TLS per client*: `Aws.member` and `Aws.client` with a TLS context per client, as
  botocore does (the mesh before its shared TLS contexts);
- *mesh*: `Aws.member` and `Aws.client` as released.

Reported: the peak RSS (`VmHWM`) and the CPU (`time.process_time`) of the process after its
imports, and per member account (the difference between the two sizes, over the difference in
accounts). The child runs with the function's process environment (`MALLOC_ARENA_MAX`).
Figures, not tests: tests/integration/test_client_tls.py holds the count of CA bundle loads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "core"))
sys.path.insert(0, str(ROOT / "emulator"))

VARIANTS = ("botocore", "mesh, TLS per client", "mesh")
SERVICES = {
    "route53resolver": "list_resolver_rules",
    "ec2": "describe_vpcs",
    "ram": "get_resource_share_invitations",
    "route53profiles": "list_profiles",
}
REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"]


def child(variant: str, accounts: int, regions: list[str]) -> None:
    import boto3

    from resolver_mesh.aws.session import _SHARED_CLIENT_PARTS, Aws
    from resolver_mesh.config import Settings
    from resolver_mesh.local.org import peak_mib
    from resolver_mesh.models import AccountAccess

    if variant == "mesh, TLS per client":
        _SHARED_CLIENT_PARTS.share_http = lambda client: None  # type: ignore[method-assign]
    home = boto3.session.Session(region_name=regions[0])
    aws = Aws(Settings(home_region=regions[0]), home)
    aws.client("sts", regions[0])  # the home account's clients are not the members'
    imports, started = peak_mib(), time.process_time()
    kept = []  # a reconcile keeps its clients until it ends
    for index in range(accounts):
        account = f"{200000000000 + index:012d}"
        role = f"arn:aws:iam::{account}:role/resolver-mesh-member-resolver-mesh"
        if variant == "botocore":
            sts = home.client("sts")
            assumed = sts.assume_role(RoleArn=role, RoleSessionName="costs")["Credentials"]
            session = boto3.session.Session(
                aws_access_key_id=assumed["AccessKeyId"],
                aws_secret_access_key=assumed["SecretAccessKey"],
                aws_session_token=assumed["SessionToken"],
            )
            made = [session.client(s, region_name=r) for r in regions for s in SERVICES]
        else:
            member = aws.member(AccountAccess(account_id=account, role_arn=role))
            made = [member.client(s, r) for r in regions for s in SERVICES]
        for client in made:
            getattr(client, SERVICES[client.meta.service_model.service_name])()
        kept += made
    print(
        json.dumps({"peak": peak_mib(), "imports": imports, "cpu": time.process_time() - started})
    )


def measure(variant: str, accounts: int, regions: list[str], environment: dict[str, str]) -> dict:
    command = [sys.executable, __file__, "--child", variant, str(accounts), ",".join(regions)]
    done = subprocess.run(
        command, env=environment, capture_output=True, text=True, check=False, timeout=900
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant}, {accounts} accounts failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--accounts", type=int, nargs=2, default=[5, 25])
    parser.add_argument("--regions", type=int, default=6)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        variant, accounts, regions = args.child
        child(variant, int(accounts), regions.split(","))
        return 0
    import certifi

    from mesh_emulator.tls import LoopbackTls
    from resolver_mesh.local.org import FUNCTION_PROCESS_ENVIRONMENT

    regions = REGIONS[: args.regions]
    few, many = sorted(args.accounts)
    with LoopbackTls() as tls, tempfile.TemporaryDirectory() as folder:
        bundle = Path(folder) / "bundle.pem"  # certifi's CAs, and the endpoint's
        bundle.write_bytes(Path(certifi.where()).read_bytes() + tls.ca_bundle.read_bytes())
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            **FUNCTION_PROCESS_ENVIRONMENT,
            "AWS_ENDPOINT_URL": tls.endpoint_url,
            "AWS_CA_BUNDLE": str(bundle),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "PYTHONPATH": str(ROOT / "layers" / "core"),
        }
        clients = len(regions) * len(SERVICES)
        print(
            f"{len(regions)} Regions, {len(SERVICES)} clients per Region ({clients} per member"
            f" account), one https call each; {few} and {many} member accounts.\n"
        )
        print(
            "| variant | peak at "
            f"{few} (MiB) | peak at {many} (MiB) | per member account (MiB) | CPU per member"
            " account (ms) |"
        )
        print("|---|---:|---:|---:|---:|")
        for variant in VARIANTS:
            small = measure(variant, few, regions, environment)
            large = measure(variant, many, regions, environment)
            memory = (large["peak"] - small["peak"]) / (many - few)
            cpu = (large["cpu"] - small["cpu"]) * 1000 / (many - few)
            print(
                f"| {variant} | {small['peak']:.0f} | {large['peak']:.0f} | {memory:.2f}"
                f" | {cpu:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
