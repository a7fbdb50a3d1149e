"""Every sample event in events/ leads to the scope it should: the Regions it can affect."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from resolver_mesh.config import Settings
from resolver_mesh.desired import parse_hubs
from resolver_mesh.models import AccountAccess
from resolver_mesh.reconcile import Reconciler
from resolver_mesh.triggers import (
    VPC_ENDPOINT_CALLS,
    Scope,
    batch_from_sqs,
    combined,
    departed_of,
    is_sqs_batch,
    request_from_event,
    scope_of,
)

from .builders import HOME, hub_item
from .test_spokes_accounts import MEMBER, in_member

EVENTS = Path(__file__).resolve().parents[2] / "events"
KNOWN = frozenset({"us-east-1", "us-east-2", "us-west-2", "eu-west-1"})


def load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


@pytest.mark.parametrize(
    "name",
    [
        "cloudtrail-CreateResolverRule.json",
        "cloudtrail-UpdateResolverRule.json",
        "cloudtrail-DeleteResolverRule.json",
        "cloudtrail-AssociateResolverRule.json",
        "cloudtrail-DisassociateResolverRule.json",
        "cloudtrail-DisassociateProfile.json",
        "cloudtrail-DisassociateResourceFromProfile.json",
    ],
)
def test_rule_drift_scopes_to_its_own_region(name: str) -> None:
    event = load(name)
    scope = scope_of(event, KNOWN)
    assert scope.regions == frozenset({event["detail"]["awsRegion"]})


@pytest.mark.parametrize(
    "name",
    [
        "cloudtrail-CreateVpc.json",
        "cloudtrail-DeleteVpc.json",
        "cloudtrail-CreateTags.json",
        "cloudtrail-DeleteTags.json",
    ],
)
def test_vpc_and_vpc_tag_changes_of_a_member_account_scope_to_their_region(name: str) -> None:
    """The samples come from a member account; they are scoped as the home account's are."""
    event = load(name)
    assert event["account"] != "123456789012"
    assert event["detail"]["recipientAccountId"] == event["account"]
    scope = scope_of(event, KNOWN)
    assert scope.regions == frozenset({event["detail"]["awsRegion"]})
    assert not scope.endpoint_change
    request = request_from_event(event, KNOWN)
    assert request is not None
    assert request.apply
    assert request.regions == (event["detail"]["awsRegion"],)
    home = json.loads(json.dumps(event).replace(event["account"], "123456789012"))
    assert scope_of(home, KNOWN) == scope


def test_vpc_changes_in_several_regions_coalesce_to_those_regions() -> None:
    events = [load(f"cloudtrail-{n}.json") for n in ("CreateVpc", "DeleteVpc", "CreateTags")]
    request = combined(scope_of(event, KNOWN) for event in events)
    assert request is not None
    assert request.regions == ("us-east-1", "us-east-2", "us-west-2")


@pytest.mark.parametrize(
    "name",
    [
        "cloudtrail-CreateResolverEndpoint.json",
        "cloudtrail-UpdateResolverEndpoint.json",
        "cloudtrail-DeleteResolverEndpoint.json",
        "cloudtrail-AssociateResolverEndpointIpAddress.json",
        "cloudtrail-DisassociateResolverEndpointIpAddress.json",
        "cloudtrail-CreateVpcEndpoint.json",
        "cloudtrail-ModifyVpcEndpoint.json",
        "cloudtrail-DeleteVpcEndpoints.json",
        "dynamodb-stream-insert.json",
        "dynamodb-stream-remove.json",
        "scheduled.json",
    ],
)
def test_endpoint_table_and_schedule_events_scope_to_every_region(name: str) -> None:
    assert scope_of(load(name), KNOWN).regions is None
    request = request_from_event(load(name), KNOWN)
    assert request is not None
    assert request.apply
    assert request.regions is None


ENDPOINT_EVENTS = [f"cloudtrail-{n}.json" for n in sorted(VPC_ENDPOINT_CALLS)]


