"""Safety checks on a plan before anything is applied. Pure, no I/O.

Invariants:
- A plan that would leave no managed rule where some exist is refused unless forced: an empty or
  unreadable desired state must never read as "delete everything".
- A plan that deletes or retargets more than `max_fraction` of the managed rules in scope is
  refused unless forced, once at least `min_rules` managed rules exist. A rule kept until the
  accounts it is shared with let go (`Plan.deferred_deletes`) counts as deleted by the plan
  that begins its retirement; a shared rule withdrawn from some of the accounts it is shared
  with counts for their part of those accounts (all of them: one rule). "More than" is strict:
  exactly the fraction passes. The fraction counts the Regions whose hub stays in the mesh, so
  removing one hub of four (or of three) passes the default of one half.
- A pass over some Regions only (`partial`: a triggered pass) judges the rules it deletes or
  retargets by the fraction whatever the number of rules in its part: `min_rules` is the size
  of a whole mesh, and the slices of a mesh are each smaller than it, so a change refused as a
  whole would otherwise go through one Region's pass after another. What it withdraws from
  other accounts and takes off VPCs is judged from `min_rules` on, as in a whole pass (one VPC
  leaving is most of a small slice's use).
- Likewise for the VPCs our rules serve: a plan that takes more than `max_fraction` of the
  associations of our own rules off VPCs in the Regions whose hub stays is refused unless
  forced (VPCs that leave by tag or by item, in bulk), under the same conditions of size. A VPC
  on a Profile of ours counts once for each rule the Profile holds, and loses them all when
  the Profile leaves it. An association that another of ours replaces in the same plan (for
  the same VPC and domain), or that our Route 53 Profile already serves, is not lost. Shared
  rules taken off other accounts' VPCs count through their shares (above); their VPCs on our
  shared Profiles are judged apart, and an account whose Profiles were not read counts as the
  accounts read that our shares give the same Profile do, on average (at least one VPC).
- Per-Region quotas (rules, associations) are checked before AWS says no.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from resolver_mesh.models import Change, ChangeKind, Plan, RegionState, location
from resolver_mesh.plan import GONE, PARENT_MAKES_WAY, SERVED_BY_PROFILE, managed_rules
from resolver_mesh.profiles import PROFILE_LEAVES

RULE_IN_ARN = ":resolver-rule/"  # a share of ours holds rules and, besides, our Profiles
ACCOUNT_ID_LENGTH = 12  # a share's principal that is an account, not an OU or organisation

RULES_PER_REGION = 1000
ASSOCIATIONS_PER_REGION = 2000
QUOTA_WARNING = 0.9  # the share of a quota past which every plan says how close it is


@dataclass(frozen=True)
class Guard:
    """The thresholds of the mass-change guard."""

    max_fraction: float = 0.5
    min_rules: int = 10


@dataclass(frozen=True)
class Verdict:
    """Whether a plan may be applied; `refusals` say why not (empty means allowed)."""

    refusals: tuple[str, ...] = ()
    forced: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.forced or not self.refusals


def _mass_change(
    plan: Plan,
    ours: Mapping[str, set[str]],
    counted: Collection[str],
    guard: Guard,
    states: Mapping[str, RegionState],
    partial: bool,
    home_account: str = "",
) -> list[str]:
    """Refusals of the guard's fraction; `ours`: the ids of our managed rules by location;
    `home_account`: the reconciler's own account id, as our shares name it."""
    total = sum(len(ids) for ids in ours.values())
    # A rule retired now but deleted once the accounts it is shared with let go is a deletion of
    # this plan: judged with the first pass, whose writes (taking it off those accounts' VPCs)
    # begin it, not with the last.
    deletes = len(plan.deferred_deletes)
    deletes += sum(1 for c in plan.changes if c.kind is ChangeKind.DELETE_RULE)
    creates = sum(1 for c in plan.changes if c.kind is ChangeKind.CREATE_RULE)
    if total and total - deletes + creates == 0:
        return [f"the plan would remove every managed rule ({total}) in scope"]
    sized = total >= guard.min_rules  # below it, only a partial pass's rule changes count
    if not (sized or partial):  # deletions and retargets in a part of a mesh (see above)
        return []
    base = sum(len(ours[where]) for where in counted)
    in_counted = [c for c in plan.changes if c.location in counted]
    dropped = sum(1 for c in in_counted if c.kind is ChangeKind.DELETE_RULE)
    dropped += sum(1 for where in plan.deferred_deletes if where in counted)
    retargeted = sum(1 for c in in_counted if c.kind is ChangeKind.UPDATE_RULE and c.targets)
    unshared = _withdrawn(plan, in_counted, states) if sized else 0.0
    some = "" if sized else " (a pass over some Regions, judged whatever its size)"
    if base and dropped + retargeted + unshared > guard.max_fraction * base:
        withdrawn = f" and stop sharing {round(unshared, 1):g}" if unshared else ""
        return [
            f"the plan would delete {dropped} and retarget {retargeted}{withdrawn} of the {base}"
            f" managed rules in Regions whose hub stays, more than {guard.max_fraction:.0%}{some}"
        ]
    used, lost = _uses_lost(plan, in_counted, states, counted, ours) if sized else (0, 0)
    if used and lost > guard.max_fraction * used:
        return [
            f"the plan would take {lost} of the {used} associations of our rules off VPCs in"
            f" Regions whose hub stays, more than {guard.max_fraction:.0%}"
        ]
    used, lost = _remote_uses_lost(in_counted, states, counted, home_account) if sized else (0, 0)
    if used and lost > guard.max_fraction * used:
        return [
            f"the plan would take {lost} of the {used} rules our shared Profiles give VPCs of"
            f" other accounts off them, in Regions whose hub stays, more than"
            f" {guard.max_fraction:.0%}"
        ]
    return []


