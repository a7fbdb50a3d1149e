"""Route 53 Profiles as the delivery of a hub's rules. Pure, no I/O.

A hub's VPCs (`vpc_id`, `vpc_ids`) get the hub Region's rules either associated one by one
(`rules`, the default) or through one Route 53 Profile of ours per location (`profile`): the
Profile holds the mesh's hub rules of the location and is associated with those VPCs. The mode
is per mesh (`Settings.delivery`), per hub item (`delivery`), per VPC (`vpc_delivery`) and per
shared VPC of another account (its entry's `delivery`); a VPC that joins by tag follows its
hub's, in the hub's account and in any other.

Invariants:
- Only a Profile that carries our owner tag (and our name) is ever changed or deleted; a VPC
  whose Profile is not ours keeps it and gets the rules associated directly (reported).
- A VPC that takes our Profile while a rule not ours is associated with it for a domain the
  Profile holds keeps that rule, which wins there (a rule associated with the VPC takes
  precedence over a Profile's): each such domain is a conflict (`ProfilePlan.conflicts`), as
  it would be with `rules`, and the Profile still answers the VPC's other domains.
- Make before break, whichever of a direct association and a Profile rule wins for one domain
  (AWS does not document it): a VPC loses the direct association of a domain only once our
  Profile is COMPLETE on the VPC and holds our rule for that domain COMPLETE; it loses our
  Profile only once every hub domain of the location is associated with it directly and
  COMPLETE. A VPC that has neither waits for the Profile instead of getting both.
- A shared VPC (another account) of `profile` delivery gets the hub's Profile through the
  hub's RAM share (`also_shared`), with the same make before break against the shared rules;
  the hub keeps its Profile, and keeps sharing it, while another account holds it or cannot be
  read, or its tags cannot be read in the hub's Region. Where another account's tags cannot be
  read, a VPC there on our Profile keeps it (whether it still joins is unknown); one whose tag is
  read gone loses it as leaving the mesh (`PROFILE_LEAVES`, counted by the guard).
- Nothing is written while a Profile, association or resource is on its way (CREATING,
  UPDATING, DELETING): that is `pending`; FAILED is reported and left alone.
- Quotas are known before AWS says no: a Profile that would be one too many for the account,
  or hold more rules than a Profile takes, is neither made nor grown, and its VPCs fall back to
  rules; VPCs that would take the Profile past its VPC quota (all accounts together) are none
  of them associated and fall back to rules. Each is reported as failed for the location,
  never a write AWS would refuse midway; a quota used to `NEAR_QUOTA` or more is noted.
- Only locations whose Profiles were read (`RegionState.profiles`) are planned here; a failed
  read makes the whole location unreadable (nothing changes there).
- A plan for a state it produced is empty.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from resolver_mesh.desired import Desired, HubSet, Joined, workload_vpcs
from resolver_mesh.models import (
    Change,
    ChangeKind,
    Conflict,
    Delivery,
    DesiredRule,
    HubItem,
    ObservedProfile,
    ObservedProfileAssociation,
    ObservedProfileResource,
    ObservedRule,
    Plan,
    RegionState,
    location,
    split_location,
)
from resolver_mesh.names import profile_name
from resolver_mesh.plan import (
    GONE,
    IN_PLACE,
    SERVED_BY_PROFILE,
    managed_rules,
    rule_source,
    rule_target,
    shared_with_us,
)

COMPLETE = "COMPLETE"
# Default quotas (Developer Guide, "Quotas on Route 53 Profiles",
# https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/DNSLimitations.html#limits-api-entities-route53-profiles;
# AssociateProfile in the API Reference says the same of VPCs). The VPCs of every account that
# holds a Profile through RAM count against the owner's Profile; only the Profiles quota is
# each account's own (Developer Guide, "Working with shared Route 53 Profiles", Instance quotas).
MAX_PROFILES_PER_REGION = 5  # Profiles one account owns in a Region
MAX_VPCS_PER_PROFILE = 1000  # VPCs associated with one Profile, all accounts together
MAX_RULES_PER_PROFILE = 1000  # Resolver rules one Profile holds
NEAR_QUOTA = 0.9  # a plan notes a quota used to this share or more (within 10% of it)
IN_FLIGHT = ("CREATING", "UPDATING", "DELETING")
FAILED = "FAILED"
# The reason of our Profile's removal from a VPC that no longer uses the hub's rules at all
# (the guard counts each rule the Profile holds as lost there).
PROFILE_LEAVES = "VPC no longer listed"
# A location's Profile changes go right before the first of these: after the rules they need
# exist, and before a rule leaves (a rule leaves the Profile before it is deleted).
_BREAKING = (
    ChangeKind.DISASSOCIATE,
    ChangeKind.DELETE_RULE,
    ChangeKind.UNSHARE,
    ChangeKind.DELETE_SHARE,
)


def vpc_deliveries(
    hub: HubItem, default: Delivery, others: Collection[str] = ()
) -> dict[str, Delivery]:
    """How each VPC of the hub (`vpc_id`, `vpc_ids`, and `others` its rules are meant for,
    such as VPCs that join by tag) gets the hub's rules."""
    mode = hub.delivery or default
    vpcs = sorted(hub.associated_vpc_ids | set(others))
    return {vpc: hub.vpc_delivery.get(vpc, mode) for vpc in vpcs}


