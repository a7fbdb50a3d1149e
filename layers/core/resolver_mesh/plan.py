"""The planner: desired rules + observed Regions -> an ordered list of changes. Pure, no I/O.

Invariants:
- Only rules carrying this mesh's ownership marker are ever updated, disassociated or deleted.
  Rules of other owners (other meshes included) are only read, to detect conflicts.
- Nothing changes in a location (an account's Region) that is out of scope, could not be read,
  or is frozen; rules that target a protected Region (an unreadable hub) and the rules of a
  frozen spoke are kept as they are. In a Region without a hub item, where only the trail of
  our rules leads, no rule of ours is deleted while a location there in scope was not read:
  the rules kept are what lead the next pass back to sweep it.
- Per location the order is make before break: creates, in-place updates and shares, then
  associations (a rule of ours leaves a VPC right before another of ours takes its place for
  the same domain), then unshares, disassociations, deletions. Across accounts too: an own rule
  of ours retiring from a VPC that the hub's share lists, for a domain the hub forwards, stays
  on it until the hub's shared rule for the domain is planned there (`making_way`); from a VPC
  our Route 53 Profile is to serve, until the Profile answers the domain there; a parent domain
  of the hub's domains (a central spoke's), until every domain under it is answered there.
- At most one managed rule per (location, source, domain) survives; targets change in place,
  never by re-creation. A rule is only replaced when the hub it targets changes.
- Rules shared with us (`SHARED_WITH_ME`) are never managed where they are received; there we
  only associate and disassociate the hub's shared rules with the listed VPCs.
- A receiving location that accepts an invitation to a share of ours also associates, in the
  same plan and after the acceptance, the rules the hub keeps that this share holds (as read
  where the hub is), with the same conflict rules: an association that waits for its share
  names the invitation (`share_arn`). Nothing is accepted or associated from a share that is
  not ours, or while the hub's location is not read.
- A plan for a state it produced is empty (idempotency).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from resolver_mesh.desired import Desired, adoptable
from resolver_mesh.models import (
    Change,
    ChangeKind,
    Conflict,
    DesiredRule,
    DesiredShare,
    ObservedInvitation,
    ObservedRule,
    ObservedShare,
    Plan,
    RegionState,
    location,
    split_location,
)
from resolver_mesh.names import owned_source, owned_target_region, share_name

GONE = "DELETING"
SHARED_WITH_ME = "SHARED_WITH_ME"
SHARED_BY_ME = "SHARED_BY_ME"
# The reason of a spoke's parent-domain rule leaving a VPC that has the hub's rule for every
# domain under it (the apply keeps it there if one of those did not come in the same apply).
PARENT_MAKES_WAY = "makes way for the hub's rules of every domain under it"
# A rule association in place: COMPLETE, or OVERRIDDEN (a status AWS documents for rule
# associations without saying when; if a Profile rule overrides it, it answers once the
# Profile goes).
IN_PLACE = ("COMPLETE", "OVERRIDDEN")
# The reason of a direct association's removal that our Route 53 Profile makes needless (the
# guard does not count it as lost).
SERVED_BY_PROFILE = "the VPC's Route 53 Profile serves it"
# The changes that give the hub a rule its share does not hold yet.
MADE_HERE = frozenset({ChangeKind.CREATE_RULE, ChangeKind.ADOPT_RULE})


@dataclass
class _RegionPlan:
    """The phases of one location's changes, concatenated in order at the end."""

    upserts: list[Change] = field(default_factory=list)
    associations: list[Change] = field(default_factory=list)
    unshares: list[Change] = field(default_factory=list)
    disassociations: list[Change] = field(default_factory=list)
    deletions: list[Change] = field(default_factory=list)
    # Rules retired here but kept until the accounts they are shared with let go (their
    # location): deleted by a later pass, so the guard counts them with this plan's deletions.
    deferred: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def changes(self) -> list[Change]:
        """The phases in order; a disassociation that frees a VPC for another rule of ours for
        the same domain moves right before that association (AWS allows one per domain).
        Linear: the disassociations are grouped by (domain, VPC) once."""
        freeing: dict[tuple[str, str | None], list[Change]] = {}
        for change in self.disassociations:
            freeing.setdefault((change.domain, change.vpc_id), []).append(change)
        associations: list[Change] = []
        for change in self.associations:
            if change.kind is ChangeKind.ASSOCIATE:
                associations.extend(freeing.pop((change.domain, change.vpc_id), ()))
            associations.append(change)
        later = [d for d in self.disassociations if (d.domain, d.vpc_id) in freeing]
        return self.upserts + associations + self.unshares + later + self.deletions


def rule_target(rule: ObservedRule, mesh_id: str) -> str | None:
    """The Region a rule of ours forwards to; None when the rule is not ours.

    Ours means: our marker in its CreatorRequestId, or adopted (our owner and target tags).
    """
    marked = owned_target_region(rule.creator_request_id, mesh_id)
    if marked:
        return marked
    return rule.target_tag if rule.owner_tag == mesh_id and rule.target_tag else None


def rule_source(rule: ObservedRule, mesh_id: str) -> str:
    """The spoke VPC a rule of ours serves, or "" for the hub's rules (adopted ones included)."""
    return owned_source(rule.creator_request_id, mesh_id)


