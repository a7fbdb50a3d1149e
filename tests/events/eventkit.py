"""Helpers for the event-delivery tests: the templates' rules and queues, made concrete.

The EventBridge rules and SQS queues of `forwarder.yaml` and `template.yaml` are read with
cfn-lint's decoder, their intrinsic functions (`Ref`, `Fn::GetAtt`, `Fn::Sub`) replaced with
concrete test values (an unknown reference fails the test rather than slipping through), and
created in the emulator as CloudFormation would create them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cfnlint.decode  # type: ignore[import-untyped]

from resolver_mesh.local.topology import assumed_clients

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
FORWARDER = ROOT / "forwarder.yaml"
EVENTS = ROOT / "events"

ACCOUNT = "123456789012"  # moto's default account, and the samples'
# The member account of the samples of VPC and tag changes, and of the member role's own call.
MEMBER_ACCOUNT = "210987654321"
MEMBER_SAMPLES = (
    "cloudtrail-CreateVpc.json",
    "cloudtrail-DeleteVpc.json",
    "cloudtrail-CreateTags.json",
    "cloudtrail-DeleteTags.json",
    "cloudtrail-own-member-call.json",
)
HOME = "us-east-1"
MESH_ID = "resolver-mesh"
# The reconciler's role in the samples (cloudtrail-own-call.json); the rules get it as
# ReconcilerRoleArn (forwarder.yaml) and as ReconcilerRole.Arn (template.yaml).
OWN_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/resolver-mesh-ReconcilerRole-EXAMPLE"
# The member role (member.yaml) the reconciler assumes in a member account.
MEMBER_ROLE_NAME = f"resolver-mesh-member-{MESH_ID}"
CENTRAL_BUS_NAME = f"{MESH_ID}-events"
CENTRAL_BUS_ARN = f"arn:aws:events:{HOME}:{ACCOUNT}:event-bus/{CENTRAL_BUS_NAME}"
FORWARD_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/resolver-mesh-forwarder-ForwardRole-EXAMPLE"
CLOUDTRAIL = "AWS API Call via CloudTrail"
MEMBER_REGION = "us-west-2"  # where member accounts' forwarders run in the tests
OUTSIDER = "999999999999"  # an account outside the organisation


def values(region: str = HOME, account: str = ACCOUNT) -> dict[str, str]:
    """What every Ref / GetAtt / ${} of the two templates stands for in the tests; `account`:
    the account a stack (a forwarder of the StackSet) is deployed in."""
    sqs = f"arn:aws:sqs:{region}:{ACCOUNT}"
    return {
        "AWS::AccountId": account,
        "AWS::Region": region,
        "AWS::Partition": "aws",
        "MeshId": MESH_ID,
        "ResyncRate": "rate(15 minutes)",
        "ReconcilerRoleArn": OWN_ROLE_ARN,
        "ReconcilerRole.Arn": OWN_ROLE_ARN,
        "CentralBusArn": CENTRAL_BUS_ARN,
        "CentralBus": CENTRAL_BUS_NAME,
        "CentralBus.Arn": CENTRAL_BUS_ARN,
        "ForwardRole.Arn": FORWARD_ROLE_ARN.replace(ACCOUNT, account),
        "ReconcileQueue.Arn": f"{sqs}:{MESH_ID}-reconcile.fifo",
        "ReconcileDeadLetterQueue.Arn": f"{sqs}:{MESH_ID}-reconcile-dlq.fifo",
    }


def load(path: Path) -> dict[str, Any]:
    """A template as plain dicts and lists (cfn-lint's decoder understands the short tags)."""
    decoded, matches = cfnlint.decode.decode(path)
    assert not matches, [str(m) for m in matches]
    plain = json.loads(json.dumps(decoded))
    assert isinstance(plain, dict)
    return plain


def resolve(node: Any, known: Mapping[str, str]) -> Any:
    """`node` with Ref, Fn::GetAtt and Fn::Sub replaced by `known`; anything else is an error."""
    if isinstance(node, list):
        return [resolve(item, known) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref":
            return known[arg]
        if key == "Fn::GetAtt":
            name = ".".join(arg) if isinstance(arg, list) else arg
            return known[name]
        if key == "Fn::Sub":
            assert isinstance(arg, str), f"Fn::Sub with variables is not supported here: {arg}"
            return re.sub(r"\$\{([^}!]+)\}", lambda m: known[m.group(1)], arg)
        assert not key.startswith("Fn::"), f"unexpected intrinsic {key}"
    return {key: resolve(value, known) for key, value in node.items()}


def rules(path: Path) -> dict[str, dict[str, Any]]:
    """The properties of every AWS::Events::Rule of a template, by logical id."""
    template = load(path)
    return {
        name: res["Properties"]
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Events::Rule"
    }


def pattern_rules(path: Path) -> dict[str, dict[str, Any]]:
    """The rules with an EventPattern (not the schedule)."""
    return {name: props for name, props in rules(path).items() if "EventPattern" in props}


def resource(path: Path, name: str) -> dict[str, Any]:
    props = load(path)["Resources"][name]["Properties"]
    assert isinstance(props, dict)
    return props


# --------------------------------------------------------------------------------------------
# samples


def sample(name: str) -> dict[str, Any]:
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    assert isinstance(event, dict)
    return event


def cloudtrail_samples() -> dict[str, dict[str, Any]]:
    """Every events/cloudtrail-*.json by file name."""
    return {p.name: sample(p.name) for p in sorted(EVENTS.glob("cloudtrail-*.json"))}


def entry(event: Mapping[str, Any], bus: str | None = None) -> dict[str, Any]:
    """A put_events entry that reproduces a sample (EventBridge adds id, account and region)."""
    out: dict[str, Any] = {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": list(event.get("resources", [])),
    }
    if bus:
        out["EventBusName"] = bus
    return out


def put(events_client: Any, event: Mapping[str, Any], bus: str | None = None) -> None:
    response = events_client.put_events(Entries=[entry(event, bus)])
    assert response["FailedEntryCount"] == 0, response


# --------------------------------------------------------------------------------------------
# queues


def queue_arn(sqs: Any, url: str) -> str:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    arn = attrs["QueueArn"]
    assert isinstance(arn, str)
    return arn


def create_queue_from_template(sqs: Any, name: str, known: Mapping[str, str]) -> str:
    """Create the template's queue `name` with its own properties; return its URL."""
    props = resolve(resource(TEMPLATE, name), known)
    attributes = {}
    for key, value in props.items():
        if key in ("QueueName", "Tags"):
            continue
        if isinstance(value, dict):
            attributes[key] = json.dumps(value)
        elif isinstance(value, bool):
            attributes[key] = str(value).lower()
        else:
            attributes[key] = str(value)
    url = sqs.create_queue(QueueName=props["QueueName"], Attributes=attributes)["QueueUrl"]
    assert isinstance(url, str)
    return url


def drain(sqs: Any, url: str, *, limit: int = 200) -> Iterator[dict[str, Any]]:
    """Every message of a queue (FIFO too: each batch is deleted before the next receive)."""
    for _ in range(limit):
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not messages:
            return
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            yield message
    raise AssertionError(f"{url} never ran dry")


# --------------------------------------------------------------------------------------------
# the whole delivery path: forwarders in every Region -> central bus -> FIFO queue


def deploy_delivery(aws: Any, regions: list[str]) -> tuple[Any, str, str]:
    """The home stack's bus, rule and queues, and a forwarder stack in every Region."""
    known = values(HOME)
    sqs = aws("sqs", HOME)
    dlq = create_queue_from_template(sqs, "ReconcileDeadLetterQueue", known)
    known["ReconcileDeadLetterQueue.Arn"] = queue_arn(sqs, dlq)
    queue = create_queue_from_template(sqs, "ReconcileQueue", known)
    known["ReconcileQueue.Arn"] = queue_arn(sqs, queue)

    home_events = aws("events", HOME)
    bus_arn = home_events.create_event_bus(Name=CENTRAL_BUS_NAME)["EventBusArn"]
    assert bus_arn == known["CentralBusArn"]
    central = resolve(pattern_rules(TEMPLATE)["CentralBusRule"], known)
    home_events.put_rule(
        Name=central["Name"],
        EventBusName=central["EventBusName"],
        EventPattern=json.dumps(central["EventPattern"]),
    )
    home_events.put_targets(
        Rule=central["Name"], EventBusName=central["EventBusName"], Targets=central["Targets"]
    )

    for region in regions:
        events = aws("events", region)
        for props in resolve(pattern_rules(FORWARDER), values(region)).values():
            (target,) = props["Targets"]
            assert target["Arn"] == bus_arn
            assert target["RoleArn"] == FORWARD_ROLE_ARN
            events.put_rule(Name=props["Name"], EventPattern=json.dumps(props["EventPattern"]))
            events.put_targets(Rule=props["Name"], Targets=props["Targets"])
    return sqs, queue, dlq


# --------------------------------------------------------------------------------------------
# member accounts: the forwarder StackSet -> the organisation's central bus


def deploy_organisation_delivery(
    aws: Any, emulator: Any, region: str = MEMBER_REGION
) -> dict[str, Any]:
    """The home stack with OrganizationId (its bus policy as the template has it), and the
    forwarder StackSet's stack in `region` of a member account of the organisation and of an
    account outside it, each deployed with that account's clients."""
    org = aws("organizations", HOME)
    org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    member = org.create_account(Email="m@example.com", AccountName="m")["CreateAccountStatus"]
    sqs, queue, dlq = deploy_delivery(aws, [])
    known = values(HOME) | {"OrganizationId": org_id}
    policy = resource(TEMPLATE, "CentralBus")["Policy"]
    statements = [s["Fn::If"][1] if "Fn::If" in s else s for s in policy["Statement"]]
    document = resolve(policy | {"Statement": statements}, known)
    aws("events", HOME).put_permission(EventBusName=CENTRAL_BUS_NAME, Policy=json.dumps(document))
    senders = {}
    for account in (member["AccountId"], OUTSIDER):
        role = f"arn:aws:iam::{account}:role/stackset-execution"
        clients = assumed_clients(aws, role, None, emulator.endpoint_url)
        events = clients("events", region)
        for props in resolve(pattern_rules(FORWARDER), values(region, account)).values():
            (target,) = props["Targets"]
            assert target["Arn"] == CENTRAL_BUS_ARN
            assert target["RoleArn"].startswith(f"arn:aws:iam::{account}:role/")
            events.put_rule(Name=props["Name"], EventPattern=json.dumps(props["EventPattern"]))
            events.put_targets(Rule=props["Name"], Targets=props["Targets"])
        senders[account] = events
    return {
        "sqs": sqs,
        "queue": queue,
        "dlq": dlq,
        "member": member["AccountId"],
        "root": org.list_roots()["Roots"][0]["Id"],
        "policy": document,
        **senders,
    }


def as_account(account: str, file_name: str) -> dict[str, Any]:
    """A member-account sample as `account` would log it."""
    event = json.loads(json.dumps(sample(file_name)).replace(MEMBER_ACCOUNT, account))
    assert isinstance(event, dict)
    return event
