"""The planner: desired rules + observed Regions -> an ordered list of changes. Pure, no I/O.

Invariants:
- Only rules carrying this mesh's ownership marker are ever updated, disassociated or deleted.
  Rules of other owners (other meshes included) are only read, to detect conflicts.
- Nothing changes in a Region that is out of scope, could not be read, or is frozen; rules that
  target a protected Region (an unreadable hub) are kept as they are.
- Per Region the order is make before break: creates and in-place updates, then associations
  (a duplicate of ours is disassociated from a VPC right before our keeper takes its place),
  then disassociations, then deletions.
- At most one managed rule per (Region, domain) survives; targets change in place, never by
  re-creation. A rule is only replaced when the hub it targets changes.
- A plan for a state it produced is empty (idempotency).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from resolver_mesh.desired import Desired
from resolver_mesh.models import (
    Change,
    ChangeKind,
    Conflict,
    DesiredRule,
    ObservedRule,
    Plan,
    RegionState,
)
from resolver_mesh.names import MARKER, owned_target_region

GONE = "DELETING"


@dataclass
class _RegionPlan:
    """The four phases of one Region's changes, concatenated in order at the end."""

    upserts: list[Change] = field(default_factory=list)
    associations: list[Change] = field(default_factory=list)
    disassociations: list[Change] = field(default_factory=list)
    deletions: list[Change] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def changes(self) -> list[Change]:
        return self.upserts + self.associations + self.disassociations + self.deletions


def rule_target(rule: ObservedRule, mesh_id: str) -> str | None:
    """The Region a rule of ours forwards to; None when the rule is not ours.

    Ours means: our marker in its CreatorRequestId, or adopted (our owner and target tags).
    """
    marked = owned_target_region(rule.creator_request_id, mesh_id)
    if marked:
        return marked
    return rule.target_tag if rule.owner_tag == mesh_id and rule.target_tag else None


def adoptable(rule: ObservedRule) -> bool:
    """A live FORWARD rule of this account that no mesh owns, by marker or by tag."""
    return (
        rule.rule_type == "FORWARD"
        and rule.status == "COMPLETE"
        and rule.share_status != "SHARED_WITH_ME"
        and rule.owner_tag is None
        and not rule.creator_request_id.startswith(f"{MARKER}/")
    )


def managed_rules(state: RegionState, mesh_id: str) -> list[ObservedRule]:
    """Our live FORWARD rules in a Region (rules being deleted are already gone)."""
    return [
        rule
        for rule in state.rules
        if rule.status != GONE and rule.rule_type == "FORWARD" and rule_target(rule, mesh_id)
    ]