def managed_rules(state: RegionState, mesh_id: str) -> list[ObservedRule]:
    """Our live FORWARD rules in a location (rules being deleted are already gone; rules
    shared with this account belong to the account that shared them)."""
    return [
        rule
        for rule in state.rules
        if rule.status != GONE
        and rule.rule_type == "FORWARD"
        and rule.share_status != SHARED_WITH_ME
        and rule_target(rule, mesh_id)
    ]


def shared_with_us(state: RegionState, mesh_id: str) -> list[ObservedRule]:
    """The hub rules of ours that another account of the mesh shares with this one."""
    return [
        rule
        for rule in state.rules
        if rule.share_status == SHARED_WITH_ME
        and rule.status != GONE
        and rule_target(rule, mesh_id)
        and not rule_source(rule, mesh_id)
    ]


_Key = tuple[str, str]  # (source, domain): "" is the hub, else the spoke's VPC id


@dataclass(frozen=True)
class _ByLocation:
    """`Desired` grouped once per plan, so that planning a location reads only its own part
    and a plan costs O(locations + rules + shares), not their product. Keys are locations,
    except `hub_domains` (by Region: the domains of hub rules, in whatever account)."""

    rules: Mapping[str, list[DesiredRule]]
    frozen_sources: Mapping[str, set[str]]
    owned_shares: Mapping[str, list[DesiredShare]]  # by the hub's (owner's) location
    received_shares: Mapping[str, list[DesiredShare]]  # by the receiving account's location
    hub_domains: Mapping[str, set[str]]
    profile_serving: Mapping[str, dict[str, frozenset[str]]]  # location -> VPC -> domains

    @classmethod
    def of(
        cls,
        desired: Desired,
        profile_serving: Mapping[tuple[str, str], frozenset[str]] | None = None,
    ) -> _ByLocation:
        rules: dict[str, list[DesiredRule]] = defaultdict(list)
        hub_domains: dict[str, set[str]] = defaultdict(set)
        for rule in desired.rules:
            rules[rule.location].append(rule)
            if not rule.source:
                hub_domains[rule.region].add(rule.domain)
        frozen_sources: dict[str, set[str]] = defaultdict(set)
        for where, source in desired.frozen_sources:
            frozen_sources[where].add(source)
        owned: dict[str, list[DesiredShare]] = defaultdict(list)
        received: dict[str, list[DesiredShare]] = defaultdict(list)
        for share in desired.shares:
            owned[location(share.region, share.owner)].append(share)
            received[location(share.region, share.principal)].append(share)
        serving: dict[str, dict[str, frozenset[str]]] = defaultdict(dict)
        for (where, vpc), domains in (profile_serving or {}).items():
            serving[where][vpc] = domains
        return cls(rules, frozen_sources, owned, received, hub_domains, serving)


