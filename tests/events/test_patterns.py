"""Every EventBridge pattern of forwarder.yaml and template.yaml, exercised through moto.

moto's pattern matching is faithful (anything-but, exists, $or) while `test_event_pattern` is a
stub, so each rule is created in the emulator (over HTTP) with an SQS queue as its target, every
sample of events/ is published with `put_events`, and the queues say what matched:

- each CloudTrail sample matches exactly the forwarder rule meant for it and no other;
- the failed call and the reconciler's own call match nothing, here and on the central bus;
- callers without a sessionIssuer (IAM users, root) still match;
- across Regions: a forwarder's target is the central bus in the home Region, whose rule queues
  the event on the FIFO reconcile queue with the origin Region kept in `detail.awsRegion`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import pytest
from eventkit import (
    ACCOUNT,
    CENTRAL_BUS_ARN,
    CENTRAL_BUS_NAME,
    CLOUDTRAIL,
    FORWARDER,
    HOME,
    MEMBER_ACCOUNT,
    MEMBER_REGION,
    MEMBER_ROLE_NAME,
    MEMBER_SAMPLES,
    OUTSIDER,
    OWN_ROLE_ARN,
    TEMPLATE,
    as_account,
    cloudtrail_samples,
    deploy_delivery,
    deploy_organisation_delivery,
    drain,
    pattern_rules,
    put,
    queue_arn,
    resolve,
    rules,
    sample,
    values,
)

from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.topology import ClientFactory

# The forwarder rule each sample is meant for (events/cloudtrail-<eventName>.json).
MEANT_FOR = {
    "CreateVpcEndpoint": "VpcEndpointChanges",
    "ModifyVpcEndpoint": "VpcEndpointChanges",
    "DeleteVpcEndpoints": "VpcEndpointChanges",
    "CreateResolverEndpoint": "ResolverEndpointChanges",
    "UpdateResolverEndpoint": "ResolverEndpointChanges",
    "DeleteResolverEndpoint": "ResolverEndpointChanges",
    "AssociateResolverEndpointIpAddress": "ResolverEndpointChanges",
    "DisassociateResolverEndpointIpAddress": "ResolverEndpointChanges",
    "CreateResolverRule": "ResolverRuleDrift",
    "UpdateResolverRule": "ResolverRuleDrift",
    "DeleteResolverRule": "ResolverRuleDrift",
    "AssociateResolverRule": "ResolverRuleDrift",
    "DisassociateResolverRule": "ResolverRuleDrift",
    "CreateVpc": "VpcChanges",
    "DeleteVpc": "VpcChanges",
    "CreateTags": "VpcTagChanges",
    "DeleteTags": "VpcTagChanges",
    "DisassociateProfile": "ProfileDrift",
    "DisassociateResourceFromProfile": "ProfileDrift",
}
NEVER = (
    "cloudtrail-failed-call.json",
    "cloudtrail-own-call.json",
    "cloudtrail-own-member-call.json",
)
REGION = "us-east-2"  # where the pattern tests run (any Region: patterns do not look at it)


def _key(event: Mapping[str, Any]) -> str:
    """A sample's identity that survives EventBridge (which gives each event a new id)."""
    detail = event["detail"]
    return f"{detail['eventID']}/{detail['eventName']}/{detail.get('errorCode', '')}"


class RuleProbe:
    """Rules created in the emulator, each with its own SQS queue as its only target."""

    def __init__(self, aws: ClientFactory, region: str) -> None:
        self.events = aws("events", region)
        self.sqs = aws("sqs", region)
        self.queues: dict[str, str] = {}

    def add(self, name: str, props: Mapping[str, Any], bus: str | None = None) -> None:
        pattern = props["EventPattern"]
        kwargs: dict[str, Any] = {"Name": name, "EventPattern": json.dumps(pattern)}
        if bus:
            kwargs["EventBusName"] = bus
        self.events.put_rule(**kwargs)
        url = self.sqs.create_queue(QueueName=f"probe-{name}")["QueueUrl"]
        target = {"Id": "probe", "Arn": queue_arn(self.sqs, url)}
        self.events.put_targets(
            Rule=name, Targets=[target], **({"EventBusName": bus} if bus else {})
        )
        self.queues[name] = url

    def matched(self) -> dict[str, set[str]]:
        """Sample key -> the rules whose queue received it."""
        out: dict[str, set[str]] = {}
        for name, url in self.queues.items():
            for message in drain(self.sqs, url):
                out.setdefault(_key(json.loads(message["Body"])), set()).add(name)
        return out


