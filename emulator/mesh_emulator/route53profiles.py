"""Amazon Route 53 Profiles (`route53profiles`) for moto, which has no backend for it.

How it plugs in (`install_route53profiles`, once per process): moto finds a service by matching
the request URL against `moto.backend_index.backend_url_patterns`, then asks
`moto.backends.get_backend(name)` for its `BackendDict`, whose backends name the URL table
(`url_bases`, `url_paths`). Both `mock_aws` (botocore's before-send stub) and `ThreadedMotoServer`
(Host header from the SigV4 credential scope: `route53profiles.<region>.amazonaws.com`) go through
those two, looked up on each request. So the install only (1) puts the `route53profiles` URL
pattern first in that list and (2) wraps `get_backend` to answer our `BackendDict` for that name;
nothing of moto is copied or replaced. The operation and its URI parameters come from botocore's
REST-JSON model (moto's router); responses and errors are serialized from the same model.
`mock_aws` resets and `/moto-api/reset` reach our `BackendDict` like any other. Install before a
`mock_aws` starts (or before the first request to a server in the same process).

The API (reference: Amazon Route 53 API Reference, "Route 53 Profiles" actions,
docs.aws.amazon.com/Route53/latest/APIReference/API_Operations_Route_53_Profiles.html):
- State is per account and Region. Ids: `rp-`, `rpassoc-` and `rpr-` with 17 hex digits. ARNs:
  `arn:<partition>:route53profiles:<region>:<account>:profile/<id>`, `.../profile-association/<id>`.
- `CreateProfile` answers COMPLETE. Its `ClientToken` makes it idempotent: the same token and Name
  return the same Profile; the same token with another Name is an InvalidParameterException.
- `Name` (Profile and associations): at most 64 of `[a-zA-Z0-9-_ ']`, not all digits
  (ValidationException naming the field).
- One Profile per VPC (AssociateProfile reference): a second `AssociateProfile` for a VPC fails
  with ResourceExistsException (the error the model documents for "already associated"; AWS's
  exact code for this case is not documented). The VPC must exist in the account and Region.
- `AssociateProfile` and `AssociateResourceToProfile` answer CREATING, `UpdateProfileResource-
  Association` UPDATING, the disassociations DELETING. Reads (Get/List calls in the account and
  Region) move them on: after `SETTINGS.pending_reads` reads (default 0: the next read) the
  association is COMPLETE, or gone.
- `AssociateResourceToProfile` takes a Route 53 Resolver rule of the same Region that the account
  owns or sees through RAM (`mesh_emulator.ram`); `ResourceType` is the rule's type
  (FORWARD, SYSTEM). Other resource types (hosted zones, firewall rule groups, endpoints) are not
  emulated (InvalidParameterException). The same rule twice, or two rules for one domain, in a
  Profile: ConflictException.
- `DeleteProfile` fails with ConflictException while a VPC (of any account) is associated
  (DeleteProfile reference); it answers DELETED and drops the Profile's resource associations.
  It looks at the Profile's VPC associations in every account as a read there would, moving a
  pending one on (AWS finishes a disassociation by itself, whether or not that account reads).
- Lists page with `NextToken` / `MaxResults` (1..100); a bad token: InvalidNextTokenException.
- Default quotas (Developer Guide, "Quotas on Route 53 Profiles",
  Route53/latest/DeveloperGuide/DNSLimitations.html#limits-api-entities-route53-profiles), in
  `SETTINGS`: 5 Profiles per account and Region, 1,000 VPCs per Profile (the VPCs of every
  account that holds it through RAM count: "Working with shared Route 53 Profiles", Instance
  quotas), 1,000 Resolver rules per Profile. The call past one is a LimitExceededException
  (an error every one of the three calls documents) naming the quota; nothing is written.
- Tags on Profiles and Profile associations (`Tags` at creation, Tag/Untag/ListTagsForResource).

RAM: the install lets moto's RAM share `profile` ARNs (moto only shares resource types it lists).
With `mesh_emulator.ram` installed (it adds `ListResources`), an account sees the
Profiles of accepted shares: listed `SHARED_WITH_ME`, readable and associable with its own VPCs
(the association is the account's); the owner sees `SHARED_BY_ME`. Only the owner may change or
delete a Profile or its resources (AccessDeniedException). RAM does not check that a shared
Profile exists.

A rule associated directly with a VPC and a rule for the same domain in the VPC's Profile: the
Developer Guide's Profiles page ("How Route 53 Profile settings are prioritized",
Route53/latest/DeveloperGuide/profiles.html#profiles-priority) gives the VPC's local settings
precedence for the same domain (read through a search index). Other pages say that the most
specific domain wins among the rules associated with a VPC (Developer Guide, "How Resolver
determines whether the domain name in a query matches any rules", Route53/latest/
DeveloperGuide/resolver-overview-forward-vpc-to-network-domain-name-matches.html), that a VPC
has one Profile (AssociateProfile reference; newer pages allow several, by priority: not
emulated), and that `ResolverRuleAssociation.Status` may be `OVERRIDDEN` (API Reference,
ResolverRuleAssociation), without saying when. The emulator therefore refuses neither call,
leaves both associations COMPLETE, and `rule_for(...)` lets the directly associated rule win
over the Profile's for one domain.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.core.base_backend import BackendDict, BaseBackend
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, BaseResponse, EmptyResult

from mesh_emulator.ram import RULE_ARN

SERVICE = "route53profiles"
URL_BASE = r"https?://route53profiles\.(.+)\.amazonaws\.com"
NAME = re.compile(r"^(?!^[0-9]+$)([a-zA-Z0-9\-_' ']+)$")
MAX_NAME = 64
MAX_PAGE = 100
VPC_ID = re.compile(r"^vpc-[0-9a-f]+$")
PROFILE_ARN = re.compile(
    r"^arn:[\w-]+:route53profiles:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<kind>profile|profile-association)/(?P<id>[\w-]+)$"
)
PENDING = {"CREATING": "COMPLETE", "UPDATING": "COMPLETE", "DELETING": "DELETED"}
_lock = threading.Lock()  # install once
_state_lock = threading.RLock()  # every change and read of Profiles state


@dataclass
class Settings:
    """Knobs of the emulation (module-wide, so one server in the process obeys them too)."""

    pending_reads: int = 0  # reads that still see CREATING / UPDATING / DELETING
    # Default quotas (Developer Guide, "Quotas on Route 53 Profiles"); raise them as AWS would
    max_profiles: int = 5  # Profiles one account owns in a Region
    max_vpcs_per_profile: int = 1000  # VPCs of every account together
    max_rules_per_profile: int = 1000


SETTINGS = Settings()


class ProfilesError(ServiceException):
    """An error of the route53profiles model (`code` names the shape)."""

    def __init__(self, code: str, message: str, **fields: str) -> None:
        super().__init__(code, message)
        for name, value in fields.items():
            setattr(self, name, value)


def _not_found(kind: str, identifier: str) -> ProfilesError:
    return ProfilesError(
        "ResourceNotFoundException", f"{kind} '{identifier}' does not exist", ResourceType=kind
    )


def _check_quota(what: str, used: int, quota: int, kind: str) -> None:
    """LimitExceededException (nothing written) when one more would pass `quota`."""
    if used >= quota:
        raise ProfilesError(
            "LimitExceededException", f"{what}: {used}, the quota is {quota}", ResourceType=kind
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:17]}"


def _check_name(field_name: str, name: Any) -> str:
    if not isinstance(name, str) or len(name) > MAX_NAME or not NAME.match(name):
        raise ProfilesError(
            "ValidationException",
            f"1 validation error detected: Value '{name}' at '{field_name}' failed to satisfy "
            f"constraint: at most {MAX_NAME} of letters, digits, '-', '_', ' ' and \"'\", "
            "not only digits",
        )
    return name


@dataclass
class Pending:
    """A state that moves on after `SETTINGS.pending_reads` reads (see `Backend.settle`)."""

    status: str
    reads_left: int = field(default_factory=lambda: SETTINGS.pending_reads)
    modified: datetime = field(default_factory=_now)

    def start(self, status: str) -> None:
        self.status, self.reads_left, self.modified = status, SETTINGS.pending_reads, _now()

    def advance(self) -> None:
        if self.status in PENDING:
            if self.reads_left > 0:
                self.reads_left -= 1
            else:
                self.status, self.modified = PENDING[self.status], _now()


@dataclass
class Profile:
    id: str
    arn: str
    name: str
    owner_id: str
    client_token: str
    created: datetime = field(default_factory=_now)

    def summary(self, share_status: str) -> dict[str, Any]:
        return {"Arn": self.arn, "Id": self.id, "Name": self.name, "ShareStatus": share_status}

    def description(self, share_status: str) -> dict[str, Any]:
        return {
            **self.summary(share_status),
            "ClientToken": self.client_token,
            "CreationTime": self.created,
            "ModificationTime": self.created,
            "OwnerId": self.owner_id,
            "Status": "COMPLETE",
            "StatusMessage": "Created Profile",
        }


@dataclass
class ProfileAssociation(Pending):
    """A Profile associated with a VPC of the account (the Profile may be another's)."""

    id: str = ""
    arn: str = ""
    name: str = ""
    owner_id: str = ""
    profile_id: str = ""
    vpc_id: str = ""
    created: datetime = field(default_factory=_now)

    def description(self) -> dict[str, Any]:
        return {
            "CreationTime": self.created,
            "Id": self.id,
            "ModificationTime": self.modified,
            "Name": self.name,
            "OwnerId": self.owner_id,
            "ProfileId": self.profile_id,
            "ResourceId": self.vpc_id,
            "Status": self.status,
            "StatusMessage": self.status.capitalize(),
        }


@dataclass
class ResourceAssociation(Pending):
    """A DNS resource (here: a Resolver rule) held by a Profile."""

    id: str = ""
    name: str = ""
    owner_id: str = ""
    profile_id: str = ""
    resource_arn: str = ""
    resource_type: str = ""
    domain: str = ""
    properties: str | None = None
    created: datetime = field(default_factory=_now)

    def description(self) -> dict[str, Any]:
        description = {
            "CreationTime": self.created,
            "Id": self.id,
            "ModificationTime": self.modified,
            "Name": self.name,
            "OwnerId": self.owner_id,
            "ProfileId": self.profile_id,
            "ResourceArn": self.resource_arn,
            "ResourceType": self.resource_type,
            "Status": self.status,
            "StatusMessage": self.status.capitalize(),
        }
        if self.properties is not None:
            description["ResourceProperties"] = self.properties
        return description


def _normalise(domain: str) -> str:
    return domain.strip().lower().rstrip(".") + "."


def _page(
    items: list[Any], next_token: str | None, max_results: int | None
) -> tuple[list[Any], str | None]:
    if max_results is not None and not 1 <= int(max_results) <= MAX_PAGE:
        raise ProfilesError(
            "ValidationException",
            f"1 validation error detected: Value '{max_results}' at 'maxResults' failed to "
            f"satisfy constraint: Member must be between 1 and {MAX_PAGE}",
        )
    start = 0
    if next_token:
        try:
            start = int(base64.urlsafe_b64decode(next_token.encode()).decode())
        except (ValueError, binascii.Error) as error:
            raise ProfilesError(
                "InvalidNextTokenException", f"NextToken '{next_token}' is not valid"
            ) from error
    end = start + int(max_results or MAX_PAGE)
    token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], token