@dataclass
class ProfilePlan:
    """The rules narrowed to the direct associations still needed, the Profile changes by
    location (in order), and what waits or failed."""

    desired: Desired
    changes: dict[str, list[Change]] = field(default_factory=dict)
    # Locations where our Profile is or should be: any change there may let it move on.
    active: set[str] = field(default_factory=set)
    # (location, VPC, domain) our Profile serves: a direct association there may go.
    served: set[tuple[str, str, str]] = field(default_factory=set)
    # (location, VPC) that gets the hub's rules through our Profile -> the hub domains the
    # Profile answers there now (none while it is not there, or not COMPLETE): what a rule of
    # the VPC's own waits for before it leaves (`make_plan`'s `profile_serving`).
    serving: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    # By hub location: what its RAM share holds besides the rules (its Profile).
    also_shared: dict[str, frozenset[str]] = field(default_factory=dict)
    # Locations of Regions without a hub item whose Profile of ours this plan does not delete
    # (VPCs of other accounts let go first) -> the Profile's id: the hub's rules of ours there
    # stay, so that the next pass deletes it (`make_plan`). Only where every full pass reads
    # (`swept`): elsewhere only rules of ours in other Regions lead back, and they go.
    lingering: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    def serve(self, where: str, vpc: str, domains: Collection[str]) -> None:
        """`vpc` of `where` gets the hub's rules through our Profile, which answers `domains`."""
        self.serving[(where, vpc)] = frozenset(domains)
        self.served |= {(where, vpc, domain) for domain in domains}


