"""From hub items (and the hubs' observed endpoints) to the rules that should exist.

Invariants:
- Pure: no I/O. Items in, `HubSet` out; `HubSet` plus observed endpoints in, `Desired` out.
- A hub item that cannot be used never causes a deletion: its Region is *frozen* (nothing there
  changes, in any account) and rules that target it are *protected* (kept exactly as they are).
  Any error in any part of the item counts: a field that fails validation, a VPC that does not
  exist, an endpoint that is not the named VPC's or of the other direction, a spoke or a shared
  VPC that is not what its entry says. A VPC only loses an association when a valid item leaves
  it out.
- A hub whose inbound endpoint is readable but unusable (not OPERATIONAL, no ATTACHED IP) is
  *degraded*: rules that target it keep their targets; none is created or deleted because of it.
- A hub whose interface endpoints' names cannot be read (`{services}`) is protected too: names
  that are unknown are not names that are gone.
- A Region never gets rules for its own domains; a hub without an outbound endpoint gets none.
- A spoke's rules live in the spoke's account, go through its own outbound endpoint and are only
  associated with the spoke VPC. A spoke whose endpoint is degraded (not OPERATIONAL) is frozen
  on its own.
- States are keyed by location (`models.location`): the Region, or `region@account`.
- VPCs that join by tag (`join_by_tag`) are workload VPCs like listed ones: in the hub's account
  like `vpc_ids`, in another like `shared_vpcs`. Where the tag read failed (`Joined.unread`),
  which VPCs joined is unknown, never "none": the VPCs there that use the hub's rules keep
  them, and an account the hub shares its rules with stays shared. A location whose tags were
  not looked at (an account leaving the mesh, a Region out of scope) has no VPC that joins.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from resolver_mesh.models import (
    MAX_TARGETS_PER_RULE,
    AccountAccess,
    DesiredRule,
    DesiredShare,
    HubItem,
    InterfaceEndpoint,
    ItemError,
    ObservedRule,
    RegionState,
    SharedVpc,
    Spoke,
    Target,
    location,
    split_location,
)
from resolver_mesh.names import MARKER, MESH_TAG_KEY, owned_source, owned_target_region, rule_name

USABLE_ENDPOINT_STATUS = "OPERATIONAL"
# Statuses an endpoint leaves by itself, with no event to say so: worth looking at again soon.
TRANSITIONAL_ENDPOINT_STATUSES = frozenset({"CREATING", "UPDATING", "AUTO_RECOVERING"})


@dataclass(frozen=True)
class HubSet:
    """The table, read: valid hubs by Region, and the errors of the items that are not."""

    hubs: Mapping[str, HubItem]
    errors: tuple[ItemError, ...] = ()
    item_regions: frozenset[str] = frozenset()
    # The other accounts that items with errors name (entries that read as an account and its
    # role). An item with errors changes nothing in its Region, but these accounts are still
    # read where no other role reaches them (`MEMBER_ROLES`, `MEMBER_OUS`, a valid item): their
    # VPCs may join other hubs by tag, and an unread account would read as one whose VPCs
    # left (its share withdrawn, its associations swept).
    named_by_invalid: Mapping[str, AccountAccess] = field(default_factory=dict)

    @property
    def invalid_regions(self) -> frozenset[str]:
        return frozenset(e.region for e in self.errors)

    @property
    def enabled(self) -> dict[str, HubItem]:
        return {region: hub for region, hub in self.hubs.items() if hub.enabled}

    def accounts(self) -> dict[str, AccountAccess]:
        """The other accounts the valid items name, with how to reach each."""
        return {
            entry.account: entry
            for hub in self.hubs.values()
            for entry in _account_entries(hub)
            if entry.account
        }


def _account_entries(hub: HubItem) -> list[AccountAccess]:
    return [hub, *hub.spokes, *hub.shared_vpcs]


@dataclass(frozen=True)
class Desired:
    """The rules that should exist, and what must be left alone because it could not be read."""

    rules: tuple[DesiredRule, ...]
    frozen_regions: frozenset[str] = frozenset()
    protected_targets: frozenset[str] = frozenset()
    errors: tuple[ItemError, ...] = ()
    degraded: tuple[str, ...] = field(default=())
    pending: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()
    # The VPCs each (location, source)'s rules belong on, for rules kept without a DesiredRule.
    source_vpcs: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    # Spokes whose outbound endpoint cannot be used: (location, spoke VPC); their rules are kept.
    frozen_sources: frozenset[tuple[str, str]] = frozenset()
    shares: tuple[DesiredShare, ...] = ()
    hub_locations: Mapping[str, str] = field(default_factory=dict)  # enabled hub -> location
    # Regions with a hub item, enabled or not; None: not known (none is held back, see plan).
    item_regions: frozenset[str] | None = None


@dataclass(frozen=True)
class TaggedVpcs:
    """One location's tag read (the VPCs DescribeVpcs lists there tagged `MESH_TAG_KEY` = the
    mesh id): the tagged VPCs its account owns, and those it sees that another account owns
    (VPC sharing), by owner; and the VPCs it owns whose tag differs from the mesh's only by
    case or surrounding spaces (`mistagged`: they do not join, and are reported). `error`
    set: the read failed, so which VPCs are tagged there is unknown."""

    owned: frozenset[str] = frozenset()
    foreign: Mapping[str, str] = field(default_factory=dict)  # VPC id -> owner account
    error: str | None = None
    mistagged: Mapping[str, str] = field(default_factory=dict)  # VPC id -> "key=value"


@dataclass(frozen=True)
class VpcRead:
    """One location's one VPC read (DescribeVpcs, every VPC the account sees there): its tag
    read, and which of the VPCs the items name there exist (`named`; None when the read
    failed: unknown, never "missing")."""

    tagged: TaggedVpcs
    named: frozenset[str] | None = None


@dataclass(frozen=True, order=True)
class JoinedVpc:
    """A VPC that joins the hub of its Region by tag; `shared` when it is in another account
    than the hub's (it uses the hub's rules through the hub's RAM share)."""

    region: str
    account: str
    vpc_id: str
    shared: bool
    # The items list it too, in the same role: it is theirs whatever its tag says.
    listed: bool = field(default=False, compare=False)

    def as_dict(self) -> dict[str, str]:
        account = {"account": self.account} if self.account else {}
        role = "shared" if self.shared else "workload"
        return {"region": self.region, **account, "vpc_id": self.vpc_id, "role": role}