class _RegionPlanner:
    def __init__(
        self,
        mesh_id: str,
        state: RegionState,
        desired: Desired,
        adopt: bool,
        home_account: str,
        receivers: _Receivers,
        by_location: _ByLocation,
    ) -> None:
        self.mesh_id = mesh_id
        self.receivers = receivers
        self.hub_keepers: dict[str, ObservedRule] = {}  # domain -> the hub rule that stays
        self.adopt = adopt
        self.state = state
        self.region = state.region
        self.account = state.account
        self.where = state.location
        self.desired = desired
        self.home_account = home_account
        self.protected_targets = desired.protected_targets
        self.by_location = by_location
        self.also_shared: Mapping[str, frozenset[str]] = {}
        self.unread_here: Sequence[str] = ()  # see `_unswept`
        self.lingering_profile = ""  # our Profile here, not deleted yet: see `make_plan`
        self.frozen_sources = by_location.frozen_sources.get(self.where, set())
        self.wanted: dict[_Key, DesiredRule] = {
            (rule.source, rule.domain): rule for rule in by_location.rules.get(self.where, ())
        }
        self.vpcs_of: dict[str, set[str]] = defaultdict(set)
        for association in state.associations:
            if association.status != GONE:
                self.vpcs_of[association.rule_id].add(association.vpc_id)
        self.ours: dict[_Key, list[ObservedRule]] = defaultdict(list)
        for rule in managed_rules(state, mesh_id):
            self.ours[(rule_source(rule, mesh_id), rule.domain)].append(rule)
        self.shared = shared_with_us(state, mesh_id)
        ours_ids = {rule.id for rules in self.ours.values() for rule in rules}
        ours_ids |= {rule.id for rule in self.shared}
        self.theirs: dict[str, list[ObservedRule]] = defaultdict(list)
        for rule in state.rules:
            if rule.id not in ours_ids and rule.status != GONE:
                self.theirs[rule.domain].append(rule)
        self.out = _RegionPlan()
        self.follows_whole = True  # whether `_follow` left nothing to the next pass
        # Own rules of ours retiring from VPCs that will get the hub's shared rule for the
        # domain instead: (domain, VPC) -> rule; settled once the shared rules are planned.
        self.making_way: dict[tuple[str, str], ObservedRule] = {}
        self.retiring_reasons: dict[str, str] = {}  # rule id -> why it retires
        self.received_vpcs = frozenset(
            vpc
            for share in by_location.received_shares.get(self.where, ())
            for vpc in share.vpc_ids
        )
        # VPC -> the hub domains our Profile answers there, for the VPCs it is to serve.
        self.profile_serving: Mapping[str, frozenset[str]] = by_location.profile_serving.get(
            self.where, {}
        )

    def target_of(self, rule: ObservedRule) -> str:
        return rule_target(rule, self.mesh_id) or ""

    def plan(self) -> _RegionPlan:
        for key in sorted(set(self.wanted) | set(self.ours)):
            source, domain = key
            if source in self.frozen_sources:
                continue
            want = self.wanted.get(key)
            if want is None:
                self._retire_unwanted(source, domain)
            else:
                self._converge(want)
        self._plan_share()
        return self.out

    def _retire_unwanted(self, source: str, domain: str) -> None:
        for rule in sorted(self.ours[(source, domain)], key=lambda r: r.id):
            if self.target_of(rule) in self.protected_targets:
                self.out.notes.append(
                    f"{self.where}: kept {rule.id} ({domain}): hub {self.target_of(rule)}"
                    " could not be read"
                )
                self._follow_vpcs(source, rule)
            elif self.unread_here:
                self.out.notes.append(
                    f"{self.where}: kept {rule.id} ({domain}): {self.region} has no hub item"
                    f" and {_a_few(self.unread_here)} could not be read; the rules of ours"
                    " there go in a pass that reads every location there"
                )
                self.out.deferred.append(self.where)
            elif self.lingering_profile and not source:
                self.out.notes.append(
                    f"{self.where}: kept {rule.id} ({domain}): {self.region} has no hub item and"
                    f" our Route 53 Profile {self.lingering_profile} there goes once the VPCs of"
                    " other accounts have let go of it; the rule leads that pass back"
                )
                self.out.deferred.append(self.where)
            else:
                self._retire(rule, f"no hub forwards {domain} in {self.where} any more")

    def _follow_vpcs(self, source: str, rule: ObservedRule) -> None:
        """A kept rule keeps its targets, but its associations still follow its source's VPCs
        (but for those our Profile already answers for its domain)."""
        source_vpcs = self.desired.source_vpcs.get((self.where, source))
        if source_vpcs is None:
            return
        associated = self.vpcs_of[rule.id]
        same_domain = self.theirs[rule.domain] + self.ours[(source, rule.domain)]
        others = [r for r in same_domain if r is not rule]
        for vpc_id in sorted(source_vpcs - associated):
            if rule.domain in self.profile_serving.get(vpc_id, ()):
                continue
            if not any(vpc_id in self.vpcs_of[r.id] for r in others):
                reason = "VPC not associated (rule kept as it is)"
                self.out.associations.append(
                    self._about(ChangeKind.ASSOCIATE, rule, reason, vpc_id)
                )
        for vpc_id in sorted(associated - source_vpcs):
            self.out.disassociations.append(
                self._disassociate(rule, vpc_id, "VPC no longer listed")
            )

    def _converge(self, want: DesiredRule) -> None:
        candidates = self.ours[(want.source, want.domain)]
        matching = [r for r in candidates if self.target_of(r) == want.target_region]
        keeper = min(
            matching,
            key=lambda r: (-len(self.vpcs_of[r.id] & want.vpc_ids), r.id),
            default=None,
        )
        kept = [
            r for r in candidates if r is not keeper and self.target_of(r) in self.protected_targets
        ]
        retiring = [r for r in candidates if r is not keeper and r not in kept]
        if keeper is None and want.targets is None:
            self.out.notes.append(
                f"{self.where}: cannot create a rule for {want.domain} yet: hub"
                f" {want.target_region} has no usable inbound IP"
            )
            return
        if keeper is None and self.adopt and not want.source:
            keeper = self._adopt(want)
        keeper_id = keeper.id if keeper else None
        if keeper is not None and not want.source:
            self.hub_keepers[want.domain] = keeper
        if keeper is None:
            self.out.upserts.append(self._change(ChangeKind.CREATE_RULE, want, None, "new"))
        else:
            self._update_in_place(want, keeper)

        associated = self.vpcs_of[keeper_id] if keeper_id else set()
        for vpc_id in sorted(want.vpc_ids - associated):
            theirs = [r for r in self.theirs[want.domain] if vpc_id in self.vpcs_of[r.id]]
            if theirs:
                self.out.conflicts.append(
                    Conflict(
                        self.region, want.domain, vpc_id, theirs[0].id, keeper_id, self.account
                    )
                )
                continue
            held = [r for r in kept if vpc_id in self.vpcs_of[r.id]]
            if held:
                self.out.notes.append(
                    f"{self.where}: {vpc_id} keeps {held[0].id} for {want.domain} while hub"
                    f" {self.target_of(held[0])} cannot be read"
                )
                continue
            for duplicate in retiring:
                if vpc_id in self.vpcs_of[duplicate.id]:
                    self.vpcs_of[duplicate.id].discard(vpc_id)
                    self.out.associations.append(
                        self._disassociate(
                            duplicate, vpc_id, f"make way for the rule of {want.target_region}"
                        )
                    )
            self.out.associations.append(
                self._change(ChangeKind.ASSOCIATE, want, keeper_id, "VPC not associated", vpc_id)
            )
        if keeper is not None:
            for vpc_id in sorted(associated - want.vpc_ids):
                self.out.disassociations.append(
                    self._disassociate(keeper, vpc_id, "VPC no longer listed")
                )
        for duplicate in retiring:
            reason = (
                "duplicate of " + keeper_id
                if keeper_id and self.target_of(duplicate) == want.target_region
                else f"{want.domain} now forwards to {want.target_region}"
            )
            self._retire(duplicate, reason)

    def _adopt(self, want: DesiredRule) -> ObservedRule | None:
        """Take over the best unowned rule for the domain, when adoption is enabled."""
        candidates = [r for r in self.theirs[want.domain] if adoptable(r)]
        chosen = min(
            candidates,
            key=lambda r: (-len(self.vpcs_of[r.id] & want.vpc_ids), r.id),
            default=None,
        )
        if chosen is None:
            return None
        self.theirs[want.domain].remove(chosen)
        adoption = Change(
            ChangeKind.ADOPT_RULE,
            self.region,
            want.domain,
            chosen.id,
            target_region=want.target_region,
            reason="adopted (ADOPT_UNMANAGED)",
            account=self.account,
        )
        self.out.upserts.append(adoption)
        return chosen

    def _update_in_place(self, want: DesiredRule, rule: ObservedRule) -> None:
        retarget = want.targets is not None and want.targets != rule.targets
        differs = [
            what
            for what, changed in (
                ("targets", retarget),
                ("outbound endpoint", want.endpoint_id != rule.endpoint_id),
                ("name", want.name != rule.name),
            )
            if changed
        ]
        if not differs:
            return
        change = self._change(
            ChangeKind.UPDATE_RULE, want, rule.id, " and ".join(differs) + " changed"
        )
        # Targets travel only when they change: an UPDATE without them never retargets.
        self.out.upserts.append(change if retarget else replace(change, targets=()))

    def _retire(self, rule: ObservedRule, reason: str) -> None:
        if rule.share_status == SHARED_BY_ME and (
            rule.arn in self.receivers.held or self.region in self.receivers.blind
        ):
            self.out.notes.append(
                f"{self.where}: kept {rule.id} ({rule.domain}) while another account may still"
                " use it through our share"
            )
            self.out.deferred.append(self.where)
            return
        own = rule.share_status != SHARED_WITH_ME
        for vpc_id in sorted(self.vpcs_of[rule.id]):
            if own and self._hub_takes_over(rule.domain, vpc_id):
                self.making_way[(rule.domain, vpc_id)] = rule  # see `_settle_making_way`
                continue
            self.out.disassociations.append(self._disassociate(rule, vpc_id, reason))
        if not any(r is rule for r in self.making_way.values()):
            self.out.deletions.append(self._about(ChangeKind.DELETE_RULE, rule, reason))
        else:
            self.retiring_reasons[rule.id] = reason

    def _hub_takes_over(self, domain: str, vpc_id: str) -> bool:
        """Whether the hub's rules will answer `domain` in `vpc_id` in place of a rule of ours
        retiring from it: the VPC gets them through the hub's share or our Profile, and the
        domain is one the hub forwards or a parent of some (a central spoke's parent domain;
        then also where the hub's own rules are associated in this location)."""
        through_hub = vpc_id in self.received_vpcs or vpc_id in self.profile_serving
        if domain in self.by_location.hub_domains.get(self.region, ()):
            return through_hub
        return bool(self._under(domain)) and (through_hub or vpc_id in self._hub_vpcs)

    def _under(self, parent: str) -> list[str]:
        """The domains the hub of this Region forwards that lie under `parent`."""
        hub_domains = self.by_location.hub_domains.get(self.region, ())
        return sorted(d for d in hub_domains if d.endswith("." + parent))

    @cached_property
    def _hub_vpcs(self) -> frozenset[str]:
        """The VPCs the hub's own rules of this location are meant for."""
        return frozenset(
            vpc for (source, _), want in self.wanted.items() if not source for vpc in want.vpc_ids
        )

    def _disassociate(self, rule: ObservedRule, vpc_id: str, reason: str) -> Change:
        return self._about(ChangeKind.DISASSOCIATE, rule, reason, vpc_id)

    def _about(
        self, kind: ChangeKind, rule: ObservedRule, reason: str, vpc_id: str | None = None
    ) -> Change:
        """A change to a rule of ours that exists (the association carries the rule's name)."""
        return Change(
            kind,
            self.region,
            rule.domain,
            rule_id=rule.id,
            vpc_id=vpc_id,
            name=rule.name if kind is ChangeKind.ASSOCIATE else None,
            target_region=self.target_of(rule),
            reason=reason,
            account=self.account,
            source=rule_source(rule, self.mesh_id),
            owner=rule.owner_id if rule.share_status == SHARED_WITH_ME else "",
        )

    def _change(
        self,
        kind: ChangeKind,
        want: DesiredRule,
        rule_id: str | None,
        reason: str,
        vpc_id: str | None = None,
    ) -> Change:
        """A change towards `want`; creates and updates carry the rule's desired fields."""
        with_rule_fields = kind in (ChangeKind.CREATE_RULE, ChangeKind.UPDATE_RULE)
        return Change(
            kind=kind,
            region=self.region,
            domain=want.domain,
            rule_id=rule_id,
            vpc_id=vpc_id,
            name=want.name,
            endpoint_id=want.endpoint_id if with_rule_fields else None,
            targets=tuple(sorted(want.targets or ())) if with_rule_fields else (),
            target_region=want.target_region,
            reason=reason,
            account=self.account,
            source=want.source,
        )

    # --- sharing through AWS RAM ---------------------------------------------------------

    def _account_id(self, account: str) -> str:
        return account or self.home_account

    def _plan_share(self) -> None:
        """As the hub's account: one share of ours holds the hub's live rules of this Region
        and the accounts its shared VPCs are in; nothing shared once no VPC needs it, nor while
        the share would hold nothing (no live rule, none created or adopted by this plan): a
        share of ours is read only where a VPC of another account needs it or a rule of ours
        is shared, so an empty one would never be read again."""
        principals = {
            self._account_id(share.principal)
            for share in self.by_location.owned_shares.get(self.where, ())
        }
        if "" in principals:
            self.out.notes.append(f"{self.where}: own account id unknown, nothing shared")
            return
        deleted = {c.rule_id for c in self.out.deletions}
        hub_rules = [
            rule for (source, _), rules in self.ours.items() if not source for rule in rules
        ]
        resources = {r.arn for r in hub_rules if r.arn and r.id not in deleted and principals}
        if principals:  # more of ours to share, such as the hub's Route 53 Profile
            resources |= self.also_shared.get(self.where, frozenset())
        creating = any(c.kind in MADE_HERE and not c.source for c in self.out.upserts)
        needed = bool(principals) and bool(resources or creating)
        shares = sorted(self.state.shares, key=lambda share: share.arn)
        keeper = shares[0] if shares and needed else None
        for extra in shares[1 if keeper else 0 :]:
            reason = (
                "duplicate share"
                if keeper
                else "the hub has no rule to share"
                if principals
                else "no VPC of another account uses these rules"
            )
            self.out.unshares.append(
                self._share_change(
                    ChangeKind.DELETE_SHARE, extra, reason, extra.resources, extra.principals
                )
            )
        if keeper is None and needed:
            self.out.upserts.append(
                Change(
                    ChangeKind.CREATE_SHARE,
                    self.region,
                    "",
                    name=share_name(self.mesh_id),
                    resources=tuple(sorted(resources)),
                    principals=tuple(sorted(principals)),
                    reason="VPCs of other accounts use the hub's rules",
                    account=self.account,
                )
            )
        if keeper is None:
            return
        adding = (resources - keeper.resources, principals - keeper.principals)
        removing = (keeper.resources - resources, keeper.principals - principals)
        if any(adding):
            self.out.upserts.append(
                self._share_change(ChangeKind.SHARE, keeper, "rules or accounts to share", *adding)
            )
        if any(removing):
            self.out.unshares.append(
                self._share_change(ChangeKind.UNSHARE, keeper, "no longer needed", *removing)
            )

    def _share_change(
        self,
        kind: ChangeKind,
        share: ObservedShare,
        reason: str,
        resources: set[str] | frozenset[str] = frozenset(),
        principals: set[str] | frozenset[str] = frozenset(),
    ) -> Change:
        return Change(
            kind,
            self.region,
            "",
            name=share.name,
            share_arn=share.arn,
            resources=tuple(sorted(resources)),
            principals=tuple(sorted(principals)),
            reason=reason,
            account=self.account,
        )

    def plan_received(
        self, hub_keepers: Mapping[str, ObservedRule], hub: _RegionPlanner | None = None
    ) -> None:
        """As an account that receives the hub's rules: accept the share, put on each listed
        VPC the rule the hub keeps for each domain, and take shared rules off VPCs no longer
        listed. Only rules of a hub location we read count (`offered`); while the rule the hub
        keeps is not visible here yet, the listed VPCs keep what they have."""
        receiving = self.by_location.received_shares.get(self.where, [])
        senders = {self._account_id(share.owner) for share in receiving}
        listed = frozenset(vpc for share in receiving for vpc in share.vpc_ids)
        accepted: list[ObservedInvitation] = []
        for invitation in self.state.invitations:
            # Only a share of ours (read, by its owner tag, where the hub is) is accepted.
            if invitation.share_arn in self.receivers.shares and invitation.sender in senders:
                accepted.append(invitation)
                self.out.upserts.append(
                    Change(
                        ChangeKind.ACCEPT_SHARE,
                        self.region,
                        "",
                        share_arn=invitation.arn,
                        reason=f"rules shared by {invitation.sender}",
                        account=self.account,
                    )
                )
        offered = self.receivers.offered.get(self.region, frozenset())
        by_domain: dict[str, list[ObservedRule]] = defaultdict(list)
        for rule in self.shared:
            if rule.arn in offered:
                by_domain[rule.domain].append(rule)
        wanted = self.by_location.hub_domains.get(self.region, set())
        kept_arns = {domain: rule.arn for domain, rule in hub_keepers.items()}
        for domain, rules in sorted(by_domain.items()):
            keeper = next((r for r in rules if r.arn == kept_arns.get(domain)), None)
            waiting = keeper is None and (
                domain in wanted or any(self.target_of(r) in self.protected_targets for r in rules)
            )
            for rule in sorted(rules, key=lambda r: r.id):
                stays = listed if rule is keeper or waiting else frozenset()
                for vpc_id in sorted(self.vpcs_of[rule.id] - stays):
                    self.out.disassociations.append(
                        self._disassociate(rule, vpc_id, "VPC no longer uses the shared rule")
                    )
            if keeper is None:
                continue
            for vpc_id in sorted(listed - self.vpcs_of[keeper.id]):
                if self._conflicts(domain, vpc_id, keeper.id):
                    continue
                self.out.associations.append(
                    self._about(ChangeKind.ASSOCIATE, keeper, "shared rule", vpc_id)
                )
        for invitation in accepted:
            self._associate_arriving(invitation, hub_keepers, listed)
        if hub is not None and not accepted:
            self._follow(hub, listed)
        self._settle_making_way()

    def _follow(self, hub: _RegionPlanner, listed: frozenset[str]) -> None:
        """As an account that the hub's share takes in with this very plan (the share made,
        or this account added to it): accept it, and put the hub's rules on the listed VPCs,
        in the same apply, each once the hub's share change is done (`follows`): a pass
        sooner than reading them here. Only on a VPC where no rule holds the domain yet and
        for a domain no shared rule here answers; whatever else the next pass plans
        (`follows_whole` is False then)."""
        growth = hub.share_growth
        if growth is None or hub.where == self.where or not listed:
            return
        if self._account_id(self.account) not in growth.principals:
            return
        created = hub.hub_rules_created
        visible = {rule.domain for rule in self.shared}
        held = {(r.domain, vpc) for r in self.state.rules for vpc in self.vpcs_of[r.id]}
        owner = self._account_id(hub.account)
        follows: list[Change] = []
        for domain in sorted(set(hub.hub_keepers) | set(created)):
            keeper = hub.hub_keepers.get(domain)
            if keeper is not None and keeper.arn not in growth.holds:  # adopted: next pass
                self.follows_whole = False
                continue
            name = keeper.name if keeper else created[domain].name
            target = self.target_of(keeper) if keeper else created[domain].target_region
            for vpc_id in sorted(listed):
                # A VPC of `profile` delivery waits for the Profile (profiles.py).
                if domain in visible or (domain, vpc_id) in held or vpc_id in self.profile_serving:
                    self.follows_whole = False
                    continue
                follows.append(
                    Change(
                        ChangeKind.ASSOCIATE,
                        self.region,
                        domain,
                        rule_id=keeper.id if keeper else None,
                        vpc_id=vpc_id,
                        name=name,
                        target_region=target,
                        reason="shared rule, with the share made in this apply",
                        account=self.account,
                        owner=owner,
                        follows=hub.where,
                    )
                )
        if not follows:
            return
        self.out.upserts.append(
            Change(
                ChangeKind.ACCEPT_SHARE,
                self.region,
                "",
                reason=f"rules shared by {owner} in this apply (if it sends an invitation)",
                account=self.account,
                follows=hub.where,
            )
        )
        self.out.associations += follows

    @cached_property
    def share_growth(self) -> _ShareGrowth | None:
        """As the hub's location, once planned: the change of this plan that makes its share
        or adds to it (at most one), with its principals as a set."""
        kinds = (ChangeKind.CREATE_SHARE, ChangeKind.SHARE)
        grows = [c for c in self.out.upserts if c.kind in kinds]
        if len(grows) != 1:
            return None
        [change] = grows
        held = [s.resources for s in self.state.shares if s.arn == change.share_arn]
        holds = frozenset(change.resources).union(*held)
        return _ShareGrowth(change, frozenset(change.principals), holds)

    @cached_property
    def hub_rules_created(self) -> dict[str, Change]:
        """As the hub's location, once planned: its rules this plan creates, by domain."""
        return {
            c.domain: c
            for c in self.out.upserts
            if c.kind is ChangeKind.CREATE_RULE and not c.source
        }

    def _settle_making_way(self) -> None:
        """Make before break across accounts: an own rule of ours retiring from a VPC that the
        hub's share lists, for a domain the hub forwards, leaves the VPC only right before the
        hub's shared rule takes its place there (an association planned in this plan, which
        `_RegionPlan.changes` puts right after it); until then the VPC keeps it, and the rule
        is deleted only once it has left every VPC."""
        staying: set[str] = set()
        planned = {  # not those that follow a share: a fanned-out pass drops them
            (c.domain, c.vpc_id)
            for c in self.out.associations
            if c.kind is ChangeKind.ASSOCIATE and not c.follows
        }
        hub_domains = self.by_location.hub_domains.get(self.region, set())
        answered = (
            self._answered(planned)
            if any(domain not in hub_domains for domain, _ in self.making_way)
            else {}
        )
        for (domain, vpc_id), rule in sorted(self.making_way.items()):
            if domain in hub_domains:
                reason = self._taken_over(domain, vpc_id, planned)
            elif self.protected_targets or not set(self._under(domain)) <= answered[vpc_id]:
                reason = ""  # a hub not read may forward more under it: it stays
            else:
                reason = PARENT_MAKES_WAY
            if reason:
                self.out.disassociations.append(self._disassociate(rule, vpc_id, reason))
            else:
                staying.add(rule.id)
                waits_for = (
                    "our Route 53 Profile serves it"
                    if vpc_id in self.profile_serving and vpc_id not in self.received_vpcs
                    else "the hub's rules take its place"
                )
                self.out.notes.append(
                    f"{self.where}: {vpc_id} keeps {rule.id} for {domain} until {waits_for}"
                )
        if staying:
            self.follows_whole = False  # the next pass lets it go, once it can
        for rule in {r.id: r for r in self.making_way.values()}.values():
            if rule.id in staying:
                self.out.deferred.append(self.where)
            else:
                reason = self.retiring_reasons[rule.id]
                self.out.deletions.append(self._about(ChangeKind.DELETE_RULE, rule, reason))

    def _taken_over(
        self, domain: str, vpc_id: str, planned: Collection[tuple[str, str | None]]
    ) -> str:
        """Why a rule of ours retiring from `vpc_id` for a domain the hub forwards can leave
        it now: the hub's rule takes its place in this plan, or our Profile answers the domain
        there; "" while it must stay."""
        if (domain, vpc_id) in planned:
            return "makes way for the hub's shared rule"
        return SERVED_BY_PROFILE if domain in self.profile_serving.get(vpc_id, ()) else ""

    def _answered(self, planned: Collection[tuple[str, str | None]]) -> dict[str, set[str]]:
        """By VPC: the domains a rule of the hub answers there once this plan is applied (in
        place and staying, COMPLETE or OVERRIDDEN, or planned), or our Profile does."""
        leaving = {(c.rule_id, c.vpc_id) for c in self.out.disassociations}
        hub_rules = [r for (source, _), rules in self.ours.items() if not source for r in rules]
        domains = {r.id: r.domain for r in hub_rules + self.shared}
        answered: dict[str, set[str]] = defaultdict(set)
        for association in self.state.associations:
            rule_id, vpc_id = association.rule_id, association.vpc_id
            in_place = rule_id in domains and association.status in IN_PLACE
            if in_place and (rule_id, vpc_id) not in leaving:
                answered[vpc_id].add(domains[rule_id])
        for domain, vpc in planned:
            answered[str(vpc)].add(domain)
        for vpc, served in self.profile_serving.items():
            answered[vpc] |= served
        return answered

    def _conflicts(self, domain: str, vpc_id: str, our_rule_id: str | None) -> bool:
        """Whether a rule not ours holds `domain` in `vpc_id` (recorded as a conflict)."""
        theirs = [r for r in self.theirs[domain] if vpc_id in self.vpcs_of[r.id]]
        if theirs:
            self.out.conflicts.append(
                Conflict(self.region, domain, vpc_id, theirs[0].id, our_rule_id, self.account)
            )
        return bool(theirs)

    def _associate_arriving(
        self,
        invitation: ObservedInvitation,
        hub_keepers: Mapping[str, ObservedRule],
        listed: frozenset[str],
    ) -> None:
        """With an invitation accepted in this plan: the rules the hub keeps that its share
        holds, not visible here yet, on every listed VPC (a pass sooner than reading them
        here). An older shared rule of ours for the domain, offered by a hub location we read,
        or an own rule of ours retiring here (`making_way`), makes way for it (the apply frees
        the VPC only once the new rule is visible); a VPC
        where a rule of this account's own, or a shared rule no location we read offers, holds
        the domain and is planned to stay keeps it."""
        holds = self.receivers.shares.get(invitation.share_arn, frozenset())
        visible = {rule.arn for rule in self.shared}
        offered = self.receivers.offered.get(self.region, frozenset())
        for domain, keeper in sorted(hub_keepers.items()):
            if keeper.arn not in holds or keeper.arn in visible:
                continue
            older = [r for r in self.shared if r.domain == domain and r.arn in offered]
            kept = [r for (_, d), rules in self.ours.items() if d == domain for r in rules]
            kept += [r for r in self.shared if r.domain == domain and r.arn not in offered]
            planned = {c.vpc_id for c in self.out.associations if c.domain == domain}
            for vpc_id in sorted(listed - planned):  # once, with two invitations to our shares
                if self._conflicts(domain, vpc_id, keeper.id):
                    continue
                freed = {c.rule_id for c in self.out.disassociations if c.vpc_id == vpc_id}
                making_way = self.making_way.get((domain, vpc_id))
                if any(
                    vpc_id in self.vpcs_of[r.id] and r.id not in freed and r is not making_way
                    for r in kept
                ):
                    continue
                self.out.disassociations += [
                    self._disassociate(r, vpc_id, "makes way for the rule the hub keeps")
                    for r in older
                    if vpc_id in self.vpcs_of[r.id] and r.id not in freed
                ]
                self.out.associations.append(
                    Change(
                        ChangeKind.ASSOCIATE,
                        self.region,
                        domain,
                        rule_id=keeper.id,
                        vpc_id=vpc_id,
                        name=keeper.name,
                        target_region=self.target_of(keeper),
                        reason="shared rule, with its share accepted",
                        account=self.account,
                        owner=invitation.sender,
                        share_arn=invitation.arn,
                    )
                )


