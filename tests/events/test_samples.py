"""The samples in events/ have the real field layouts the handler will meet.

- CloudTrail through EventBridge: the envelope, the CloudTrail record in `detail`, EC2's wrapped
  request and response (`CreateVpcEndpointRequest`, `CreateVpcEndpointResponse`), Resolver's plain
  names; the drift samples by a human IAM user have no sessionIssuer;
- DynamoDB stream records as the pipe sends them (one per SQS message);
- the SQS event of the function: FIFO attributes, bodies that are the events above.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from eventkit import (
    ACCOUNT,
    CLOUDTRAIL,
    EVENTS,
    HOME,
    MEMBER_ACCOUNT,
    MEMBER_ROLE_NAME,
    MEMBER_SAMPLES,
    MESH_ID,
    OWN_ROLE_ARN,
    TEMPLATE,
    cloudtrail_samples,
    resolve,
    resource,
    sample,
    values,
)

from resolver_mesh.fanout import from_queue, order_from_json
from resolver_mesh.names import (
    OWNER_TAG_KEY,
    TARGET_TAG_KEY,
    creator_request_ids,
    owned_source,
    owned_target_region,
    rule_name,
)

REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ENVELOPE = {"version", "id", "detail-type", "source", "account", "time", "region", "resources"}
DETAIL_REQUIRED = {
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "responseElements",
    "requestID",
    "eventID",
    "readOnly",
    "eventType",
    "managementEvent",
    "recipientAccountId",
    "eventCategory",
}
ISSUER = {"type", "principalId", "arn", "accountId", "userName"}
SOURCES = {
    "aws.ec2": "ec2.amazonaws.com",
    "aws.route53resolver": "route53resolver.amazonaws.com",
    "aws.route53profiles": "route53profiles.amazonaws.com",
}
CLOUDTRAIL_FILES = sorted(cloudtrail_samples())


@pytest.mark.parametrize("file_name", CLOUDTRAIL_FILES)
def test_cloudtrail_sample_layout(file_name: str) -> None:
    event = sample(file_name)
    assert set(event) == ENVELOPE | {"detail"}
    assert event["version"] == "0"
    assert event["detail-type"] == CLOUDTRAIL
    # The VPC and tag samples, and the member role's own call, come from a member account.
    account = MEMBER_ACCOUNT if file_name in MEMBER_SAMPLES else ACCOUNT
    assert event["account"] == account
    assert TIME_RE.match(event["time"])
    assert REGION_RE.match(event["region"])
    assert isinstance(event["resources"], list)
    detail = event["detail"]
    assert set(detail) >= DETAIL_REQUIRED, DETAIL_REQUIRED - set(detail)
    assert SOURCES[event["source"]] == detail["eventSource"]
    # Delivered only in the Region of the call: before forwarding, both Regions agree.
    assert detail["awsRegion"] == event["region"]
    assert detail["eventTime"] == event["time"]
    assert detail["eventType"] == "AwsApiCall"
    assert detail["managementEvent"] is True
    assert detail["eventCategory"] == "Management"
    assert detail["readOnly"] is False
    assert detail["recipientAccountId"] == account
    identity = detail["userIdentity"]
    assert {"type", "principalId", "arn", "accountId"} <= set(identity)
    issuer = identity.get("sessionContext", {}).get("sessionIssuer")
    if identity["type"] == "AssumedRole":
        assert set(issuer) == ISSUER
        assert issuer["arn"].startswith(f"arn:aws:iam::{account}:role/")
        assert issuer["arn"].endswith(f"/{issuer['userName']}")
        assert issuer["accountId"] == identity["accountId"] == account
    else:
        assert issuer is None
    if file_name != "cloudtrail-failed-call.json":
        assert "errorCode" not in detail
        assert isinstance(detail["responseElements"], dict)
    own = (
        "cloudtrail-failed-call.json",
        "cloudtrail-own-call.json",
        "cloudtrail-own-member-call.json",
    )
    if file_name not in own:
        assert file_name == f"cloudtrail-{detail['eventName']}.json"


def test_vpc_samples_have_ec2s_query_api_shapes() -> None:
    """CreateVpc answers with the VPC; DeleteVpc names it; CreateTags/DeleteTags list their
    resources in `resourcesSet.items[].resourceId` and tags in `tagSet.items` (EC2's query API
    names lists `<name>Set` with `items`), and answer `_return`. A tag change on a VPC."""
    created = sample("cloudtrail-CreateVpc.json")["detail"]
    vpc = created["responseElements"]["vpc"]
    assert vpc["vpcId"].startswith("vpc-")
    assert vpc["ownerId"] == MEMBER_ACCOUNT
    assert created["responseElements"]["requestId"] == created["requestID"]
    deleted = sample("cloudtrail-DeleteVpc.json")["detail"]
    assert deleted["requestParameters"] == {"vpcId": deleted["requestParameters"]["vpcId"]}
    assert deleted["responseElements"] == {"requestId": deleted["requestID"], "_return": True}
    for name in ("CreateTags", "DeleteTags"):
        detail = sample(f"cloudtrail-{name}.json")["detail"]
        resources = detail["requestParameters"]["resourcesSet"]["items"]
        assert [r["resourceId"][:4] for r in resources] == ["vpc-"]
        assert detail["requestParameters"]["tagSet"]["items"]
        assert detail["responseElements"] == {"requestId": detail["requestID"], "_return": True}


def test_own_member_call_is_the_member_role_in_a_member_account() -> None:
    detail = sample("cloudtrail-own-member-call.json")["detail"]
    issuer = detail["userIdentity"]["sessionContext"]["sessionIssuer"]
    assert issuer["userName"] == MEMBER_ROLE_NAME
    assert issuer["arn"] == f"arn:aws:iam::{MEMBER_ACCOUNT}:role/{MEMBER_ROLE_NAME}"
    assert detail["eventName"] == "AssociateResolverRule"
    assert "errorCode" not in detail


@pytest.mark.parametrize(
    "event_name", ["CreateVpcEndpoint", "ModifyVpcEndpoint", "DeleteVpcEndpoints"]
)
def test_ec2_wraps_request_and_response(event_name: str) -> None:
    detail = sample(f"cloudtrail-{event_name}.json")["detail"]
    (request_key,) = detail["requestParameters"]
    (response_key,) = detail["responseElements"]
    assert request_key == f"{event_name}Request"
    assert response_key == f"{event_name}Response"
    # EC2 echoes the request id inside its response.
    assert detail["responseElements"][response_key]["requestId"] == detail["requestID"]


def test_create_vpc_endpoint_fields() -> None:
    detail = sample("cloudtrail-CreateVpcEndpoint.json")["detail"]
    request = detail["requestParameters"]["CreateVpcEndpointRequest"]
    assert request["VpcId"].startswith("vpc-")
    assert request["VpcEndpointType"] == "Interface"
    assert request["PrivateDnsEnabled"] is True
    subnets = request["SubnetId"]
    assert [s["tag"] for s in subnets] == [1, 2]
    assert all(s["content"].startswith("subnet-") for s in subnets)
    endpoint = detail["responseElements"]["CreateVpcEndpointResponse"]["vpcEndpoint"]
    assert endpoint["vpcEndpointId"].startswith("vpce-")
    assert endpoint["vpcId"] == request["VpcId"]
    assert endpoint["serviceName"] == request["ServiceName"]
    assert endpoint["state"] == "pending"
    delete = sample("cloudtrail-DeleteVpcEndpoints.json")["detail"]["requestParameters"]
    assert (
        delete["DeleteVpcEndpointsRequest"]["VpcEndpointId"]["content"]
        == (endpoint["vpcEndpointId"])
    )


def test_resolver_endpoint_fields() -> None:
    create = sample("cloudtrail-CreateResolverEndpoint.json")["detail"]
    request = create["requestParameters"]
    assert {"creatorRequestId", "name", "securityGroupIds", "direction", "ipAddresses"} <= set(
        request
    )
    endpoint = create["responseElements"]["resolverEndpoint"]
    assert endpoint["direction"] == request["direction"] == "INBOUND"
    assert endpoint["status"] == "CREATING"  # no usable IPs yet: the readiness case
    assert endpoint["id"].startswith("rslvr-in-")
    assert endpoint["hostVPCId"].startswith("vpc-")
    for event_name in (
        "UpdateResolverEndpoint",
        "DeleteResolverEndpoint",
        "AssociateResolverEndpointIpAddress",
        "DisassociateResolverEndpointIpAddress",
    ):
        detail = sample(f"cloudtrail-{event_name}.json")["detail"]
        assert detail["requestParameters"]["resolverEndpointId"] == endpoint["id"], event_name
        assert detail["responseElements"]["resolverEndpoint"]["id"] == endpoint["id"], event_name
    associate = sample("cloudtrail-AssociateResolverEndpointIpAddress.json")["detail"]
    ip_address = associate["requestParameters"]["ipAddress"]
    assert ip_address["subnetId"].startswith("subnet-")
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ip_address["ip"])


@pytest.mark.parametrize("event_name", ["CreateResolverRule", "AssociateResolverRule"])
def test_drift_by_a_human_has_no_session_issuer(event_name: str) -> None:
    identity = sample(f"cloudtrail-{event_name}.json")["detail"]["userIdentity"]
    assert identity["type"] == "IAMUser"
    assert "sessionIssuer" not in identity.get("sessionContext", {})


def test_failed_and_own_call_samples() -> None:
    failed = sample("cloudtrail-failed-call.json")["detail"]
    assert failed["errorCode"] == "AccessDenied"
    assert failed["errorMessage"]
    assert failed["responseElements"] is None
    own = sample("cloudtrail-own-call.json")["detail"]
    assert own["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] == OWN_ROLE_ARN
    assert own["eventName"] == "CreateResolverRule"
    assert own["requestParameters"]["creatorRequestId"].startswith(f"resolver-mesh/{MESH_ID}/")


def test_own_call_sample_is_the_rule_the_reconciler_makes_today() -> None:
    """Marker (`resolver-mesh/<mesh>/<target>/<digest>`), name and tags as `names` makes them."""
    own = sample("cloudtrail-own-call.json")["detail"]
    request, rule = own["requestParameters"], own["responseElements"]["resolverRule"]
    target = "us-west-2"  # the sample forwards us-west-2.amazonaws.com
    marker = creator_request_ids(MESH_ID, own["awsRegion"], request["domainName"], target)[0]
    assert request["creatorRequestId"] == marker
    assert rule["creatorRequestId"] == marker
    assert owned_target_region(marker, MESH_ID) == target
    assert owned_source(marker, MESH_ID) == ""
    assert request["name"] == rule["name"] == rule_name(MESH_ID, request["domainName"])
    assert request["tags"] == [
        {"key": OWNER_TAG_KEY, "value": MESH_ID},
        {"key": TARGET_TAG_KEY, "value": target},
    ]


# --------------------------------------------------------------------------------------------
# DynamoDB stream records (what the pipe puts in one SQS message)


STREAM_RECORD = {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb"}
STREAM_ARN_RE = re.compile(
    r"^arn:aws:dynamodb:([a-z0-9-]+):(\d{12}):table/[A-Za-z0-9_.-]+/stream/"
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$"
)


@pytest.mark.parametrize(
    ("file_name", "event_name", "image"),
    [
        ("dynamodb-stream-insert.json", "INSERT", "NewImage"),
        ("dynamodb-stream-remove.json", "REMOVE", "OldImage"),
    ],
)
def test_dynamodb_stream_record(file_name: str, event_name: str, image: str) -> None:
    record = sample(file_name)
    assert set(record) == STREAM_RECORD | {"eventSourceARN"}
    assert record["eventName"] == event_name
    assert record["eventSource"] == "aws:dynamodb"
    assert record["eventVersion"] == "1.1"
    match = STREAM_ARN_RE.match(record["eventSourceARN"])
    assert match
    assert match.group(1) == record["awsRegion"] == HOME
    data = record["dynamodb"]
    assert data["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert {"ApproximateCreationDateTime", "Keys", "SequenceNumber", "SizeBytes"} <= set(data)
    assert isinstance(data["ApproximateCreationDateTime"], int)
    assert data["SequenceNumber"].isdigit()
    assert set(data) & {"NewImage", "OldImage"} == {image}
    region = data["Keys"]["region"]["S"]
    assert REGION_RE.match(region)
    assert data[image]["region"] == {"S": region}


# --------------------------------------------------------------------------------------------
# the SQS event


def _queue_arn() -> str:
    props = resolve(resource(TEMPLATE, "ReconcileQueue"), values(HOME))
    return f"arn:aws:sqs:{HOME}:{ACCOUNT}:{props['QueueName']}"


def test_sqs_batch_envelope() -> None:
    batch = sample("sqs-batch.json")
    assert set(batch) == {"Records"}
    records = batch["Records"]
    assert len(records) == 3
    assert len({r["messageId"] for r in records}) == 3
    sequence = [int(r["attributes"]["SequenceNumber"]) for r in records]
    assert sequence == sorted(sequence)
    for record in records:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == _queue_arn()
        assert record["awsRegion"] == HOME
        assert record["receiptHandle"]
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        attributes = record["attributes"]
        assert attributes["MessageGroupId"] == "reconcile"
        # Content-based deduplication: the id is the SHA-256 of the body.
        assert attributes["MessageDeduplicationId"] == (
            hashlib.sha256(record["body"].encode()).hexdigest()
        )
        assert attributes["ApproximateReceiveCount"] == "1"
        assert int(attributes["SentTimestamp"]) <= int(
            attributes["ApproximateFirstReceiveTimestamp"]
        )


def _bodies() -> list[dict[str, Any]]:
    return [json.loads(r["body"]) for r in sample("sqs-batch.json")["Records"]]


def test_sqs_batch_bodies_are_the_three_kinds_of_trigger() -> None:
    forwarded, stream_record, scheduled = _bodies()
    # 1. a CloudTrail event as the central bus delivers it: new id, home Region envelope,
    #    the origin in detail.awsRegion, the CloudTrail record untouched.
    original = sample("cloudtrail-CreateResolverEndpoint.json")
    assert forwarded["detail-type"] == CLOUDTRAIL
    assert forwarded["detail"] == original["detail"]
    assert forwarded["id"] != original["id"]
    assert forwarded["region"] == HOME
    assert forwarded["detail"]["awsRegion"] == "us-west-2"
    # 2. the DynamoDB stream record itself (the pipe sends the record, not an envelope)
    assert stream_record == sample("dynamodb-stream-insert.json")
    # 3. the scheduled event of the ResyncSchedule rule
    reference = sample("scheduled.json")
    assert scheduled["detail-type"] == "Scheduled Event"
    assert scheduled["source"] == "aws.events"
    assert scheduled["detail"] == {}
    assert scheduled["resources"] == reference["resources"]
    assert reference["resources"] == [f"arn:aws:events:{HOME}:{ACCOUNT}:rule/{MESH_ID}-resync"]
    rule_name = resolve(resource(TEMPLATE, "ResyncSchedule"), values(HOME))["Name"]
    assert reference["resources"][0].endswith(f":rule/{rule_name}")


def test_every_sample_file_is_covered() -> None:
    names = {p.name for p in EVENTS.glob("*.json")}
    covered = set(CLOUDTRAIL_FILES) | {
        "dynamodb-stream-insert.json",
        "dynamodb-stream-remove.json",
        "sqs-batch.json",
        "sqs-apply-batch.json",
        "scheduled.json",
        "manual-plan.json",
        "manual-resync.json",
        "manual-resync-scoped.json",
    }
    assert names == covered


def test_the_apply_batch_holds_orders_from_the_templates_apply_queue() -> None:
    """Fanned-out apply orders as the apply queue delivers them: one message group per
    location, the queue's ARN, bodies that are orders of this mesh."""
    batch = sample("sqs-apply-batch.json")
    known = values(HOME) | {"ApplyDeadLetterQueue.Arn": "arn:aws:sqs:::apply-dlq.fifo"}
    queue = resolve(resource(TEMPLATE, "ApplyQueue"), known)["QueueName"]
    url = f"https://sqs.{HOME}.amazonaws.com/{ACCOUNT}/{queue}"
    for record in batch["Records"]:
        assert from_queue(record, url)
        order = order_from_json(record["body"])
        assert order.mesh_id == MESH_ID
        assert record["attributes"]["MessageGroupId"] == order.location
        assert all(change.location == order.location for change in order.changes)
    accounts = {order_from_json(r["body"]).location for r in batch["Records"]}
    assert accounts == {"us-east-2", "us-east-1@222222222222"}
