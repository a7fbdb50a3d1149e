"""Emulate AWS RAM sharing of Route 53 Resolver rules between accounts in moto.

moto 5.2.5 keeps state per account (an STS assumed role into account B makes moto attribute the
calls to B), but its RAM is partial and its Route 53 Resolver knows nothing of RAM.
`install_ram_extensions` patches `moto.ram` and `moto.route53resolver` (backend, model and response
classes, plus RAM's URL table; `mock_aws` and an in-process `ThreadedMotoServer` both dispatch
through them, and a `/moto-api/reset` keeps them):

RAM (per account and Region)
- `CreateResourceShare` keeps `tags` (returned by `GetResourceShares`, filtered by `tagFilters`:
  several filters match as OR, a filter without values matches the key) and refuses a resolver
  rule that the account does not own in that Region (UnknownResourceException).
- `GetResourceShares` also filters by `resourceShareArns`, `resourceShareStatus` and `name`,
  pages with `nextToken`/`maxResults`, and answers `OTHER-ACCOUNTS` (accepted shares of others).
- `AssociateResourceShare` / `DisassociateResourceShare` are added (resources and principals;
  answers `ASSOCIATING` / `DISASSOCIATING`). A principal account may disassociate itself from a
  share of another account (leaving the share).
- `GetResourceShareAssociations` reports the share's current entities as `ASSOCIATED` (moto
  echoed the `associationStatus` filter as the status), those of a DELETED share as
  `DISASSOCIATED`, and pages.
- An account principal other than the owner gets an invitation: `GetResourceShareInvitations`
  in the principal's account lists it `PENDING`; `AcceptResourceShareInvitation` /
  `RejectResourceShareInvitation` answer it. Removing the principal, or deleting the share,
  removes the invitation.
- Except within an organisation whose management account enabled sharing with it
  (`EnableSharingWithAwsOrganization`): an account of the same organisation as the share's
  owner gets no invitation, and the shared resources are available to it at once (RAM User
  Guide, *Enable resource sharing within AWS Organizations*: "you can share resources without
  using invitations"). Accounts outside it still get one.
- `ListResources` (`SELF` / `OTHER-ACCOUNTS`) and `ListPendingInvitationResources` are added.
- `arrival_lag(seconds)` (a context manager, off by default): the resources of a share become
  available to an account only `seconds` after it accepted the invitation, as on AWS, where
  they arrive asynchronously after `AcceptResourceShareInvitation`; meanwhile its rules are
  unknown there (`ResourceNotFoundException`).

Route 53 Resolver (account B, the Region of the share)
- A rule of another account is visible to B while it is a resource of an ACTIVE share whose
  principal B accepted the invitation: `ListResolverRules` (filters and pagination unchanged) and
  `GetResolverRule` return it with `ShareStatus: SHARED_WITH_ME` and the owner's `OwnerId`; the
  owner sees `SHARED_BY_ME` while the rule is in an ACTIVE share with a principal.
- `AssociateResolverRule` / `DisassociateResolverRule` in B accept a visible rule; the association
  lives in B (and the checks of `route53resolver`, RSLVR-00802 and RSLVR-00804, see shared rules
  too).
- When a rule stops being visible to B (resource or principal removed, share deleted, rule
  deleted), B's associations of it disappear. The owner may delete a rule that other accounts
  have associated (AWS documents this; only the owner's own associations block the delete), and
  the rule leaves its shares.
- B cannot update or delete a rule it does not own: AccessDeniedException.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_MARKER = "_resolver_mesh_ram_extensions"
_STATE = "_resolver_mesh_ram_state"
_lock = threading.Lock()  # install once
_arrival = {"lag": 0.0}  # seconds between an acceptance and its resources (`arrival_lag`)
_state_lock = threading.RLock()  # every change to shares, invitations and cross-account links
# Region -> the accounts that made a share there (set by `CreateResourceShare`, which alone
# adds shares; kept across resets, whose new or emptied backends carry no `_SHARED_MARK`).
_sharing: dict[str, dict[str, None]] = {}
_SHARED_MARK = "_resolver_mesh_made_a_share"  # on a RAM backend that made a share

ACCOUNT_ID = re.compile(r"^\d{12}$")
RULE_ARN = re.compile(
    r"^arn:[\w-]+:route53resolver:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"resolver-rule/(?P<id>[\w-]+)$"
)
INVITATION_ARN = re.compile(
    r"^arn:[\w-]+:ram:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):resource-share-invitation/.+$"
)
OWNERS = ("SELF", "OTHER-ACCOUNTS")
MAX_PAGE = 500

RAM_URL_PATHS = (
    "associateresourceshare",
    "disassociateresourceshare",
    "getresourceshareinvitations",
    "acceptresourceshareinvitation",
    "rejectresourceshareinvitation",
    "listresources",
    "listpendinginvitationresources",
)


@dataclass
class Invitation:
    """An invitation of one account to one resource share."""

    arn: str
    sender: str
    receiver: str
    timestamp: float
    status: str = "PENDING"
    # none was sent: the receiver is in the owner's organisation, which shares without them
    within_organization: bool = False
    accepted_at: float = 0.0  # when the receiver accepted it (time.time())


@dataclass
class ShareExtras:
    """What moto's ResourceShare does not keep."""

    tags: list[dict[str, str]] = field(default_factory=list)
    # (created, updated) of each associated resource ARN and principal
    times: dict[str, tuple[float, float]] = field(default_factory=dict)
    # by receiving account
    invitations: dict[str, Invitation] = field(default_factory=dict)