class _LocationProfiles:
    """The Profile of one location: what it must hold and serve, and the changes to get there."""

    def __init__(
        self,
        mesh_id: str,
        state: RegionState,
        hub: HubItem | None,
        rules: list[DesiredRule],
        default: Delivery,
        protected: Collection[str],
        workload: Collection[str] = (),
    ) -> None:
        """`workload`: the VPCs of the hub's account that use its rules (`workload_vpcs`),
        even while it wants no rule (every peer unreadable): they keep its Profile."""
        assert state.profiles is not None
        self.mesh_id = mesh_id
        self.state = state
        self.where = state.location
        self.profiles = state.profiles
        meant_for = {vpc for rule in rules for vpc in rule.vpc_ids} | set(workload)
        self.modes = vpc_deliveries(hub, default, meant_for) if hub else {}
        self.rules = rules  # the desired hub rules of this location
        self.protected = protected
        # VPCs of other accounts that use (or still hold) the Profile through our RAM share
        self.remote_needed = False
        self.remote_held = False
        self.remote_associated = 0  # VPCs of other accounts associated with our Profile
        self.remote_new = 0  # shared VPCs of `profile` delivery not associated yet
        # Quotas: `refused`, the Profile is neither made nor grown (its VPCs fall back to
        # rules); `closed`, it takes no new VPC.
        self.refused = False
        self.closed = False
        self.changes: list[Change] = []
        self.notes: list[str] = []
        self.pending: list[str] = []
        self.failed: list[str] = []
        holders: dict[str, int] = defaultdict(int)  # Profile -> VPCs holding it
        for association in self.profiles.associations:
            holders[association.profile_id] += 1
        own = sorted(
            (p for p in self.profiles.profiles if p.ours and p.share_status != "SHARED_WITH_ME"),
            key=lambda p: (-holders[p.id], p.id),
        )
        self.keeper: ObservedProfile | None = own[0] if own else None
        for duplicate in own[1:]:
            self.notes.append(f"{self.where}: duplicate Profile of ours {duplicate.id} left as is")
        self.by_vpc: dict[str, ObservedProfileAssociation] = {
            a.vpc_id: a for a in self.profiles.associations
        }
        self.hub_rules = [
            r for r in managed_rules(state, mesh_id) if not rule_source(r, mesh_id) and r.arn
        ]
        self.direct: dict[str, set[str]] = defaultdict(set)  # VPC -> domains associated, COMPLETE
        domains = {r.id: r.domain for r in self.hub_rules}
        for direct in state.associations:
            if direct.status in IN_PLACE and direct.rule_id in domains:
                self.direct[direct.vpc_id].add(domains[direct.rule_id])
        held = self._held()
        self.wanted = self._wanted_resources(held)
        self.others = _held_by_others(state, mesh_id)
        # Nothing to deliver: the hub wants no rule here and keeps none for an unreadable hub,
        # so no VPC needs our Profile (it leaves them all, then goes, while the location is
        # still read: once its item goes too, nothing would lead back to it).
        self.idle = not rules and not self.wanted
        self.served: dict[str, set[str]] = defaultdict(set)  # VPC -> domains our Profile serves
        complete = {r.resource_arn for r in held if r.status == COMPLETE}
        serving = {d for d, arn in self.wanted.items() if arn in complete}
        self.serving = serving
        for vpc, association in self.by_vpc.items():
            if self._is_keeper(association) and association.status == COMPLETE:
                self.served[vpc] = serving

    def _is_keeper(self, association: ObservedProfileAssociation) -> bool:
        return self.keeper is not None and association.profile_id == self.keeper.id

    def _held(self) -> list[ObservedProfileResource]:
        if self.keeper is None:
            return []
        return [r for r in self.profiles.resources if r.profile_id == self.keeper.id]

    def _wanted_resources(self, held: list[ObservedProfileResource]) -> dict[str, str]:
        """Domain -> ARN of the rule of ours the Profile must hold: the rule that forwards the
        domain where the hub wants it (the one already held first), and rules kept for an
        unreadable hub."""
        in_profile = {r.resource_arn for r in held if r.status not in ("DELETING", FAILED)}
        targets = {rule.domain: rule.target_region for rule in self.rules}
        candidates: dict[str, list[ObservedRule]] = defaultdict(list)
        for rule in self.hub_rules:
            target = rule_target(rule, self.mesh_id)
            if targets.get(rule.domain) == target or (
                rule.domain not in targets and target in self.protected
            ):
                candidates[rule.domain].append(rule)
        return {
            domain: min(rules, key=lambda r: (r.arn not in in_profile, r.id)).arn
            for domain, rules in candidates.items()
        }

    def profile_vpcs(self) -> list[str]:
        """The VPCs that get the rules through our Profile; a VPC with a Profile not ours
        falls back to rules (noted); none while the Profile would hold nothing (`idle`)."""
        if self.idle:
            self.remote_needed = False
            return []
        found = []
        for vpc, mode in self.modes.items():
            if mode != "profile":
                continue
            association = self.by_vpc.get(vpc)
            if association is not None and not self._is_keeper(association):
                self.notes.append(
                    f"{self.where}: {vpc} keeps Profile {association.profile_id} (not ours):"
                    " the hub's rules are associated with it directly instead"
                )
                continue
            found.append(vpc)
        return self._within_quotas(found)

    def _within_quotas(self, found: list[str]) -> list[str]:
        """`found` as the Profile quotas allow (see the module's invariants)."""
        wanted = bool(found) or self.remote_needed
        if self.keeper is None and wanted:
            owned = sum(1 for p in self.profiles.profiles if p.share_status != "SHARED_WITH_ME")
            if owned >= MAX_PROFILES_PER_REGION:
                return self._refuse(
                    f"the account has {owned} Profiles, the quota is {MAX_PROFILES_PER_REGION}"
                    " per account and Region"
                )
            self._near("Profiles of the account", owned + 1, MAX_PROFILES_PER_REGION)
        if wanted or self.keeper is not None:
            rules = len(self.wanted)
            if rules > MAX_RULES_PER_PROFILE:
                return self._refuse(
                    f"the Profile would hold {rules} rules, over the quota of"
                    f" {MAX_RULES_PER_PROFILE} rules per Profile"
                )
            self._near("rules in the Profile", rules, MAX_RULES_PER_PROFILE)
        held = [vpc for vpc in found if vpc in self.by_vpc]
        new = len(found) - len(held) + (self.remote_new if self.remote_needed else 0)
        local = sum(1 for a in self.by_vpc.values() if self._is_keeper(a))
        total = local + self.remote_associated + new
        if new and total > MAX_VPCS_PER_PROFILE:
            self.closed = True
            self.failed.append(
                f"{self.where}: {new} more VPCs would take the Profile to {total} VPCs, over the"
                f" quota of {MAX_VPCS_PER_PROFILE} VPCs per Profile: none is associated, they"
                " get the rules associated directly"
            )
            return held
        self._near("VPCs associated with the Profile", total, MAX_VPCS_PER_PROFILE)
        return found

    def _refuse(self, why: str) -> list[str]:
        """No Profile change that AWS would refuse: its VPCs fall back to rules."""
        self.refused = self.closed = True
        self.remote_needed = False
        self.failed.append(f"{self.where}: {why}: its VPCs get the rules associated directly")
        return []

    def _near(self, what: str, used: int, quota: int) -> None:
        if used >= NEAR_QUOTA * quota:
            self.notes.append(
                f"{self.where}: {used} {what} after this plan, close to the quota of {quota}"
            )

    def narrowed(self, rule: DesiredRule, profile_vpcs: Collection[str]) -> DesiredRule:
        """The rule's VPCs that still need it associated directly: those of `rules`, and those
        of `profile` the Profile does not serve yet for the domain, while they have it."""
        keep = {
            vpc
            for vpc in rule.vpc_ids
            if vpc not in profile_vpcs
            or (rule.domain not in self.served[vpc] and rule.domain in self.direct[vpc])
        }
        return replace(rule, vpc_ids=frozenset(keep))

    def plan(self, profile_vpcs: list[str]) -> None:
        keeper_id = self.keeper.id if self.keeper else None
        needed = bool(profile_vpcs) or self.remote_needed
        if needed and self.keeper is None:
            self.changes.append(
                self._change(ChangeKind.CREATE_PROFILE, None, "VPCs use the hub's Profile")
            )
        held = any(self._is_keeper(a) for a in self.by_vpc.values()) or self.remote_held
        if needed or held:
            # The rules stay in the Profile while any VPC holds it (on its way out included);
            # an unused Profile is deleted with them (DeleteProfile asks only that no VPC
            # holds it).
            self._plan_resources(keeper_id)
        for vpc in profile_vpcs:
            self._plan_association(vpc, keeper_id)
        self._retire_associations(profile_vpcs)

    def _plan_resources(self, keeper_id: str | None) -> None:
        held = {r.resource_arn: r.status for r in self._held()}
        wanted = set(self.wanted.values())
        domain_of = {r.arn: r.domain for r in self.hub_rules}
        for arn, status in sorted(held.items()):
            if status == FAILED:
                self.failed.append(f"{self.where}: Profile {keeper_id} holds {arn} as FAILED")
            elif status in IN_FLIGHT:
                self.pending.append(f"{self.where}: Profile rule {arn} {status}")
            elif arn not in wanted:
                self.changes.append(
                    self._change(
                        ChangeKind.PROFILE_REMOVE_RULE,
                        keeper_id,
                        "rule no longer wanted in the Profile",
                        resources=(arn,),
                        domain=domain_of.get(arn, ""),
                    )
                )
        stale = {domain_of.get(a) for a, s in held.items() if a not in wanted and s != "DELETING"}
        for domain, arn in sorted(self.wanted.items()):
            if arn in held or self.refused:
                continue
            if domain in stale:  # one rule per domain in a Profile: the old one leaves first
                self.notes.append(f"{self.where}: the Profile changes its rule for {domain}")
            self.changes.append(
                self._change(
                    ChangeKind.PROFILE_ADD_RULE,
                    keeper_id,
                    "rule not in the Profile",
                    resources=(arn,),
                    domain=domain,
                )
            )

    def _plan_association(self, vpc: str, keeper_id: str | None) -> None:
        association = self.by_vpc.get(vpc)
        if association is None:
            self.changes.append(
                self._change(
                    ChangeKind.ASSOCIATE_PROFILE, keeper_id, "VPC uses the Profile", vpc_id=vpc
                )
            )
        elif association.status == FAILED:
            self.failed.append(f"{self.where}: Profile association {association.id} FAILED")
        elif association.status in IN_FLIGHT:
            self.pending.append(f"{self.where}: Profile on {vpc} {association.status}")

    def _retire_associations(self, profile_vpcs: list[str]) -> None:
        """Our Profile leaves a VPC that no longer uses it once the VPC has every hub domain
        associated directly (or is no longer the hub's at all); an unused Profile is deleted
        once no VPC of the account holds it or keeps it after this plan, right after the
        last ones leave (the apply waits for them to be gone): a location whose last rule of
        ours goes in the same plan may never be read for its Profiles again."""
        if self.keeper is None:
            return
        ours = [a for a in self.by_vpc.values() if self._is_keeper(a)]
        wanted_domains = {rule.domain for rule in self.rules}
        staying = bool(profile_vpcs)
        for association in sorted(ours, key=lambda a: a.vpc_id):
            vpc = association.vpc_id
            if vpc in profile_vpcs:
                continue
            if association.status in IN_FLIGHT:
                self.pending.append(f"{self.where}: Profile on {vpc} {association.status}")
                staying |= association.status != "DELETING"
                continue
            if vpc in self.modes:  # a domain a rule not ours answers there needs nothing of ours
                missing = sorted(wanted_domains - self.direct[vpc] - set(self.others[vpc]))
                if missing:
                    self.notes.append(
                        f"{self.where}: {vpc} keeps our Profile until {missing[0]} is"
                        " associated with it directly"
                    )
                    staying = True
                    continue
                reason = "VPC uses rules associated directly"
            else:
                reason = PROFILE_LEAVES
            self.changes.append(
                self._change(ChangeKind.DISASSOCIATE_PROFILE, self.keeper.id, reason, vpc_id=vpc)
            )
        if not (staying or self.remote_needed or self.remote_held):
            self.changes.append(
                self._change(ChangeKind.DELETE_PROFILE, self.keeper.id, "no VPC uses the Profile")
            )

    def _change(
        self,
        kind: ChangeKind,
        profile_id: str | None,
        reason: str,
        *,
        vpc_id: str | None = None,
        resources: tuple[str, ...] = (),
        domain: str = "",
    ) -> Change:
        return Change(
            kind,
            self.state.region,
            domain,
            vpc_id=vpc_id,
            name=profile_name(self.mesh_id),
            reason=reason,
            account=self.state.account,
            resources=resources,
            profile_id=profile_id,
        )