def _uses_lost(
    plan: Plan,
    in_counted: list[Change],
    states: Mapping[str, RegionState],
    counted: Collection[str],
    ours: Mapping[str, set[str]],
) -> tuple[int, int]:
    """What our own rules serve in `counted` (a rule on a VPC, directly or through a Profile
    of ours that holds it), and how much of it the plan takes off its VPCs for good: not
    replaced by an association of ours for the same VPC and domain in the plan, nor served by
    our Profile there, nor a parent-domain rule whose domains the hub's rules all answer
    there (`PARENT_MAKES_WAY`); our Profile leaving a VPC that no longer uses the hub's rules loses
    every rule it holds there. Only the accounts that own the rules (and Profiles) count here;
    VPCs of other accounts on our shared Profile are judged apart (`_remote_uses_lost`), so
    that neither dilutes the other."""
    used = 0
    held: dict[tuple[str, str], int] = {}  # (location, Profile of ours) -> rules it holds
    for where in counted:
        state = states[where]
        used += sum(1 for a in state.associations if a.rule_id in ours[where] and a.status != GONE)
        on_profiles = Counter(
            a.profile_id
            for a in (state.profiles.associations if state.profiles else ())
            if a.status != GONE
        )
        for profile_id, rules in _profile_rules(state).items():
            held[(where, profile_id)] = rules
            used += rules * on_profiles[profile_id]
    lost = sum(
        held.get((c.location, str(c.profile_id)), 0)
        for c in in_counted
        if c.kind is ChangeKind.DISASSOCIATE_PROFILE and c.reason == PROFILE_LEAVES
    )
    leaving = [
        c
        for c in in_counted
        if c.kind is ChangeKind.DISASSOCIATE
        and not c.owner  # a rule shared with the VPC's account: counted through its share
        and c.reason not in (SERVED_BY_PROFILE, PARENT_MAKES_WAY)
    ]
    if not leaving:
        return used, lost
    replaced = {
        (c.location, c.domain, c.vpc_id) for c in plan.changes if c.kind is ChangeKind.ASSOCIATE
    }
    return used, lost + sum(1 for c in leaving if (c.location, c.domain, c.vpc_id) not in replaced)