def _error(code: str, message: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    error: Exception = JsonRESTError(code, message)
    return error


def _unique(values: list[str] | None) -> list[str]:
    return list(dict.fromkeys(values or []))


# --- state and lookups -------------------------------------------------------------------------


def _state(ram: Any) -> dict[str, ShareExtras]:
    """Per RAM backend, by share ARN; lives in the backend, so a reset forgets it."""
    state: dict[str, ShareExtras] | None = getattr(ram, _STATE, None)
    if state is None:
        state = {}
        setattr(ram, _STATE, state)
    return state


def _extras(ram: Any, share_arn: str) -> ShareExtras:
    return _state(ram).setdefault(share_arn, ShareExtras())


def _ram_backends_in(region: str) -> list[tuple[str, Any]]:
    """(account, RAM backend) of every account whose backend made a share in `region` (noted
    in `_sharing` and marked on the backend, which a reset empties or replaces): the only RAM
    backends there with shares, whatever the number of accounts; in the order of moto's
    `ram_backends`, as when every account's was looked in."""
    from moto.ram.models import ram_backends

    found = []
    for account in list(_sharing.get(region, ())):
        backend = _ram_backend(account, region)
        if backend is not None and getattr(backend, _SHARED_MARK, False):
            found.append((account, backend))
    if len(found) > 1:
        order = {account: n for n, account in enumerate(dict.keys(ram_backends))}
        found.sort(key=lambda pair: order.get(pair[0], len(order)))
    return found


def _ram_backend(account: str, region: str) -> Any:
    from moto.ram.models import ram_backends

    per_account = ram_backends.get(account)
    return None if per_account is None else per_account.get(region)


def _resolver_backend(account: str, region: str) -> Any:
    from moto.route53resolver.models import route53resolver_backends

    per_account = route53resolver_backends.get(account)
    return None if per_account is None else per_account.get(region)


def _owned_rule(owner: str, region: str, arn: str) -> Any:
    """The rule `arn` names if `owner` owns it in `region`, else None."""
    match = RULE_ARN.match(arn)
    if match is None or match["region"] != region or match["account"] != owner:
        return None
    backend = _resolver_backend(owner, region)
    return None if backend is None else dict.get(backend.resolver_rules, match["id"])


@contextmanager
def arrival_lag(seconds: float) -> Iterator[None]:
    """For the block, the resources of a share reach an account `seconds` after it accepts
    the invitation (invitations accepted before the block count from their acceptance)."""
    before = _arrival["lag"]
    _arrival["lag"] = seconds
    try:
        yield
    finally:
        _arrival["lag"] = before


def _accepted(ram: Any, share: Any, account: str) -> bool:
    """True if `account` accepted the invitation to the ACTIVE `share` (of `ram`), and its
    resources have arrived (`arrival_lag`)."""
    extras = _state(ram).get(share.arn)
    invitation = None if extras is None else extras.invitations.get(account)
    return (
        share.status == "ACTIVE"
        and account in share.principals
        and invitation is not None
        and invitation.status == "ACCEPTED"
        and time.time() >= invitation.accepted_at + _arrival["lag"]
    )


def _shared_with(account: str, region: str) -> dict[str, Any]:
    """Rules of other accounts that `account` sees in `region`, by rule id."""
    rules: dict[str, Any] = {}
    for owner, ram in _ram_backends_in(region):
        if owner == account:
            continue
        for share in list(ram.resource_shares):
            if not _accepted(ram, share, account):
                continue
            for arn in list(share.resource_arns):
                rule = _owned_rule(owner, region, arn)
                if rule is not None:
                    rules[rule.id] = rule
    return rules


def _shared_by_owner(rule: Any) -> bool:
    ram = _ram_backend(rule.account_id, rule.region)
    return ram is not None and any(
        share.status == "ACTIVE"
        and rule.arn in share.resource_arns
        and any(principal != rule.account_id for principal in share.principals)
        for share in list(ram.resource_shares)
    )


def _prune(region: str) -> None:
    """Remove every association, in any account, of a rule that account no longer sees."""
    from moto.route53resolver.models import route53resolver_backends

    for account, per_account in list(route53resolver_backends.items()):
        backend = per_account.get(region)
        if backend is None:
            continue
        visible = _shared_with(account, region)
        associations = backend.resolver_rule_associations
        for association_id, association in list(associations.items()):
            rule_id = association.resolver_rule_id
            if not dict.__contains__(backend.resolver_rules, rule_id) and rule_id not in visible:
                associations.pop(association_id, None)


class SharedRuleView:
    """A rule of another account as an account it is shared with sees it (read-only)."""

    _rule: Any

    def __init__(self, rule: Any) -> None:
        object.__setattr__(self, "_rule", rule)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rule, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a rule shared with this account cannot be changed")

    def description(self) -> dict[str, Any]:
        description: dict[str, Any] = dict(self._rule.description())
        description["ShareStatus"] = "SHARED_WITH_ME"
        return description


class RuleTable(dict[str, Any]):
    """A Route 53 Resolver backend's own rules (iteration, `pop`, `len`); lookups by id
    (`in`, `[]`, `get`) also find the rules shared with its account, as `SharedRuleView`s."""

    def __init__(self, account_id: str, region: str, rules: dict[str, Any]) -> None:
        super().__init__(rules)
        self.account_id = account_id
        self.region = region

    def _shared(self, key: object) -> SharedRuleView | None:
        if not isinstance(key, str):
            return None
        rule = _shared_with(self.account_id, self.region).get(key)
        return None if rule is None else SharedRuleView(rule)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or self._shared(key) is not None

    def __getitem__(self, key: str) -> Any:
        if super().__contains__(key):
            return super().__getitem__(key)
        view = self._shared(key)
        if view is None:
            raise KeyError(key)
        return view

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


# --- RAM shapes --------------------------------------------------------------------------------


def _describe_share(ram: Any, share: Any) -> dict[str, Any]:
    description: dict[str, Any] = share.describe()
    extras = _state(ram).get(share.arn)
    if extras is not None and extras.tags:
        description["tags"] = [dict(tag) for tag in extras.tags]
    return description


def _is_external(share: Any, principal: str) -> bool:
    return bool(ACCOUNT_ID.match(principal)) and principal != share.owning_account_id


def _association(ram: Any, share: Any, entity: str, kind: str, status: str) -> dict[str, Any]:
    from moto.core.utils import unix_time

    extras = _state(ram).get(share.arn)
    default = (unix_time(share.creation_time), unix_time(share.last_updated_time))
    created, updated = default if extras is None else extras.times.get(entity, default)
    return {
        "resourceShareArn": share.arn,
        "resourceShareName": share.name,
        "associatedEntity": entity,
        "associationType": kind,
        "status": status,
        "creationTime": created,
        "lastUpdatedTime": updated,
        "external": kind == "PRINCIPAL" and _is_external(share, entity),
    }


def _describe_invitation(share: Any, invitation: Invitation) -> dict[str, Any]:
    return {
        "resourceShareInvitationArn": invitation.arn,
        "resourceShareName": share.name,
        "resourceShareArn": share.arn,
        "senderAccountId": invitation.sender,
        "receiverAccountId": invitation.receiver,
        "invitationTimestamp": invitation.timestamp,
        "status": invitation.status,
    }


def _resource_type(arn: str) -> str:
    """`route53resolver:ResolverRule` for a rule ARN; `service:CamelType` in general."""
    parts = arn.split(":", 5)
    service = parts[2] if len(parts) > 2 else ""
    resource = re.split(r"[/:]", parts[5])[0] if len(parts) > 5 else ""
    return f"{service}:{''.join(word.capitalize() for word in resource.split('-'))}"


def _find_invitation(account: str, region: str, invitation_arn: str | None) -> tuple[Any, Any]:
    """(share, invitation) of the invitation `invitation_arn` received by `account`."""
    if not invitation_arn or not INVITATION_ARN.match(invitation_arn):
        raise _error(
            "MalformedArnException",
            f"The specified ARN {invitation_arn} is not valid. Verify the ARN and try again.",
        )
    for _, ram in _ram_backends_in(region):
        for share in list(ram.resource_shares):
            extras = _state(ram).get(share.arn)
            invitation = None if extras is None else extras.invitations.get(account)
            if (
                invitation is not None
                and invitation.arn == invitation_arn
                and not invitation.within_organization
            ):
                return share, invitation
    raise _error(
        "ResourceShareInvitationArnNotFoundException",
        f"ResourceShareInvitationArn {invitation_arn} could not be found.",
    )


def _resource(ram: Any, share: Any, arn: str) -> dict[str, Any]:
    association = _association(ram, share, arn, "RESOURCE", "AVAILABLE")
    return {
        "arn": arn,
        "type": _resource_type(arn),
        "resourceShareArn": share.arn,
        "status": "AVAILABLE",
        "creationTime": association["creationTime"],
        "lastUpdatedTime": association["lastUpdatedTime"],
        "resourceRegionScope": "REGIONAL",
    }


def _page(
    items: list[dict[str, Any]], next_token: str | None, max_results: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    start = 0
    if next_token:
        try:
            start = int(base64.urlsafe_b64decode(next_token.encode()).decode())
        except (ValueError, binascii.Error) as error:
            raise _error(
                "InvalidNextTokenException", "The specified token is not valid."
            ) from error
    if max_results is not None and not 1 <= int(max_results) <= MAX_PAGE:
        raise _error("InvalidParameterException", f"maxResults must be 1..{MAX_PAGE}")
    end = start + int(max_results or MAX_PAGE)
    token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], token


def _find_share(ram: Any, arn: str | None) -> Any:
    for share in ram.resource_shares:
        if share.arn == arn:
            return share
    raise _error("UnknownResourceException", f"ResourceShare {arn} could not be found.")


def _check_active(share: Any) -> None:
    if share.status != "ACTIVE":
        raise _error(
            "InvalidStateTransitionException",
            f"ResourceShare {share.arn} is {share.status}; it cannot be changed",
        )


def _check_resources(ram: Any, arns: list[str]) -> None:
    """A resolver rule can be shared only by its owner, from its Region."""
    for arn in arns:
        if RULE_ARN.match(arn) and _owned_rule(ram.account_id, ram.region_name, arn) is None:
            raise _error("UnknownResourceException", f"Resource {arn} could not be found.")


def _invite(ram: Any, share: Any, principals: list[str]) -> None:
    """Invite each new account principal; one of the owner's organisation, when it shares
    without invitations, is recorded as accepted instead, and no invitation is listed."""
    extras = _extras(ram, share.arn)
    for principal in principals:
        if _is_external(share, principal) and principal not in extras.invitations:
            within = _shares_without_invitations(share.owning_account_id, principal, ram.partition)
            extras.invitations[principal] = Invitation(
                arn=f"arn:{ram.partition}:ram:{ram.region_name}:{share.owning_account_id}:"
                f"resource-share-invitation/{uuid.uuid4()}",
                sender=share.owning_account_id,
                receiver=principal,
                timestamp=time.time(),
                status="ACCEPTED" if within else "PENDING",
                within_organization=within,
            )


_SHARING_ENABLED = "_resolver_mesh_ram_sharing_enabled"  # on moto's FakeOrganization


def _organization_of(account: str, partition: str) -> Any:
    """The moto organisation `account` belongs to (as its management account or a member),
    or None."""
    from moto.organizations.models import organizations_backends

    management, _ = organizations_backends.master_accounts.get(account, (account, partition))
    backend = dict.get(dict.get(organizations_backends, management) or {}, partition)
    return None if backend is None else backend.org


def _shares_without_invitations(owner: str, principal: str, partition: str) -> bool:
    """Whether `owner` and `principal` are in one organisation that enabled RAM sharing."""
    organization = _organization_of(owner, partition)
    return (
        organization is not None
        and getattr(organization, _SHARING_ENABLED, False)
        and _organization_of(principal, partition) is organization
    )


def _add(ram: Any, share: Any, resources: list[str], principals: list[str]) -> None:
    """Add new resources and principals (validated by moto first; all or nothing)."""
    from moto.core.utils import utcnow

    resources = [arn for arn in _unique(resources) if arn not in share.resource_arns]
    principals = [p for p in _unique(principals) if p not in share.principals]
    _check_resources(ram, resources)
    saved = list(share.resource_arns), list(share.principals)
    try:
        share.add_resources(resources)
        share.add_principals(principals)
    except Exception:
        share.resource_arns[:], share.principals[:] = saved
        raise
    now = time.time()
    extras = _extras(ram, share.arn)
    for entity in resources + principals:
        extras.times[entity] = (now, now)
    _invite(ram, share, principals)
    share.last_updated_time = utcnow()


def _shares_for(ram: Any, owner: str) -> list[tuple[Any, Any]]:
    """(RAM backend, share) pairs: the account's own, or those of others it accepted."""
    if owner not in OWNERS:
        raise _error(
            "InvalidParameterException",
            f"{owner} is not a valid resource owner. "
            "Specify either SELF or OTHER-ACCOUNTS and try again.",
        )
    if owner == "SELF":
        return [(ram, share) for share in list(ram.resource_shares)]
    return [
        (other, share)
        for account, other in _ram_backends_in(ram.region_name)
        if account != ram.account_id
        for share in list(other.resource_shares)
        if _accepted(other, share, ram.account_id)
    ]


def _tags_match(tags: list[dict[str, str]], tag_filters: list[dict[str, Any]]) -> bool:
    """TagFilters match as OR; a filter without values matches any value of its key."""
    if not tag_filters:
        return True
    return any(
        tag.get("key") == tag_filter.get("tagKey")
        and (not tag_filter.get("tagValues") or tag.get("value") in tag_filter["tagValues"])
        for tag_filter in tag_filters
        for tag in tags
    )


# --- installation ------------------------------------------------------------------------------


def install_ram_extensions() -> None:
    """Patch moto's RAM and Route 53 Resolver once; later calls (from any thread) do nothing."""
    from moto.ram import urls as ram_urls
    from moto.ram.models import ResourceAccessManagerBackend
    from moto.ram.responses import ResourceAccessManagerResponse
    from moto.route53resolver.exceptions import ResourceNotFoundException
    from moto.route53resolver.models import (
        ResolverRule,
        Route53ResolverBackend,
        route53resolver_backends,
    )
    from moto.route53resolver.utils import PAGINATION_MODEL
    from moto.route53resolver.validations import validate_args
    from moto.utilities.paginator import paginate

    with _lock:
        if getattr(ResourceAccessManagerBackend, _MARKER, False):
            return

        original_enable_sharing = ResourceAccessManagerBackend.enable_sharing_with_aws_organization
        original_create_share = ResourceAccessManagerBackend.create_resource_share
        original_delete_share = ResourceAccessManagerBackend.delete_resource_share
        original_resolver_init = Route53ResolverBackend.__init__
        original_delete_rule = Route53ResolverBackend.delete_resolver_rule
        original_rule_description = ResolverRule.description

        # --- RAM backend -----------------------------------------------------------------------

        def enable_sharing_with_aws_organization(self: Any) -> dict[str, Any]:
            answer: dict[str, Any] = original_enable_sharing(self)  # the management account's
            setattr(self.organizations_backend.org, _SHARING_ENABLED, True)
            return answer

        def create_resource_share(self: Any, **kwargs: Any) -> dict[str, Any]:
            with _state_lock:
                resources = _unique(kwargs.get("resourceArns"))
                _check_resources(self, resources)
                kwargs["resourceArns"] = resources
                kwargs["principals"] = _unique(kwargs.get("principals"))
                setattr(self, _SHARED_MARK, True)
                _sharing.setdefault(self.region_name, {})[self.account_id] = None
                response: dict[str, Any] = original_create_share(self, **kwargs)
                share = _find_share(self, response["resourceShare"]["resourceShareArn"])
                extras = _extras(self, share.arn)
                extras.tags = [
                    {"key": tag["key"], "value": tag.get("value", "")}
                    for tag in kwargs.get("tags") or []
                ]
                now = time.time()
                for entity in share.resource_arns + share.principals:
                    extras.times[entity] = (now, now)
                _invite(self, share, share.principals)
                if extras.tags:
                    response["resourceShare"]["tags"] = [dict(tag) for tag in extras.tags]
                if kwargs.get("clientToken"):
                    response["clientToken"] = kwargs["clientToken"]
                return response

        def get_resource_shares(
            self: Any,
            resource_owner: str,
            resource_share_arns: list[str] | None = None,
            resource_share_status: str | None = None,
            name: str | None = None,
            tag_filters: list[dict[str, Any]] | None = None,
        ) -> list[dict[str, Any]]:
            found = []
            for ram, share in _shares_for(self, resource_owner):
                extras = _state(ram).get(share.arn)
                if (
                    (resource_share_arns and share.arn not in resource_share_arns)
                    or (resource_share_status and share.status != resource_share_status)
                    or (name and share.name != name)
                    or not _tags_match(extras.tags if extras else [], tag_filters or [])
                ):
                    continue
                found.append(_describe_share(ram, share))
            return found

        def delete_resource_share(self: Any, resource_share_arn: str | None) -> dict[str, Any]:
            with _state_lock:
                response: dict[str, Any] = original_delete_share(self, resource_share_arn)
                _extras(self, _find_share(self, resource_share_arn).arn).invitations.clear()
                _prune(self.region_name)
                return response

        def associate_resource_share(
            self: Any, resource_share_arn: str, resource_arns: list[str], principals: list[str]
        ) -> list[dict[str, Any]]:
            with _state_lock:
                share = _find_share(self, resource_share_arn)
                _check_active(share)
                _add(self, share, resource_arns, principals)
                return [
                    _association(self, share, entity, kind, "ASSOCIATING")
                    for kind, entities in (("RESOURCE", resource_arns), ("PRINCIPAL", principals))
                    for entity in _unique(entities)
                ]

        def disassociate_resource_share(
            self: Any, resource_share_arn: str, resource_arns: list[str], principals: list[str]
        ) -> list[dict[str, Any]]:
            from moto.core.utils import utcnow

            with _state_lock:
                share = next((s for s in self.resource_shares if s.arn == resource_share_arn), None)
                if share is None:
                    return leave_resource_share(self, resource_share_arn, resource_arns, principals)
                _check_active(share)
                extras = _extras(self, share.arn)
                removed = []
                for kind, entities, current in (
                    ("RESOURCE", _unique(resource_arns), share.resource_arns),
                    ("PRINCIPAL", _unique(principals), share.principals),
                ):
                    for entity in entities:
                        if entity in current:
                            removed.append(
                                _association(self, share, entity, kind, "DISASSOCIATING")
                            )
                            current.remove(entity)
                            extras.times.pop(entity, None)
                            extras.invitations.pop(entity, None)
                share.last_updated_time = utcnow()
                _prune(self.region_name)
                return removed

        def leave_resource_share(
            self: Any, resource_share_arn: str, resource_arns: list[str], principals: list[str]
        ) -> list[dict[str, Any]]:
            """A principal account removes itself from a share of another account."""
            for account, ram in _ram_backends_in(self.region_name):
                share = next((s for s in ram.resource_shares if s.arn == resource_share_arn), None)
                if share is None or account == self.account_id:
                    continue
                if resource_arns or _unique(principals) != [self.account_id]:
                    raise _error(
                        "OperationNotPermittedException",
                        "Only the owner can change this resource share; "
                        "a principal can only remove itself",
                    )
                if self.account_id not in share.principals:
                    break
                left = _association(ram, share, self.account_id, "PRINCIPAL", "DISASSOCIATING")
                share.principals.remove(self.account_id)
                extras = _extras(ram, share.arn)
                extras.times.pop(self.account_id, None)
                extras.invitations.pop(self.account_id, None)
                _prune(self.region_name)
                return [left]
            raise _error(
                "UnknownResourceException",
                f"ResourceShare {resource_share_arn} could not be found.",
            )

        def get_resource_share_associations(
            self: Any,
            association_type: str | None,
            association_status: str | None,
            resource_share_arns: list[str],
            resource_arn: str | None,
            principal: str | None,
        ) -> dict[str, Any]:
            if association_type not in ("PRINCIPAL", "RESOURCE"):
                raise _error(
                    "InvalidParameterException",
                    f"{association_type} is not a valid association type. "
                    "Specify either PRINCIPAL or RESOURCE and try again.",
                )
            statuses = ("ASSOCIATING", "ASSOCIATED", "FAILED", "DISASSOCIATING", "DISASSOCIATED")
            if association_status and association_status not in statuses:
                raise _error(
                    "InvalidParameterException",
                    f"{association_status} is not a valid association status.",
                )
            if association_type == "PRINCIPAL" and resource_arn:
                raise _error(
                    "InvalidParameterException",
                    "You cannot specify a resource ARN when the association type is PRINCIPAL.",
                )
            if association_type == "RESOURCE" and principal:
                raise _error(
                    "InvalidParameterException",
                    "You cannot specify a principal when the association type is RESOURCE.",
                )
            wanted = resource_arn if association_type == "RESOURCE" else principal
            associations: list[dict[str, Any]] = []
            for share in list(self.resource_shares):
                if resource_share_arns and share.arn not in resource_share_arns:
                    continue
                status = "ASSOCIATED" if share.status == "ACTIVE" else "DISASSOCIATED"
                if association_status and association_status != status:
                    continue
                entities = (
                    share.principals if association_type == "PRINCIPAL" else share.resource_arns
                )
                associations.extend(
                    _association(self, share, entity, association_type, status)
                    for entity in list(entities)
                    if not wanted or wanted == entity
                )
            return {"resourceShareAssociations": associations}

        def get_resource_share_invitations(
            self: Any, invitation_arns: list[str] | None, resource_share_arns: list[str] | None
        ) -> list[dict[str, Any]]:
            found = []
            for _, ram in _ram_backends_in(self.region_name):
                for share in list(ram.resource_shares):
                    extras = _state(ram).get(share.arn)
                    invitation = None if extras is None else extras.invitations.get(self.account_id)
                    if (
                        invitation is None
                        or invitation.within_organization  # none was sent
                        or (invitation_arns and invitation.arn not in invitation_arns)
                        or (resource_share_arns and share.arn not in resource_share_arns)
                    ):
                        continue
                    found.append(_describe_invitation(share, invitation))
            missing = set(invitation_arns or []) - {i["resourceShareInvitationArn"] for i in found}
            if missing:
                raise _error(
                    "ResourceShareInvitationArnNotFoundException",
                    f"ResourceShareInvitationArn {sorted(missing)[0]} could not be found.",
                )
            return found

        def answer_invitation(self: Any, invitation_arn: str | None, status: str) -> dict[str, Any]:
            with _state_lock:
                share, invitation = _find_invitation(
                    self.account_id, self.region_name, invitation_arn
                )
                if invitation.status in ("ACCEPTED", "REJECTED"):
                    raise _error(
                        f"ResourceShareInvitationAlready{invitation.status.capitalize()}Exception",
                        f"ResourceShareInvitation {invitation_arn} is already "
                        f"{invitation.status.lower()}",
                    )
                invitation.status = status
                if status == "ACCEPTED":
                    invitation.accepted_at = time.time()
                return {"resourceShareInvitation": _describe_invitation(share, invitation)}

        def list_pending_invitation_resources(
            self: Any, invitation_arn: str | None
        ) -> list[dict[str, Any]]:
            share, invitation = _find_invitation(self.account_id, self.region_name, invitation_arn)
            if invitation.status == "REJECTED":
                raise _error(
                    "ResourceShareInvitationAlreadyRejectedException",
                    f"ResourceShareInvitation {invitation_arn} is already rejected",
                )
            ram = _ram_backend(share.owning_account_id, self.region_name)
            return [_resource(ram, share, arn) for arn in list(share.resource_arns)]

        def list_resources(
            self: Any,
            resource_owner: str,
            principal: str | None = None,
            resource_type: str | None = None,
            resource_arns: list[str] | None = None,
            resource_share_arns: list[str] | None = None,
        ) -> list[dict[str, Any]]:
            if resource_owner == "OTHER-ACCOUNTS" and principal:
                raise _error(
                    "InvalidParameterException",
                    "You cannot specify a principal when the resource owner is OTHER-ACCOUNTS.",
                )
            resources = []
            for ram, share in _shares_for(self, resource_owner):
                if (
                    share.status != "ACTIVE"
                    or (principal and principal not in share.principals)
                    or (resource_share_arns and share.arn not in resource_share_arns)
                ):
                    continue
                for arn in list(share.resource_arns):
                    if (resource_arns and arn not in resource_arns) or (
                        resource_type and resource_type.lower() != _resource_type(arn).lower()
                    ):
                        continue
                    resources.append(_resource(ram, share, arn))
            return resources

        # --- RAM responses ---------------------------------------------------------------------

        def respond(body: dict[str, Any], token: str | None = None) -> str:
            if token:
                body["nextToken"] = token
            return json.dumps(body)

        def get_resource_shares_response(self: Any) -> str:
            shares = self.ram_backend.get_resource_shares(
                resource_owner=self._get_param("resourceOwner"),
                resource_share_arns=self._get_param("resourceShareArns"),
                resource_share_status=self._get_param("resourceShareStatus"),
                name=self._get_param("name"),
                tag_filters=self._get_param("tagFilters"),
            )
            page, token = _page(shares, self._get_param("nextToken"), self._get_param("maxResults"))
            return respond({"resourceShares": page}, token)

        def get_resource_share_associations_response(self: Any) -> str:
            associations = self.ram_backend.get_resource_share_associations(
                self._get_param("associationType"),
                self._get_param("associationStatus"),
                self._get_param("resourceShareArns", []),
                self._get_param("resourceArn"),
                self._get_param("principal"),
            )["resourceShareAssociations"]
            page, token = _page(
                associations, self._get_param("nextToken"), self._get_param("maxResults")
            )
            return respond({"resourceShareAssociations": page}, token)

        def share_change_response(self: Any, method: str) -> str:
            associations = getattr(self.ram_backend, method)(
                self._get_param("resourceShareArn"),
                self._get_param("resourceArns", []),
                self._get_param("principals", []),
            )
            body: dict[str, Any] = {"resourceShareAssociations": associations}
            if self._get_param("clientToken"):
                body["clientToken"] = self._get_param("clientToken")
            return respond(body)

        def associate_resource_share_response(self: Any) -> str:
            return share_change_response(self, "associate_resource_share")

        def disassociate_resource_share_response(self: Any) -> str:
            return share_change_response(self, "disassociate_resource_share")

        def get_resource_share_invitations_response(self: Any) -> str:
            invitations = self.ram_backend.get_resource_share_invitations(
                self._get_param("resourceShareInvitationArns"),
                self._get_param("resourceShareArns"),
            )
            page, token = _page(
                invitations, self._get_param("nextToken"), self._get_param("maxResults")
            )
            return respond({"resourceShareInvitations": page}, token)

        def answer_response(self: Any, status: str) -> str:
            body = self.ram_backend.answer_invitation(
                self._get_param("resourceShareInvitationArn"), status
            )
            if self._get_param("clientToken"):
                body["clientToken"] = self._get_param("clientToken")
            return respond(body)

        def accept_resource_share_invitation_response(self: Any) -> str:
            return answer_response(self, "ACCEPTED")

        def reject_resource_share_invitation_response(self: Any) -> str:
            return answer_response(self, "REJECTED")

        def list_pending_invitation_resources_response(self: Any) -> str:
            resources = self.ram_backend.list_pending_invitation_resources(
                self._get_param("resourceShareInvitationArn")
            )
            page, token = _page(
                resources, self._get_param("nextToken"), self._get_param("maxResults")
            )
            return respond({"resources": page}, token)

        def list_resources_response(self: Any) -> str:
            resources = self.ram_backend.list_resources(
                resource_owner=self._get_param("resourceOwner"),
                principal=self._get_param("principal"),
                resource_type=self._get_param("resourceType"),
                resource_arns=self._get_param("resourceArns"),
                resource_share_arns=self._get_param("resourceShareArns"),
            )
            page, token = _page(
                resources, self._get_param("nextToken"), self._get_param("maxResults")
            )
            return respond({"resources": page}, token)

        # --- Route 53 Resolver -----------------------------------------------------------------

        def resolver_init(self: Any, region_name: str, account_id: str) -> None:
            original_resolver_init(self, region_name, account_id)
            self.resolver_rules = RuleTable(self.account_id, self.region_name, self.resolver_rules)

        def validate_resolver_rule_id(self: Any, resolver_rule_id: str) -> None:
            """Only the owner may change or delete a rule (used by update and delete)."""
            validate_args([("resolverRuleId", resolver_rule_id)])
            if dict.__contains__(self.resolver_rules, resolver_rule_id):
                return
            if resolver_rule_id in self.resolver_rules:
                raise _error(
                    "AccessDeniedException",
                    f"Resolver rule '{resolver_rule_id}' is shared with account "
                    f"'{self.account_id}', which cannot change or delete it",
                )
            raise ResourceNotFoundException(
                f"Resolver rule with ID '{resolver_rule_id}' does not exist"
            )

        def get_resolver_rule(self: Any, resolver_rule_id: str) -> Any:
            validate_args([("resolverRuleId", resolver_rule_id)])
            rule = self.resolver_rules.get(resolver_rule_id)
            if rule is None:
                raise ResourceNotFoundException(
                    f"Resolver rule with ID '{resolver_rule_id}' does not exist"
                )
            return rule

        def list_resolver_rules(self: Any, filters: Any) -> list[Any]:
            filters = filters or []
            self._add_field_name_to_filter(filters)
            self._validate_filters(filters, ResolverRule.FILTER_NAMES)
            rules = list(self.resolver_rules.values()) + [
                SharedRuleView(rule)
                for rule in _shared_with(self.account_id, self.region_name).values()
            ]
            return [
                rule
                for rule in sorted(rules, key=lambda x: x.name)
                if self._matches_all_filters(rule, filters)
            ]

        def delete_resolver_rule(self: Any, resolver_rule_id: str) -> Any:
            with _state_lock:
                rule = original_delete_rule(self, resolver_rule_id=resolver_rule_id)
                ram = _ram_backend(self.account_id, self.region_name)
                for share in list(ram.resource_shares) if ram is not None else []:
                    if rule.arn in share.resource_arns:
                        share.resource_arns.remove(rule.arn)
                        _extras(ram, share.arn).times.pop(rule.arn, None)
                _prune(self.region_name)
                return rule

        def rule_description(self: Any) -> dict[str, Any]:
            description: dict[str, Any] = original_rule_description(self)
            if _shared_by_owner(self):
                description["ShareStatus"] = "SHARED_BY_ME"
            return description

        patches: list[tuple[type, str, Any]] = [
            (ResourceAccessManagerBackend, "create_resource_share", create_resource_share),
            (ResourceAccessManagerBackend, "get_resource_shares", get_resource_shares),
            (ResourceAccessManagerBackend, "delete_resource_share", delete_resource_share),
            (ResourceAccessManagerBackend, "associate_resource_share", associate_resource_share),
            (
                ResourceAccessManagerBackend,
                "disassociate_resource_share",
                disassociate_resource_share,
            ),
            (
                ResourceAccessManagerBackend,
                "get_resource_share_associations",
                get_resource_share_associations,
            ),
            (
                ResourceAccessManagerBackend,
                "get_resource_share_invitations",
                get_resource_share_invitations,
            ),
            (ResourceAccessManagerBackend, "answer_invitation", answer_invitation),
            (ResourceAccessManagerBackend, "list_resources", list_resources),
            (
                ResourceAccessManagerBackend,
                "list_pending_invitation_resources",
                list_pending_invitation_resources,
            ),
            (ResourceAccessManagerResponse, "get_resource_shares", get_resource_shares_response),
            (
                ResourceAccessManagerResponse,
                "get_resource_share_associations",
                get_resource_share_associations_response,
            ),
            (
                ResourceAccessManagerResponse,
                "associate_resource_share",
                associate_resource_share_response,
            ),
            (
                ResourceAccessManagerResponse,
                "disassociate_resource_share",
                disassociate_resource_share_response,
            ),
            (
                ResourceAccessManagerResponse,
                "get_resource_share_invitations",
                get_resource_share_invitations_response,
            ),
            (
                ResourceAccessManagerResponse,
                "accept_resource_share_invitation",
                accept_resource_share_invitation_response,
            ),
            (
                ResourceAccessManagerResponse,
                "reject_resource_share_invitation",
                reject_resource_share_invitation_response,
            ),
            (ResourceAccessManagerResponse, "list_resources", list_resources_response),
            (
                ResourceAccessManagerResponse,
                "list_pending_invitation_resources",
                list_pending_invitation_resources_response,
            ),
            (
                ResourceAccessManagerBackend,
                "enable_sharing_with_aws_organization",
                enable_sharing_with_aws_organization,
            ),
            (Route53ResolverBackend, "__init__", resolver_init),
            (Route53ResolverBackend, "_validate_resolver_rule_id", validate_resolver_rule_id),
            (Route53ResolverBackend, "get_resolver_rule", get_resolver_rule),
            (
                Route53ResolverBackend,
                "list_resolver_rules",
                paginate(pagination_model=PAGINATION_MODEL)(list_resolver_rules),
            ),
            (Route53ResolverBackend, "delete_resolver_rule", delete_resolver_rule),
            (ResolverRule, "description", rule_description),
        ]
        for cls, attribute, value in patches:
            setattr(cls, attribute, value)
        for path in RAM_URL_PATHS:
            ram_urls.url_paths[f"{{0}}/{path}$"] = ResourceAccessManagerResponse.dispatch
        # Backends made before this install keep plain dicts of rules: give them the shared view.
        for _, per_account in list(route53resolver_backends.items()):
            for backend in list(per_account.values()):
                if not isinstance(backend.resolver_rules, RuleTable):
                    backend.resolver_rules = RuleTable(
                        backend.account_id, backend.region_name, backend.resolver_rules
                    )
        setattr(ResourceAccessManagerBackend, _MARKER, True)
