"""Fan-out: when one invocation cannot apply a plan in time, one apply order per location.
Pure, no I/O.

Invariants:
- Only a plan that passed the safety checks over the whole organisation is fanned out; a
  worker never plans, so no write anywhere escapes the mass-change guard.
- An order carries one location's changes in the plan's order, the digest of the hub items
  and the digest of the location's state they were planned from. A worker applies them only
  while both digests still match what it reads (otherwise the order is stale: nothing is
  applied, and the next pass re-plans).
- The estimate is conservative: one call per change at the location's rate, the busiest
  location bounding the whole; more locations than workers add their share; and the process
  makes every call on one core, its share of which Lambda sets by the function's memory.
- Orders round-trip through JSON exactly (`order_from_json(order.to_json()) == order`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from resolver_mesh.models import (
    PROFILE_KINDS,
    AccountAccess,
    Change,
    ChangeKind,
    RegionState,
    Target,
)

ORDER_KIND = "resolver-mesh/apply"
FINISHED_DETAIL_TYPE = "resolver-mesh fan-out finished"
FINISHED_SOURCE = "resolver-mesh"
# Left unused at the end of an invocation before it fans out: reporting, a slow call, a
# retry. A plan whose apply would end closer to the timeout than this is fanned out.
SAFETY_SECONDS = 30.0
# The CPU one AWS call costs this process: botocore's serialising, signing and parsing, and
# the planning around it. Measured 1.9-2.5 ms per call (benchmarks/org_benchmark.py: converge
# CPU over calls, on a 2.x GHz core); rounded up.
CPU_SECONDS_PER_CALL = 0.003
# Lambda gives a function the equivalent of one vCPU at 1,769 MB, in proportion to its memory
# (Lambda developer guide, "Configure Lambda function memory"); the interpreter runs Python
# on one core at a time, however many more the function has.
MEMORY_MB_PER_VCPU = 1769.0
SHARE_CHANGES = frozenset(
    {ChangeKind.CREATE_SHARE, ChangeKind.SHARE, ChangeKind.UNSHARE, ChangeKind.DELETE_SHARE}
)


class BadOrderError(ValueError):
    """A message of the apply queue that is not an apply order of this version."""


@dataclass(frozen=True)
class FanoutSettings:
    """Where fanned-out work goes (set by the template; empty: never fan out, no leases)."""

    apply_queue_url: str = ""
    reconcile_queue_url: str = ""
    work_table: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FanoutSettings:
        env = os.environ if env is None else env
        return cls(
            apply_queue_url=env.get("APPLY_QUEUE_URL", ""),
            reconcile_queue_url=env.get("RECONCILE_QUEUE_URL", ""),
            work_table=env.get("WORK_TABLE_NAME", ""),
        )

    @property
    def enabled(self) -> bool:
        return bool(self.apply_queue_url and self.reconcile_queue_url and self.work_table)


def apply_seconds(changes_by_location: Mapping[str, int], rate: float, workers: int) -> float:
    """How long applying takes in one invocation, at one call per change and `rate` calls per
    second per location: the busiest location, or, with more locations than workers, the
    changes shared out over the workers, whichever is longer."""
    if not changes_by_location:
        return 0.0
    busiest = max(changes_by_location.values()) / rate
    shared = sum(changes_by_location.values()) / rate / max(1, workers)
    return max(busiest, shared)


def process_seconds(calls: int, memory_mib: float | None) -> float:
    """How long this process takes to make `calls` AWS calls, at `CPU_SECONDS_PER_CALL` on
    the function's share of one core (`memory_mib`; None, outside Lambda: a whole core)."""
    share = min(1.0, memory_mib / MEMORY_MB_PER_VCPU) if memory_mib else 1.0
    return calls * CPU_SECONDS_PER_CALL / share


def must_fan_out(estimate_seconds: float, seconds_left: float | None) -> bool:
    """Whether an apply of `estimate_seconds` would end within `SAFETY_SECONDS` of the end of
    the invocation (`seconds_left`; None: no deadline, as in the CLI)."""
    return seconds_left is not None and estimate_seconds > seconds_left - SAFETY_SECONDS


def _canonical(value: Any) -> Any:
    """`value` as plain JSON values, sets sorted, so that equal states give equal text in any
    process (set order depends on the hash seed)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, set | frozenset | tuple | list):
        items = [_canonical(item) for item in value]
        return sorted(items, key=json.dumps) if isinstance(value, set | frozenset) else items
    return value


def digest(value: Any) -> str:
    text = json.dumps(_canonical(value), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def state_digest(state: RegionState, changes: Iterable[Change]) -> str:
    """The digest of what a location's changes depend on: its rules and associations, and its
    shares, invitations or Profiles when the changes touch them. Listing order does not
    matter."""
    kinds = {change.kind for change in changes}
    parts: dict[str, Any] = {
        "rules": sorted((_canonical(r) for r in state.rules), key=json.dumps),
        "associations": sorted((_canonical(a) for a in state.associations), key=json.dumps),
    }
    if kinds & SHARE_CHANGES:
        parts["shares"] = sorted((_canonical(s) for s in state.shares), key=json.dumps)
    if ChangeKind.ACCEPT_SHARE in kinds:
        parts["invitations"] = sorted((_canonical(i) for i in state.invitations), key=json.dumps)
    if kinds & PROFILE_KINDS:
        profiles = state.profiles
        parts["profiles"] = (
            {
                name: sorted((_canonical(p) for p in getattr(profiles, name)), key=json.dumps)
                for name in ("profiles", "associations", "resources")
            }
            if profiles is not None
            else None
        )
    return digest(parts)


def worker_reads(changes: Iterable[Change]) -> tuple[bool, bool, bool]:
    """Whether a worker must read the location's shares, its invitations, its Profiles."""
    kinds = {change.kind for change in changes}
    return (
        bool(kinds & SHARE_CHANGES),
        ChangeKind.ACCEPT_SHARE in kinds,
        bool(kinds & PROFILE_KINDS),
    )