@pytest.mark.parametrize("name", ENDPOINT_EVENTS)
def test_an_interface_endpoint_event_names_the_location_it_came_from(name: str) -> None:
    event = load(name)
    request = request_from_event(event, KNOWN)
    assert request is not None
    assert request.regions is None
    detail = event["detail"]
    assert request.interface_endpoints_at == ((detail["awsRegion"], detail["recipientAccountId"]),)


def test_interface_endpoint_events_coalesce_their_locations_and_nothing_else() -> None:
    """A batch of endpoint events only: their locations, each once. With any other message,
    or an endpoint event whose account cannot be read, the pass is an ordinary full one."""
    events = [load(name) for name in ENDPOINT_EVENTS]
    events[0]["detail"] |= {"awsRegion": "us-west-2", "recipientAccountId": "210987654321"}
    request = combined(scope_of(event, KNOWN) for event in events)
    assert request is not None
    assert request.interface_endpoints_at == (
        ("us-east-2", "123456789012"),
        ("us-west-2", "210987654321"),
    )
    for other in (load("scheduled.json"), load("cloudtrail-CreateResolverRule.json")):
        mixed = combined(scope_of(event, KNOWN) for event in [*events, other])
        assert mixed is not None
        assert mixed.interface_endpoints_at == ()
        assert mixed.regions is None
    for account in (None, "", "not-an-account", "1234567890123"):
        unknown = load(ENDPOINT_EVENTS[0])
        unknown["detail"]["recipientAccountId"] = account
        full = request_from_event(unknown, KNOWN)
        assert full is not None
        assert (full.regions, full.interface_endpoints_at) == (None, ())
    failed = load(ENDPOINT_EVENTS[0])
    failed["detail"]["errorCode"] = "UnauthorizedOperation"
    assert request_from_event(failed, KNOWN) is None


def test_an_outbound_endpoint_change_scopes_to_its_region() -> None:
    event = load("cloudtrail-CreateResolverEndpoint.json")
    event["detail"]["responseElements"]["resolverEndpoint"]["direction"] = "OUTBOUND"
    assert scope_of(event, KNOWN).regions == frozenset({event["detail"]["awsRegion"]})


def test_a_failed_call_needs_nothing() -> None:
    event = load("cloudtrail-failed-call.json")
    assert scope_of(event, KNOWN).regions == frozenset()
    assert request_from_event(event, KNOWN) is None


@pytest.mark.parametrize(
    "event",
    [
        {"detail-type": "AWS API Call via CloudTrail", "detail": {"eventName": "RunInstances"}},
        {"detail-type": "Something new", "detail": {}},
        ["not", "a", "mapping"],
        "text",
    ],
)
def test_what_is_not_understood_means_every_region(event: Any) -> None:
    assert scope_of(event, KNOWN).regions is None


def test_a_region_we_do_not_know_means_every_region() -> None:
    event = load("cloudtrail-CreateResolverRule.json")
    event["detail"]["awsRegion"] = "xx-nowhere-1"
    assert scope_of(event, KNOWN).regions is None


def test_combined_is_the_union_or_every_region_or_nothing() -> None:
    a = Scope(frozenset({"us-east-1"}), "a")
    b = Scope(frozenset({"us-west-2"}), "b")
    nothing = Scope(frozenset(), "failed")
    union = combined([a, b, nothing])
    assert union is not None
    assert union.regions == ("us-east-1", "us-west-2")
    everything = combined([a, Scope(None, "all")])
    assert everything is not None
    assert everything.regions is None
    assert combined([nothing, nothing]) is None
    assert combined([]) is None


def test_the_sample_sqs_batch_is_one_full_resync() -> None:
    event = load("sqs-batch.json")
    assert is_sqs_batch(event)
    batch = batch_from_sqs(event, KNOWN)
    assert batch.poison == ()
    assert batch.request is not None
    assert batch.request.regions is None
    assert "schedule" in batch.request.trigger


def sqs(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {"messageId": f"m{i}", "eventSource": "aws:sqs", "body": body}
            for i, body in enumerate(bodies)
        ]
    }


