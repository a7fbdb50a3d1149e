"""EventBridge bus policies for events from other accounts, as `mesh_emulator.events` emulates
them: over HTTP, a rule in one account forwards to a bus of the home account, which delivers
only what its policy allows (its own account always); the policy evaluation itself below."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from mesh_emulator.events import allows
from mesh_emulator.server import LocalEmulator
from resolver_mesh.local.topology import ClientFactory, assumed_clients

REGION = "us-east-1"
HOME = "123456789012"
OUTSIDER = "999999999999"
BUS = "central"
BUS_ARN = f"arn:aws:events:{REGION}:{HOME}:event-bus/{BUS}"


def statement(**fields: Any) -> dict[str, Any]:
    return {"Sid": "s", "Effect": "Allow", "Action": "events:PutEvents", "Resource": BUS_ARN} | (
        fields
    )


def org_statement(org_id: str) -> dict[str, Any]:
    return statement(Principal="*", Condition={"StringEquals": {"aws:PrincipalOrgID": org_id}})


@pytest.fixture
def world(aws: ClientFactory, emulator: LocalEmulator) -> dict[str, Any]:
    """The home account's organisation with one member account, an account outside it, the
    home bus with a rule queueing everything it receives, and a `send(clients, account)`."""
    org = aws("organizations", REGION)
    org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    member = org.create_account(Email="m@example.com", AccountName="m")["CreateAccountStatus"]
    home_events, sqs = aws("events", REGION), aws("sqs", REGION)
    home_events.create_event_bus(Name=BUS)
    url = sqs.create_queue(QueueName="received")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    home_events.put_rule(Name="all", EventBusName=BUS, EventPattern='{"source": ["app"]}')
    home_events.put_targets(
        Rule="all",
        EventBusName=BUS,
        Targets=[{"Id": "q", "Arn": queue_arn["Attributes"]["QueueArn"]}],
    )

    def clients(account: str) -> ClientFactory:
        if account == HOME:
            return aws
        role = f"arn:aws:iam::{account}:role/sender"
        return assumed_clients(aws, role, None, emulator.endpoint_url)

    def send(account: str) -> None:
        events = clients(account)("events", REGION)
        events.put_rule(Name="forward", EventPattern='{"source": ["app"]}')
        role = f"arn:aws:iam::{account}:role/forwarder"
        events.put_targets(Rule="forward", Targets=[{"Id": "b", "Arn": BUS_ARN, "RoleArn": role}])
        detail = json.dumps({"from": account})
        events.put_events(Entries=[{"Source": "app", "DetailType": "t", "Detail": detail}])

    def received() -> list[str]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return sorted(json.loads(m["Body"])["detail"]["from"] for m in messages)

    def policy(*statements: dict[str, Any]) -> None:
        document = {"Version": "2012-10-17", "Statement": list(statements)}
        home_events.put_permission(EventBusName=BUS, Policy=json.dumps(document))

    return {
        "org_id": org_id,
        "member": member["AccountId"],
        "send": send,
        "received": received,
        "policy": policy,
    }


def test_without_a_policy_only_the_buss_own_account_delivers(world: dict[str, Any]) -> None:
    send: Callable[[str], None] = world["send"]
    for account in (world["member"], OUTSIDER, HOME):
        send(account)
    assert world["received"]() == [HOME]


def test_an_organisation_condition_lets_in_its_accounts_only(world: dict[str, Any]) -> None:
    world["policy"](org_statement(world["org_id"]))
    for account in (world["member"], OUTSIDER):
        world["send"](account)
    assert world["received"]() == [world["member"]]


def test_a_policy_naming_the_account_lets_it_in(world: dict[str, Any]) -> None:
    world["policy"](statement(Principal={"AWS": f"arn:aws:iam::{OUTSIDER}:root"}))
    for account in (world["member"], OUTSIDER):
        world["send"](account)
    assert world["received"]() == [OUTSIDER]


# --- the evaluation ---------------------------------------------------------------------------


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.mark.parametrize(
    ("document", "sender", "expected"),
    [
        (None, "222222222222", False),
        (
            policy(statement(Principal={"AWS": "arn:aws:iam::222222222222:root"})),
            "222222222222",
            True,
        ),
        (policy(statement(Principal="222222222222")), "222222222222", True),
        (policy(statement(Principal={"AWS": "arn:aws:iam::222222222222:root"})), OUTSIDER, False),
        (policy(statement(Principal="*")), "222222222222", False),  # "*" needs a condition
        (
            policy(
                statement(
                    Principal="*", Condition={"StringEquals": {"aws:PrincipalAccount": OUTSIDER}}
                )
            ),
            OUTSIDER,
            True,
        ),
        (
            policy(
                statement(Principal="*", Condition={"StringLike": {"aws:PrincipalOrgID": "o-*"}})
            ),
            OUTSIDER,
            False,  # not evaluated: refused
        ),
        (
            policy(
                statement(Principal="*", Condition={"StringEquals": {"aws:SourceIp": "1.2.3.4"}})
            ),
            OUTSIDER,
            False,
        ),
        (policy(statement(Principal=OUTSIDER, Action="events:PutRule")), OUTSIDER, False),
        (policy(statement(Principal=OUTSIDER, Resource=BUS_ARN + "-other")), OUTSIDER, False),
        (
            policy(statement(Principal=OUTSIDER), statement(Effect="Deny", Principal="*")),
            OUTSIDER,
            False,
        ),
    ],
)
def test_policy_evaluation(document: str | None, sender: str, expected: bool) -> None:
    assert allows(document, BUS_ARN, sender) is expected


def test_an_organisation_condition_without_organisations_refuses(aws: ClientFactory) -> None:
    assert allows(policy(org_statement("o-abcdefghij")), BUS_ARN, OUTSIDER) is False


# --- patterns on arrays of objects -------------------------------------------------------------


def test_a_pattern_matches_a_field_of_any_object_of_an_array(aws: ClientFactory) -> None:
    """EventBridge crushes arrays out of the path (aws/event-ruler, "JSON Array Matching")."""
    events, sqs = aws("events", REGION), aws("sqs", REGION)
    pattern = {"detail": {"items": {"resourceId": [{"prefix": "vpc-"}]}}}
    events.put_rule(Name="vpcs", EventPattern=json.dumps(pattern))
    url = sqs.create_queue(QueueName="vpcs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    events.put_targets(Rule="vpcs", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    details = {
        "one-vpc": {"items": [{"resourceId": "vpc-0a1b"}]},
        "vpc-among-others": {"items": [{"resourceId": "subnet-01"}, {"resourceId": "vpc-0c"}]},
        "nested-arrays": {"items": [[{"resourceId": "vpc-0d"}]]},
        "subnets-only": {"items": [{"resourceId": "subnet-01"}, {"resourceId": "sg-02"}]},
        "plain-list": {"items": ["vpc-0e"]},  # no resourceId field at all
        "no-items": {"other": [{"resourceId": "vpc-0f"}]},
    }
    for name, detail in details.items():
        entry = {"Source": "app", "DetailType": name, "Detail": json.dumps(detail)}
        events.put_events(Entries=[entry])
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    matched = sorted(json.loads(m["Body"])["detail-type"] for m in messages)
    assert matched == ["nested-arrays", "one-vpc", "vpc-among-others"]