class _ReceivedProfile:
    """The hub's Profile where it is shared (another account of the Region): associated with
    the shared VPCs of `profile` delivery, taken off the others once they have every hub
    domain through the shared rules. The owner's Profile and what it serves come from
    `owner` (its location was read too). With `tags_unread`, a VPC on our Profile that `modes`
    does not name keeps it: whether it still joins by tag is unknown."""

    def __init__(
        self,
        state: RegionState,
        owner: _LocationProfiles,
        modes: Mapping[str, Delivery],
        *,
        tags_unread: bool = False,
    ) -> None:
        assert state.profiles is not None
        assert owner.keeper is not None
        self.state = state
        self.where = state.location
        self.owner = owner
        self.keeper = owner.keeper
        self.modes = modes
        self.tags_unread = tags_unread
        self.visible = any(p.arn == self.keeper.arn for p in state.profiles.profiles)
        self.by_vpc = {a.vpc_id: a for a in state.profiles.associations}
        hub_arns = {rule.arn for rule in owner.hub_rules}
        shared = {r.id: r.domain for r in shared_with_us(state, owner.mesh_id) if r.arn in hub_arns}
        self.direct: dict[str, set[str]] = defaultdict(set)
        for association in state.associations:
            if association.status in IN_PLACE and association.rule_id in shared:
                self.direct[association.vpc_id].add(shared[association.rule_id])
        self.others = _held_by_others(state, owner.mesh_id)
        self.changes: list[Change] = []
        self.notes: list[str] = []
        self.pending: list[str] = []
        self.failed: list[str] = []

    def profile_vpcs(self) -> list[str]:
        found = []
        for vpc, mode in sorted(self.modes.items()):
            association = self.by_vpc.get(vpc)
            if mode != "profile":
                continue
            if association is not None and association.profile_id != self.keeper.id:
                self.notes.append(
                    f"{self.where}: {vpc} keeps Profile {association.profile_id} (not ours):"
                    " the hub's shared rules are associated with it instead"
                )
                continue
            if self.owner.refused or self.owner.idle or (self.owner.closed and association is None):
                continue  # over a Profile quota (reported by the owner): the shared rules
            found.append(vpc)
        return found

    def serving(self, vpc: str) -> set[str]:
        """The hub domains our Profile answers in the VPC (none until it is COMPLETE there)."""
        association = self.by_vpc.get(vpc)
        if association is None or association.profile_id != self.keeper.id:
            return set()
        return set(self.owner.serving) if association.status == COMPLETE else set()

    def served(self, vpc: str) -> bool:
        """Whether our Profile answers every hub domain in the VPC."""
        wanted = {rule.domain for rule in self.owner.rules}
        return bool(wanted) and wanted <= self.serving(vpc)

    def unlisted(self, vpc: str) -> bool:
        """A VPC of `profile` delivery leaves the share's VPCs (its shared rules go, or are
        never associated) once the Profile serves it, or while it has none of them."""
        return self.served(vpc) or not self.direct[vpc]

    def plan(self, profile_vpcs: list[str]) -> None:
        for vpc in profile_vpcs:
            association = self.by_vpc.get(vpc)
            if association is None and not self.visible:
                self.notes.append(f"{self.where}: waiting for the hub's Profile to be shared")
            elif association is None:
                self.changes.append(self._change(ChangeKind.ASSOCIATE_PROFILE, vpc))
            elif association.status == FAILED:
                self.failed.append(f"{self.where}: Profile association {association.id} FAILED")
            elif association.status in IN_FLIGHT:
                self.pending.append(f"{self.where}: Profile on {vpc} {association.status}")
        wanted = {rule.domain for rule in self.owner.rules}
        for vpc, association in sorted(self.by_vpc.items()):
            if association.profile_id != self.keeper.id or vpc in profile_vpcs:
                continue
            if association.status in IN_FLIGHT:
                self.pending.append(f"{self.where}: Profile on {vpc} {association.status}")
            elif vpc not in self.modes and self.tags_unread:
                self.notes.append(
                    f"{self.where}: {vpc} keeps our Profile while the account's tags cannot be read"
                )
            elif vpc not in self.modes:  # it leaves the mesh: counted by the guard
                self.changes.append(
                    self._change(ChangeKind.DISASSOCIATE_PROFILE, vpc, PROFILE_LEAVES)
                )
            elif wanted <= self.direct[vpc] | set(self.others[vpc]):
                self.changes.append(self._change(ChangeKind.DISASSOCIATE_PROFILE, vpc))
            else:
                self.notes.append(
                    f"{self.where}: {vpc} keeps our Profile until the shared rules are on it"
                )

    def _change(self, kind: ChangeKind, vpc: str, leaves: str = "") -> Change:
        reason = "shared VPC uses the hub's Profile"
        if kind is ChangeKind.DISASSOCIATE_PROFILE:
            reason = leaves or "shared VPC no longer uses the hub's Profile"
        return Change(
            kind,
            self.state.region,
            "",
            vpc_id=vpc,
            name=profile_name(self.owner.mesh_id),
            reason=reason,
            account=self.state.account,
            profile_id=self.keeper.id,
            owner=self.keeper.arn.split(":")[4],
        )