@dataclass(frozen=True)
class Joined:
    """The VPCs that join hubs by tag, one line per tagged VPC that cannot (`refused`), and the
    locations whose tag read failed (`unread`): there, which VPCs joined is unknown."""

    vpcs: tuple[JoinedVpc, ...] = ()
    refused: tuple[str, ...] = ()
    unread: frozenset[str] = frozenset()

    def local(self, region: str) -> frozenset[str]:
        """The joined VPCs of the hub's own account in `region` (like `vpc_ids`)."""
        return frozenset(v.vpc_id for v in self.vpcs if v.region == region and not v.shared)

    def shared(self, region: str) -> dict[str, set[str]]:
        """The joined VPCs of other accounts in `region`, by account (like `shared_vpcs`)."""
        found: dict[str, set[str]] = defaultdict(set)
        for vpc in self.vpcs:
            if vpc.region == region and vpc.shared:
                found[vpc.account].add(vpc.vpc_id)
        return found

    def listed(self, hub_set: HubSet, accesses: Mapping[str, AccountAccess]) -> HubSet:
        """`hub_set` with the joined VPCs written into their hubs' `vpc_ids` and `shared_vpcs`
        (an account is reached through `accesses`), for readers that go by the items."""
        hubs = dict(hub_set.hubs)
        for region, hub in hub_set.hubs.items():
            local = sorted(self.local(region) - hub.associated_vpc_ids)
            listed = {(entry.account, entry.vpc_id) for entry in hub.shared_vpcs}
            shared = [
                SharedVpc.model_validate(
                    {
                        **(accesses[account].model_dump(exclude_none=True) if account else {}),
                        "vpc_id": vpc_id,
                    }
                )
                for account, vpcs in sorted(self.shared(region).items())
                for vpc_id in sorted(vpcs)
                if (account, vpc_id) not in listed and (not account or account in accesses)
            ]
            if local or shared:
                update = {
                    "vpc_ids": (*hub.vpc_ids, *local),
                    "shared_vpcs": (*hub.shared_vpcs, *shared),
                }
                hubs[region] = hub.model_copy(update=update)
        return replace(hub_set, hubs=hubs)


def adoptable(rule: ObservedRule) -> bool:
    """A live FORWARD rule of this account that no mesh owns, by marker or by tag."""
    return (
        rule.rule_type == "FORWARD"
        and rule.status == "COMPLETE"
        and rule.share_status != "SHARED_WITH_ME"
        and rule.owner_tag is None
        and not rule.creator_request_id.startswith(f"{MARKER}/")
    )


def without_conflicting(
    mesh_id: str,
    joined: Joined,
    desired: Desired,
    states: Mapping[str, RegionState],
    adopt: bool = False,
) -> Joined:
    """`joined` less the VPCs that would join only in part: a VPC that joined by tag, uses no
    rule of ours yet (directly or through our Profile), is not listed by the items, and where
    a rule not ours holds a domain its hub forwards, does not join (a line in `refused`) and
    nothing is done to it. A
    VPC that uses our rules already stays: a rule of another owner that comes later is a
    conflict for its domain alone (the plan's `conflicts`), and the VPC keeps the others. With
    `adopt`, a rule the hub's location would adopt (no rule of ours for its domain there) is
    no conflict: it becomes ours. An unread location keeps its VPCs. Each location's rules
    and associations are gone through once."""
    domains = _forwarded_domains(mesh_id, desired, states)
    profiles = _our_profiles(states)
    by_location: dict[tuple[str, bool], dict[str, ObservedRule]] = {}
    kept: list[JoinedVpc] = []
    refused = list(joined.refused)
    for vpc in joined.vpcs:
        key = (location(vpc.region, vpc.account), vpc.shared)
        if key not in by_location:
            state = states.get(key[0])
            by_location[key] = _held_by_others(state, mesh_id, vpc, domains, adopt, profiles)
        holding = by_location[key].get(vpc.vpc_id)
        if holding is None or vpc.listed:  # a listed VPC: its item decides, conflicts and all
            kept.append(vpc)
            continue
        whose = f"account {vpc.account}" if vpc.account else "the home account"
        refused.append(
            f"{vpc.vpc_id} ({vpc.region}, {whose}) is tagged {MESH_TAG_KEY}={mesh_id} but does"
            f" not join: rule {holding.id}, not ours, holds {holding.domain} in it, which its"
            " hub forwards; nothing is done to it"
        )
    if len(kept) == len(joined.vpcs):
        return joined
    return replace(joined, vpcs=tuple(kept), refused=tuple(refused))


