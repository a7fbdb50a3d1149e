"""Fan-out: when one invocation cannot apply a plan in time, one apply order per location.
Pure, no I/O.

Invariants:
- Only a plan that passed the safety checks over the whole organisation is fanned out; a
  worker never plans, so no write anywhere escapes the mass-change guard.
- An order carries one location's changes in the plan's order, the digest of the hub items
  and the digest of the location's state they were planned from. A worker applies them only
  while both digests still match what it reads (otherwise the order is stale: nothing is
  applied, and the next pass re-plans).
- Where the changes depend on tags (`TagBasis.locations`: a VPC that joined or left by tag,
  a share made for, or withdrawn from, an account whose VPCs join by tag), the state digest
  also covers those locations' tag reads, and the worker reads them again; an order that
  depends on no tag costs no tag read.
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
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from resolver_mesh.desired import Joined, TaggedVpcs
from resolver_mesh.models import (
    PROFILE_KINDS,
    AccountAccess,
    Change,
    ChangeKind,
    RegionState,
    Target,
    location,
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
JOINING = frozenset(
    {ChangeKind.ASSOCIATE, ChangeKind.ASSOCIATE_PROFILE, ChangeKind.ACCEPT_SHARE}
)  # changes that a VPC joined by tag at their own location explains
LEAVING = frozenset({ChangeKind.DISASSOCIATE, ChangeKind.DISASSOCIATE_PROFILE})


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


@dataclass(frozen=True)
class TagBasis:
    """What a pass knew of the tags: the tag reads by location (`reads`), the VPCs that
    joined by tag, the VPCs the items name by location (`listed`) and the reconciler's own
    account id (`home_account`, as a share names it; "" when not known)."""

    reads: Mapping[str, TaggedVpcs]
    joined: Joined
    listed: Mapping[str, Collection[str]]
    home_account: str = ""

    def locations(self, where: str, changes: Iterable[Change]) -> tuple[str, ...]:
        """The locations whose tag reads the changes of `where` depend on, sorted: `where`
        when a change associates (or accepts a share for) a VPC that joined by tag there, or
        takes the hub's rules off a VPC the items do not name there (it left by tag); a
        receiving account's location when a share is made for it because its VPCs joined by
        tag, or withdrawn from it while its tags were read. Only successful reads count (a
        failed one planned nothing there from tags)."""
        read, joined = self._read, self._joined_at
        here = joined.get(where, frozenset())
        found: set[str] = set()
        for change in changes:
            if change.kind in JOINING and (
                change.vpc_id in here or (change.kind is ChangeKind.ACCEPT_SHARE and here)
            ):
                found.add(where)
            elif change.kind in LEAVING and change.vpc_id not in self.listed.get(where, ()):
                found |= {where} & read
            elif change.kind in (ChangeKind.CREATE_SHARE, ChangeKind.SHARE):
                receivers = {self._receiver(change.region, p) for p in change.principals}
                found |= receivers & joined.keys()
            elif change.kind in (ChangeKind.UNSHARE, ChangeKind.DELETE_SHARE):
                found |= {self._receiver(change.region, p) for p in change.principals} & read
        return tuple(sorted(found))

    @cached_property
    def _read(self) -> frozenset[str]:
        """The locations whose tag read succeeded (worked out once: `locations` is asked for
        every location of a fanned-out pass)."""
        return frozenset(w for w, tags in self.reads.items() if not tags.error)

    @cached_property
    def _joined_at(self) -> Mapping[str, frozenset[str]]:
        """The VPCs that joined by tag, by location (worked out once, as `_read`)."""
        joined: dict[str, set[str]] = {}
        for vpc in self.joined.vpcs:
            joined.setdefault(location(vpc.region, vpc.account), set()).add(vpc.vpc_id)
        return {where: frozenset(vpcs) for where, vpcs in joined.items()}

    def _receiver(self, region: str, principal: str) -> str:
        return location(region, "" if principal == self.home_account else principal)


def state_digest(
    state: RegionState,
    changes: Iterable[Change],
    tags: Mapping[str, TaggedVpcs] | None = None,
) -> str:
    """The digest of what a location's changes depend on: its rules and associations, its
    shares, invitations or Profiles when the changes touch them, and the tag reads `tags` (by
    location; see `TagBasis.locations`) when given. Listing order does not matter."""
    kinds = {change.kind for change in changes}
    parts: dict[str, Any] = {
        "rules": sorted((_canonical(r) for r in state.rules), key=json.dumps),
        "associations": sorted((_canonical(a) for a in state.associations), key=json.dumps),
    }
    if tags:
        # near misses are only reported: no change depends on them
        parts["tags"] = {
            where: _canonical(dataclasses.replace(read, mistagged={}))
            for where, read in sorted(tags.items())
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
    tag_locations: tuple[str, ...] = ()  # whose tag reads the state digest covers
    tag_access: tuple[AccountAccess, ...] = ()  # how to reach their accounts (home: none)

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
                "tag_locations": list(self.tag_locations),
                "tag_access": [_access_fields(access) for access in self.tag_access],
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
            tag_locations=tuple(str(w) for w in data.get("tag_locations", ())),
            tag_access=tuple(AccountAccess(**a) for a in data.get("tag_access", ())),
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