def shared_deliveries(
    hub: HubItem, default: Delivery, joined: Joined | None = None
) -> dict[str, dict[str, Delivery]]:
    """By receiving account: how each VPC of another account gets the hub's rules: a
    `shared_vpcs` entry by its `delivery`, then the item's, then `default`; a VPC that joined
    by tag (`joined`) by the item's, then `default`."""
    mode = hub.delivery or default
    found: dict[str, dict[str, Delivery]] = defaultdict(dict)
    for account, vpcs in (joined.shared(hub.region) if joined else {}).items():
        found[account] |= dict.fromkeys(vpcs, mode)
    for shared in hub.shared_vpcs:
        found[shared.account][shared.vpc_id] = shared.delivery or mode
    return found


def _tags_unread(hub: HubItem, joined: Joined | None) -> frozenset[str]:
    """The other accounts of the hub's Region whose tags could not be read: whether their VPCs
    still join is unknown."""
    unread = joined.unread if joined else frozenset()
    return frozenset(
        account
        for region, account in map(split_location, unread)
        if region == hub.region and account != hub.account
    )


def plan_profiles(
    mesh_id: str,
    hub_set: HubSet,
    desired: Desired,
    states: Mapping[str, RegionState],
    scope: Collection[str],
    default: Delivery,
    joined: Joined | None = None,
    swept: Collection[str] = (),
) -> ProfilePlan:
    """Narrow the hub rules' VPCs to the direct associations still needed, and plan the
    Profiles of every location in `scope` whose Profiles were read; `joined`: the VPCs that
    joined by tag, and where the tags could not be read; `swept`: the locations every full
    pass reads, whatever rules of ours lead there (`ProfilePlan.lingering`)."""
    out = ProfilePlan(desired)
    hubs = {hub.location: hub for hub in hub_set.enabled.values() if hub.outbound_endpoint_id}
    rules_at: dict[str, list[DesiredRule]] = defaultdict(list)
    for rule in desired.rules:
        if not rule.source:
            rules_at[rule.location].append(rule)
    narrowed: dict[int, DesiredRule] = {}
    owners: dict[str, _LocationProfiles] = {}
    for where in sorted(scope):
        state = states.get(where)
        if state is None or state.error or state.profiles is None:
            continue
        if state.region in desired.frozen_regions:
            continue
        hub = hubs.get(where)
        planner = _LocationProfiles(
            mesh_id,
            state,
            hub,
            rules_at.get(where, []),
            default,
            desired.protected_targets,
            workload_vpcs(mesh_id, hub, joined, states) if hub else (),
        )
        owners[where] = planner
        if hub is not None:
            _remote_use(planner, hub, states, default, joined)
        elif planner.keeper is not None:  # no hub here any more: other accounts let go first
            planner.remote_held = _held_elsewhere(state, planner.keeper, states, scope)
        profile_vpcs = planner.profile_vpcs()
        for rule in rules_at.get(where, []):
            narrowed[id(rule)] = planner.narrowed(rule, profile_vpcs)
        planner.plan(profile_vpcs)
        out.conflicts += _overridden(state, profile_vpcs, planner, planner.others)
        if profile_vpcs or planner.keeper is not None:
            out.active.add(where)
        for vpc in profile_vpcs:
            out.serve(where, vpc, planner.served[vpc])
        if planner.changes:
            out.changes[where] = planner.changes
        out.notes += planner.notes
        out.pending += planner.pending
        out.failed += planner.failed
    if narrowed:
        rules = tuple(narrowed.get(id(rule), rule) for rule in desired.rules)
        out.desired = replace(desired, rules=rules)
    _plan_received(out, hub_set, states, scope, owners, default, joined, swept)
    return out