@dataclass(frozen=True)
class _ShareGrowth:
    change: Change  # CREATE_SHARE or SHARE
    principals: frozenset[str]
    holds: frozenset[str]  # the ARNs the share holds once changed (and the rules created)


@dataclass(frozen=True)
class _Receivers:
    """What the accounts receiving shared rules show, per Region: `offered`, the ARNs of the
    hub rules of ours in the locations we read (only those are associated by a receiver);
    `held`, the shared rules some receiving VPC uses (their owner keeps them until it lets
    go); `blind`, Regions where a receiving account could not be read (shared rules are then
    kept); `shares`, our shares (tagged ours), the only ones whose invitations are accepted,
    with the rule ARNs each holds."""

    offered: Mapping[str, frozenset[str]]
    held: frozenset[str]
    blind: frozenset[str]
    shares: Mapping[str, frozenset[str]]  # share ARN (where the hubs are) -> its resources

    @classmethod
    def of(cls, mesh_id: str, desired: Desired, states: Mapping[str, RegionState]) -> _Receivers:
        offered: dict[str, set[str]] = defaultdict(set)
        held: set[str] = set()
        for state in states.values():
            if state.error:
                continue
            for rule in managed_rules(state, mesh_id):
                if not rule_source(rule, mesh_id) and rule.arn:
                    offered[state.region].add(rule.arn)
            shared = {rule.id: rule.arn for rule in shared_with_us(state, mesh_id)}
            held |= {shared[a.rule_id] for a in state.associations if a.rule_id in shared}
        blind = {
            share.region
            for share in desired.shares
            if (found := states.get(location(share.region, share.principal))) is None or found.error
        }
        return cls(
            offered={region: frozenset(arns) for region, arns in offered.items()},
            held=frozenset(held),
            blind=frozenset(blind),
            shares={s.arn: s.resources for state in states.values() for s in state.shares},
        )