def test_a_batch_of_drift_events_is_coalesced_into_one_scoped_request() -> None:
    one = load("cloudtrail-CreateResolverRule.json")
    two = load("cloudtrail-DeleteResolverRule.json")
    two["detail"]["awsRegion"] = "eu-west-1"
    failed = load("cloudtrail-failed-call.json")
    batch = batch_from_sqs(sqs(*(json.dumps(e) for e in (one, two, one, failed))), KNOWN)
    assert batch.request is not None
    assert batch.request.regions == tuple(sorted({one["detail"]["awsRegion"], "eu-west-1"}))


def test_an_unreadable_message_is_poison_and_still_means_every_region() -> None:
    good = json.dumps(load("cloudtrail-CreateResolverRule.json"))
    batch = batch_from_sqs(sqs(good, "{not json"), KNOWN)
    assert batch.poison == ("m1",)
    assert batch.request is not None
    assert batch.request.regions is None


def test_a_batch_of_failed_calls_needs_no_reconcile() -> None:
    failed = json.dumps(load("cloudtrail-failed-call.json"))
    batch = batch_from_sqs(sqs(failed, failed), KNOWN)
    assert batch.request is None
    assert batch.poison == ()


def test_only_sqs_records_make_an_sqs_batch() -> None:
    assert not is_sqs_batch(load("dynamodb-stream-insert.json"))
    assert not is_sqs_batch({"Records": []})
    assert not is_sqs_batch({"action": "plan"})


@pytest.mark.parametrize(
    ("name", "awaits"),
    [
        ("cloudtrail-CreateResolverEndpoint.json", True),
        ("cloudtrail-AssociateResolverEndpointIpAddress.json", True),
        ("cloudtrail-CreateResolverRule.json", False),
        ("cloudtrail-CreateVpcEndpoint.json", False),
        ("scheduled.json", False),
        ("dynamodb-stream-insert.json", False),
    ],
)
def test_only_resolver_endpoint_events_wait_for_readiness(name: str, awaits: bool) -> None:
    request = request_from_event(load(name), KNOWN)
    assert request is not None
    assert request.await_endpoints is awaits


def test_endpoint_events_are_needless_only_in_other_accounts_regions_without_a_hub() -> None:
    """Where a hub is (the home account's, a member account's, a disabled one), or anywhere in
    the reconciler's own account, the pass goes on; elsewhere it says why it stops. An
    account id it cannot read lets the pass decide."""
    other = "210987654321"
    items = [
        hub_item("us-east-1"),
        hub_item("us-east-2", **in_member()),
        hub_item("us-west-2", enabled=False),
    ]
    hub_set = parse_hubs(items, KNOWN, HOME)
    aws = SimpleNamespace(settings=Settings(home_region="us-east-1"), account_id=lambda: HOME)
    needless = Reconciler(aws)._needless_for_endpoints  # type: ignore[arg-type]
    for goes_on in (
        [("us-east-1", HOME)],
        [("eu-west-1", HOME)],  # no hub there, but the reconciler's own account
        [("us-east-2", MEMBER)],
        [("us-west-2", HOME)],
        [("eu-west-1", other), ("us-east-2", MEMBER)],
    ):
        assert needless(goes_on, hub_set) == "", goes_on
    assert needless([("us-east-2", other), ("us-east-1", MEMBER)], hub_set) == (
        f"interface VPC endpoint changes in us-east-1 ({MEMBER}), us-east-2 ({other}): no hub"
        " there, so nothing to reconcile (only hubs' interface endpoints are read)"
    )

    def unreadable() -> str:
        raise RuntimeError("no credentials")

    aws.account_id = unreadable
    assert needless([("us-east-2", other)], hub_set) == ""


# --- where a hub item stopped naming another account (`departed_of`) ----------------------------

ROLE = f"arn:aws:iam::{MEMBER}:role/mesh"
OTHER = "333333333333"
OTHER_ROLE = f"arn:aws:iam::{OTHER}:role/mesh"