def change_to_json(change: Change) -> dict[str, Any]:
    """Every field of a change as JSON; targets as `[ip, port]`."""
    data: dict[str, Any] = _canonical(change)
    data["targets"] = [[t.ip, t.port] for t in change.targets]
    return data


def change_from_json(data: Mapping[str, Any]) -> Change:
    """The inverse of `change_to_json`; lists become tuples."""
    names = {f.name for f in dataclasses.fields(Change)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise BadOrderError(f"change: unknown field(s) {', '.join(unknown)}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    values["kind"] = ChangeKind(data["kind"])
    values["targets"] = tuple(Target(str(ip), int(port)) for ip, port in data.get("targets", ()))
    return Change(**values)


@dataclass(frozen=True)
class ApplyOrder:
    """One location's share of a fanned-out plan (one message of the apply queue)."""

    mesh_id: str
    wave: str
    pass_number: int
    location: str
    changes: tuple[Change, ...]
    hubs_digest: str
    state_digest: str
    access: AccountAccess | None = None  # how to reach the location's account (None: home)
    sharing_regions: tuple[str, ...] = ()  # where hubs share rules (for the next pass)
    profile_active: bool = False  # a Profile of ours is or should be here (for the next pass)

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": ORDER_KIND,
                "mesh_id": self.mesh_id,
                "wave": self.wave,
                "pass": self.pass_number,
                "location": self.location,
                "changes": [change_to_json(c) for c in self.changes],
                "hubs_digest": self.hubs_digest,
                "state_digest": self.state_digest,
                "access": _access_fields(self.access),
                "sharing_regions": list(self.sharing_regions),
                "profile_active": self.profile_active,
            },
            sort_keys=True,
        )


def _access_fields(access: AccountAccess | None) -> dict[str, str] | None:
    """How an account is reached, without what else the entry holds (a spoke's or shared
    VPC's fields)."""
    if access is None:
        return None
    fields = {name: getattr(access, name) for name in AccountAccess.model_fields}
    return {name: value for name, value in fields.items() if value is not None}


def order_from_json(body: str) -> ApplyOrder:
    """An apply order from a message body; `BadOrderError` saying what is wrong otherwise."""
    try:
        data = json.loads(body)
    except ValueError as error:
        raise BadOrderError(f"not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("kind") != ORDER_KIND:
        raise BadOrderError(f"not an apply order (kind {ORDER_KIND!r} expected)")
    try:
        access = data.get("access")
        return ApplyOrder(
            mesh_id=str(data["mesh_id"]),
            wave=str(data["wave"]),
            pass_number=int(data["pass"]),
            location=str(data["location"]),
            changes=tuple(change_from_json(c) for c in data["changes"]),
            hubs_digest=str(data["hubs_digest"]),
            state_digest=str(data["state_digest"]),
            access=AccountAccess(**access) if access else None,
            sharing_regions=tuple(data.get("sharing_regions", ())),
            profile_active=bool(data.get("profile_active", False)),
        )
    except BadOrderError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise BadOrderError(f"apply order: {type(error).__name__}: {error}") from None


def from_queue(record: Mapping[str, Any], queue_url: str) -> bool:
    """Whether an SQS record came from the queue at `queue_url` (its ARN names the queue and
    account the URL's path does)."""
    if not queue_url:
        return False
    account, name = queue_url.rstrip("/").split("/")[-2:]
    return str(record.get("eventSourceARN", "")).endswith(f":{account}:{name}")


def finished_event(mesh_id: str, wave: str, pass_number: int) -> dict[str, Any]:
    """The reconcile-queue message that asks for the pass after a wave: an event the queue's
    consumer scopes as every Region (a full pass re-plans from what the wave left)."""
    return {
        "source": FINISHED_SOURCE,
        "detail-type": FINISHED_DETAIL_TYPE,
        "detail": {"mesh_id": mesh_id, "wave": wave, "pass": pass_number},
    }


def finished_pass(messages: Sequence[Any]) -> int:
    """The highest pass number among the wave-finished events of a batch (0: none)."""
    return max(
        (
            int(m["detail"].get("pass", 0))
            for m in messages
            if isinstance(m, Mapping)
            and m.get("detail-type") == FINISHED_DETAIL_TYPE
            and isinstance(m.get("detail"), Mapping)
        ),
        default=0,
    )