def _remote_uses_lost(
    in_counted: list[Change],
    states: Mapping[str, RegionState],
    counted: Collection[str],
    home_account: str,
) -> tuple[int, int]:
    """What our Profiles serve, through our shares, to VPCs of other accounts in `counted` (each
    rule a Profile holds, on each VPC of theirs associated with it), and how much of it the
    plan takes away for good: our Profile leaving such a VPC as it leaves the mesh
    (`PROFILE_LEAVES`), or every VPC of an account that no share of ours gives a Profile of ours
    any more once the plan's unshares are done (a duplicate share deleted while the keeper
    still gives it loses nothing). Each location counts once, at most what it is served; one
    whose Profiles were not read, as the locations read that our shares give the same Profile
    (their average number of VPCs on it, at least one)."""
    held: dict[str, int] = {}  # Profile of ours -> the rules it holds
    for where in counted:
        held |= _profile_rules(states[where])
    served: dict[str, int] = {}  # location -> what our Profiles serve its VPCs
    for where in counted:
        state = states[where]
        own = _profile_rules(state)
        served[where] = sum(
            held.get(a.profile_id, 0)
            for a in (state.profiles.associations if state.profiles else ())
            if a.status != GONE and a.profile_id not in own
        )
    # Where our shares give a Profile of ours but the location's Profiles were not read (its
    # read failed, or the location could not be read at all): as many VPCs on each as the
    # locations read that it is given to hold on average, at least one.
    given = _given_profiles(states, counted, home_account)
    unread = {w for w in given if w not in states or states[w].profiles is None}
    on: dict[str, list[int]] = defaultdict(list)  # Profile -> VPCs on it, by location read
    for where in given.keys() - unread:
        profiles = states[where].profiles
        held_here = Counter(
            a.profile_id for a in (profiles.associations if profiles else ()) if a.status != GONE
        )
        for profile_id in given[where]:
            on[profile_id].append(held_here[profile_id])
    for where in unread:
        served[where] = sum(
            held.get(p, 0) * max(1, math.ceil(sum(on[p]) / len(on[p])) if on[p] else 1)
            for p in given[where]
        )
    unshared = {
        location(region, "" if account == home_account else account)
        for (region, arn), accounts in _unshared(in_counted, states).items()
        if RULE_IN_ARN not in arn  # our Profile
        for account in accounts
    }
    lost = sum(served.get(where, 0) for where in unshared)
    lost += sum(
        held.get(str(c.profile_id), 0)
        for c in in_counted
        if c.kind is ChangeKind.DISASSOCIATE_PROFILE
        and c.owner
        and c.reason == PROFILE_LEAVES
        and c.location not in unshared
    )
    return sum(served.values()), lost


def _given_profiles(
    states: Mapping[str, RegionState], counted: Collection[str], home_account: str
) -> dict[str, set[str]]:
    """By location (Region and account): the Profiles of ours, by id, that our shares read in
    `counted` give its account (principals that are account ids only)."""
    given: dict[str, set[str]] = defaultdict(set)
    for owner in counted:
        state = states[owner]
        for share in state.shares:
            profiles = {arn.rsplit("/", 1)[-1] for arn in share.resources if RULE_IN_ARN not in arn}
            for account in share.principals:
                if profiles and account.isdigit() and len(account) == ACCOUNT_ID_LENGTH:
                    where = location(state.region, "" if account == home_account else account)
                    given[where] |= profiles
    return given


def _unshared(
    in_counted: list[Change], states: Mapping[str, RegionState]
) -> dict[tuple[str, str], set[str]]:
    """By (Region, resource ARN) of ours: the accounts that our shares give it to before the
    plan and none gives it to after the plan's unshares and share deletions, location by
    location (each change taken once)."""
    changes: dict[str, list[Change]] = defaultdict(list)
    for change in in_counted:
        if change.kind in (ChangeKind.UNSHARE, ChangeKind.DELETE_SHARE):
            changes[change.location].append(change)
    lost: dict[tuple[str, str], set[str]] = defaultdict(set)
    for where, here in changes.items():
        deleted = {c.share_arn for c in here if c.kind is ChangeKind.DELETE_SHARE}
        removed: dict[str | None, tuple[set[str], set[str]]] = {}  # resources, principals
        for change in here:
            if change.kind is ChangeKind.UNSHARE:
                resources, principals = removed.setdefault(change.share_arn, (set(), set()))
                resources |= set(change.resources)
                principals |= set(change.principals)
        before: dict[str, set[str]] = defaultdict(set)
        after: dict[str, set[str]] = defaultdict(set)
        for share in states[where].shares:
            for arn in share.resources:
                before[arn] |= share.principals
            if share.arn in deleted:
                continue
            resources, principals = removed.get(share.arn, (set(), set()))
            for arn in share.resources - resources:
                after[arn] |= share.principals - principals
        region = states[where].region
        for arn, accounts in before.items():
            if gone := accounts - after[arn]:
                lost[(region, arn)] |= gone
    return lost


def _profile_rules(state: RegionState) -> dict[str, int]:
    """The Profiles the location owns and calls ours, with the rules each holds."""
    if state.profiles is None:
        return {}
    found = {
        p.id: 0 for p in state.profiles.profiles if p.ours and p.share_status != "SHARED_WITH_ME"
    }
    for resource in state.profiles.resources:
        if resource.profile_id in found and resource.status != GONE:
            found[resource.profile_id] += 1
    return found


