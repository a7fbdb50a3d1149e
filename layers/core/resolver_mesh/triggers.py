"""Triggers to requests: which action, in which Regions. Pure, no I/O.

Invariants:
- A trigger never carries state, only "look at these Regions again" (level-triggered).
- Anything not understood means all Regions, never none; only a malformed *manual* request,
  which a person is waiting on, is refused with an explanation. A failed call (`errorCode`)
  needs nothing: it changed nothing.
- A batch of messages becomes one request over the union of their scopes (coalescing).
- An event from a member account is scoped as one from the home account: by its Region (a
  Region is reconciled in every account).
- The one exception: a batch of interface VPC endpoint events alone names where they
  happened (Region and account), and where all are other accounts' Regions without a hub,
  the pass reads nothing else (`Request.interface_endpoints_at`); otherwise a full pass.
- A hubs-table stream record also tells where its item stopped naming another account
  (`departed_of`): the handler keeps those locations in the work table, so that passes read
  them until nothing of ours is left there. The record is a lead, never the desired state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from resolver_mesh.desired import departed_locations
from resolver_mesh.models import AccountAccess, Request

ACTIONS = {"plan": False, "resync": True}


class BadRequestError(ValueError):
    """A manual invoke that cannot be understood; the message says which field is wrong."""


def _manual(event: Mapping[str, Any]) -> Request:
    action = event.get("action")
    if action not in ACTIONS:
        raise BadRequestError(f"'action' must be one of {sorted(ACTIONS)}, not {action!r}")
    regions = event.get("regions")
    if regions is not None and (
        not isinstance(regions, list) or not all(isinstance(r, str) and r for r in regions)
    ):
        raise BadRequestError("'regions' must be a list of Region names, e.g. [\"us-east-2\"]")
    force = event.get("force", False)
    if not isinstance(force, bool):
        raise BadRequestError("'force' must be true or false")
    return Request(
        apply=ACTIONS[action],
        regions=tuple(sorted(set(regions))) if regions is not None else None,
        force=force,
        trigger=str(event.get("trigger", "manual")),
    )


ALL = None  # a scope of every Region
ACCOUNT_ID = re.compile(r"\d{12}")
DRIFT_CALLS = frozenset(
    {
        "CreateResolverRule",
        "UpdateResolverRule",
        "DeleteResolverRule",
        "AssociateResolverRule",
        "DisassociateResolverRule",
    }
)
RESOLVER_ENDPOINT_CALLS = frozenset(
    {
        "CreateResolverEndpoint",
        "UpdateResolverEndpoint",
        "DeleteResolverEndpoint",
        "AssociateResolverEndpointIpAddress",
        "DisassociateResolverEndpointIpAddress",
    }
)
VPC_ENDPOINT_CALLS = frozenset({"CreateVpcEndpoint", "ModifyVpcEndpoint", "DeleteVpcEndpoints"})
# A VPC created or deleted, its tags changed (the forwarders pass CreateTags/DeleteTags on VPCs
# only): the VPCs that join a hub of that Region, in any account.
VPC_CALLS = frozenset({"CreateVpc", "DeleteVpc", "CreateTags", "DeleteTags"})
# Route 53 Profiles: a Profile (ours or one that holds a VPC of ours) lives in one Region.
PROFILE_CALLS = frozenset(
    {
        "CreateProfile",
        "DeleteProfile",
        "AssociateProfile",
        "DisassociateProfile",
        "AssociateResourceToProfile",
        "DisassociateResourceFromProfile",
        "UpdateProfileResourceAssociation",
    }
)


@dataclass(frozen=True)
class Scope:
    """The Regions a message can affect (`regions` None: all of them), and why."""

    regions: frozenset[str] | None
    why: str
    endpoint_change: bool = False  # a Resolver endpoint changed: it may not be ready yet
    # An interface VPC endpoint changed at this (Region, account): see `Request`.
    interface_endpoint_at: tuple[str, str] | None = None


def _cloudtrail_scope(detail: Mapping[str, Any], known_regions: Collection[str]) -> Scope:
    name = str(detail.get("eventName", "?"))
    region = str(detail.get("awsRegion", "?"))
    where = f"{name} in {region}"
    if detail.get("errorCode"):
        return Scope(frozenset(), f"{where} failed ({detail['errorCode']}): ignored")
    if region not in known_regions:
        return Scope(ALL, f"{where}: unknown Region, every Region")
    if name in DRIFT_CALLS:
        return Scope(frozenset({region}), f"{where}: rules of that Region")
    if name in PROFILE_CALLS:
        return Scope(frozenset({region}), f"{where}: Profiles of that Region")
    if name in RESOLVER_ENDPOINT_CALLS:
        response = detail.get("responseElements") or {}
        endpoint = response.get("resolverEndpoint") if isinstance(response, Mapping) else None
        direction = endpoint.get("direction") if isinstance(endpoint, Mapping) else None
        if direction == "OUTBOUND":  # only that Region's rules go through it
            return Scope(frozenset({region}), f"{where} (outbound endpoint)", endpoint_change=True)
        return Scope(ALL, f"{where}: inbound IPs are targets in every Region", endpoint_change=True)
    if name in VPC_CALLS:  # from any account: a Region is reconciled in every account
        return Scope(frozenset({region}), f"{where}: VPCs of that Region")
    if name in VPC_ENDPOINT_CALLS:
        why = f"{where}: what the hub answers for, in every Region"
        account = str(detail.get("recipientAccountId") or "")
        at = (region, account) if ACCOUNT_ID.fullmatch(account) else None
        return Scope(ALL, why, interface_endpoint_at=at)
    return Scope(ALL, f"{where}: not a known trigger, every Region")


def scope_of(message: Any, known_regions: Collection[str]) -> Scope:
    """The scope of one message: an EventBridge event or a DynamoDB stream record."""
    if not isinstance(message, Mapping):
        return Scope(ALL, "unrecognised event (not an object): every Region")
    if message.get("detail-type") == "AWS API Call via CloudTrail" and isinstance(
        message.get("detail"), Mapping
    ):
        return _cloudtrail_scope(message["detail"], known_regions)
    if message.get("detail-type") == "Scheduled Event":
        return Scope(ALL, "schedule")
    if message.get("eventSource") == "aws:dynamodb":
        return Scope(ALL, f"hubs table {message.get('eventName', 'change')}: every Region")
    return Scope(ALL, "unrecognised event: every Region")


def combined(scopes: Iterable[Scope]) -> Request | None:
    """One resync for several messages (coalescing); None when none of them needs one."""
    scopes = list(scopes)
    why = "; ".join(s.why for s in scopes)
    await_endpoints = any(s.endpoint_change for s in scopes)
    if scopes and all(s.interface_endpoint_at for s in scopes):  # needless unless at a hub
        at = tuple(sorted({s.interface_endpoint_at for s in scopes if s.interface_endpoint_at}))
        return Request(apply=True, trigger=why, interface_endpoints_at=at)
    if any(s.regions is None for s in scopes):
        return Request(apply=True, trigger=why, await_endpoints=await_endpoints)
    regions: set[str] = set()
    for scope in scopes:
        regions |= scope.regions or set()
    if not regions:
        return None
    return Request(
        apply=True, regions=tuple(sorted(regions)), trigger=why, await_endpoints=await_endpoints
    )


@dataclass(frozen=True)
class Batch:
    """An SQS batch read: one request for all of it, and the records that could not be read."""

    request: Request | None
    poison: tuple[str, ...]


def is_sqs_batch(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list) or not records:
        return False
    return all(isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records)


def batch_from_sqs(event: Mapping[str, Any], known_regions: Collection[str]) -> Batch:
    """Coalesce an SQS batch. A body that is not JSON is poison (reported as a failed item,
    so that it reaches the dead-letter queue) and also means every Region."""
    scopes: list[Scope] = []
    poison: list[str] = []
    for record in event["Records"]:
        try:
            message = json.loads(record.get("body") or "")
        except ValueError:
            poison.append(str(record.get("messageId")))
            scopes.append(Scope(ALL, f"unreadable message {record.get('messageId')}"))
            continue
        scopes.append(scope_of(message, known_regions))
    return Batch(combined(scopes), tuple(poison))


def request_from_event(event: Any, known_regions: Collection[str] = ()) -> Request | None:
    """The request a Lambda event stands for; None when it needs no reconcile."""
    if isinstance(event, Mapping) and "action" in event:
        return _manual(event)
    if is_sqs_batch(event):
        return batch_from_sqs(event, known_regions).request
    records = event.get("Records") if isinstance(event, Mapping) else None
    if isinstance(records, list) and records:
        return combined(scope_of(record, known_regions) for record in records)
    return combined([scope_of(event, known_regions)])


def _image(record: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """An item image of a stream record, as plain values; None when absent or unreadable."""
    data = record.get("dynamodb")
    image = data.get(name) if isinstance(data, Mapping) else None
    if not isinstance(image, Mapping):
        return None
    try:
        return {str(k): TypeDeserializer().deserialize(v) for k, v in image.items()}
    except (TypeError, ValueError, AttributeError, KeyError):
        return None


def _messages(event: Any) -> list[Any]:
    """The messages of an event: an SQS batch's bodies (unreadable ones left out), the
    records of a direct batch, or the event itself."""
    if is_sqs_batch(event):
        bodies = []
        for record in event["Records"]:
            try:
                bodies.append(json.loads(record.get("body") or ""))
            except ValueError:
                continue
        return bodies
    records = event.get("Records") if isinstance(event, Mapping) else None
    return list(records) if isinstance(records, list) else [event]


def departed_of(event: Any) -> dict[str, AccountAccess]:
    """The other accounts' locations that the hub items of an event's stream records stopped
    naming (`desired.departed_locations`: a removed item's, or the accounts a changed one
    dropped), each with the role its old item gave; {} for any other event."""
    departed: dict[str, AccountAccess] = {}
    for message in _messages(event):
        if isinstance(message, Mapping) and message.get("eventSource") == "aws:dynamodb":
            old, new = _image(message, "OldImage"), _image(message, "NewImage")
            departed |= departed_locations(old, new)
    return departed