def _forwarded_domains(
    mesh_id: str, desired: Desired, states: Mapping[str, RegionState]
) -> dict[str, set[str]]:
    """By Region, the domains its hub's rules forward: the desired ones, and those of the
    hub's rules of ours kept as they are because the Region they forward to is in doubt (its
    item cannot be used: `protected_targets`). A bad item elsewhere never lets a VPC join
    where a rule not ours holds such a domain."""
    domains: dict[str, set[str]] = defaultdict(set)
    for wanted in desired.rules:
        if not wanted.source:
            domains[wanted.region].add(wanted.domain)
    if not desired.protected_targets:
        return domains
    for region, where in desired.hub_locations.items():
        state = states.get(where)
        for rule in state.rules if state and not state.error else ():
            if rule.status == "DELETING" or rule.share_status == "SHARED_WITH_ME":
                continue
            if owned_source(rule.creator_request_id, mesh_id):
                continue  # a spoke's rule: the spoke's VPC alone
            target = owned_target_region(rule.creator_request_id, mesh_id) or (
                rule.target_tag if rule.owner_tag == mesh_id else None
            )
            if target in desired.protected_targets:
                domains[region].add(rule.domain)
    return domains


def _held_by_others(
    state: RegionState | None,
    mesh_id: str,
    vpc: JoinedVpc,
    domains: Mapping[str, set[str]],
    adopt: bool,
    profiles: Collection[str],
) -> dict[str, ObservedRule]:
    """By VPC of the location (of `vpc`'s account and kind): the rule not ours that holds one
    of the domains the hub of its Region forwards (the first by domain), for the VPCs that use
    no rule of ours, directly or through one of our `profiles` (its own, or a hub's it holds
    through our share). Nothing where the location was not read."""
    if state is None or state.error:
        return {}
    wanted = domains[vpc.region]
    using = _vpcs_using(state, mesh_id, received=vpc.shared)
    using |= {
        a.vpc_id
        for a in (state.profiles.associations if state.profiles else ())
        if a.profile_id in profiles and a.status != "DELETING"
    }
    ours = {
        rule.domain
        for rule in state.rules
        if rule.status != "DELETING" and rule.share_status != "SHARED_WITH_ME"
        if owned_target_region(rule.creator_request_id, mesh_id) or rule.owner_tag == mesh_id
    }
    adopted = adopt and not vpc.shared  # the hub's location adopts where it has none of ours
    others = {
        rule.id: rule
        for rule in state.rules
        if rule.status != "DELETING"
        and rule.domain in wanted
        and not owned_target_region(rule.creator_request_id, mesh_id)
        and not (rule.owner_tag == mesh_id and rule.target_tag)
        and not (adopted and adoptable(rule) and rule.domain not in ours)
    }
    held: dict[str, ObservedRule] = {}
    for association in state.associations:
        rule = others.get(association.rule_id)
        if rule is None or association.status == "DELETING" or association.vpc_id in using:
            continue
        first = held.get(association.vpc_id)
        if first is None or (rule.domain, rule.id) < (first.domain, first.id):
            held[association.vpc_id] = rule
    return held


def _listed_roles(hub_set: HubSet) -> dict[str, list[tuple[str, str, str]]]:
    """Every VPC the valid items name: VPC id -> (hub Region, account, role) per entry."""
    roles: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for region, hub in hub_set.hubs.items():
        roles[hub.vpc_id].append((region, hub.account, "the hub VPC"))
        for vpc_id in hub.vpc_ids:
            roles[vpc_id].append((region, hub.account, "a workload VPC (vpc_ids)"))
        for spoke in hub.spokes:
            roles[spoke.vpc_id].append((region, spoke.account, "a spoke"))
        for shared in hub.shared_vpcs:
            roles[shared.vpc_id].append((region, shared.account, "a shared VPC (shared_vpcs)"))
    return roles


_SAME_AS_JOINING = frozenset(
    {"the hub VPC", "a workload VPC (vpc_ids)", "a shared VPC (shared_vpcs)"}
)


def _why_not_joining(
    hub_set: HubSet, where: str, vpc_id: str, roles: Mapping[str, list[tuple[str, str, str]]]
) -> str | None:
    """Why a tagged VPC cannot join the hub of its Region; None when it can. A VPC its hub's
    item already lists as a VPC that uses the hub's rules simply stays one."""
    region, account = split_location(where)
    if region not in hub_set.item_regions:
        return f"there is no hub item for {region}"
    hub = hub_set.hubs.get(region)
    if hub is None:
        return f"the hub item of {region} has errors"
    if not hub.enabled:
        return f"the hub of {region} is disabled"
    for listed_region, listed_account, role in sorted(roles.get(vpc_id, ())):
        if (listed_region, listed_account) == (region, account) and role in _SAME_AS_JOINING:
            continue
        return f"it is already listed as {role} in the hub item of {listed_region}"
    return None


