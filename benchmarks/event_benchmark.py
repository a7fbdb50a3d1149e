"""Event-driven figures on the local emulator: latency from event to converged rules, and how a
burst coalesces into reconcile passes.

    .venv/bin/python benchmarks/event_benchmark.py [--trials 5] [--burst 50]

Everything runs against moto on 127.0.0.1 through HTTP: the template's rules and queues
(created from template.yaml and forwarder.yaml exactly as the event tests do), the hubs of a
three-Region mesh, and the Lambda handler fed from the FIFO queue the way Lambda's SQS event
source does (batches of 10).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "events"), str(ROOT / "functions" / "reconciler")]

REGIONS = ["us-east-1", "us-east-2", "us-west-2"]
TABLE = "bench-hubs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()

    from mesh_emulator.server import LocalEmulator, emulator_environment

    with LocalEmulator() as emulator:
        os.environ.update(emulator_environment(emulator.endpoint_url))
        os.environ.update(
            {
                "HUBS_TABLE_NAME": TABLE,
                "HOME_REGION": "us-east-1",
                "MESH_REGIONS": ",".join(REGIONS),
                "POWERTOOLS_METRICS_NAMESPACE": "ResolverMeshBench",
                "POWERTOOLS_LOG_LEVEL": "ERROR",
            }
        )
        run(args.trials, args.burst)


def run(trials: int, burst: int) -> None:
    import boto3
    from eventkit import deploy_delivery, put, sample

    import app
    from resolver_mesh.local.lambda_events import FakeLambdaContext, sqs_event
    from resolver_mesh.local.topology import CachedClients, build_hub, create_hubs_table, hub_item

    aws = CachedClients(boto3.session.Session())

    hubs = {region: build_hub(aws, region) for region in REGIONS}
    create_hubs_table(aws, "us-east-1", TABLE)
    for hub in hubs.values():
        item = {k: {"S": v} for k, v in hub_item(hub).items()}
        aws("dynamodb", "us-east-1").put_item(TableName=TABLE, Item=item)
    sqs, queue, _ = deploy_delivery(aws, REGIONS)
    context = FakeLambdaContext()

    def handle_queue() -> list[dict[str, Any]]:
        results = []
        while True:
            got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return results
            event = sqs_event(got)
            results.append(app.lambda_handler(event, context))
            for m in got:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])

    app.lambda_handler({"action": "resync"}, context)  # converge first

    latencies = []
    west = hubs["us-west-2"]
    resolver = aws("route53resolver", "us-west-2")
    for trial in range(trials):
        # Alternately add a third IP and take it away again (a rule takes at most 6 targets).
        spare = {"SubnetId": west.subnet_ids[0], "Ip": "10.12.0.60"}
        if trial % 2 == 0:
            resolver.associate_resolver_endpoint_ip_address(
                ResolverEndpointId=west.inbound_endpoint_id, IpAddress=spare
            )
            event = sample("cloudtrail-AssociateResolverEndpointIpAddress.json")
        else:
            resolver.disassociate_resolver_endpoint_ip_address(
                ResolverEndpointId=west.inbound_endpoint_id, IpAddress=spare
            )
            event = sample("cloudtrail-DisassociateResolverEndpointIpAddress.json")
        event["detail"]["eventID"] = str(uuid.uuid4())
        started = time.monotonic()
        put(aws("events", "us-west-2"), event)
        results = handle_queue()
        latencies.append(time.monotonic() - started)
        if not results or results[-1]["report"]["counts"]["update_rule"] != 4:
            raise SystemExit(f"trial {trial} did not converge: {results}")

    kinds = ["cloudtrail-CreateVpcEndpoint.json", "cloudtrail-CreateResolverRule.json"]
    started = time.monotonic()
    for i in range(burst):
        event = sample(kinds[i % 2])
        event["detail"]["eventID"] = str(uuid.uuid4())
        origin = event["detail"]["awsRegion"]
        put(aws("events", origin), event)
    passes = handle_queue()
    burst_seconds = time.monotonic() - started

    print("| figure | value |")
    print("|---|---|")
    print(
        f"| event to converged rules (inbound IP added or removed, {trials} trials) | median "
        f"{statistics.median(latencies):.2f} s, max {max(latencies):.2f} s |"
    )
    print(
        f"| burst of {burst} events: reconcile passes | {len(passes)} "
        f"({burst / max(1, len(passes)):.0f} events per pass) |"
    )
    writes = sum(p["report"]["calls"]["writes"] for p in passes if "report" in p)
    print(f"| burst: writes made / wall time | {writes} / {burst_seconds:.2f} s |")


if __name__ == "__main__":
    main()