def make_plan(
    mesh_id: str,
    desired: Desired,
    states: Mapping[str, RegionState],
    scope: Collection[str],
    *,
    adopt: bool = False,
    home_account: str = "",
    also_shared: Mapping[str, frozenset[str]] | None = None,
    profile_serving: Mapping[tuple[str, str], frozenset[str]] | None = None,
    lingering: Mapping[str, str] | None = None,
    led_back: Collection[str] = (),
) -> Plan:
    """Changes for the locations in `scope` (`states` keys), ordered per location; locations
    sorted by name.

    With `adopt`, a hub domain without a rule of ours takes over the best unowned rule for it
    (tagging it ours) instead of creating a new one. `home_account` is the reconciler's own
    account id, needed only to share rules with it or from it. `also_shared`: more ARNs of
    ours the hub's share of a location must hold (its Route 53 Profile). `profile_serving`:
    (location, VPC) that gets the hub's rules through our Profile -> the hub domains it
    answers there now; a rule of ours retiring from such a VPC waits for it. `lingering`:
    locations of Regions without a hub item -> our Profile there that this plan does not
    delete; the hub's rules of ours there stay, since only rules of ours lead a pass back to
    such a Region. `led_back`: locations every pass reads anyway (where an item stopped naming
    them): one that could not be read holds no rule of its Region back.
    """
    changes: list[Change] = []
    conflicts: list[Conflict] = []
    notes: list[str] = []
    deferred: list[str] = []
    receivers = _Receivers.of(mesh_id, desired, states)
    by_location = _ByLocation.of(desired, profile_serving)
    unswept = _unswept(desired, states, set(scope) - set(led_back))
    planners: list[_RegionPlanner] = []
    for where in sorted(scope):
        state = states.get(where)
        if state is None or state.error:
            if state is None or not state.closed:  # the report notes those together
                notes.append(f"{where}: not read, nothing changes there")
            continue
        if state.region in desired.frozen_regions:
            notes.append(f"{where}: its hub item cannot be used, nothing changes there")
            continue
        planner = _RegionPlanner(
            mesh_id, state, desired, adopt, home_account, receivers, by_location
        )
        planner.also_shared = also_shared or {}
        planner.unread_here = unswept.get(state.region, ())
        planner.lingering_profile = (lingering or {}).get(where, "")
        planner.plan()
        planners.append(planner)
    # Receivers follow the hub's choice of rule per domain, known once its location is planned.
    hubs = {p.region: p for p in planners if desired.hub_locations.get(p.region) == p.where}
    for planner in planners:
        hub = hubs.get(planner.region)
        planner.plan_received(hub.hub_keepers if hub else {}, hub)
    for planner in planners:
        changes.extend(planner.out.changes())
        conflicts.extend(planner.out.conflicts)
        notes.extend(planner.out.notes)
        deferred.extend(planner.out.deferred)
    return Plan(
        changes=tuple(changes),
        conflicts=tuple(conflicts),
        notes=tuple(notes),
        deferred_deletes=tuple(deferred),
        followed=_followed(hubs.values(), {p.where: p for p in planners}),
    )