def _forwarder_probe(aws: ClientFactory, region: str = REGION, account: str = ACCOUNT) -> RuleProbe:
    """The forwarder's rules as the stack in `account` has them (its member role ARN); the
    probe runs in `region` (patterns do not look at the Region)."""
    probe = RuleProbe(aws, region)
    rules = pattern_rules(FORWARDER)
    assert set(rules) == {
        "VpcEndpointChanges",
        "ResolverEndpointChanges",
        "ResolverRuleDrift",
        "VpcChanges",
        "VpcTagChanges",
        "ProfileDrift",
    }
    for name, props in rules.items():
        probe.add(name, resolve(props, values(region, account)))
    return probe


def _probe_of(aws: ClientFactory, file_name: str) -> RuleProbe:
    """The probe of the account a sample comes from (a forwarder sees its account's calls)."""
    if file_name in MEMBER_SAMPLES:
        return _forwarder_probe(aws, MEMBER_REGION, MEMBER_ACCOUNT)
    return _forwarder_probe(aws)


# --------------------------------------------------------------------------------------------
# the forwarder's rules


def test_every_cloudtrail_sample_matches_exactly_its_rule(aws: ClientFactory) -> None:
    home, member = _forwarder_probe(aws), _forwarder_probe(aws, MEMBER_REGION, MEMBER_ACCOUNT)
    samples = cloudtrail_samples()
    expected: dict[str, set[str]] = {}
    for file_name, event in samples.items():
        put((member if file_name in MEMBER_SAMPLES else home).events, event)
        if file_name not in NEVER:
            event_name = file_name.removeprefix("cloudtrail-").removesuffix(".json")
            assert event["detail"]["eventName"] == event_name, file_name
            expected[_key(event)] = {MEANT_FOR[event_name]}
    # Every trigger has its sample, and the two negatives are there.
    assert {k.split("/")[1] for k in expected} == set(MEANT_FOR)
    assert set(NEVER) <= set(samples)
    assert home.matched() | member.matched() == expected


@pytest.mark.parametrize("file_name", NEVER)
def test_failed_and_own_calls_match_no_forwarder_rule(aws: ClientFactory, file_name: str) -> None:
    probe = _probe_of(aws, file_name)
    event = sample(file_name)
    put(probe.events, event)
    # The same call, successful and by someone else, would have matched: the filter is what
    # stops it, not the eventName.
    control = copy.deepcopy(event)
    control["detail"].pop("errorCode", None)
    control["detail"].pop("errorMessage", None)
    control["detail"]["eventID"] = "control-" + control["detail"]["eventID"]
    issuer = control["detail"]["userIdentity"].get("sessionContext", {}).get("sessionIssuer")
    if issuer:
        issuer["arn"] = f"arn:aws:iam::{control['account']}:role/platform-terraform"
        issuer["userName"] = "platform-terraform"
    put(probe.events, control)
    assert probe.matched() == {_key(control): {"ResolverRuleDrift"}}