def stream_record(event: str, old: Any = None, new: Any = None) -> dict[str, Any]:
    """A hubs-table stream record with its images, serialised as DynamoDB streams do."""
    serialise = TypeSerializer().serialize
    data: dict[str, Any] = {"Keys": {"region": {"S": "us-east-2"}}}
    for name, image in (("OldImage", old), ("NewImage", new)):
        if image is not None:
            data[name] = {k: serialise(v) for k, v in image.items()}
    return {"eventName": event, "eventSource": "aws:dynamodb", "dynamodb": data}


def entry(account: str, role: str, **more: Any) -> dict[str, Any]:
    return {"vpc_id": "vpc-1", "account_id": account, "role_arn": role, **more}


MEMBER_HUB = {
    "region": "us-east-2",
    "vpc_id": "vpc-0",
    "inbound_endpoint_id": "rslvr-in-1",
    "account_id": MEMBER,
    "role_arn": ROLE,
    "external_id": "x-1",
    "spokes": [entry(OTHER, OTHER_ROLE, outbound_endpoint_id="rslvr-out-2", mode="direct")],
}


def test_a_removed_item_departs_from_every_other_account_it_named() -> None:
    departed = departed_of(stream_record("REMOVE", old=MEMBER_HUB))
    assert departed == {
        f"us-east-2@{MEMBER}": AccountAccess(account_id=MEMBER, role_arn=ROLE, external_id="x-1"),
        f"us-east-2@{OTHER}": AccountAccess(account_id=OTHER, role_arn=OTHER_ROLE),
    }


def test_a_changed_item_departs_only_from_the_accounts_it_no_longer_names() -> None:
    kept_member = {**MEMBER_HUB, "spokes": []}
    assert set(departed_of(stream_record("MODIFY", MEMBER_HUB, kept_member))) == {
        f"us-east-2@{OTHER}"
    }
    other_role = {**MEMBER_HUB, "role_arn": f"arn:aws:iam::{MEMBER}:role/another"}
    assert departed_of(stream_record("MODIFY", MEMBER_HUB, other_role)) == {}  # still named
    as_shared = {**kept_member, "shared_vpcs": [entry(OTHER, OTHER_ROLE)]}
    assert departed_of(stream_record("MODIFY", MEMBER_HUB, as_shared)) == {}
    assert departed_of(stream_record("INSERT", new=MEMBER_HUB)) == {}


@pytest.mark.parametrize(
    "record",
    [
        stream_record("REMOVE", old={"region": "us-east-2", "vpc_id": "vpc-0"}),  # home only
        stream_record("REMOVE", old={**MEMBER_HUB, "region": 7}),  # no Region to sweep
        stream_record("REMOVE", old={"region": "us-east-2", "spokes": [{"account_id": "12"}]}),
        {"eventSource": "aws:dynamodb", "dynamodb": {"OldImage": {"region": {"Q": "x"}}}},
        {"eventSource": "aws:dynamodb", "dynamodb": "not an object"},
        load("cloudtrail-CreateVpc.json"),
        load("scheduled.json"),
        "not an object",
    ],
)
def test_what_names_no_reachable_account_departs_from_none(record: Any) -> None:
    assert departed_of(record) == {}
    assert departed_of({"Records": [record]}) == {}


def test_departures_of_a_queue_batch_are_read_from_its_bodies() -> None:
    removed = stream_record("REMOVE", old=MEMBER_HUB)
    batch = {
        "Records": [
            {"messageId": "1", "body": json.dumps(removed), "eventSource": "aws:sqs"},
            {"messageId": "2", "body": "{not json", "eventSource": "aws:sqs"},
            {
                "messageId": "3",
                "body": json.dumps(load("scheduled.json")),
                "eventSource": "aws:sqs",
            },
        ]
    }
    assert set(departed_of(batch)) == {f"us-east-2@{MEMBER}", f"us-east-2@{OTHER}"}
    assert set(departed_of(load("dynamodb-stream-remove.json"))) == set()  # a home hub