def _unswept(
    desired: Desired, states: Mapping[str, RegionState], scope: Collection[str]
) -> dict[str, list[str]]:
    """Regions without a hub item -> their locations in `scope` that could not be read (one
    AWS always refuses, `RegionState.closed`, is never read: not counted). Only the rules of
    ours found there or forwarding there lead a pass to such a Region's other accounts, so
    while one could not be read the rules of ours there stay, and the next pass comes back to
    it. Empty where `desired` does not know the item Regions."""
    unread: dict[str, list[str]] = defaultdict(list)
    if desired.item_regions is None:
        return unread
    for where in sorted(scope):
        state = states.get(where)
        if state is not None and (not state.error or state.closed):
            continue
        region = split_location(where)[0]
        if region not in desired.item_regions:
            unread[region].append(where)
    return unread


def _a_few(locations: Sequence[str]) -> str:
    """Up to three of `locations`, and how many more: a note's length does not grow with
    the accounts of an organisation."""
    shown = ", ".join(locations[:3])
    return shown if len(locations) <= 3 else f"{shown} and {len(locations) - 3} more"


def _followed(
    hubs: Iterable[_RegionPlanner], planners: Mapping[str, _RegionPlanner]
) -> tuple[str, ...]:
    """The hub locations whose share change of this plan every account it takes in follows
    whole (`_RegionPlanner._follow`): the share made, or accounts added to it and nothing else
    (no rule created there, nothing else added to it), and every such account's location
    planned with the whole of it. Once those follow changes are applied, the share change and
    the hub's rule creations have no next step (`reconcile._sharing_goes_on`)."""
    followed = []
    for hub in hubs:
        growth = hub.share_growth
        if growth is None:
            continue
        change = growth.change
        if change.kind is ChangeKind.SHARE and (change.resources or hub.hub_rules_created):
            continue
        takers = [
            planners.get(location(hub.region, "" if a == hub.home_account else a))
            for a in change.principals
        ]
        if all(t is not None and t.follows_whole and _follows(t, hub.where) for t in takers):
            followed.append(hub.where)
    return tuple(sorted(followed))


def _follows(planner: _RegionPlanner, hub_location: str) -> bool:
    return any(c.follows == hub_location for c in planner.out.upserts)