def join_by_tag(mesh_id: str, hub_set: HubSet, tagged: Mapping[str, TaggedVpcs]) -> Joined:
    """The VPCs of `tagged` (tag reads by location) that join their Region's hub, and a line
    for each that cannot (no hub, a disabled or invalid one, listed in another role, owned by
    another account)."""
    roles = _listed_roles(hub_set)
    joined: list[JoinedVpc] = []
    refused: list[str] = []
    owned = {(split_location(w)[0], vpc) for w, read in tagged.items() for vpc in read.owned}
    for where, read in sorted(tagged.items()):
        if read.error:
            continue
        region, account = split_location(where)
        whose = f"account {account}" if account else "the home account"
        problems = {  # said where its owner's tag was not read: there, it is decided
            vpc: f"account {owner} owns it (VPC sharing): only its owner's tag counts"
            for vpc, owner in read.foreign.items()
            if (region, vpc) not in owned
        }
        for vpc_id in sorted(read.owned):
            if why := _why_not_joining(hub_set, where, vpc_id, roles):
                problems[vpc_id] = why
            else:
                hub = hub_set.hubs[region]
                listed = (region, account) in {(r, a) for r, a, _ in roles.get(vpc_id, ())}
                joined.append(JoinedVpc(region, account, vpc_id, account != hub.account, listed))
        refused.extend(
            f"{vpc_id} ({region}, {whose}) is tagged {MESH_TAG_KEY}={mesh_id} but does not"
            f" join: {why}; nothing is done to it"
            for vpc_id, why in sorted(problems.items())
        )
        for vpc_id, tag in sorted(read.mistagged.items()):
            if (region, account) in {(r, a) for r, a, _ in roles.get(vpc_id, ())}:
                continue  # the items list it: they decide, whatever its tags
            why = _why_not_joining(hub_set, where, vpc_id, roles)
            refused.append(
                f"{vpc_id} ({region}, {whose}) is tagged {tag!r}, not {MESH_TAG_KEY}={mesh_id}:"
                " tags are compared exactly (case and spaces count), so it does not join"
                + (f" (nor could it with that tag: {why})" if why else "")
                + "; nothing is done to it"
            )
    unread = frozenset(where for where, read in tagged.items() if read.error)
    return Joined(vpcs=tuple(sorted(joined)), refused=tuple(refused), unread=unread)


def _our_hub_rule_ids(state: RegionState, mesh_id: str, *, received: bool) -> set[str]:
    """The live hub rules of ours at a location: its own, or (`received`) those shared with it."""
    return {
        rule.id
        for rule in state.rules
        if rule.status != "DELETING"
        and (rule.share_status == "SHARED_WITH_ME") == received
        and (owned_target_region(rule.creator_request_id, mesh_id) or rule.owner_tag == mesh_id)
        and not owned_source(rule.creator_request_id, mesh_id)
    }


def _vpcs_using(state: RegionState | None, mesh_id: str, *, received: bool) -> frozenset[str]:
    """The VPCs associated with our hub rules at a location (nothing, when it was not read)."""
    if state is None or state.error:
        return frozenset()
    rules = _our_hub_rule_ids(state, mesh_id, received=received)
    return frozenset(
        a.vpc_id for a in state.associations if a.rule_id in rules and a.status != "DELETING"
    )


def _item_region(item: Mapping[str, Any]) -> str:
    region = item.get("region")
    return region if isinstance(region, str) and region else "<no region>"


def _validation_errors(region: str, error: ValidationError) -> list[ItemError]:
    found = []
    for detail in error.errors():
        # The field is the item's attribute; a position inside a list goes into the message.
        location = str(detail["loc"][0]) if detail["loc"] else ""
        message = detail["msg"].removeprefix("Value error, ")
        if len(detail["loc"]) > 1:  # inside a list: its entry, and the entry's field if any
            inner = "".join(f", {part}" for part in detail["loc"][2:])
            message = f"entry {detail['loc'][1]}{inner}: {message}"
        if not location and ": " in message and message.split(": ", 1)[0].isidentifier():
            location, message = message.split(": ", 1)
        found.append(ItemError(region, location, message))
    return found


