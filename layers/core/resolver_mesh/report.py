"""The result of one reconcile: what was planned or done, and everything that went wrong.

Invariants: `as_dict()` is JSON-serialisable and `ok` is False whenever there is an error,
a conflict, a refusal or an interruption, so callers (the CLI's exit status, alarms) can rely on
it (a tagged VPC that cannot join, `not_joined`, is a line to read, not an error). `planned`
is False when the run stopped before it could plan (the hubs could not be read, a
bad request): such a report never claims that anything is in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resolver_mesh.models import ItemError, Plan, count_kinds

LOCATION_READS = frozenset({"region", "tags"})  # errors of reading one location's state


@dataclass
class Report:
    action: str
    trigger: str = "manual"
    mesh_id: str = ""
    applied: bool = False
    planned: bool = False
    interrupted: bool = False  # a stop was requested (Ctrl-C): changes may be "not started"
    regions: list[str] = field(default_factory=list)
    hubs: list[str] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: count_kinds(()))
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)
    denied_regions: list[str] = field(default_factory=list)  # refused by policy; not errors
    pending: list[str] = field(default_factory=list)
    profiles_pending: bool = False  # some of `pending` is a Route 53 Profile on its way
    notes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    forced_past: list[str] = field(default_factory=list)
    managed_rules: int = 0
    joined: list[dict[str, str]] = field(default_factory=list)  # VPCs that joined by tag
    not_joined: list[str] = field(default_factory=list)  # tagged VPCs that cannot, and why
    calls: dict[str, int] = field(default_factory=dict)
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.errors or self.conflicts or self.refused or self.interrupted)

    def error(self, kind: str, message: str, region: str | None = None) -> None:
        entry: dict[str, Any] = {"kind": kind, "message": message}
        if region:
            entry["region"] = region
        self.errors.append(entry)

    def item_error(self, error: ItemError) -> None:
        self.errors.append(
            {
                "kind": "hub_item",
                "region": error.region,
                "field": error.field,
                "message": str(error),
            }
        )

    def plan(self, plan: Plan) -> None:
        """Record the plan: its changes (status `planned`), counts, conflicts and notes."""
        self.planned = True
        self.changes = [change.as_dict() | {"status": "planned"} for change in plan.changes]
        self.counts = plan.counts()
        self.notes += list(plan.notes)
        self.conflicts = [
            {
                **({"account": c.account} if c.account else {}),
                "region": c.region,
                "domain": c.domain,
                "vpc_id": c.vpc_id,
                "their_rule_id": c.their_rule_id,
                "our_rule_id": c.our_rule_id,
                **({"through_profile": True} if c.through_profile else {}),
                "message": str(c),
            }
            for c in plan.conflicts
        ]

    def applied_changes(self, results: list[dict[str, Any]]) -> None:
        """Replace the planned changes by what happened; counts become what was applied."""
        self.applied = True
        self.changes = results
        self.counts = count_kinds(r["kind"] for r in results if r["status"] == "applied")

    def include_earlier_passes(self, earlier: list[Report]) -> None:
        """Fold in the passes before this one (sharing across accounts takes more than one):
        their changes, counts and apply errors come first, and so do their errors about
        locations this pass did not read again (an account swept once as it left the
        members): what this pass read, it reports afresh."""
        if not earlier:
            return
        self.notes.append(
            f"sharing across accounts or Route 53 Profiles took {len(earlier) + 1} passes"
        )
        self.applied = self.applied or any(report.applied for report in earlier)
        self.planned = self.planned or any(report.planned for report in earlier)
        self.changes = [change for report in earlier for change in report.changes] + self.changes
        for report in earlier:
            for kind, count in report.counts.items():
                self.counts[kind] = self.counts.get(kind, 0) + count
        applied = [e for report in earlier for e in report.errors if e["kind"] == "apply"]
        unread = {  # the latest pass's word on each location
            (e["kind"], e.get("region")): e
            for report in earlier
            for e in report.errors
            if e["kind"] in LOCATION_READS and e.get("region") not in self.regions
        }
        self.errors = applied + list(unread.values()) + self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "action": self.action,
            "trigger": self.trigger,
            "mesh_id": self.mesh_id,
            "applied": self.applied,
            "planned": self.planned,
            "interrupted": self.interrupted,
            "regions": self.regions,
            "hubs": self.hubs,
            "counts": self.counts,
            "changes": self.changes,
            "conflicts": self.conflicts,
            "errors": self.errors,
            "degraded": self.degraded,
            "denied_regions": self.denied_regions,
            "pending": self.pending,
            "notes": self.notes,
            "refused": self.refused,
            "forced_past": self.forced_past,
            "managed_rules": self.managed_rules,
            "joined": self.joined,
            "not_joined": self.not_joined,
            "calls": self.calls,
            "duration_seconds": self.duration_seconds,
        }
