"""End to end over HTTP: a call in one Region, its CloudTrail event published there, forwarded
to the central bus, queued in the FIFO queue, handed to the Lambda handler, rules converged."""

from __future__ import annotations

import json
import sys

import pytest
from eventkit import ROOT, deploy_delivery, put, sample

from resolver_mesh.local.lambda_events import FakeLambdaContext, sqs_event
from resolver_mesh.local.topology import ClientFactory, build_hub, create_hubs_table, hub_item

sys.path.insert(0, str(ROOT / "functions" / "reconciler"))
import app

REGIONS = ["us-east-1", "us-east-2", "us-west-2"]
TABLE = "e2e-hubs"


def targets_in(aws: ClientFactory, region: str, domain: str) -> set[str]:
    pages = aws("route53resolver", region).get_paginator("list_resolver_rules").paginate()
    rules = [r for p in pages for r in p["ResolverRules"] if r["DomainName"] == domain]
    assert len(rules) == 1, rules
    return {t["Ip"] for t in rules[0]["TargetIps"]}


def test_an_inbound_ip_added_in_us_west_2_reaches_every_region_through_the_queue(
    aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    hubs = {region: build_hub(aws, region) for region in REGIONS}
    create_hubs_table(aws, "us-east-1", TABLE)
    table = aws("dynamodb", "us-east-1")
    for hub in hubs.values():
        item = hub_item(hub)
        table.put_item(TableName=TABLE, Item={k: {"S": v} for k, v in item.items()})
    for name, value in {
        "HUBS_TABLE_NAME": TABLE,
        "HOME_REGION": "us-east-1",
        "MESH_REGIONS": ",".join(REGIONS),
        "CALLS_PER_SECOND": "1000",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(app, "_aws", None)
    sqs, queue, dlq = deploy_delivery(aws, REGIONS)

    # The table's first items arrive as stream records through the pipe: converge first.
    first = app.lambda_handler(
        json.loads((ROOT / "events" / "sqs-batch.json").read_text()), FakeLambdaContext()
    )
    assert first["report"]["counts"]["create_rule"] == 12

    # Someone gives the us-west-2 inbound endpoint a third IP; CloudTrail reports the call.
    west = hubs["us-west-2"]
    aws("route53resolver", "us-west-2").associate_resolver_endpoint_ip_address(
        ResolverEndpointId=west.inbound_endpoint_id,
        IpAddress={"SubnetId": west.subnet_ids[0], "Ip": "10.12.0.99"},
    )
    event = sample("cloudtrail-AssociateResolverEndpointIpAddress.json")
    event["detail"]["requestParameters"]["resolverEndpointId"] = west.inbound_endpoint_id
    put(aws("events", "us-west-2"), event)

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])
    messages = messages.get("Messages", [])
    assert len(messages) == 1  # routed: us-west-2 default bus -> central bus -> FIFO queue
    result = app.lambda_handler(sqs_event(messages), FakeLambdaContext())

    assert result["batchItemFailures"] == []
    assert result["report"]["counts"]["update_rule"] == 4  # in place, in us-east-1 and us-east-2
    for region in ("us-east-1", "us-east-2"):
        for domain in ("us-west-2.amazonaws.com.", "us-west-2.vpce.amazonaws.com."):
            assert "10.12.0.99" in targets_in(aws, region, domain)
    assert sqs.receive_message(QueueUrl=dlq).get("Messages", []) == []