def names_accounts(items: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any item names an account anywhere (then the reconciler's own account id is
    needed to tell it from the others)."""
    return any("account_id" in json.dumps(item, default=str) for item in items)


def parse_hubs(
    items: Iterable[Mapping[str, Any]],
    known_regions: Collection[str] | None,
    home_account: str | None = None,
) -> HubSet:
    """Validate every item on its own, then across items (shared domains, unknown peers, one
    role per account). Entries naming `home_account` count as the reconciler's own account."""
    hubs: dict[str, HubItem] = {}
    errors: list[ItemError] = []
    items = list(items)
    region_counts = Counter(_item_region(item) for item in items)
    context = {"known_regions": known_regions, "home_account": home_account}
    for item in items:
        region = _item_region(item)
        if region_counts[region] > 1:
            errors.append(ItemError(region, "region", "more than one item for this Region"))
            continue
        try:
            hubs[region] = HubItem.model_validate(dict(item), context=context)
        except ValidationError as error:
            errors.extend(_validation_errors(region, error))

    owners: dict[str, list[str]] = {}
    for hub in hubs.values():
        if hub.enabled:
            for domain in hub.domain_names:
                owners.setdefault(domain, []).append(hub.region)
    for domain, regions in sorted(owners.items()):
        if len(regions) > 1:
            for region in regions:
                others = ", ".join(r for r in sorted(regions) if r != region)
                errors.append(ItemError(region, "domains", f"{domain} is also claimed by {others}"))
    errors.extend(_nested_loops(hubs, owners))
    errors.extend(_one_role_per_account(hubs))

    item_regions = frozenset(region_counts)
    for hub in hubs.values():
        for peer in hub.peers or ():
            if peer not in item_regions:
                errors.append(ItemError(hub.region, "peers", f"{peer!r} is not a hub Region"))

    invalid = {e.region for e in errors}
    valid = {region: hub for region, hub in hubs.items() if region not in invalid}
    named: dict[str, AccountAccess] = {}
    for item in items:
        if _item_region(item) in invalid:
            named = _named_accounts(item, context) | named  # the first item's role wins
    return HubSet(
        hubs=valid, errors=tuple(errors), item_regions=item_regions, named_by_invalid=named
    )


def _named_accounts(
    item: Mapping[str, Any], context: Mapping[str, Any]
) -> dict[str, AccountAccess]:
    """The other accounts an item names (itself, its spokes, its shared VPCs), each entry on its
    own: those whose account fields validate, whatever else is wrong with the item."""
    entries = [item]
    for key in ("spokes", "shared_vpcs"):
        listed = item.get(key)
        entries += [e for e in listed if isinstance(e, Mapping)] if isinstance(listed, list) else []
    found: dict[str, AccountAccess] = {}
    for entry in entries:
        fields = {k: entry[k] for k in ("account_id", "role_arn", "external_id") if k in entry}
        try:
            access = AccountAccess.model_validate(fields, context=context)
        except ValidationError:
            continue
        if access.account:
            found.setdefault(access.account, access)
    return found


def departed_locations(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> dict[str, AccountAccess]:
    """The other accounts' locations that an item stops naming when `old` becomes `new` (None:
    no item), with the role the old item gave each: its hub's, spokes' and shared VPCs'
    accounts in its Region that the new item does not name. Entries whose account fields do
    not validate are not reachable, so not listed. Pure."""
    if not isinstance(old, Mapping):
        return {}
    region = old.get("region")
    if not isinstance(region, str) or not region:
        return {}
    before = _named_accounts(old, {"home_account": None})
    after = _named_accounts(new, {"home_account": None}) if isinstance(new, Mapping) else {}
    return {location(region, a): access for a, access in before.items() if a not in after}


def _nested_loops(hubs: Mapping[str, HubItem], owners: Mapping[str, list[str]]) -> list[ItemError]:
    """A hub's domain inside a peer's loops when the inner hub forwards to the outer one.

    Rules win over the inner hub's own answers: names of the inner domain that reach the inner
    hub's inbound endpoint go on to the outer hub, whose Region sends them back.
    """
    enabled = {region for region, hub in hubs.items() if hub.enabled}
    found = []
    for inner, inner_regions in sorted(owners.items()):
        for outer, outer_regions in sorted(owners.items()):
            if inner == outer or not inner.endswith("." + outer):
                continue
            for inner_region in inner_regions:
                forwarded = hubs[inner_region].forwards_to(enabled)
                looping = [r for r in outer_regions if r in forwarded]
                if looping:
                    message = (
                        f"{inner} lies inside {outer} of {', '.join(looping)}, which this hub"
                        " forwards to: the names would loop; drop one or the peering"
                    )
                    found.append(ItemError(inner_region, "domains", message))
    return found


def _one_role_per_account(hubs: Mapping[str, HubItem]) -> list[ItemError]:
    """Every entry naming an account must reach it the same way (role and external id)."""
    first: dict[str, tuple[str, AccountAccess]] = {}
    found = []
    for region, hub in sorted(hubs.items()):
        for entry in _account_entries(hub):
            if not entry.account:
                continue
            seen = first.setdefault(entry.account, (region, entry))
            if (entry.role_arn, entry.external_id) != (seen[1].role_arn, seen[1].external_id):
                message = (
                    f"account {entry.account} is reached with another role_arn or external_id"
                    f" in the item of {seen[0]}"
                )
                found.append(ItemError(region, "role_arn", message))
    return found


def _endpoint_problem(
    state: RegionState,
    endpoint_id: str,
    direction: str,
    vpc_id: str | None = None,
    vpc_role: str = "",
) -> str | None:
    """Why an item's endpoint cannot be what it claims (missing, other direction, other VPC)."""
    endpoint = state.endpoint(endpoint_id)
    if endpoint is None:
        return f"{endpoint_id} does not exist in {state.location}"
    if endpoint.direction != direction:
        return f"{endpoint.id} is an {endpoint.direction} endpoint, not {direction}"
    if vpc_id and endpoint.vpc_id != vpc_id:
        return f"{endpoint.id} is in {endpoint.vpc_id}, not in the {vpc_role} VPC {vpc_id}"
    return None


@dataclass
class _HubHealth:
    targets: frozenset[Target] | None = None
    source_ok: bool = True
    target_ok: bool = True
    pending: bool = False  # an endpoint is still on its way to OPERATIONAL with ATTACHED IPs


def _one_family(ips: Iterable[str]) -> list[str]:
    """A rule cannot mix IPv4 and IPv6 targets: IPv4 when there is any, else IPv6."""
    ipv4 = [ip for ip in ips if ":" not in ip]
    return ipv4 or list(ips)


def _check_hub(
    hub: HubItem, state: RegionState | None
) -> tuple[_HubHealth, list[ItemError], list[str]]:
    """Live checks of one hub: identity errors (its VPCs exist, its endpoints are the named
    VPC's, of the right direction: any error freezes the Region) and degradation (kept)."""
    health = _HubHealth()
    errors: list[ItemError] = []
    degraded: list[str] = []
    where = f"hub {hub.region}"
    if state is not None and state.not_enabled:  # its account has not enabled the Region
        errors.append(ItemError(hub.region, "account_id", str(state.error)))
        return _HubHealth(source_ok=False, target_ok=False), errors, degraded
    if state is None or state.error:
        reason = state.error if state else "not read"
        degraded.append(f"{where}: its Region could not be read ({reason}); its rules are kept")
        return _HubHealth(source_ok=False, target_ok=False), errors, degraded

    for field_name, vpc_id in (("vpc_id", hub.vpc_id), *(("vpc_ids", v) for v in hub.vpc_ids)):
        if problem := state.missing_vpc(vpc_id):
            errors.append(ItemError(hub.region, field_name, problem))
    inbound = state.endpoint(hub.inbound_endpoint_id)
    problem = _endpoint_problem(state, hub.inbound_endpoint_id, "INBOUND", hub.vpc_id, "hub")
    if problem or inbound is None:
        errors.append(ItemError(hub.region, "inbound_endpoint_id", problem or "not found"))
    elif inbound.status != USABLE_ENDPOINT_STATUS:
        degraded.append(f"{where}: inbound endpoint {inbound.id} is {inbound.status}")
        health.pending = inbound.status in TRANSITIONAL_ENDPOINT_STATUSES
    elif not (ips := _one_family(inbound.attached_ips)):
        degraded.append(f"{where}: inbound endpoint {inbound.id} has no ATTACHED IP")
        health.pending = True
    elif len(ips) > MAX_TARGETS_PER_RULE:
        degraded.append(
            f"{where}: inbound endpoint {inbound.id} has {len(ips)} ATTACHED IPs;"
            f" a rule takes at most {MAX_TARGETS_PER_RULE} targets"
        )
    else:
        health.targets = frozenset(Target(ip) for ip in ips)

    if hub.outbound_endpoint_id:
        outbound = state.endpoint(hub.outbound_endpoint_id)
        problem = _endpoint_problem(state, hub.outbound_endpoint_id, "OUTBOUND", hub.vpc_id, "hub")
        if problem or outbound is None:
            errors.append(ItemError(hub.region, "outbound_endpoint_id", problem or "not found"))
        elif outbound.status != USABLE_ENDPOINT_STATUS:
            degraded.append(
                f"{where}: outbound endpoint {outbound.id} is {outbound.status};"
                f" rules in {hub.region} are left as they are"
            )
            health.source_ok = False
            health.pending = health.pending or outbound.status in TRANSITIONAL_ENDPOINT_STATUSES
    if errors:  # whatever else is fine: a hub we doubt is neither changed nor retargeted
        health = _HubHealth(source_ok=False, target_ok=False)
    return health, errors, degraded


def target_domains(hub: HubItem, state: RegionState | None) -> tuple[str, ...]:
    """The domains other Regions forward to `hub`: its fixed ones and, with `{services}`, the
    private DNS names AWS gives the services of the hub VPC's available interface endpoints
    with private DNS. `apply` and `verify` both take a hub's names from here."""
    names = list(hub.domain_names)
    if hub.uses_services and state is not None:
        for endpoint in state.interface_endpoints:
            if endpoint.vpc_id == hub.vpc_id and not endpoint.service_region:
                names.extend(n for n in endpoint.private_names if n not in names)
    return tuple(names)


def unread_services(hub: HubItem, state: RegionState | None) -> tuple[InterfaceEndpoint, ...]:
    """The endpoints of the hub VPC whose names count (its own with `{services}`, cross-Region
    ones always) and answer privately, but whose service's names could not be read."""
    return tuple(
        endpoint
        for endpoint in (state.interface_endpoints if state else ())
        if endpoint.vpc_id == hub.vpc_id
        and endpoint.names_unknown
        and (hub.uses_services or endpoint.service_region)
    )


def _unread_names_message(hub: HubItem, unread: Iterable[InterfaceEndpoint], kept: bool) -> str:
    services = ", ".join(f"{e.service_name} ({e.names_unread})" for e in unread)
    consequence = (
        "rules that forward to this hub are kept as they are"
        if kept
        else "the names of its cross-Region endpoints are forwarded to their hubs as usual"
    )
    return f"hub {hub.region}: cannot read the private DNS names of {services}; {consequence}"


def _own_cross_region_endpoint(state: RegionState | None, domain: str) -> str | None:
    """A cross-Region interface endpoint of the source's hub VPC that already answers `domain`."""
    for endpoint in state.interface_endpoints if state else ():
        if endpoint.service_region and domain in endpoint.private_names:
            return endpoint.id
    return None


def _check_spoke(
    hub: HubItem, index: int, spoke: Spoke, state: RegionState | None
) -> tuple[ItemError | None, str | None, bool]:
    """Whether a spoke can carry rules: (item error, degradation, pending). An error (its VPC
    or endpoint is not what the entry says) freezes the hub's Region; a degradation freezes
    the spoke's rules alone."""
    where = f"spoke {spoke.vpc_id} of hub {hub.region}"
    if state is not None and state.not_enabled:
        return ItemError(hub.region, "spokes", f"entry {index}: {state.error}"), None, False
    if state is None or state.error:
        reason = state.error if state else "not read"
        return None, f"{where}: its account's Region could not be read ({reason})", False
    problem = state.missing_vpc(spoke.vpc_id) or _endpoint_problem(
        state, spoke.outbound_endpoint_id, "OUTBOUND", spoke.vpc_id, "spoke"
    )
    endpoint = state.endpoint(spoke.outbound_endpoint_id)
    if problem or endpoint is None:
        return ItemError(hub.region, "spokes", f"entry {index}: {problem}"), None, False
    if endpoint.status != USABLE_ENDPOINT_STATUS:
        degraded = f"{where}: outbound endpoint {endpoint.id} is {endpoint.status}"
        pending = endpoint.status in TRANSITIONAL_ENDPOINT_STATUSES
        return None, f"{degraded}; its rules are kept", pending
    return None, None, False


def _shared_vpc_errors(hub: HubItem, states: Mapping[str, RegionState]) -> list[ItemError]:
    """Shared VPCs that do not exist in their account, or cannot (a Region the account has not
    enabled); other unread accounts are not errors: the planner keeps what is shared with them."""
    errors = []
    for index, shared in enumerate(hub.shared_vpcs):
        state = states.get(location(hub.region, shared.account))
        if state is not None and state.not_enabled:
            problem: str | None = state.error
        elif state is not None and not state.error:
            problem = state.missing_vpc(shared.vpc_id)
        else:
            problem = None
        if problem:
            errors.append(ItemError(hub.region, "shared_vpcs", f"entry {index}: {problem}"))
    return errors


@dataclass
class _SpokeCheck:
    """The spokes that can carry rules, and what the others left to report."""

    usable: dict[tuple[str, int], Spoke] = field(default_factory=dict)  # (hub Region, index)
    errors: list[ItemError] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)
    frozen: set[tuple[str, str]] = field(default_factory=set)  # (location, spoke VPC)
    pending: set[str] = field(default_factory=set)


def _check_spokes(enabled: Mapping[str, HubItem], states: Mapping[str, RegionState]) -> _SpokeCheck:
    found = _SpokeCheck()
    for region, hub in sorted(enabled.items()):
        for index, spoke in enumerate(hub.spokes):
            if not spoke.enabled:
                continue
            where = location(region, spoke.account)
            error, degradation, pending = _check_spoke(hub, index, spoke, states.get(where))
            if error or degradation:
                found.errors.extend([error] if error else [])
                found.degraded.extend([degradation] if degradation else [])
                found.frozen.add((where, spoke.vpc_id))
                if pending:
                    found.pending.add(region)
            else:
                found.usable[(region, index)] = spoke
    return found


def desired_rules(
    mesh_id: str,
    hub_set: HubSet,
    states: Mapping[str, RegionState],
    joined: Joined | None = None,
    home_account: str = "",
) -> Desired:
    """Every rule (and share) the mesh wants, given the hubs, the VPCs that join them by tag
    (`joined`; None: none looked for) and what their locations look like now (`states` by
    location). Every part of every item is checked first: a Region whose item has any error is
    frozen and protected as a whole, whichever part the error is in. `home_account` is the
    reconciler's own account id, when known (to find it among a share's principals)."""
    errors = list(hub_set.errors)
    degraded: list[str] = []
    frozen = set(hub_set.invalid_regions)
    protected = set(hub_set.invalid_regions)
    health: dict[str, _HubHealth] = {}
    enabled = hub_set.enabled
    for region, hub in sorted(enabled.items()):
        health[region], hub_errors, hub_degraded = _check_hub(hub, states.get(hub.location))
        errors.extend(hub_errors)
        errors.extend(_shared_vpc_errors(hub, states))
        degraded.extend(hub_degraded)
        if not health[region].source_ok:
            frozen.add(region)
        if not health[region].target_ok:
            protected.add(region)
        unread = unread_services(hub, states.get(hub.location))
        if unread:  # its names are unknown, not gone: the rules for them are kept
            kept = any(not endpoint.service_region for endpoint in unread)
            degraded.append(_unread_names_message(hub, unread, kept))
            if kept:
                protected.add(region)
    spokes = _check_spokes(enabled, states)
    errors.extend(spokes.errors)
    degraded.extend(spokes.degraded)
    doubted = {error.region for error in errors}
    frozen |= doubted
    protected |= doubted

    def domains_of(target_region: str) -> tuple[str, ...]:
        target = enabled[target_region]
        return target_domains(target, states.get(target.location))

    rules: list[DesiredRule] = []
    notes: list[str] = []
    source_vpcs: dict[tuple[str, str], frozenset[str]] = {}
    pending = {region for region, h in health.items() if h.pending} | spokes.pending
    for region, hub in sorted(enabled.items()):
        if region in frozen:
            continue
        peers = [r for r in hub.peer_regions(enabled) if r not in protected]
        if hub.outbound_endpoint_id:
            workload = workload_vpcs(mesh_id, hub, joined, states)
            source_vpcs[(hub.location, "")] = workload
            for target_region in peers:
                for domain in domains_of(target_region):
                    local = _own_cross_region_endpoint(states.get(hub.location), domain)
                    if local:
                        notes.append(
                            f"{region}: {domain} is not forwarded to {target_region}: the hub"
                            f" VPC has its own cross-Region endpoint {local}"
                        )
                        continue
                    rule = DesiredRule(
                        region=region,
                        domain=domain,
                        target_region=target_region,
                        endpoint_id=hub.outbound_endpoint_id,
                        name=rule_name(mesh_id, domain),
                        vpc_ids=workload,
                        targets=health[target_region].targets,
                        account=hub.account,
                    )
                    rules.append(rule)
        for index, spoke in enumerate(hub.spokes):
            if (region, index) in spokes.usable:
                source_vpcs[(location(region, spoke.account), spoke.vpc_id)] = frozenset(
                    {spoke.vpc_id}
                )
                rules.extend(_spoke_rules(mesh_id, hub, spoke, peers, domains_of, health))
    return Desired(
        rules=tuple(rules),
        frozen_regions=frozenset(frozen),
        protected_targets=frozenset(protected),
        errors=tuple(errors),
        degraded=tuple(degraded),
        notes=tuple(notes),
        pending=frozenset(pending),
        source_vpcs=source_vpcs,
        frozen_sources=frozenset(spokes.frozen),
        shares=tuple(_shares(mesh_id, enabled, frozen, states, joined, home_account)),
        hub_locations={region: hub.location for region, hub in enabled.items()},
        item_regions=hub_set.item_regions,
    )


def _spoke_rules(
    mesh_id: str,
    hub: HubItem,
    spoke: Spoke,
    peers: Iterable[str],
    domains_of: Callable[[str], tuple[str, ...]],
    health: Mapping[str, _HubHealth],
) -> list[DesiredRule]:
    """A direct spoke forwards every peer domain to the peer's hub; a central spoke forwards
    them (or its parent domain) to its own hub, recording whose domain each rule is for."""
    wanted: list[tuple[str, str, frozenset[Target] | None]] = []  # domain, hub Region, targets
    if spoke.mode == "central" and spoke.parent:
        wanted.append((spoke.parent, hub.region, health[hub.region].targets))
    elif spoke.mode == "central":
        own = health[hub.region].targets
        wanted.extend((d, peer, own) for peer in peers for d in domains_of(peer))
    else:
        wanted.extend((d, peer, health[peer].targets) for peer in peers for d in domains_of(peer))
    return [
        DesiredRule(
            region=hub.region,
            domain=domain,
            target_region=target_region,
            endpoint_id=spoke.outbound_endpoint_id,
            name=rule_name(mesh_id, domain),
            vpc_ids=frozenset({spoke.vpc_id}),
            targets=targets,
            account=spoke.account,
            source=spoke.vpc_id,
        )
        for domain, target_region, targets in wanted
    ]


def workload_vpcs(
    mesh_id: str, hub: HubItem, joined: Joined | None, states: Mapping[str, RegionState]
) -> frozenset[str]:
    """The VPCs of the hub's account that use its rules: the hub VPC, `vpc_ids`, those joined
    by tag and, while the tags there are unknown, every VPC that uses the rules now, directly or
    through our Profile."""
    found = hub.associated_vpc_ids
    if joined is None:
        return found
    found |= joined.local(hub.region)
    if hub.location in joined.unread:
        state = states.get(hub.location)
        using = _vpcs_using(state, mesh_id, received=False) | _vpcs_on_our_profile(state)
        found |= using - {spoke.vpc_id for spoke in hub.spokes}
    return found


def _our_profiles(states: Mapping[str, RegionState]) -> frozenset[str]:
    """The ids of the Profiles of ours, read where they are owned."""
    return frozenset(
        p.id
        for state in states.values()
        if state.profiles and not state.error
        for p in state.profiles.profiles
        if p.ours and p.share_status != "SHARED_WITH_ME"
    )


def _vpcs_on_our_profile(state: RegionState | None) -> frozenset[str]:
    """The VPCs associated with a Profile of ours that the location owns (nothing, when its
    Profiles were not read)."""
    if state is None or state.error or state.profiles is None:
        return frozenset()
    ours = {p.id for p in state.profiles.profiles if p.ours and p.share_status != "SHARED_WITH_ME"}
    return frozenset(
        a.vpc_id
        for a in state.profiles.associations
        if a.profile_id in ours and a.status != "DELETING"
    )


def _kept_receivers(
    mesh_id: str,
    hub: HubItem,
    states: Mapping[str, RegionState],
    joined: Joined,
    home_account: str,
) -> dict[str, frozenset[str]]:
    """The other accounts of the hub's Region whose tag read failed and that use the hub's
    rules now (their VPCs that do) or are among its share's principals: they stay as they are."""
    hub_state = states.get(hub.location)
    principals = {p for share in (hub_state.shares if hub_state else ()) for p in share.principals}
    kept: dict[str, frozenset[str]] = {}
    for where, state in sorted(states.items()):
        region, account = split_location(where)
        if region != hub.region or account == hub.account or where not in joined.unread:
            continue
        using = _vpcs_using(state, mesh_id, received=True)
        if using or (account or home_account) in principals:
            kept[account] = using
    return kept


def _shares(
    mesh_id: str,
    enabled: Mapping[str, HubItem],
    frozen: Collection[str],
    states: Mapping[str, RegionState],
    joined: Joined | None,
    home_account: str,
) -> list[DesiredShare]:
    """One share per (hub, receiving account) whose VPCs use the hub's rules: listed, joined by
    tag, or kept while the account's tags are unknown."""
    shares: list[DesiredShare] = []
    for region, hub in sorted(enabled.items()):
        if region in frozen or not hub.outbound_endpoint_id:
            continue
        by_account: dict[str, set[str]] = defaultdict(set)
        for shared in hub.shared_vpcs:
            by_account[shared.account].add(shared.vpc_id)
        if joined is not None:
            for account, vpcs in joined.shared(region).items():
                by_account[account] |= vpcs
            kept = _kept_receivers(mesh_id, hub, states, joined, home_account)
            for account, using in kept.items():
                by_account[account] |= using
        shares.extend(
            DesiredShare(region, hub.account, account, frozenset(vpcs))
            for account, vpcs in sorted(by_account.items())
        )
    return shares
