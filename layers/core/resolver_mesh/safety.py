"""Safety checks on a plan before anything is applied. Pure, no I/O.

Invariants:
- A plan that would leave no managed rule where some exist is refused unless forced: an empty or
  unreadable desired state must never read as "delete everything".
- A plan that deletes or retargets more than `max_fraction` of the managed rules in scope is
  refused unless forced, once at least `min_rules` managed rules exist. "More than" is strict:
  exactly the fraction passes. The fraction counts the Regions whose hub stays in the mesh, so
  removing one hub of four (or of three) passes the default of one half.
- Per-Region quotas (rules, associations) are checked before AWS says no.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from resolver_mesh.models import ChangeKind, Plan, RegionState
from resolver_mesh.plan import GONE, managed_rules

RULES_PER_REGION = 1000
ASSOCIATIONS_PER_REGION = 2000


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

    @property
    def allowed(self) -> bool:
        return self.forced or not self.refusals


def _mass_change(
    plan: Plan, managed: dict[str, int], staying: Collection[str] | None, guard: Guard
) -> list[str]:
    total = sum(managed.values())
    deletes = sum(1 for c in plan.changes if c.kind is ChangeKind.DELETE_RULE)
    creates = sum(1 for c in plan.changes if c.kind is ChangeKind.CREATE_RULE)
    if total and total - deletes + creates == 0:
        return [f"the plan would remove every managed rule ({total}) in scope"]
    if total < guard.min_rules:
        return []
    counted = set(managed) if staying is None else set(managed) & set(staying)
    base = sum(managed[region] for region in counted)
    touched = [
        c
        for c in plan.changes
        if c.region in counted
        and (c.kind is ChangeKind.DELETE_RULE or (c.kind is ChangeKind.UPDATE_RULE and c.targets))
    ]
    if base and len(touched) > guard.max_fraction * base:
        dropped = sum(1 for c in touched if c.kind is ChangeKind.DELETE_RULE)
        return [
            f"the plan would delete {dropped} and retarget {len(touched) - dropped} of the {base}"
            f" managed rules in Regions whose hub stays, more than {guard.max_fraction:.0%}"
        ]
    return []


def _quotas(plan: Plan, states: Mapping[str, RegionState]) -> list[str]:
    problems = []
    for region, state in sorted(states.items()):
        count = Counter(c.kind for c in plan.changes if c.region == region)
        rules = sum(1 for r in state.rules if r.status != GONE)
        rules += count[ChangeKind.CREATE_RULE] - count[ChangeKind.DELETE_RULE]
        associations = sum(1 for a in state.associations if a.status != GONE)
        associations += count[ChangeKind.ASSOCIATE] - count[ChangeKind.DISASSOCIATE]
        if rules > RULES_PER_REGION:
            problems.append(f"{region}: {rules} rules would exceed the quota of {RULES_PER_REGION}")
        if associations > ASSOCIATIONS_PER_REGION:
            problems.append(
                f"{region}: {associations} rule associations would exceed the quota of"
                f" {ASSOCIATIONS_PER_REGION}"
            )
    return problems


def check_plan(
    plan: Plan,
    states: Mapping[str, RegionState],
    scope: Collection[str],
    mesh_id: str,
    guard: Guard,
    *,
    force: bool = False,
    staying: Collection[str] | None = None,
) -> Verdict:
    """Refusals for `plan` over the readable Regions in `scope`; `force` overrides the guard.

    `staying` are the Regions whose hub stays in the mesh (None: every Region). The fraction
    is measured there: the rules of a Region whose own hub left serve no one, and removing
    one hub from a mesh of three or more must not read as a mass deletion.
    """
    readable = {r: s for r, s in states.items() if r in scope and not s.error}
    managed = {region: len(managed_rules(state, mesh_id)) for region, state in readable.items()}
    refusals = _mass_change(plan, managed, staying, guard)
    quota_problems = _quotas(plan, readable)
    # Quotas are AWS's, not ours: forcing cannot lift them.
    return Verdict(refusals=tuple(refusals + quota_problems), forced=force and not quota_problems)
