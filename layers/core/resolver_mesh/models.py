"""Value types shared by the core: the hub item contract, what we observe, what we plan.

Invariants:
- `HubItem` is the public item format of the hubs table; a valid `HubItem` has only normalised,
  forwardable, distinct domains, a known Region and well-formed ids. Unknown attributes are
  rejected so that a typo (`vpcids`) is an error, not a silently ignored setting.
- Observed and planned values are immutable; domains in them are always normalised.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from resolver_mesh.names import REGION_NAME, REGION_PATTERN, domain_problem, normalise_domain

DEFAULT_DOMAIN_TEMPLATES = ("{region}.amazonaws.com", "{region}.vpce.amazonaws.com")
# A `domains` entry standing for the private DNS names of the hub VPC's interface endpoints.
SERVICES_TEMPLATE = "{services}"
DNS_PORT = 53
MAX_TARGETS_PER_RULE = 6

_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_INBOUND_ID = re.compile(r"^rslvr-in-[0-9a-f]{8,17}$")
_OUTBOUND_ID = re.compile(r"^rslvr-out-[0-9a-f]{8,17}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_TEMPLATE_FIELD = re.compile(r"\{([^}]*)\}")
_SERVICE_NAME = re.compile(rf"^com\.amazonaws\.({REGION_NAME})\.([a-z0-9.-]+)$")
# How a VPC gets the mesh's hub rules: associated one by one, or through one Route 53 Profile.
Delivery = Literal["rules", "profile"]
DELIVERIES: tuple[Delivery, ...] = ("rules", "profile")


def _matching(pattern: re.Pattern[str], example: str, kind: str = "an id") -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not {kind} like {example!r}")
        return value

    return AfterValidator(check)


VpcId = Annotated[StrictStr, _matching(_VPC_ID, "vpc-0123456789abcdef0")]
InboundEndpointId = Annotated[StrictStr, _matching(_INBOUND_ID, "rslvr-in-0123456789abcdef0")]
OutboundEndpointId = Annotated[StrictStr, _matching(_OUTBOUND_ID, "rslvr-out-0123456789abcdef0")]
AccountId = Annotated[StrictStr, _matching(_ACCOUNT_ID, "123456789012")]
RoleArn = Annotated[StrictStr, _matching(_ROLE_ARN, "arn:aws:iam::123456789012:role/name")]
ExternalId = Annotated[
    StrictStr, _matching(_EXTERNAL_ID, "ab-12:x", "an external id of 2-1224 characters")
]


def _no_duplicates(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} is listed twice")
        seen.add(value)


def location(region: str, account: str = "") -> str:
    """The key of one account's Region: the Region itself in the reconciler's own account
    (`us-east-1`), `us-east-1@222222222222` in another."""
    return f"{region}@{account}" if account else region


def split_location(where: str) -> tuple[str, str]:
    """(Region, account) of a location key; the account is "" in the reconciler's own."""
    region, _, account = where.partition("@")
    return region, account


class AccountAccess(BaseModel):
    """Where an entry lives: the reconciler's own account (no fields), or another account
    reached by assuming `role_arn` (of `account_id`) with `external_id`.

    Naming the reconciler's own account (`home_account` in the validation context) is the same
    as naming none: such an entry is normalised to no account.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: AccountId | None = None
    role_arn: RoleArn | None = None
    external_id: ExternalId | None = None

    @model_validator(mode="before")
    @classmethod
    def _home_account_is_no_account(cls, data: Any, info: ValidationInfo) -> Any:
        home = (info.context or {}).get("home_account")
        if isinstance(data, dict) and home and data.get("account_id") == home:
            return {k: v for k, v in data.items() if k not in ("role_arn", "external_id")} | {
                "account_id": None
            }
        return data

    @model_validator(mode="after")
    def _role_of_the_account(self) -> AccountAccess:
        if self.account_id is None:
            if self.role_arn or self.external_id:
                raise ValueError("account_id: role_arn and external_id need an account_id")
            return self
        if self.role_arn is None:
            raise ValueError(f"role_arn: required to reach account {self.account_id}")
        found = _ROLE_ARN.match(self.role_arn)
        if found and found.group(1) != self.account_id:
            raise ValueError(
                f"role_arn: {self.role_arn} is a role of account {found.group(1)},"
                f" not of {self.account_id}"
            )
        return self

    @property
    def account(self) -> str:
        """The account id, or "" for the reconciler's own account."""
        return self.account_id or ""