def test_own_call_sample_is_the_reconcilers_role() -> None:
    detail = sample("cloudtrail-own-call.json")["detail"]
    assert detail["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] == OWN_ROLE_ARN
    assert "errorCode" not in detail
    failed = sample("cloudtrail-failed-call.json")["detail"]
    assert failed["errorCode"] == "AccessDenied"


def _variant(event: Mapping[str, Any], tag: str, identity: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(event))
    out["detail"]["userIdentity"] = identity
    out["detail"]["eventID"] = f"{tag}-{out['detail']['eventID']}"
    return out


def test_callers_without_session_issuer_still_count(aws: ClientFactory) -> None:
    probe = _forwarder_probe(aws)
    own = sample("cloudtrail-own-call.json")
    human = sample("cloudtrail-CreateResolverRule.json")
    # The sample is an IAM user with a sessionContext but no sessionIssuer (a console user).
    assert human["detail"]["userIdentity"]["type"] == "IAMUser"
    assert "sessionIssuer" not in human["detail"]["userIdentity"].get("sessionContext", {})
    root = _variant(
        own,
        "root",
        {
            "type": "Root",
            "principalId": "123456789012",
            "arn": "arn:aws:iam::123456789012:root",
            "accountId": "123456789012",
        },
    )
    cli_user = _variant(
        own,
        "cli-user",
        {
            "type": "IAMUser",
            "principalId": "AIDA5EXAMPLEBOB000001",
            "arn": "arn:aws:iam::123456789012:user/bob",
            "accountId": "123456789012",
            "userName": "bob",
        },
    )
    for event in (human, root, cli_user, own):
        put(probe.events, event)
    assert probe.matched() == {
        _key(human): {"ResolverRuleDrift"},
        _key(root): {"ResolverRuleDrift"},
        _key(cli_user): {"ResolverRuleDrift"},
    }


def test_non_cloudtrail_events_match_no_forwarder_rule(aws: ClientFactory) -> None:
    probe = _forwarder_probe(aws)
    put(probe.events, sample("scheduled.json"))
    # A read-only call of a watched service, and a watched name from another service.
    listing = copy.deepcopy(sample("cloudtrail-CreateResolverRule.json"))
    listing["detail"]["eventName"] = "ListResolverRules"
    put(probe.events, listing)
    spoofed = copy.deepcopy(sample("cloudtrail-CreateVpcEndpoint.json"))
    spoofed["source"] = "aws.s3"
    put(probe.events, spoofed)
    assert probe.matched() == {}


# --------------------------------------------------------------------------------------------
# the home Region's rule on the central bus


def _central_probe(aws: ClientFactory) -> RuleProbe:
    probe = RuleProbe(aws, HOME)
    probe.events.create_event_bus(Name=CENTRAL_BUS_NAME)
    rules = pattern_rules(TEMPLATE)
    assert set(rules) == {"CentralBusRule"}
    props = resolve(rules["CentralBusRule"], values(HOME))
    assert props["EventBusName"] == CENTRAL_BUS_NAME
    probe.add("CentralBusRule", props, bus=CENTRAL_BUS_NAME)
    return probe


def test_central_bus_rule_takes_every_forwarded_event_and_nothing_else(
    aws: ClientFactory,
) -> None:
    probe = _central_probe(aws)
    expected = {}
    for file_name, event in cloudtrail_samples().items():
        put(probe.events, event, bus=CENTRAL_BUS_NAME)
        if file_name not in NEVER:
            expected[_key(event)] = {"CentralBusRule"}
    put(probe.events, sample("scheduled.json"), bus=CENTRAL_BUS_NAME)
    assert len(expected) == len(MEANT_FOR)
    # The member role's calls are dropped here too, from every account, by the role's name.
    # The failed and own calls are dropped here too: a forwarder deployed with a stale
    # ReconcilerRoleArn cannot start a loop.
    assert probe.matched() == expected


def test_the_central_bus_takes_only_the_calls_the_forwarders_forward(aws: ClientFactory) -> None:
    """Any account of the organisation may put events on the central bus: a call no forwarder
    forwards (a stale or foreign rule's) is dropped, not read as "every Region", and so is a
    tag on another key than the mesh's."""
    forwarded = [
        name
        for rule in pattern_rules(FORWARDER).values()
        for name in rule["EventPattern"]["detail"]["eventName"]
    ]
    central = pattern_rules(TEMPLATE)["CentralBusRule"]["EventPattern"]["detail"]
    assert central["eventName"] == forwarded
    probe = _central_probe(aws)
    stray = sample("cloudtrail-CreateVpc.json")
    stray["detail"]["eventName"] = "RunInstances"
    put(probe.events, stray, bus=CENTRAL_BUS_NAME)
    costs = sample("cloudtrail-CreateTags.json")  # from a forwarder of an older release
    costs["detail"]["requestParameters"]["tagSet"]["items"] = [{"key": "cost-center"}]
    put(probe.events, costs, bus=CENTRAL_BUS_NAME)
    assert probe.matched() == {}


def test_template_rules_all_queue_on_the_reconcile_queue_in_one_group() -> None:
    home = resolve(rules(TEMPLATE), values(HOME))
    assert set(home) == {"CentralBusRule", "ResyncSchedule"}
    for name, props in home.items():
        (target,) = props["Targets"]
        assert target["Arn"] == values(HOME)["ReconcileQueue.Arn"], name
        assert target["SqsParameters"] == {"MessageGroupId": "reconcile"}, name
    assert home["ResyncSchedule"]["ScheduleExpression"] == "rate(15 minutes)"
    assert "EventPattern" not in home["ResyncSchedule"]


# --------------------------------------------------------------------------------------------
# across Regions: forwarders in every Region -> central bus -> FIFO queue


def test_forwarder_in_us_west_2_reaches_the_fifo_queue_in_the_home_region(
    aws: ClientFactory,
) -> None:
    sqs, queue, _ = deploy_delivery(aws, ["us-west-2"])
    event = sample("cloudtrail-AssociateResolverEndpointIpAddress.json")
    assert event["region"] == event["detail"]["awsRegion"] == "us-west-2"
    put(aws("events", "us-west-2"), event)
    put(aws("events", "us-west-2"), sample("cloudtrail-own-call.json"))

    (message,) = list(drain(sqs, queue))
    body = json.loads(message["Body"])
    assert message["Attributes"]["MessageGroupId"] == "reconcile"
    assert body["detail-type"] == CLOUDTRAIL
    assert body["source"] == "aws.route53resolver"
    assert body["detail"]["awsRegion"] == "us-west-2"  # the origin survives the forwarding
    assert body["region"] == HOME  # the envelope is the central bus's
    assert body["detail"]["eventName"] == "AssociateResolverEndpointIpAddress"
    assert body["detail"]["requestParameters"] == event["detail"]["requestParameters"]


def test_every_region_forwards_its_own_calls_in_order_through_one_group(
    aws: ClientFactory,
) -> None:
    regions = ["us-east-1", "us-east-2", "us-west-2"]  # the home Region has a forwarder too
    sqs, queue, dlq = deploy_delivery(aws, regions)
    sent = []
    for file_name, event in cloudtrail_samples().items():
        origin = event["detail"]["awsRegion"]
        assert origin in regions, file_name
        put(aws("events", origin), event)
        if file_name not in NEVER:
            sent.append((event["detail"]["eventID"], origin))
    messages = list(drain(sqs, queue))
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {"reconcile"}
    received = [
        (json.loads(m["Body"])["detail"]["eventID"], json.loads(m["Body"])["detail"]["awsRegion"])
        for m in messages
    ]
    assert received == sent  # all of them, once each, in order, origin kept
    assert {origin for _, origin in received} == set(regions)
    assert list(drain(sqs, dlq)) == []


# --------------------------------------------------------------------------------------------
# VPC tags, and member accounts: the forwarder StackSet -> the organisation's central bus


def test_tag_changes_are_forwarded_when_they_touch_a_vpc(aws: ClientFactory) -> None:
    probe = _forwarder_probe(aws, MEMBER_REGION, MEMBER_ACCOUNT)
    tagged = sample("cloudtrail-CreateTags.json")
    variants = {}
    for tag, resources in (
        ("subnet", ["subnet-0a1b2c3d4e5f60718"]),
        ("instance-and-sg", ["i-0a1b2c3d4e5f60718", "sg-0a1b2c3d4e5f60718"]),
        ("subnet-and-vpc", ["subnet-0a1b2c3d4e5f60718", "vpc-0a1b2c3d4e5f60718"]),
    ):
        event = copy.deepcopy(tagged)
        event["detail"]["eventID"] = f"{tag}-{event['detail']['eventID']}"
        items = [{"resourceId": r} for r in resources]
        event["detail"]["requestParameters"]["resourcesSet"]["items"] = items
        variants[tag] = event
    for event in (tagged, *variants.values()):
        put(probe.events, event)
    assert probe.matched() == {
        _key(tagged): {"VpcTagChanges"},
        _key(variants["subnet-and-vpc"]): {"VpcTagChanges"},
    }


def test_only_the_mesh_tag_of_a_vpc_is_forwarded(aws: ClientFactory) -> None:
    """Tags on any other key cannot make a VPC join or leave: a cost-center tag on every VPC
    of the organisation reconciles nothing. The mesh's key among others does, and so does a
    DeleteTags that names no tag (it removes every tag of the VPC)."""
    probe = _forwarder_probe(aws, MEMBER_REGION, MEMBER_ACCOUNT)
    variants = {}
    for name, file_name, tags in (
        ("other key", "cloudtrail-CreateTags.json", [{"key": "cost-center", "value": "x"}]),
        ("other key removed", "cloudtrail-DeleteTags.json", [{"key": "cost-center"}]),
        (
            "mesh key among others",
            "cloudtrail-CreateTags.json",
            [{"key": "cost-center", "value": "x"}, {"key": "resolver-mesh:mesh", "value": "m"}],
        ),
        ("every tag removed", "cloudtrail-DeleteTags.json", None),
        ("mesh key removed", "cloudtrail-DeleteTags.json", [{"key": "resolver-mesh:mesh"}]),
    ):
        event = sample(file_name)
        event["detail"]["eventID"] = f"{name}-{event['detail']['eventID']}"
        parameters = event["detail"]["requestParameters"]
        if tags is None:
            del parameters["tagSet"]
        else:
            parameters["tagSet"]["items"] = tags
        variants[name] = event
        put(probe.events, event)
    assert probe.matched() == {
        _key(variants[name]): {"VpcTagChanges"}
        for name in ("mesh key among others", "every tag removed", "mesh key removed")
    }


def test_member_account_events_reach_the_queue_through_the_organisation_bus_policy(
    aws: ClientFactory, emulator: LocalEmulator
) -> None:
    world = deploy_organisation_delivery(aws, emulator)
    member = world["member"]
    sent = []
    for file_name in MEMBER_SAMPLES:
        event = as_account(member, file_name)
        put(world[member], event)
        if file_name != "cloudtrail-own-member-call.json":
            sent.append(event["detail"]["eventID"])
        put(world[OUTSIDER], as_account(OUTSIDER, file_name))  # not in the organisation: refused

    messages = list(drain(world["sqs"], world["queue"]))
    bodies = [json.loads(m["Body"]) for m in messages]
    assert [b["detail"]["eventID"] for b in bodies] == sent  # the member role's call: not
    assert {b["detail"]["recipientAccountId"] for b in bodies} == {member}
    assert {b["detail"]["awsRegion"] for b in bodies} <= {"us-east-1", "us-east-2", "us-west-2"}
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {"reconcile"}
    assert list(drain(world["sqs"], world["dlq"])) == []

    # The outsider's forwarder works: once the policy names its account, its events arrive.
    named = {
        "Sid": "Outsider",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{OUTSIDER}:root"},
        "Action": "events:PutEvents",
        "Resource": CENTRAL_BUS_ARN,
    }
    policy = world["policy"] | {"Statement": [*world["policy"]["Statement"], named]}
    aws("events", HOME).put_permission(EventBusName=CENTRAL_BUS_NAME, Policy=json.dumps(policy))
    outsider = as_account(OUTSIDER, "cloudtrail-CreateVpc.json")
    put(world[OUTSIDER], outsider)
    arrived = [json.loads(m["Body"]) for m in drain(world["sqs"], world["queue"])]
    assert [b["detail"]["eventID"] for b in arrived] == [outsider["detail"]["eventID"]]


def test_the_member_roles_calls_are_dropped_on_the_central_bus_too(aws: ClientFactory) -> None:
    """A member account whose forwarder was deployed for another mesh id (a stale StackSet)
    forwards the member role's call; the central bus's rule drops it by the role's name."""
    probe = _central_probe(aws)
    own = sample("cloudtrail-own-member-call.json")
    issuer = own["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]
    assert issuer["userName"] == MEMBER_ROLE_NAME
    put(probe.events, own, bus=CENTRAL_BUS_NAME)
    other = copy.deepcopy(own)
    other["detail"]["eventID"] = "other-" + other["detail"]["eventID"]
    other_issuer = other["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]
    other_issuer["userName"] = "platform-terraform"
    other_issuer["arn"] = f"arn:aws:iam::{MEMBER_ACCOUNT}:role/platform-terraform"
    put(probe.events, other, bus=CENTRAL_BUS_NAME)
    assert probe.matched() == {_key(other): {"CentralBusRule"}}