def _held_by_others(state: RegionState, mesh_id: str) -> dict[str, dict[str, str]]:
    """By VPC of the location: domain -> the rule not ours associated with it for the domain
    (which answers there before any Profile's)."""
    ours = {rule.id for rule in managed_rules(state, mesh_id) + shared_with_us(state, mesh_id)}
    theirs = {r.id: r for r in state.rules if r.id not in ours and r.status != GONE}
    held: dict[str, dict[str, str]] = defaultdict(dict)
    for association in sorted(state.associations, key=lambda a: (a.vpc_id, a.rule_id)):
        if association.status != GONE and association.rule_id in theirs:
            domain = theirs[association.rule_id].domain
            held[association.vpc_id].setdefault(domain, association.rule_id)
    return held


def _overridden(
    state: RegionState,
    profile_vpcs: Collection[str],
    owner: _LocationProfiles,
    held: Mapping[str, Mapping[str, str]],
) -> list[Conflict]:
    """The domains our Profile (`owner`'s) holds for `profile_vpcs` of `state`'s location that
    a rule not ours associated with the VPC answers instead (`held`: `_held_by_others`): one
    conflict each."""
    our_rule = {rule.arn: rule.id for rule in owner.hub_rules}
    return [
        Conflict(
            state.region,
            domain,
            vpc,
            held[vpc][domain],
            our_rule.get(arn),
            state.account,
            through_profile=True,
        )
        for vpc in sorted(profile_vpcs)
        for domain, arn in sorted(owner.wanted.items())
        if domain in held.get(vpc, {})
    ]