class Spoke(AccountAccess):
    """A workload VPC of the hub's Region with its own OUTBOUND endpoint.

    `direct`: a copy of the hub's cross-Region rules, to the peer hubs' inbound IPs.
    `central`: one rule per peer domain (or one for `parent_domain`) to its own hub's inbound
    IPs; the hub forwards on. Its rules are only ever associated with the spoke VPC.
    """

    vpc_id: VpcId
    outbound_endpoint_id: OutboundEndpointId
    mode: Literal["direct", "central"]
    parent_domain: StrictStr | None = None
    enabled: StrictBool = True
    description: StrictStr | None = None

    @model_validator(mode="after")
    def _parent_domain_for_central(self) -> Spoke:
        if self.parent_domain is None:
            return self
        if self.mode != "central":
            raise ValueError("parent_domain: only a central spoke forwards a parent domain")
        problem = domain_problem(normalise_domain(self.parent_domain))
        if problem:
            raise ValueError(f"parent_domain: {self.parent_domain!r}: {problem}")
        return self

    @property
    def parent(self) -> str | None:
        return normalise_domain(self.parent_domain) if self.parent_domain else None


class SharedVpc(AccountAccess):
    """A VPC of another account that uses the hub's rules: they are shared with its account
    through AWS RAM and associated there (`delivery` `rules`), or the hub's Route 53 Profile is
    shared and associated with it (`profile`); None: the hub's delivery."""

    vpc_id: VpcId
    delivery: Delivery | None = None