def _withdrawn(plan: Plan, in_counted: list[Change], states: Mapping[str, RegionState]) -> float:
    """Shared rules withdrawn, in rules: each rule counts for the part of the accounts it is
    shared with (our shares in `states`) that lose it, taken out of the share for them or off
    their VPCs: an account loses a rule when no share of ours gives it the rule once the
    plan's unshares and share deletions are done (a duplicate share deleted while the keeper
    still shares the rule with it loses nothing). A rule withdrawn from every account counts 1,
    once however many changes withdraw it (rule ARNs end in its id); from one account of
    three, a third. A rule whose
    receivers are unknown counts 1 for any account that loses it. A rule taken off a VPC that
    our shared Profile answers for it loses nothing. (Our Profile leaving VPCs of other
    accounts is counted per VPC, in `_remote_uses_lost`.)"""
    receivers: dict[str, set[str]] = defaultdict(set)
    for state in states.values():
        for share in state.shares:
            for arn in share.resources:
                receivers[arn.rsplit("/", 1)[-1]] |= share.principals
    losing: dict[str, set[str]] = defaultdict(set)
    for (_, arn), accounts in _unshared(in_counted, states).items():
        if RULE_IN_ARN in arn:
            losing[arn.rsplit("/", 1)[-1]] |= accounts
    for change in plan.changes:
        if (
            change.kind is ChangeKind.DISASSOCIATE
            and change.owner
            and change.rule_id
            and change.reason != SERVED_BY_PROFILE  # our shared Profile answers it there
        ):
            losing[change.rule_id].add(change.account)  # "": the home account
    return sum(
        min(1.0, len(accounts) / len(receivers[rule_id])) if receivers[rule_id] else 1.0
        for rule_id, accounts in losing.items()
    )


def _quotas(plan: Plan, states: Mapping[str, RegionState]) -> tuple[list[str], list[str]]:
    """Quota problems (over the quota) and warnings (past `QUOTA_WARNING` of it), per location:
    AWS counts rules and associations per account and Region. The changes are counted once,
    by location and kind."""
    problems: list[str] = []
    warnings: list[str] = []
    kinds: dict[str, Counter[ChangeKind]] = defaultdict(Counter)
    for change in plan.changes:
        kinds[change.location][change.kind] += 1
    for where, state in sorted(states.items()):
        count = kinds[where]
        rules = sum(
            1 for r in state.rules if r.status != GONE and r.share_status != "SHARED_WITH_ME"
        )
        rules += count[ChangeKind.CREATE_RULE] - count[ChangeKind.DELETE_RULE]
        associations = sum(1 for a in state.associations if a.status != GONE)
        associations += count[ChangeKind.ASSOCIATE] - count[ChangeKind.DISASSOCIATE]
        for what, used, quota in (
            ("rules", rules, RULES_PER_REGION),
            ("rule associations", associations, ASSOCIATIONS_PER_REGION),
        ):
            if used > quota:
                problems.append(f"{where}: {used} {what} would exceed the quota of {quota}")
            elif used > QUOTA_WARNING * quota:
                warnings.append(
                    f"{where}: {used} {what} after this plan, close to the quota of {quota}"
                )
    return problems, warnings


def check_plan(
    plan: Plan,
    states: Mapping[str, RegionState],
    scope: Collection[str],
    mesh_id: str,
    guard: Guard,
    *,
    force: bool = False,
    staying: Collection[str] | None = None,
    partial: bool = False,
    home_account: str = "",
) -> Verdict:
    """Refusals for `plan` over the readable locations in `scope` (`states` keys: a Region, or
    `region@account`); `force` overrides the guard, not the quotas; `partial`: the pass covers
    some Regions only.

    `staying` are the Regions whose hub stays in the mesh (None: every Region). The fraction
    is measured there, in every account: the rules of a Region whose own hub left serve no one,
    and removing one hub from a mesh of three or more must not read as a mass deletion.
    """
    readable = {w: s for w, s in states.items() if w in scope and not s.error}
    ours = {
        where: {r.id for r in managed_rules(state, mesh_id)} for where, state in readable.items()
    }
    counted = {w for w, s in readable.items() if staying is None or s.region in staying}
    refusals = _mass_change(plan, ours, counted, guard, readable, partial, home_account)
    quota_problems, warnings = _quotas(plan, readable)
    # Quotas are AWS's, not ours: forcing cannot lift them.
    return Verdict(
        refusals=tuple(refusals + quota_problems),
        forced=force and not quota_problems,
        warnings=tuple(warnings),
    )
