"""End to end over HTTP: a call in one Region, its CloudTrail event published there, forwarded
to the central bus, queued in the FIFO queue, handed to the Lambda handler, rules converged."""

from __future__ import annotations

import json
import sys

import pytest
from eventkit import (
    MEMBER_REGION,
    ROOT,
    as_account,
    deploy_delivery,
    deploy_organisation_delivery,
    put,
    sample,
)

from mesh_emulator.server import LocalEmulator
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


def test_a_vpc_created_in_a_member_account_reconciles_its_region_in_every_account(
    aws: ClientFactory, monkeypatch: pytest.MonkeyPatch, emulator: LocalEmulator
) -> None:
    """The forwarder StackSet's stack in a member account sends CreateVpc to the central bus
    (the organisation's bus policy lets it in), the queue hands it to the handler, which
    reconciles that Region in the home account and in the member accounts of MEMBER_OUS; the
    member role's own call in that account reconciles nothing."""
    world = deploy_organisation_delivery(aws, emulator)
    member = world["member"]
    create_hubs_table(aws, "us-east-1", TABLE)
    for region in REGIONS:
        item = hub_item(build_hub(aws, region))
        aws("dynamodb", "us-east-1").put_item(
            TableName=TABLE, Item={k: {"S": v} for k, v in item.items()}
        )
    for name, value in {
        "HUBS_TABLE_NAME": TABLE,
        "HOME_REGION": "us-east-1",
        "MESH_REGIONS": ",".join(REGIONS),
        "CALLS_PER_SECOND": "1000",
        "MEMBER_OUS": world["root"],
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(app, "_aws", None)
    first = app.lambda_handler({"action": "resync"}, FakeLambdaContext())
    assert first["ok"], first["errors"]
    assert f"{MEMBER_REGION}@{member}" in first["regions"]

    put(world[member], as_account(member, "cloudtrail-own-member-call.json"))
    put(world[member], as_account(member, "cloudtrail-CreateVpc.json"))
    sqs, queue = world["sqs"], world["queue"]
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])
    messages = messages.get("Messages", [])
    assert len(messages) == 1  # the member role's call was not delivered
    result = app.lambda_handler(sqs_event(messages), FakeLambdaContext())

    assert result["batchItemFailures"] == []
    report = result["report"]
    assert report["ok"], report["errors"]
    assert report["regions"] == [MEMBER_REGION, f"{MEMBER_REGION}@{member}"]
    assert "CreateVpc in us-west-2" in report["trigger"]