class HubItem(AccountAccess):
    """One item of the hubs table: a hub VPC of one Region (the table's partition key)."""

    region: StrictStr
    vpc_id: VpcId
    inbound_endpoint_id: InboundEndpointId
    outbound_endpoint_id: OutboundEndpointId | None = None
    vpc_ids: tuple[VpcId, ...] = ()
    domains: tuple[StrictStr, ...] = DEFAULT_DOMAIN_TEMPLATES
    peers: tuple[StrictStr, ...] | None = None
    enabled: StrictBool = True
    description: StrictStr | None = None
    spokes: tuple[Spoke, ...] = ()
    shared_vpcs: tuple[SharedVpc, ...] = ()
    delivery: Delivery | None = None  # None: the mesh's DELIVERY
    vpc_delivery: dict[VpcId, Delivery] = {}  # per VPC of `vpc_id` and `vpc_ids`

    @field_validator("vpc_ids", "domains", "peers", mode="before")
    @classmethod
    def _sets_become_sorted_lists(cls, value: Any) -> Any:
        """DynamoDB string sets arrive as Python sets; a plain string is a type error."""
        if isinstance(value, set | frozenset):
            return sorted(value)
        if isinstance(value, str):
            raise ValueError("must be a list of strings, not a single string")
        return value

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str, info: ValidationInfo) -> str:
        if not REGION_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a Region name like 'us-east-2'")
        known = (info.context or {}).get("known_regions")
        if known is not None and value not in known:
            raise ValueError(f"{value!r} is not a known AWS Region (of the home partition)")
        return value

    @field_validator("domains")
    @classmethod
    def _domain_templates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one domain (or leave it out for the defaults)")
        for template in value:
            fields = _TEMPLATE_FIELD.findall(template)
            unknown = [name for name in fields if name not in ("region", "services")]
            if unknown:
                known = "only {region} and {services} are known"
                raise ValueError(f"{template!r} uses {{{unknown[0]}}}; {known}")
            if "services" in fields and template != SERVICES_TEMPLATE:
                raise ValueError(f"{template!r}: {SERVICES_TEMPLATE} must be an entry of its own")
        return value

    @field_validator("vpc_ids", "peers")
    @classmethod
    def _distinct(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        _no_duplicates(value or (), "value")
        return value

    @model_validator(mode="after")
    def _expanded_domains_are_valid(self) -> HubItem:
        templates = [t for t in self.domains if t != SERVICES_TEMPLATE]
        names = [normalise_domain(t.replace("{region}", self.region)) for t in templates]
        for template, name in zip(templates, names, strict=True):
            problem = domain_problem(name)
            if problem:
                raise ValueError(f"domains: {template!r} gives {name!r}: {problem}")
        _no_duplicates(names, "domains: domain")
        if self.peers and self.region in self.peers:
            raise ValueError("peers: a hub cannot peer with its own Region")
        self._vpcs_have_one_role()
        strangers = sorted(set(self.vpc_delivery) - self.associated_vpc_ids)
        if strangers:
            raise ValueError(
                f"vpc_delivery: {strangers[0]} is neither vpc_id nor in vpc_ids of this hub"
            )
        return self

    def _vpcs_have_one_role(self) -> None:
        """A VPC is the hub's, a spoke or a shared VPC, never two of them: two of our rules for
        one domain cannot be associated with one VPC."""
        roles: dict[str, str] = {vpc: "vpc_ids" for vpc in self.vpc_ids}
        roles[self.vpc_id] = "vpc_id"
        for field_name, entries in (("spokes", self.spokes), ("shared_vpcs", self.shared_vpcs)):
            for entry in entries:
                if entry.vpc_id in roles:
                    raise ValueError(
                        f"{field_name}: {entry.vpc_id} is already listed in {roles[entry.vpc_id]}"
                    )
                roles[entry.vpc_id] = field_name
        for shared in self.shared_vpcs:
            if shared.account == self.account:
                raise ValueError(
                    f"shared_vpcs: {shared.vpc_id} is in the hub's own account; list it in vpc_ids"
                )
        if any(spoke.mode == "central" for spoke in self.spokes) and not self.outbound_endpoint_id:
            raise ValueError(
                "spokes: a central spoke needs the hub to forward: set outbound_endpoint_id"
            )

    @property
    def domain_names(self) -> tuple[str, ...]:
        """The fixed domains this hub answers for, normalised (`us-east-2.amazonaws.com.`);
        `{services}` adds the names of its interface endpoints (see `desired`)."""
        return tuple(
            normalise_domain(t.replace("{region}", self.region))
            for t in self.domains
            if t != SERVICES_TEMPLATE
        )

    @property
    def uses_services(self) -> bool:
        """Whether the hub forwards the private DNS names of its interface endpoints."""
        return SERVICES_TEMPLATE in self.domains

    def peer_regions(self, enabled: Collection[str]) -> tuple[str, ...]:
        """The enabled hub Regions this Region forwards to: its `peers`, or all the others."""
        wanted = set(self.peers if self.peers is not None else enabled)
        return tuple(sorted(r for r in wanted if r in enabled and r != self.region))

    def forwards_to(self, enabled: Collection[str]) -> tuple[str, ...]:
        """The peer Regions the hub VPC forwards to; none without an outbound endpoint."""
        return self.peer_regions(enabled) if self.outbound_endpoint_id else ()

    @property
    def location(self) -> str:
        return location(self.region, self.account)

    @property
    def associated_vpc_ids(self) -> frozenset[str]:
        """The VPCs this Region's rules are associated with: the hub VPC and `vpc_ids`."""
        return frozenset((self.vpc_id, *self.vpc_ids))


@dataclass(frozen=True)
class Request:
    """What to do: `apply` or only plan, in which Regions (None: all), forced past the guard;
    `await_endpoints`: look again while an endpoint becomes ready (after a Resolver endpoint
    event); `interface_endpoints_at`: asked for only by interface VPC endpoint changes at these
    (Region, account id): a pass that cannot change anything unless one of them is in the
    reconciler's own account or has a hub (enabled or not)."""

    apply: bool
    regions: tuple[str, ...] | None = None
    force: bool = False
    trigger: str = "manual"
    await_endpoints: bool = False
    interface_endpoints_at: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ItemError:
    """A hub item, or one of its fields, that cannot be used, and why."""

    region: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"field {self.field!r}" if self.field else "the item"
        return f"hub item {self.region!r}: {where}: {self.message}"


@dataclass(frozen=True, order=True)
class Target:
    """A forwarding target: an inbound endpoint IP (v4 or v6) and port."""

    ip: str
    port: int = DNS_PORT

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.ip


@dataclass(frozen=True)
class ObservedEndpoint:
    """A Resolver endpoint as listed, with its IPs once they have been read."""

    id: str
    direction: str
    status: str
    vpc_id: str
    attached_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class InterfaceEndpoint:
    """An interface VPC endpoint as `DescribeVpcEndpoints` lists it, with the private DNS names
    of its service as `DescribeVpcEndpointServices` gives them (`private_dns_names`): AWS names
    `com.amazonaws.us-east-1.kinesis-streams` `kinesis.us-east-1.amazonaws.com`, which the
    service name does not tell. `names_unread` says why they could not be read (then none is
    known, and none is guessed)."""

    id: str
    vpc_id: str
    service_name: str
    private_dns: bool
    state: str
    service_region: str | None = None  # set on a cross-Region interface endpoint
    dns_names: tuple[str, ...] = ()
    names_unread: str | None = None

    @property
    def is_aws_service(self) -> bool:
        """An AWS service (`com.amazonaws.<region>.<service>`), not a PrivateLink service of
        another account: only those names are forwarded."""
        return bool(_SERVICE_NAME.match(self.service_name))

    @property
    def answers(self) -> bool:
        """Whether the endpoint answers its service's names privately: private DNS on and
        the endpoint available."""
        return self.private_dns and self.state.lower() == "available"

    @property
    def private_names(self) -> tuple[str, ...]:
        """Every name the endpoint answers for privately; () without private DNS, while the
        endpoint is not available, or while its service's names are unread."""
        return self.dns_names if self.answers and self.names_unread is None else ()

    @property
    def names_unknown(self) -> bool:
        """The endpoint answers names privately, but which could not be read."""
        return self.answers and self.names_unread is not None


@dataclass(frozen=True)
class ObservedRule:
    """A Resolver rule as listed by `ListResolverRules` (domain normalised)."""

    id: str
    domain: str
    rule_type: str
    name: str
    status: str
    endpoint_id: str | None
    targets: frozenset[Target]
    creator_request_id: str
    owner_id: str = ""
    share_status: str = ""
    arn: str = ""
    # The owner and target tags, read only when adoption is enabled (ADOPT_UNMANAGED).
    owner_tag: str | None = None
    target_tag: str | None = None


@dataclass(frozen=True)
class ObservedAssociation:
    """A rule-to-VPC association as listed by `ListResolverRuleAssociations`."""

    id: str
    rule_id: str
    vpc_id: str
    status: str


@dataclass(frozen=True)
class ObservedShare:
    """A RAM resource share of ours (found by its owner tag) with what it shares, with whom."""

    arn: str
    name: str
    resources: frozenset[str] = frozenset()  # rule ARNs
    principals: frozenset[str] = frozenset()  # account ids


@dataclass(frozen=True)
class ObservedInvitation:
    """A pending RAM invitation received by this account."""

    arn: str
    share_name: str
    sender: str
    share_arn: str = ""


@dataclass(frozen=True)
class ObservedProfile:
    """A Route 53 Profile the account owns or sees through RAM; `ours`: it carries our owner
    tag (a Profile shared with the account is ours when its ARN is one of ours where it lives)."""

    id: str
    arn: str
    name: str
    owner_id: str = ""
    share_status: str = ""
    ours: bool = False


@dataclass(frozen=True)
class ObservedProfileAssociation:
    """A Profile associated with a VPC of the account (`ListProfileAssociations`)."""

    id: str
    profile_id: str
    vpc_id: str
    status: str


@dataclass(frozen=True)
class ObservedProfileResource:
    """A Resolver rule held by a Profile of ours (`ListProfileResourceAssociations`)."""

    id: str
    profile_id: str
    resource_arn: str
    status: str


@dataclass(frozen=True)
class ProfileState:
    """The Profiles of one location as read: every Profile it sees, every Profile association
    of its VPCs, and the resources of our Profiles."""

    profiles: tuple[ObservedProfile, ...] = ()
    associations: tuple[ObservedProfileAssociation, ...] = ()
    resources: tuple[ObservedProfileResource, ...] = ()


@dataclass(frozen=True)
class RegionState:
    """Everything read in one account's Region ("" = the reconciler's own account).
    `error` set means it could not be read; `denied`, that AWS refused the read by policy
    (AccessDenied: an SCP that blocks the Region, a missing permission); `not_enabled`, that
    the account has not enabled the Region (an opt-in Region: AWS refuses every call there)."""

    region: str
    rules: tuple[ObservedRule, ...] = ()
    associations: tuple[ObservedAssociation, ...] = ()
    endpoints: tuple[ObservedEndpoint, ...] = ()
    error: str | None = None
    denied: bool = False
    not_enabled: bool = False
    interface_endpoints: tuple[InterfaceEndpoint, ...] = ()  # of the hub VPC, when needed
    account: str = ""
    shares: tuple[ObservedShare, ...] = ()  # read where our rules are shared or should be
    invitations: tuple[ObservedInvitation, ...] = ()  # read where shares should arrive
    # The VPCs named by items here that exist (DescribeVpcs); None: not looked at.
    vpcs: frozenset[str] | None = None
    profiles: ProfileState | None = None  # None: not read (nothing of ours could be there)
    # Why Profiles could not be read where none of ours was expected (a note, not an error).
    profiles_unread: str | None = None

    @property
    def location(self) -> str:
        return location(self.region, self.account)

    @property
    def closed(self) -> bool:
        """Whether AWS refuses every read here whatever the mesh does (`denied`, `not_enabled`):
        unread, but no sign that something of ours there was missed by chance."""
        return self.denied or self.not_enabled

    def endpoint(self, endpoint_id: str) -> ObservedEndpoint | None:
        return next((e for e in self.endpoints if e.id == endpoint_id), None)

    def missing_vpc(self, vpc_id: str) -> str | None:
        """Why `vpc_id` cannot be used here: it was looked for and does not exist."""
        if self.vpcs is not None and vpc_id not in self.vpcs:
            return f"{vpc_id} does not exist in {self.location}"
        return None


@dataclass(frozen=True)
class DesiredRule:
    """One forwarding rule that should exist in `region` for `domain`.

    `targets` is None when the target hub is degraded: an existing rule keeps its targets and
    no new rule can be created until the hub is readable again. `source` is "" for the hub's
    rules and the spoke's VPC id for a spoke's; `account` is where the rule lives.
    """

    region: str
    domain: str
    target_region: str
    endpoint_id: str
    name: str
    vpc_ids: frozenset[str]
    targets: frozenset[Target] | None
    account: str = ""
    source: str = ""

    @property
    def location(self) -> str:
        return location(self.region, self.account)


@dataclass(frozen=True)
class DesiredShare:
    """The hub rules of `owner`'s `region` that account `principal` must use, associated with
    `vpc_ids` there ("" is the reconciler's own account, on either side)."""

    region: str
    owner: str
    principal: str
    vpc_ids: frozenset[str]


class ChangeKind(StrEnum):
    ADOPT_RULE = "adopt_rule"
    CREATE_RULE = "create_rule"
    UPDATE_RULE = "update_rule"
    ASSOCIATE = "associate"
    DISASSOCIATE = "disassociate"
    DELETE_RULE = "delete_rule"
    CREATE_SHARE = "create_share"
    SHARE = "share"
    UNSHARE = "unshare"
    DELETE_SHARE = "delete_share"
    ACCEPT_SHARE = "accept_share"
    CREATE_PROFILE = "create_profile"
    PROFILE_ADD_RULE = "profile_add_rule"
    ASSOCIATE_PROFILE = "associate_profile"
    DISASSOCIATE_PROFILE = "disassociate_profile"
    PROFILE_REMOVE_RULE = "profile_remove_rule"
    DELETE_PROFILE = "delete_profile"


PROFILE_KINDS = frozenset(
    {
        ChangeKind.CREATE_PROFILE,
        ChangeKind.PROFILE_ADD_RULE,
        ChangeKind.ASSOCIATE_PROFILE,
        ChangeKind.DISASSOCIATE_PROFILE,
        ChangeKind.PROFILE_REMOVE_RULE,
        ChangeKind.DELETE_PROFILE,
    }
)


@dataclass(frozen=True)
class Change:
    """One write. `rule_id` is None for a rule created earlier in the same plan (same source and
    domain). Share changes name the share (`share_arn`, or `name` to create one) and the rule
    ARNs and account ids they add or remove; an acceptance names the invitation (`share_arn`),
    and so does an association of a shared rule that arrives with it (applied only once that
    invitation was accepted in the same apply)."""

    kind: ChangeKind
    region: str
    domain: str
    rule_id: str | None = None
    vpc_id: str | None = None
    name: str | None = None
    endpoint_id: str | None = None
    targets: tuple[Target, ...] = ()
    target_region: str | None = None
    reason: str = ""
    account: str = ""
    source: str = ""
    share_arn: str | None = None
    resources: tuple[str, ...] = ()
    principals: tuple[str, ...] = ()
    owner: str = ""  # the account that shares the rule with this one (receiving side)
    profile_id: str | None = None  # None for a Profile created earlier in the same plan
    # A receiver's change that follows the hub location's share change of the same apply
    # (the share made, or this account added to it): applied once that change is done.
    follows: str = ""

    @property
    def location(self) -> str:
        return location(self.region, self.account)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind.value, "region": self.region}
        if self.account:
            data["account"] = self.account
        if self.source:
            data["source"] = self.source
        if self.domain:
            data["domain"] = self.domain
        optional = {
            "rule_id": self.rule_id,
            "vpc_id": self.vpc_id,
            "name": self.name,
            "endpoint_id": self.endpoint_id,
            "target_region": self.target_region,
            "share_arn": self.share_arn,
            "owner": self.owner or None,
            "profile_id": self.profile_id,
            "follows": self.follows or None,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        if self.targets:
            data["targets"] = [f"{t.ip}:{t.port}" for t in self.targets]
        if self.resources:
            data["resources"] = list(self.resources)
        if self.principals:
            data["principals"] = list(self.principals)
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class Conflict:
    """A rule we do not own already covers a domain we must associate with a VPC; or, with
    `through_profile`, a domain our Profile holds for a VPC that has it (the rule associated
    with the VPC takes precedence over the Profile's, so ours does not answer there)."""

    region: str
    domain: str
    vpc_id: str
    their_rule_id: str
    our_rule_id: str | None
    account: str = ""
    through_profile: bool = False

    def __str__(self) -> str:
        ours = self.our_rule_id or "(to be created)"
        where = (
            "in our Profile does not answer there (a rule associated with the VPC takes"
            " precedence over a Profile's)"
            if self.through_profile
            else "is not associated there"
        )
        return (
            f"{location(self.region, self.account)}: {self.vpc_id} already uses rule"
            f" {self.their_rule_id} (not ours) for {self.domain}; our rule {ours} {where}"
        )


@dataclass(frozen=True)
class Plan:
    """An ordered list of changes (apply in order per Region) and what was left alone and why."""

    changes: tuple[Change, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    notes: tuple[str, ...] = field(default=())
    # The locations of rules this plan retires but keeps until the accounts they are shared
    # with have let go (a later pass deletes them): one entry per rule.
    deferred_deletes: tuple[str, ...] = ()
    # The hub locations whose share change the accounts it takes in follow whole in this plan
    # (`plan._followed`): once those follow changes are applied, nothing waits for it.
    followed: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        return count_kinds(change.kind.value for change in self.changes)


def count_kinds(kinds: Iterable[str]) -> dict[str, int]:
    """Changes by kind: every rule kind, and the share and Profile kinds that occur (a mesh
    that shares nothing and uses no Profile reports only rule kinds)."""
    totals = {
        kind.value: 0
        for kind in ChangeKind
        if not kind.value.endswith("share") and kind not in PROFILE_KINDS
    }
    for kind in kinds:
        totals[kind] = totals.get(kind, 0) + 1
    return totals