def _remote_use(
    owner: _LocationProfiles,
    hub: HubItem,
    states: Mapping[str, RegionState],
    default: Delivery,
    joined: Joined | None,
) -> None:
    """Whether shared VPCs need the owner's Profile, or still hold it (a receiving location
    that could not be read counts as holding it, and so does an account whose tags could not
    be read that a share of ours already gives the Profile to: kept, never added), and how
    many VPCs of other accounts hold it or would take it (for its VPC quota)."""
    if owner.keeper is not None and (unread := _tags_unread(hub, joined)):
        arn = owner.keeper.arn
        owner.remote_held |= any(
            arn in share.resources and share.principals & unread for share in owner.state.shares
        )
    for account, modes in shared_deliveries(hub, default, joined).items():
        owner.remote_needed |= "profile" in modes.values()
        state = states.get(location(hub.region, account))
        if state is None or state.error or state.profiles is None:
            owner.remote_held |= owner.keeper is not None
            continue
        associated = {a.vpc_id for a in state.profiles.associations}
        owner.remote_new += sum(
            1 for vpc, mode in modes.items() if mode == "profile" and vpc not in associated
        )
        if owner.keeper is not None:
            owner.remote_held |= any(
                a.profile_id == owner.keeper.id for a in state.profiles.associations
            )
    if owner.keeper is not None:
        owner.remote_associated = sum(
            1
            for where, state in states.items()
            if where != owner.where and state.region == hub.region and state.profiles
            for a in state.profiles.associations
            if a.profile_id == owner.keeper.id
        )