def _ram_resources(account: str, region: str, owner: str) -> set[str]:
    """ARNs in the account's RAM shares (`SELF`) or in the shares it accepted (`OTHER-ACCOUNTS`);
    empty unless the RAM emulation that adds `ListResources` is installed."""
    from moto.ram.models import ram_backends

    per_account = ram_backends.get(account)
    ram = None if per_account is None else per_account.get(region)
    if ram is None or not hasattr(ram, "list_resources"):
        return set()
    return {resource["arn"] for resource in ram.list_resources(resource_owner=owner)}


def _resolver_backend(account: str, region: str) -> Any:
    from moto.route53resolver.models import route53resolver_backends

    return route53resolver_backends[account][region]


class Route53ProfilesBackend(BaseBackend):
    """Profiles, their VPC and resource associations, and tags of one account in one Region."""

    def __init__(self, region_name: str, account_id: str) -> None:
        super().__init__(region_name, account_id)
        self.profiles: dict[str, Profile] = {}
        self.associations: dict[str, ProfileAssociation] = {}
        self.resources: dict[str, ResourceAssociation] = {}
        self.tags: dict[str, dict[str, str]] = {}

    # moto finds a backend's URL table in the module beside it (`url_bases`, `url_paths`).
    @property
    def _url_module(self) -> Any:
        import sys

        return sys.modules[__name__]

    # --- lookups ---------------------------------------------------------------------------

    def _others(self) -> Iterator[Route53ProfilesBackend]:
        """The backends of this Region in every account that has one (self included)."""
        for per_account in list(route53profiles_backends.values()):
            backend = per_account.get(self.region_name)
            if backend is not None:
                yield backend

    def _shared_with_me(self) -> dict[str, Profile]:
        profiles: dict[str, Profile] = {}
        for arn in _ram_resources(self.account_id, self.region_name, "OTHER-ACCOUNTS"):
            match = PROFILE_ARN.match(arn)
            if match is None or match["kind"] != "profile" or match["region"] != self.region_name:
                continue
            owner = route53profiles_backends.get(match["account"])
            backend = None if owner is None else owner.get(self.region_name)
            profile = None if backend is None else backend.profiles.get(match["id"])
            if profile is not None:
                profiles[profile.id] = profile
        return profiles

    def _share_status(self, profile: Profile) -> str:
        if profile.owner_id != self.account_id:
            return "SHARED_WITH_ME"
        shared = _ram_resources(self.account_id, self.region_name, "SELF")
        return "SHARED_BY_ME" if profile.arn in shared else "NOT_SHARED"

    def _profile(self, profile_id: str) -> Profile:
        """A Profile the account owns or sees through RAM."""
        profile = self.profiles.get(profile_id) or self._shared_with_me().get(profile_id)
        if profile is None:
            raise _not_found("PROFILE", profile_id)
        return profile

    def _own_profile(self, profile_id: str) -> Profile:
        profile = self._profile(profile_id)
        if profile.owner_id != self.account_id:
            raise ProfilesError(
                "AccessDeniedException",
                f"Profile '{profile_id}' is shared with account {self.account_id}, "
                "which cannot change it",
            )
        return profile

    def settle(self) -> None:
        """One read: move every pending association on; drop the DELETED ones."""
        for table in (self.associations, self.resources):
            for key, item in list(table.items()):
                item.advance()
                if item.status == "DELETED":
                    del table[key]

    # --- Profiles --------------------------------------------------------------------------

    def create_profile(
        self, name: str, client_token: str, tags: list[dict[str, str]]
    ) -> dict[str, Any]:
        _check_name("name", name)
        for profile in self.profiles.values():
            if profile.client_token == client_token:
                if profile.name != name:
                    raise ProfilesError(
                        "InvalidParameterException",
                        f"ClientToken '{client_token}' was used for Profile '{profile.id}' "
                        f"named '{profile.name}', not '{name}'",
                        FieldName="ClientToken",
                    )
                return profile.description(self._share_status(profile))
        _check_quota(
            "Profiles in the account and Region",
            len(self.profiles),
            SETTINGS.max_profiles,
            "PROFILE",
        )
        profile_id = _new_id("rp")
        profile = Profile(
            id=profile_id,
            arn=f"arn:{self.partition}:route53profiles:{self.region_name}:{self.account_id}:"
            f"profile/{profile_id}",
            name=name,
            owner_id=self.account_id,
            client_token=client_token,
        )
        self.profiles[profile_id] = profile
        self.tags[profile.arn] = {tag["Key"]: tag["Value"] for tag in tags}
        return profile.description("NOT_SHARED")

    def get_profile(self, profile_id: str) -> dict[str, Any]:
        self.settle()
        profile = self._profile(profile_id)
        return profile.description(self._share_status(profile))

    def list_profiles(self) -> list[dict[str, Any]]:
        self.settle()
        profiles = list(self.profiles.values()) + list(self._shared_with_me().values())
        return [p.summary(self._share_status(p)) for p in sorted(profiles, key=lambda p: p.id)]

    def delete_profile(self, profile_id: str) -> dict[str, Any]:
        profile = self._own_profile(profile_id)
        vpcs = []
        for backend in self._others():
            for key, association in list(backend.associations.items()):
                if association.profile_id != profile_id:
                    continue
                association.advance()  # as a read of that account would
                if association.status == "DELETED":
                    del backend.associations[key]
                else:
                    vpcs.append(association.vpc_id)
        vpcs.sort()
        if vpcs:
            raise ProfilesError(
                "ConflictException",
                f"Profile '{profile_id}' is associated with VPCs {', '.join(vpcs)}: "
                "disassociate them first",
            )
        for key, resource in list(self.resources.items()):
            if resource.profile_id == profile_id:
                del self.resources[key]
        del self.profiles[profile_id]
        self.tags.pop(profile.arn, None)
        return {
            **profile.description("NOT_SHARED"),
            "Status": "DELETED",
            "ModificationTime": _now(),
        }

    # --- Profile to VPC --------------------------------------------------------------------

    def associate_profile(
        self, name: str, profile_id: str, vpc_id: str, tags: list[dict[str, str]]
    ) -> dict[str, Any]:
        from moto.ec2.models import ec2_backends

        _check_name("name", name)
        profile = self._profile(profile_id)
        if (
            not VPC_ID.match(vpc_id)
            or vpc_id not in ec2_backends[self.account_id][self.region_name].vpcs
        ):
            raise _not_found("VPC", vpc_id)
        for association in self.associations.values():
            if association.vpc_id == vpc_id:
                raise ProfilesError(
                    "ResourceExistsException",
                    f"VPC '{vpc_id}' is already associated with Profile "
                    f"'{association.profile_id}' ({association.id}); a VPC can have only one",
                    ResourceType="VPC",
                )
        held = sum(
            1
            for backend in self._others()
            for association in backend.associations.values()
            if association.profile_id == profile.id and association.status != "DELETING"
        )
        _check_quota(
            f"VPCs of Profile '{profile.id}'",
            held,
            SETTINGS.max_vpcs_per_profile,
            "PROFILE_ASSOCIATION",
        )
        association_id = _new_id("rpassoc")
        association = ProfileAssociation(
            status="CREATING",
            id=association_id,
            arn=f"arn:{self.partition}:route53profiles:{self.region_name}:{self.account_id}:"
            f"profile-association/{association_id}",
            name=name,
            owner_id=self.account_id,
            profile_id=profile.id,
            vpc_id=vpc_id,
        )
        self.associations[association_id] = association
        self.tags[association.arn] = {tag["Key"]: tag["Value"] for tag in tags}
        return association.description()

    def disassociate_profile(self, profile_id: str, vpc_id: str) -> dict[str, Any]:
        for association in self.associations.values():
            if association.profile_id == profile_id and association.vpc_id == vpc_id:
                if association.status != "DELETING":
                    association.start("DELETING")
                    self.tags.pop(association.arn, None)
                return association.description()
        raise _not_found("PROFILE_ASSOCIATION", f"{profile_id} / {vpc_id}")

    def get_profile_association(self, association_id: str) -> dict[str, Any]:
        self.settle()
        association = self.associations.get(association_id)
        if association is None:
            raise _not_found("PROFILE_ASSOCIATION", association_id)
        return association.description()

    def list_profile_associations(
        self, profile_id: str | None, vpc_id: str | None
    ) -> list[dict[str, Any]]:
        self.settle()
        return [
            association.description()
            for association in sorted(self.associations.values(), key=lambda a: a.id)
            if (profile_id is None or association.profile_id == profile_id)
            and (vpc_id is None or association.vpc_id == vpc_id)
        ]

    # --- resources in a Profile --------------------------------------------------------------

    def _rule(self, arn: str) -> Any:
        """The Resolver rule `arn` names, if the account sees it in this Region."""
        match = RULE_ARN.match(arn)
        if match is None:
            raise ProfilesError(
                "InvalidParameterException",
                f"ResourceArn '{arn}': only Route 53 Resolver rules are emulated",
                FieldName="ResourceArn",
            )
        rule = None
        if match["region"] == self.region_name:
            rule = _resolver_backend(self.account_id, self.region_name).resolver_rules.get(
                match["id"]
            )
        if rule is None or rule.arn != arn:
            raise _not_found("RESOLVER_RULE", arn)
        return rule

    def associate_resource_to_profile(
        self, name: str, profile_id: str, resource_arn: str, properties: str | None
    ) -> dict[str, Any]:
        _check_name("name", name)
        profile = self._own_profile(profile_id)
        if properties is not None:
            try:
                json.loads(properties)
            except ValueError as error:
                raise ProfilesError(
                    "InvalidParameterException",
                    f"ResourceProperties is not JSON: {properties!r}",
                    FieldName="ResourceProperties",
                ) from error
        rule = self._rule(resource_arn)
        domain = _normalise(rule.domain_name)
        for resource in self.resources.values():
            if (
                resource.profile_id == profile.id
                and resource.status != "DELETING"
                and (resource.resource_arn == resource_arn or resource.domain == domain)
            ):
                raise ProfilesError(
                    "ConflictException",
                    f"Profile '{profile.id}' already holds '{resource.resource_arn}' "
                    f"({resource.id}) for domain '{resource.domain}'",
                )
        held = sum(
            1
            for resource in self.resources.values()
            if resource.profile_id == profile.id and resource.status != "DELETING"
        )
        _check_quota(
            f"rules of Profile '{profile.id}'",
            held,
            SETTINGS.max_rules_per_profile,
            "PROFILE_RESOURCE_ASSOCIATION",
        )
        association = ResourceAssociation(
            status="CREATING",
            id=_new_id("rpr"),
            name=name,
            owner_id=self.account_id,
            profile_id=profile.id,
            resource_arn=resource_arn,
            resource_type=rule.rule_type,
            domain=domain,
            properties=properties,
        )
        self.resources[association.id] = association
        return association.description()

    def disassociate_resource_from_profile(
        self, profile_id: str, resource_arn: str
    ) -> dict[str, Any]:
        self._own_profile(profile_id)
        for resource in self.resources.values():
            if resource.profile_id == profile_id and resource.resource_arn == resource_arn:
                if resource.status != "DELETING":
                    resource.start("DELETING")
                return resource.description()
        raise _not_found("PROFILE_RESOURCE_ASSOCIATION", f"{profile_id} / {resource_arn}")

    def _resource(self, association_id: str) -> ResourceAssociation:
        for backend in self._others():
            resource = backend.resources.get(association_id)
            if resource is not None and (
                backend is self or resource.profile_id in self._shared_with_me()
            ):
                return resource
        raise _not_found("PROFILE_RESOURCE_ASSOCIATION", association_id)

    def get_profile_resource_association(self, association_id: str) -> dict[str, Any]:
        self.settle()
        return self._resource(association_id).description()

    def update_profile_resource_association(
        self, association_id: str, name: str | None, properties: str | None
    ) -> dict[str, Any]:
        resource = self.resources.get(association_id)
        if resource is None:
            raise _not_found("PROFILE_RESOURCE_ASSOCIATION", association_id)
        if name is not None:
            resource.name = _check_name("name", name)
        if properties is not None:
            resource.properties = properties
        resource.start("UPDATING")
        return resource.description()

    def list_profile_resource_associations(
        self, profile_id: str, resource_type: str | None
    ) -> list[dict[str, Any]]:
        self.settle()
        profile = self._profile(profile_id)
        owner = route53profiles_backends[profile.owner_id][self.region_name]
        if owner is not self:
            owner.settle()
        return [
            resource.description()
            for resource in sorted(owner.resources.values(), key=lambda r: r.id)
            if resource.profile_id == profile.id
            and (resource_type is None or resource.resource_type == resource_type)
        ]

    # --- tags ------------------------------------------------------------------------------

    def _tags_of(self, arn: str) -> dict[str, str]:
        if arn not in self.tags:
            raise _not_found("RESOURCE", arn)
        return self.tags[arn]

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        self._tags_of(arn).update(tags)

    def untag_resource(self, arn: str, keys: list[str]) -> None:
        tags = self._tags_of(arn)
        for key in keys:
            tags.pop(key, None)

    def list_tags_for_resource(self, arn: str) -> dict[str, str]:
        return dict(self._tags_of(arn))

    # --- precedence ------------------------------------------------------------------------

    def profile_rules(self, vpc_id: str) -> dict[str, str]:
        """Rule id by domain, of the COMPLETE resources of the VPC's COMPLETE Profile."""
        for association in self.associations.values():
            if association.vpc_id == vpc_id and association.status == "COMPLETE":
                profile = self._profile(association.profile_id)
                owner = route53profiles_backends[profile.owner_id][self.region_name]
                return {
                    resource.domain: RULE_ARN.match(resource.resource_arn)["id"]  # type: ignore[index]
                    for resource in owner.resources.values()
                    if resource.profile_id == profile.id and resource.status == "COMPLETE"
                }
        return {}