class _RegionPlanner:
    def __init__(self, mesh_id: str, state: RegionState, desired: Desired, adopt: bool) -> None:
        self.mesh_id = mesh_id
        self.adopt = adopt
        self.region = state.region
        self.protected_targets = desired.protected_targets
        self.region_vpcs = desired.region_vpcs.get(self.region)
        self.wanted = {rule.domain: rule for rule in desired.rules if rule.region == self.region}
        self.vpcs_of: dict[str, set[str]] = defaultdict(set)
        for association in state.associations:
            if association.status != GONE:
                self.vpcs_of[association.rule_id].add(association.vpc_id)
        self.ours: dict[str, list[ObservedRule]] = defaultdict(list)
        for rule in managed_rules(state, mesh_id):
            self.ours[rule.domain].append(rule)
        managed_ids = {rule.id for rules in self.ours.values() for rule in rules}
        self.theirs: dict[str, list[ObservedRule]] = defaultdict(list)
        for rule in state.rules:
            if rule.id not in managed_ids and rule.status != GONE:
                self.theirs[rule.domain].append(rule)
        self.out = _RegionPlan()

    def target_of(self, rule: ObservedRule) -> str:
        return rule_target(rule, self.mesh_id) or ""

    def plan(self) -> _RegionPlan:
        for domain in sorted(set(self.wanted) | set(self.ours)):
            want = self.wanted.get(domain)
            if want is None:
                self._retire_unwanted(domain)
            else:
                self._converge(want)
        return self.out

    def _retire_unwanted(self, domain: str) -> None:
        for rule in sorted(self.ours[domain], key=lambda r: r.id):
            if self.target_of(rule) in self.protected_targets:
                self.out.notes.append(
                    f"{self.region}: kept {rule.id} ({domain}): hub {self.target_of(rule)}"
                    " could not be read"
                )
                self._follow_vpcs(rule)
            else:
                self._retire(rule, f"no hub forwards {domain} in {self.region} any more")

    def _follow_vpcs(self, rule: ObservedRule) -> None:
        """A kept rule keeps its targets, but its associations still follow the Region's VPCs."""
        if self.region_vpcs is None:
            return
        associated = self.vpcs_of[rule.id]
        others = [r for r in self.theirs[rule.domain] + self.ours[rule.domain] if r is not rule]
        for vpc_id in sorted(self.region_vpcs - associated):
            if not any(vpc_id in self.vpcs_of[r.id] for r in others):
                reason = "VPC not associated (rule kept as it is)"
                self.out.associations.append(
                    self._about(ChangeKind.ASSOCIATE, rule, reason, vpc_id)
                )
        for vpc_id in sorted(associated - self.region_vpcs):
            self.out.disassociations.append(
                self._disassociate(rule, vpc_id, "VPC no longer listed")
            )

    def _converge(self, want: DesiredRule) -> None:
        candidates = self.ours[want.domain]
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
                f"{self.region}: cannot create a rule for {want.domain} yet: hub"
                f" {want.target_region} has no usable inbound IP"
            )
            return
        if keeper is None and self.adopt:
            keeper = self._adopt(want)
        keeper_id = keeper.id if keeper else None
        if keeper is None:
            self.out.upserts.append(self._change(ChangeKind.CREATE_RULE, want, None, "new"))
        else:
            self._update_in_place(want, keeper)

        associated = self.vpcs_of[keeper_id] if keeper_id else set()
        for vpc_id in sorted(want.vpc_ids - associated):
            theirs = [r for r in self.theirs[want.domain] if vpc_id in self.vpcs_of[r.id]]
            if theirs:
                self.out.conflicts.append(
                    Conflict(self.region, want.domain, vpc_id, theirs[0].id, keeper_id)
                )
                continue
            held = [r for r in kept if vpc_id in self.vpcs_of[r.id]]
            if held:
                self.out.notes.append(
                    f"{self.region}: {vpc_id} keeps {held[0].id} for {want.domain} while hub"
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
        for vpc_id in sorted(self.vpcs_of[rule.id]):
            self.out.disassociations.append(self._disassociate(rule, vpc_id, reason))
        self.out.deletions.append(self._about(ChangeKind.DELETE_RULE, rule, reason))

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
        )


def make_plan(
    mesh_id: str,
    desired: Desired,
    states: Mapping[str, RegionState],
    scope: Collection[str],
    *,
    adopt: bool = False,
) -> Plan:
    """Changes for the Regions in `scope`, ordered per Region; Regions sorted by name.

    With `adopt`, a domain without a rule of ours takes over the best unowned rule for it
    (tagging it ours) instead of creating a new one.
    """
    changes: list[Change] = []
    conflicts: list[Conflict] = []
    notes: list[str] = []
    for region in sorted(scope):
        state = states.get(region)
        if state is None or state.error:
            notes.append(f"{region}: not read, nothing changes there")
            continue
        if region in desired.frozen_regions:
            notes.append(f"{region}: its hub item cannot be used, nothing changes there")
            continue
        region_plan = _RegionPlanner(mesh_id, state, desired, adopt).plan()
        changes.extend(region_plan.changes())
        conflicts.extend(region_plan.conflicts)
        notes.extend(region_plan.notes)
    return Plan(changes=tuple(changes), conflicts=tuple(conflicts), notes=tuple(notes))