def _plan_received(
    out: ProfilePlan,
    hub_set: HubSet,
    states: Mapping[str, RegionState],
    scope: Collection[str],
    owners: Mapping[str, _LocationProfiles],
    default: Delivery,
    joined: Joined | None,
    swept: Collection[str],
) -> None:
    """The hub's Profile in the accounts of its shared VPCs; shared VPCs of `profile` delivery
    leave the shares' VPCs once the Profile serves them (their shared rules can go), or while
    they have no shared rule (they wait for the Profile)."""
    dropped: dict[tuple[str, str], set[str]] = defaultdict(set)  # (Region, account) -> VPCs
    for hub in sorted(hub_set.enabled.values(), key=lambda h: h.region):
        deliveries = shared_deliveries(hub, default, joined)
        for account, modes in deliveries.items():
            for vpc, mode in modes.items():  # served by nothing until the Profile is there
                if mode == "profile":
                    out.serve(location(hub.region, account), vpc, ())
        owner = owners.get(hub.location)
        if owner is None or owner.keeper is None:
            continue
        if owner.remote_needed or owner.remote_held:
            out.also_shared[hub.location] = frozenset({owner.keeper.arn})
        unread = _tags_unread(hub, joined)
        for account, modes in sorted(deliveries.items()):
            where = location(hub.region, account)
            state = states.get(where)
            if where not in scope or state is None or state.error or state.profiles is None:
                continue
            receiver = _ReceivedProfile(state, owner, modes, tags_unread=account in unread)
            profile_vpcs = receiver.profile_vpcs()
            receiver.plan(profile_vpcs)
            out.conflicts += _overridden(state, profile_vpcs, owner, receiver.others)
            for vpc in profile_vpcs:
                out.serve(where, vpc, receiver.serving(vpc))
            dropped[(hub.region, account)] |= {v for v in profile_vpcs if receiver.unlisted(v)}
            out.active.add(where)
            if receiver.changes:
                out.changes.setdefault(where, []).extend(receiver.changes)
            out.notes += receiver.notes
            out.pending += receiver.pending
            out.failed += receiver.failed
        staying = set(deliveries) | unread
        holders = _holders_leaving(owner.state, owner.keeper, states, scope, staying)
        _let_go(out, owner, holders, states)
    enabled = {hub.location for hub in hub_set.enabled.values()}
    for where, owner in sorted(owners.items()):  # a hub disabled or gone: every holder
        if owner.keeper is not None and where not in enabled:
            _let_go(out, owner, _holders_leaving(owner.state, owner.keeper, states, scope), states)
            deleted = any(c.kind is ChangeKind.DELETE_PROFILE for c in out.changes.get(where, ()))
            found_again = where in swept and owner.state.region not in hub_set.item_regions
            if not deleted and found_again:
                out.lingering[where] = owner.keeper.id
    if any(dropped.values()):
        shares = tuple(
            replace(s, vpc_ids=s.vpc_ids - dropped[(s.region, s.principal)])
            for s in out.desired.shares
        )
        out.desired = replace(out.desired, shares=shares)


def _held_elsewhere(
    owner: RegionState,
    keeper: ObservedProfile,
    states: Mapping[str, RegionState],
    scope: Collection[str],
) -> bool:
    """Whether VPCs of other accounts may still hold the owner's Profile: a location read that
    holds it, or one a share of ours gives it to whose Profiles were not read (unknown)."""
    if _holders_leaving(owner, keeper, states, scope):
        return True
    given = {
        location(owner.region, principal)
        for share in owner.shares
        if keeper.arn in share.resources
        for principal in share.principals
    }
    return any(  # an account that has not enabled the Region has no VPC there to hold it
        (found := states.get(where)) is None
        or (not found.not_enabled and (found.error is not None or found.profiles is None))
        for where in given - {owner.location}
    )


def _let_go(
    out: ProfilePlan,
    owner: _LocationProfiles,
    holders: Collection[str],
    states: Mapping[str, RegionState],
) -> None:
    """Our Profile (`owner`'s) leaves the VPCs of `holders` (locations of other accounts) before
    the share stops naming them."""
    for where in holders:
        receiver = _ReceivedProfile(states[where], owner, {})
        receiver.plan([])
        out.active.add(where)
        out.changes.setdefault(where, []).extend(receiver.changes)
        out.pending += receiver.pending


def _holders_leaving(
    owner: RegionState,
    keeper: ObservedProfile,
    states: Mapping[str, RegionState],
    scope: Collection[str],
    staying: Collection[str] = (),
) -> list[str]:
    """The readable locations of other accounts of the owner's Region whose VPCs hold its
    Profile (`keeper`) though none of theirs uses its hub any more (their accounts not
    `staying`: neither receiving nor unread)."""
    return [
        where
        for where, state in sorted(states.items())
        if state.region == owner.region
        and state.account != owner.account
        and state.account not in staying
        and where in scope
        and not state.error
        and state.profiles is not None
        and any(a.profile_id == keeper.id for a in state.profiles.associations)
    ]


def with_profile_changes(plan: Plan, profiles: ProfilePlan) -> Plan:
    """The plan with each location's Profile changes after its creates, updates and
    associations, and before its first disassociation, unshare or deletion."""
    changes: list[Change] = []
    placed: set[str] = set()
    for change in plan.changes:
        if (
            change.kind is ChangeKind.DISASSOCIATE
            and (change.location, change.vpc_id, change.domain) in profiles.served
        ):
            change = replace(change, reason=SERVED_BY_PROFILE)
        where = change.location
        if where not in placed and where in profiles.changes and change.kind in _BREAKING:
            changes.extend(profiles.changes[where])
            placed.add(where)
        changes.append(change)
    by_location: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        by_location[change.location].append(change)
    for where, extra in profiles.changes.items():
        if where not in placed:
            by_location[where].extend(extra)
    ordered = [change for where in sorted(by_location) for change in by_location[where]]
    return replace(
        plan,
        changes=tuple(ordered),
        conflicts=plan.conflicts + tuple(profiles.conflicts),
        notes=plan.notes + tuple(profiles.notes),
    )