route53profiles_backends = BackendDict(Route53ProfilesBackend, SERVICE)


def rule_for(account: str, region: str, vpc_id: str, query_name: str) -> str | None:
    """The id of the Resolver rule that answers `query_name` in the VPC, or None.

    The most specific domain wins; for one domain a rule associated directly with the VPC beats
    the rule of the VPC's Profile (module docstring)."""
    direct: dict[str, str] = {}
    resolver = _resolver_backend(account, region)
    for association in resolver.resolver_rule_associations.values():
        rule = resolver.resolver_rules.get(association.resolver_rule_id)
        if association.vpc_id == vpc_id and association.status != "DELETING" and rule is not None:
            direct[_normalise(rule.domain_name)] = rule.id
    with _state_lock:
        rules = {**route53profiles_backends[account][region].profile_rules(vpc_id), **direct}
    name = _normalise(query_name)
    matches = [domain for domain in rules if name == domain or name.endswith("." + domain)]
    return rules[max(matches, key=len)] if matches else None


class Route53ProfilesResponse(BaseResponse):
    """REST-JSON requests; the operation and parameters come from botocore's model."""

    def __init__(self) -> None:
        super().__init__(service_name=SERVICE)
        self.automated_parameter_parsing = True

    @property
    def backend(self) -> Route53ProfilesBackend:
        return route53profiles_backends[self.current_account][self.region]

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        with _state_lock:
            return method(*args)

    def _listed(self, key: str, items: list[Any]) -> ActionResult:
        page, token = _page(items, self._get_param("NextToken"), self._get_param("MaxResults"))
        result: dict[str, Any] = {key: page}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    def create_profile(self) -> ActionResult:
        profile = self._call(
            self.backend.create_profile,
            self._get_param("Name"),
            self._get_param("ClientToken"),
            self._get_param("Tags") or [],
        )
        return ActionResult({"Profile": profile})

    def get_profile(self) -> ActionResult:
        return ActionResult(
            {"Profile": self._call(self.backend.get_profile, self._get_param("ProfileId"))}
        )

    def list_profiles(self) -> ActionResult:
        return self._listed("ProfileSummaries", self._call(self.backend.list_profiles))

    def delete_profile(self) -> ActionResult:
        profile = self._call(self.backend.delete_profile, self._get_param("ProfileId"))
        return ActionResult({"Profile": profile})

    def associate_profile(self) -> ActionResult:
        association = self._call(
            self.backend.associate_profile,
            self._get_param("Name"),
            self._get_param("ProfileId"),
            self._get_param("ResourceId"),
            self._get_param("Tags") or [],
        )
        return ActionResult({"ProfileAssociation": association})

    def disassociate_profile(self) -> ActionResult:
        association = self._call(
            self.backend.disassociate_profile,
            self._get_param("ProfileId"),
            self._get_param("ResourceId"),
        )
        return ActionResult({"ProfileAssociation": association})

    def get_profile_association(self) -> ActionResult:
        association = self._call(
            self.backend.get_profile_association, self._get_param("ProfileAssociationId")
        )
        return ActionResult({"ProfileAssociation": association})

    def list_profile_associations(self) -> ActionResult:
        associations = self._call(
            self.backend.list_profile_associations,
            self._get_param("ProfileId"),
            self._get_param("ResourceId"),
        )
        return self._listed("ProfileAssociations", associations)

    def associate_resource_to_profile(self) -> ActionResult:
        resource = self._call(
            self.backend.associate_resource_to_profile,
            self._get_param("Name"),
            self._get_param("ProfileId"),
            self._get_param("ResourceArn"),
            self._get_param("ResourceProperties"),
        )
        return ActionResult({"ProfileResourceAssociation": resource})

    def disassociate_resource_from_profile(self) -> ActionResult:
        resource = self._call(
            self.backend.disassociate_resource_from_profile,
            self._get_param("ProfileId"),
            self._get_param("ResourceArn"),
        )
        return ActionResult({"ProfileResourceAssociation": resource})

    def get_profile_resource_association(self) -> ActionResult:
        resource = self._call(
            self.backend.get_profile_resource_association,
            self._get_param("ProfileResourceAssociationId"),
        )
        return ActionResult({"ProfileResourceAssociation": resource})

    def update_profile_resource_association(self) -> ActionResult:
        resource = self._call(
            self.backend.update_profile_resource_association,
            self._get_param("ProfileResourceAssociationId"),
            self._get_param("Name"),
            self._get_param("ResourceProperties"),
        )
        return ActionResult({"ProfileResourceAssociation": resource})

    def list_profile_resource_associations(self) -> ActionResult:
        resources = self._call(
            self.backend.list_profile_resource_associations,
            self._get_param("ProfileId"),
            self._get_param("ResourceType"),
        )
        return self._listed("ProfileResourceAssociations", resources)

    def tag_resource(self) -> ActionResult:
        self._call(
            self.backend.tag_resource, self._get_param("ResourceArn"), self._get_param("Tags") or {}
        )
        return EmptyResult()

    def untag_resource(self) -> ActionResult:
        self._call(
            self.backend.untag_resource,
            self._get_param("ResourceArn"),
            self._get_param("TagKeys") or [],
        )
        return EmptyResult()

    def list_tags_for_resource(self) -> ActionResult:
        tags = self._call(self.backend.list_tags_for_resource, self._get_param("ResourceArn"))
        return ActionResult({"Tags": tags})


# The URL table moto reads through `Route53ProfilesBackend._url_module`.
url_bases = [URL_BASE]
url_paths = {
    "{0}/(?P<path>profile.*)$": Route53ProfilesResponse.dispatch,
    "{0}/tags/(?P<arn>.+)$": Route53ProfilesResponse.dispatch,
}


def install_route53profiles() -> None:
    """Make moto serve `route53profiles` (in-process and server); later calls do nothing."""
    import moto.backend_index as backend_index
    import moto.backends as backends
    from moto.ram.models import ResourceShare

    with _lock:
        if any(name == SERVICE for name, _ in backend_index.backend_url_patterns):
            return
        original_get_backend: Callable[[str], Any] = backends.get_backend  # type: ignore[assignment]

        def get_backend(name: str) -> Any:
            return route53profiles_backends if name == SERVICE else original_get_backend(name)

        setattr(backends, "get_backend", get_backend)  # noqa: B010 (mypy: overloads)
        if "profile" not in ResourceShare.SHAREABLE_RESOURCES:
            ResourceShare.SHAREABLE_RESOURCES.append("profile")
        backend_index.backend_url_patterns.insert(0, (SERVICE, re.compile(URL_BASE)))
