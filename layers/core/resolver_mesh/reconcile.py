"""The engine: scope -> observe -> plan -> check -> apply -> report, once.

Invariants:
- If the hubs table cannot be read, nothing is planned or changed anywhere.
- Locations are read, and written, in parallel, one worker each up to `worker_cap()` (the
  Lambda thread quota and the function's memory), the busiest first; inside a location the
  plan's order is kept. Workers are kept for the process's later phases (`_Workers`).
- A change whose prerequisite failed (the rule was not created, the VPC not freed, the rule not
  disassociated) is skipped, never attempted against a half-made state; after an error of
  the location's apply, the skip names its cause but is no error of its own.
- `apply=False` makes no write call at all.
- Once a stop is requested (`stop_requested`, Ctrl-C in the CLI), no further change is started:
  the changes left are reported as "not started", the one in flight finishes.
- Two reconciles of one mesh never interleave in a process; the second plans from what the
  first left, so concurrent triggers cause neither duplicates nor flapping.
- Other accounts are read and written through their assumed role, location by location
  (`region@account`); an account that cannot be reached is a location that cannot be read.
- With `MEMBER_OUS`, if the organisation cannot be read, nothing is planned or changed
  anywhere (as when the hubs table cannot be read). An account our shares still name that is
  no longer a member is swept in that pass (so unshared), then no longer visited. A member's
  VPC read starts as soon as the page listing it is read (`_Wave`), while the walk goes on;
  nothing is planned before the walk has ended.
- A full resync also reads the locations a hub item stopped naming (kept in the work table
  from the hubs table's stream: `_departed`), as it reads a removed hub's Region, and an
  applying one forgets a lead only once it read the location whole with nothing of ours in
  it and planned nothing there; an unreadable lead holds no rule of its Region back.
- `EXCLUDED_REGIONS` are never read or written, in any account; a report says which Regions
  were not swept because of them, and a hub item there is an error.
- On a full resync, a Region without a hub item whose read AWS refuses by policy (an SCP) is
  reported as denied, with a note, not as an error; anywhere else a refused read is an error.
- VPCs join hubs by tag: one VPC read (DescribeVpcs, every VPC) per location swept, before
  the rest is read; it also answers which VPCs the items name there exist, so no second read
  is made. A location whose VPC read fails is an error, what its VPCs use is kept as it is,
  and the VPCs the items name there are read on their own (a missing one is an item error).
  A member account's swept Regions without a hub item get that read alone (nothing is
  planned there; a tag there is reported as not joining); where it fails, a note says so.
- Sharing spans accounts (rules are created and shared, then accepted and associated by the
  receiver): an account the hub's share takes in with this pass's plan follows it in the same
  apply (`Change.follows`): the hub's worker makes its share change first, then adds each rule
  it creates to it; the receiver's worker waits until the share is made (the hubs start first,
  and end their handoff when they end, so no follower waits on a hub that cannot run), accepts
  it, and associates each rule once shared; a fanned-out pass leaves that to the next.
  While a pass that involves sharing changes something not followed whole, another pass
  follows (at most `MAX_PASSES`), each planned from what it reads. So do Profiles (a rule is
  created, then put in the Profile; the Profile serves a VPC, then the VPC's direct
  associations go).
- An association planned with the acceptance of its share is applied only after that
  acceptance succeeded; while its rule is not visible yet (after a bounded wait, once per rule
  in a location's apply) it is `waiting`, a note says why, and another pass follows: not an
  error. A VPC is freed of its own rule for such a rule's domain only once the rule is visible
  there, so it is never left without either.
- Where shared rules arrive, pending invitations and (lean) Profiles are read only where the
  first reads show something there to find (`Offers`): a converged receiver reads neither.
- Profiles are read where our hub rules are, or where a hub delivers through a Profile; a
  failed Profile read makes the location unreadable (nothing changes there).
- With `work` (the deployed function), a plan that passed the checks and cannot be applied
  before the invocation ends is fanned out (one order per location, see `fanout`), and a
  location is written only under its lease, in this invocation or in a worker's: never two
  reconciles write one location at once. A worker applies an order only while the hub items,
  the location and the tags its changes depend on still read as they were planned from (an
  order that depends on no tag reads none); the pass after a wave is asked for
  by its last worker (`MAX_PASSES` counts waves too).
"""

from __future__ import annotations

import gc
import os
import queue
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from resolver_mesh.aws.calls import (
    CallInterruptedError,
    is_denied,
    is_unrecognised,
    stop_requested,
)
from resolver_mesh.aws.hubs import MissingTableError
from resolver_mesh.aws.profiles import ProfilesRegion
from resolver_mesh.aws.resolver import ResolverRegion, RuleNotVisibleError
from resolver_mesh.aws.session import Aws
from resolver_mesh.aws.shares import RamRegion
from resolver_mesh.aws.work import WORK_CALLS_PER_SECOND, DepartedLocation, Work
from resolver_mesh.desired import (
    Desired,
    HubSet,
    Joined,
    TaggedVpcs,
    VpcRead,
    desired_rules,
    join_by_tag,
    names_accounts,
    parse_hubs,
    without_conflicting,
)
from resolver_mesh.fanout import (
    ApplyOrder,
    TagBasis,
    apply_seconds,
    digest,
    must_fan_out,
    process_seconds,
    state_digest,
    worker_reads,
)
from resolver_mesh.models import (
    PROFILE_KINDS,
    AccountAccess,
    Change,
    ChangeKind,
    Delivery,
    HubItem,
    ItemError,
    ObservedProfile,
    ObservedShare,
    Plan,
    ProfileState,
    RegionState,
    Request,
    location,
    split_location,
)
from resolver_mesh.names import MESH_TAG_KEY, creator_request_ids
from resolver_mesh.plan import (
    MADE_HERE,
    PARENT_MAKES_WAY,
    SHARED_BY_ME,
    make_plan,
    managed_rules,
    rule_source,
    rule_target,
)
from resolver_mesh.profiles import (
    plan_profiles,
    shared_deliveries,
    vpc_deliveries,
    with_profile_changes,
)
from resolver_mesh.report import Report
from resolver_mesh.safety import check_plan

# Every location waits on its own rate limit, so each gets a worker of its own, up to a cap:
# Lambda runs at most 1,024 processes and threads per execution environment (Lambda quotas);
# half of them are left to botocore, Powertools and the runtime.
MAX_WORKERS = 512
# What a worker may hold while in a call (its stack, a response being parsed), generously (an
# idle thread measures 16 KiB); the workers may take a quarter of the function's memory.
WORKER_MIB = 0.5
WORKERS_MEMORY_SHARE = 0.25
# The cyclic garbage collector's thresholds for a reconciling process (`tune_collector`).
GC_THRESHOLDS = (50_000, 20, 10)
_collector_tuned = False
# Reconciles of the same mesh in one process wait for each other (threads, warm Lambda). Across
# processes, deterministic rule markers make concurrent creates meet instead of duplicating.
_MESH_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_MESH_LOCKS_GUARD = threading.Lock()
MAX_PASSES = 3
ACCOUNT_ID = re.compile(r"^\d{12}$")  # a share's principal that is an account
SHARE_KINDS = frozenset(
    {
        ChangeKind.CREATE_SHARE,
        ChangeKind.SHARE,
        ChangeKind.UNSHARE,
        ChangeKind.DELETE_SHARE,
        ChangeKind.ACCEPT_SHARE,
    }
)


# The share changes that make or extend the hub's share.
SHARE_GROWS = frozenset({ChangeKind.CREATE_SHARE, ChangeKind.SHARE})
# The status of a follower's acceptance that found no pending invitation for the share.
NO_INVITATION = "no invitation"
# Why an association that needed the share's acceptance is skipped: the acceptance failed, and
# its error, reported once by the acceptance, is not repeated for each association.
NOT_ACCEPTED = "the share that brings the rule was not accepted"
# The longest a receiver's worker waits for the hub's share change it follows (the hub's
# worker always gives it when it ends; this bounds a wait nonetheless: Lambda's longest run).
FOLLOW_WAIT_SECONDS = 900.0


def function_memory() -> float | None:
    """The function's memory in MB (Lambda's `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; None outside
    Lambda)."""
    return float(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0) or None


def worker_cap(memory_mib: float | None = None) -> int:
    """How many locations may be worked on at once: `MAX_WORKERS`, fewer when the function's
    memory (`memory_mib`, by default `function_memory()`) leaves less room."""
    if memory_mib is None:
        memory_mib = function_memory()
    if memory_mib is None:
        return MAX_WORKERS
    return max(1, min(MAX_WORKERS, int(memory_mib * WORKERS_MEMORY_SHARE / WORKER_MIB)))


def tune_collector() -> None:
    """Tune the cyclic garbage collector for a process that reconciles (the function, the
    CLI, a cold run): call after the imports.

    A reconcile keeps a large heap of long-lived objects (botocore's clients and models, some
    170 MiB at 100 member accounts) while every call allocates thousands of short-lived ones.
    With Python's default thresholds (700, 10, 10), a collection runs every 700 allocations
    and the older generations, rescanned again and again, grow with the accounts: about a
    tenth of a no-op's CPU (`benchmarks/org_benchmark.py`). Here the youngest generation is
    collected every `GC_THRESHOLDS[0]` allocations (cycles are still freed, a little later;
    the peak memory measured the same), and what the imports loaded is never scanned again
    (`gc.freeze`, once per process: what is frozen is never collected)."""
    global _collector_tuned
    if not _collector_tuned:
        _collector_tuned = True
        gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class _Workers:
    """The process's location workers, kept once started: later phases and warm invocations
    reuse them, instead of starting and ending a thread per location and phase (about 0.15 ms
    of CPU each, a tenth of a call's: `benchmarks/process_costs.py`).

    A task never waits for a worker: one is started whenever none is idle. `idle` counts the
    workers waiting for a task, less the tasks waiting for a worker (so it is exact whichever
    worker takes which task), and a worker counts itself idle before it says its task is
    done: so the process holds at most as many workers as tasks were ever given at once.
    """

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[[], None], Callable[[], None]]] = (
            queue.SimpleQueue()
        )
        self._idle = 0
        self._lock = threading.Lock()

    def start(self, task: Callable[[], None], then: Callable[[], None]) -> None:
        """Run `task` on a worker at once, then `then` (once the worker is idle again)."""
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                threading.Thread(target=self._serve, name="location-worker", daemon=True).start()
        self._tasks.put((task, then))

    def _serve(self) -> None:
        while True:
            task, then = self._tasks.get()
            task()
            with self._lock:
                self._idle += 1
            then()


_WORKERS = _Workers()


def per_region(
    work: Callable[[str], Any],
    locations: Iterable[str],
    calls: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """`work(where)` for every location at once, one worker each up to `worker_cap()` (they
    mostly wait on their location's rate limit); the results by location, once every location
    is done (the first failure, in that order, is raised). With more locations than workers,
    those with the most `calls` (an estimate) start first, so that the busiest location, which
    bounds the whole, never waits behind quick ones."""
    wave = _Wave(work)
    wave.add(locations, calls)
    return wave.results()


class MissedMembersError(Exception):
    """Accounts our shares name that are members, though the walk did not list them."""


class _Wave:
    """`per_region` for locations that become known a few at a time (`add`): each is worked on
    as soon as a worker is free, at most `worker_cap()` at once (the others wait in the order
    they were added, each batch by its `calls`), and `add` never waits; `results` waits for
    every location added. A location added twice is worked on once."""

    def __init__(self, work: Callable[[str], Any]) -> None:
        self._work = work
        self._cap = worker_cap()
        self._running = 0
        self._waiting: deque[str] = deque()
        self._futures: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()

    def add(self, locations: Iterable[str], calls: Mapping[str, int] | None = None) -> None:
        with self._lock:
            new = set(locations) - self._futures.keys()
            ordered = sorted(new, key=lambda where: (-(calls or {}).get(where, 0), where))
            self._futures |= {where: Future() for where in ordered}
            self._waiting += ordered
            starting = []
            while self._waiting and self._running < self._cap:
                starting.append(self._waiting.popleft())
                self._running += 1
        for where in starting:
            self._start(where)

    def _start(self, where: str) -> None:
        _WORKERS.start(partial(_work_on, self._work, where, self._futures[where]), self._next)

    def _next(self) -> None:
        with self._lock:
            following = self._waiting.popleft() if self._waiting else None
            if following is None:
                self._running -= 1
        if following is not None:
            self._start(following)

    def results(self) -> dict[str, Any]:
        with self._lock:
            futures = dict(self._futures)
        wait(futures.values())
        return {where: future.result() for where, future in futures.items()}


def _work_on(work: Callable[[str], Any], where: str, future: Future[Any]) -> None:
    try:
        future.set_result(work(where))
    except BaseException as error:  # raised where the results are read
        future.set_exception(error)


@dataclass
class _Applied:
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Handoff:
    """What a hub location's share change of this apply gives the receivers that follow it
    (`Change.follows`): whether the share was made (`given`, `made`, `share_arn`), and the
    hub rules added to it since, by domain (`created`), until the hub's apply `ended`."""

    changed: threading.Condition = field(default_factory=threading.Condition)
    given: bool = False
    ended: bool = False
    made: bool = False
    share_arn: str = ""
    created: dict[str, str] = field(default_factory=dict)


class _Handoffs:
    """The hub locations of one apply that receivers follow. A hub's worker gives its handoff
    once its share change is done (made or not), then adds each rule it creates and shares,
    and ends it when its apply ends, whatever happens: so a follower never waits for a hub
    that will not give, nor for a rule that will not come. The hubs start before their
    followers, so a follower waiting holds no worker a hub needs (`_apply`)."""

    def __init__(self, plan: Plan) -> None:
        self._by_hub = {c.follows: _Handoff() for c in plan.changes if c.follows}

    def __contains__(self, where: str) -> bool:
        return where in self._by_hub

    def give(self, where: str, share_arn: str = "") -> None:
        """The hub's share change is done: made (`share_arn`) or not."""
        handoff = self._by_hub.get(where)
        if handoff is not None:
            with handoff.changed:
                if not handoff.given:
                    handoff.given, handoff.made, handoff.share_arn = (
                        True,
                        bool(share_arn),
                        share_arn,
                    )
                    handoff.changed.notify_all()

    def add(self, where: str, domain: str, rule_id: str) -> None:
        """A hub rule created and in the share: its followers may take it."""
        handoff = self._by_hub.get(where)
        if handoff is not None:
            with handoff.changed:
                handoff.created[domain] = rule_id
                handoff.changed.notify_all()

    def end(self, where: str) -> None:
        """The hub's apply ended: a share not given yet was not made, no more rules come."""
        self.give(where)
        handoff = self._by_hub.get(where)
        if handoff is not None:
            with handoff.changed:
                handoff.ended = True
                handoff.changed.notify_all()

    def share_arn(self, where: str) -> str:
        """The share the hub location made or added to, once given ("" before)."""
        handoff = self._by_hub.get(where)
        return handoff.share_arn if handoff and handoff.given else ""

    def wait(self, where: str) -> _Handoff:
        """The hub location's handoff once given (at most `FOLLOW_WAIT_SECONDS`); at once,
        as not made, for a location this apply does not hold (an order's worker)."""
        handoff = self._by_hub.get(where)
        if handoff is None:
            return _Handoff()
        with handoff.changed:
            handoff.changed.wait_for(lambda: handoff.given, FOLLOW_WAIT_SECONDS)
        return handoff

    def holds(self, where: str, rule_id: str | None) -> bool:
        """Whether the hub location's share took in the rule `rule_id` in this apply."""
        handoff = self._by_hub.get(where)
        if handoff is None:
            return False
        with handoff.changed:
            return rule_id in handoff.created.values()

    def rule(self, where: str, domain: str) -> str | None:
        """The id of the hub's rule for `domain`, once created and shared; None when the
        hub's apply ended without it (at most `FOLLOW_WAIT_SECONDS`)."""
        handoff = self._by_hub.get(where)
        if handoff is None:
            return None
        with handoff.changed:
            handoff.changed.wait_for(
                lambda: domain in handoff.created or handoff.ended, FOLLOW_WAIT_SECONDS
            )
            return handoff.created.get(domain)


_NO_HANDOFFS = _Handoffs(Plan())


class RegionsNotEnabled:
    """The opt-in Regions each member account has not enabled (`ask(account)`, in practice
    `Aws.regions_not_enabled`), asked once per account, and only where the account's
    credentials were not accepted in a Region. An account whose answer cannot be read has
    none: its reads there stay errors. Safe from many threads."""

    def __init__(self, ask: Callable[[str], frozenset[str]]) -> None:
        self._ask = ask
        self._found: dict[str, frozenset[str]] = {}
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def unread(self, region: str, account: str, error: Exception) -> RegionState:
        """A location that `error` kept from being read: refused by policy (`denied`), in a
        Region its account has not enabled (`not_enabled`), or an error."""
        if account and is_unrecognised(error) and region in self._of(account):
            return RegionState(
                region,
                account=account,
                error=f"{region} is not enabled in account {account} (an opt-in Region)",
                not_enabled=True,
            )
        reason = f"{type(error).__name__}: {error}"
        return RegionState(region, account=account, error=reason, denied=is_denied(error))

    def _of(self, account: str) -> frozenset[str]:
        with self._guard:
            lock = self._locks[account]
        with lock:  # one question per account, while other accounts ask theirs
            if account not in self._found:
                try:
                    found = self._ask(account)
                except Exception:
                    found = frozenset()
                self._found[account] = found
            return self._found[account]


class Reconciler:
    """Runs one reconcile against AWS with the given settings and adapters."""

    def __init__(self, aws: Aws, work: Work | None = None) -> None:
        self.aws = aws
        self.settings = aws.settings
        self.work = work
        self._accounts: dict[str, AccountAccess] = {}  # the other accounts of this pass
        self._members: dict[str, AccountAccess] | None = None  # of MEMBER_OUS, in this run
        self._left: set[str] = set()  # accounts swept as no longer members, in this run
        self._pass = 1  # counting the passes of earlier waves (`work.first_pass`)
        self._not_enabled = self._regions_not_enabled()  # asked anew in each pass

    def run(self, request: Request) -> Report:
        """One reconcile. Reconciles of one mesh in one process run one after the other."""
        started = time.monotonic()
        self.aws.check_settings_regions()  # a bad MESH_REGIONS is a ConfigError, up front
        key = (self.aws.home_region, self.settings.table_name, self.settings.mesh_id)
        with _MESH_LOCKS_GUARD:
            lock = _MESH_LOCKS.setdefault(key, threading.Lock())
        with lock:
            return self._run_locked(request, started)

    def run_until_ready(
        self,
        request: Request,
        wait_seconds: float,
        poll_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
        profiles_wait_seconds: float = 0.0,
    ) -> list[Report]:
        """Run, then run again while a hub endpoint is still becoming ready, for at most
        `wait_seconds` (no event says when a new endpoint turns OPERATIONAL), or while a Route
        53 Profile of ours is on its way, for at most `profiles_wait_seconds`."""
        started = time.monotonic()
        reports = [self.run(request)]

        def deadline() -> float:
            longer = profiles_wait_seconds if reports[-1].profiles_pending else 0.0
            return started + max(wait_seconds, longer)

        while reports[-1].pending and time.monotonic() + poll_seconds <= deadline():
            sleep(poll_seconds)
            reports.append(self.run(request))
        return reports

    def _run_locked(self, request: Request, started: float) -> Report:
        calls_before = self.aws.call_counts()
        self._members = None  # the organisation is read once per run
        self._left = set()
        earlier: list[Report] = []
        report = self._new_report(request)
        self._pass = self.work.first_pass if self.work else 1
        try:
            while (
                self._run(request, report)
                and self._pass < MAX_PASSES
                and not stop_requested.is_set()
            ):
                earlier.append(report)
                report = self._new_report(request)
                self._pass += 1
        finally:
            report.include_earlier_passes(earlier)
            if self._left:
                left = ", ".join(sorted(self._left))
                report.notes.append(
                    f"no longer members, swept: {left}: our shares still named them; once"
                    " unshared they are no longer visited"
                    if report.applied
                    else f"no longer members, to be swept: {left}: our shares still name"
                    " them (nothing was applied)"
                )
            calls = self.aws.call_counts() - calls_before
            kinds = ("reads", "writes", "failed_reads", "failed_writes")
            report.calls = {kind: calls[kind] for kind in kinds}
            report.interrupted = stop_requested.is_set()
            report.duration_seconds = round(time.monotonic() - started, 3)
        return report

    def _new_report(self, request: Request) -> Report:
        report = Report(action="resync" if request.apply else "plan", trigger=request.trigger)
        report.mesh_id = self.settings.mesh_id
        return report

    # --- scope and observe ---------------------------------------------------------------

    def _run(self, request: Request, report: Report) -> bool:
        """One pass; True when it applied changes that involve sharing (another pass may have
        more to do: new rules to share, shared rules to associate)."""
        self._not_enabled = self._regions_not_enabled()
        try:
            items = self.aws.hubs_table().read_items()
            hubs_digest = digest(items)
            home_account = self.aws.account_id() if names_accounts(items) else ""
        except MissingTableError as error:
            report.error("table", str(error))
            return False
        except Exception as error:
            report.error("table", f"cannot read the hubs table {self.settings.table_name}: {error}")
            return False
        try:  # a Region newer than botocore is known once the account lists it
            named = [str(item.get("region")) for item in items] + list(request.regions or ())
            known = self.aws.known_regions(named)
        except Exception as error:
            report.error("regions", f"cannot list the account's Regions: {error}")
            known = self.aws.known_regions()
        hub_set = parse_hubs(items, known, home_account or None)
        report.hubs = sorted(hub_set.hubs)
        if request.interface_endpoints_at:
            needless = self._needless_for_endpoints(request.interface_endpoints_at, hub_set)
            if needless:
                report.notes.append(needless)
                return False

        regions = self._scope(request, hub_set, known, report)
        if regions is None:
            return False
        excluded = frozenset(self.settings.excluded_regions)
        not_swept, regions = regions & excluded, regions - excluded
        # Tags are read wherever the home account is swept, in every account: a VPC tagged in
        # a member account's Region without a hub is reported, as in the home account. These
        # reads start at once, and in each account of MEMBER_OUS as soon as the page listing
        # it is read: a large organisation's walk goes on meanwhile, not before them.
        listed = _named_vpcs(hub_set)
        vpc_wave = _Wave(lambda where: self._read_vpcs(where, listed.get(where, ())))
        try:
            self._accounts = self.aws.member_roles() | hub_set.accounts()
        except Exception as error:
            report.error("account", f"cannot read the reconciler's own account id: {error}")
            return False

        def read_tags_of(accounts: Mapping[str, AccountAccess]) -> None:
            new = {a: access for a, access in accounts.items() if a not in self._accounts}
            self._accounts |= new  # an explicit role (item or MEMBER_ROLES) wins for its account
            vpc_wave.add(location(r, a) for a in new for r in regions)

        vpc_wave.add(location(r, a) for a in ("", *self._accounts) for r in regions)
        try:
            read_tags_of(self._organization_members(read_tags_of))
            read_tags_of(hub_set.named_by_invalid)  # where no other role reaches them
        except Exception as error:  # an unread member list must never read as "no members"
            vpc_wave.results()  # what was read for its first pages is dropped with it
            report.error(
                "organization",
                f"MEMBER_OUS {','.join(self.settings.member_ous)}: cannot list the accounts of"
                f" the organisation, nothing is planned: {error}",
            )
            return False
        accounts = ["", *sorted(self._accounts)]
        member_regions = regions & set(hub_set.item_regions)
        scope = {location(r, a) for a in accounts for r in (member_regions if a else regions)}
        vpc_reads: dict[str, VpcRead] = vpc_wave.results()
        tagged = {where: read.tagged for where, read in vpc_reads.items()}
        joined = join_by_tag(self.settings.mesh_id, hub_set, tagged)
        if not home_account and _shares_beyond_items(joined, tagged, hub_set.item_regions):
            try:  # invitations are accepted from, and shares read for, this account's id
                home_account = self.aws.account_id()
            except Exception as error:
                report.error("account", f"cannot read the reconciler's own account id: {error}")
                return False
        reads = _Reads.of(hub_set, self.settings.delivery, joined, vpc_reads)
        departed: dict[str, DepartedLocation] = {}  # read on a full resync, below

        def observe(where: str) -> RegionState:
            region, account = split_location(where)
            if region in excluded:  # only a hub's endpoints lead here: an error
                return RegionState(region, account=account, error="in EXCLUDED_REGIONS: not read")
            return self._observe(where, where in scope, reads, hub_set, where in departed)

        states = per_region(observe, scope | reads.endpoints | set(reads.vpcs), _extra_reads(reads))
        offers = Offers.of(states, home_account)
        # Receivers; and, for their Profiles alone, other accounts a share of ours still gives
        # a Profile to, whose VPCs on it the guard counts if the share stops naming them.
        receivers = reads.share_receivers & scope
        states |= self._observe_more(states, scope, receivers, offers)
        try:
            leaving = self._leaving(states)
        except Exception as error:  # an account that may not have left is never swept
            report.error("organization", f"cannot tell which accounts left MEMBER_OUS: {error}")
            return False
        if leaving:  # swept once more: unshared, then not visited
            self._accounts |= leaving
            accounts += sorted(leaving)
            swept = {location(r, a) for a in leaving for r in member_regions}
            scope |= swept
            states |= per_region(observe, swept)
            # their VPCs on our shared Profile: taken off it, and counted by the guard
            states |= self._observe_more(states, swept, (), offers)
            self._left |= set(leaving)  # noted once in the run's report (`_run_locked`)
        if request.regions is None:
            # Our rules name the Region they forward to: a hub whose item is gone and whose
            # Region is not swept is still found through them, and its own rules removed. A
            # Region that holds rules of ours, in any account, is swept in every account too:
            # a member's spoke rules there go with its hub's item, though none forwards there.
            found = {
                found_in
                for state in states.values()
                for rule in managed_rules(state, self.settings.mesh_id)
                for found_in in (rule_target(rule, self.settings.mesh_id), state.region)
                if found_in
            }
            not_swept |= found & excluded
            trail = {location(r, a) for a in accounts for r in (found & known) - excluded} - scope
            # And where items stopped naming another account (the work table keeps it), until
            # nothing of ours is found there: rules that nothing else would lead back to.
            departed = self._departed(report, home_account, known - excluded)
            trail |= set(departed) - scope
            scope |= trail
            states |= per_region(observe, trail)
            if trail:  # VPCs on a removed hub's shared Profile, which the trail may be the
                # first to find (its owner's Region no longer swept): they let go before it goes
                offers = Offers.of(states, home_account)
                states |= self._observe_more(states, scope, (), offers)
        report.regions = sorted(scope)
        if not_swept:
            report.notes.append(
                f"not swept (excluded): {', '.join(sorted(not_swept))}: EXCLUDED_REGIONS are"
                " never read, so rules of ours left there are not found or removed"
            )
        desired = desired_rules(self.settings.mesh_id, hub_set, states, joined, home_account)
        adopt = self.settings.adopt_unmanaged
        whole = without_conflicting(self.settings.mesh_id, joined, desired, states, adopt)
        if whole is not joined:  # VPCs that would join only in part do not join
            joined = whole
            desired = desired_rules(self.settings.mesh_id, hub_set, states, joined, home_account)
        full_resync = request.regions is None
        hub_regions = hub_set.item_regions if full_resync else None
        self._report_state(report, desired, states, scope, hub_regions)
        self._report_joined(report, joined, tagged, states)
        profiles = plan_profiles(
            self.settings.mesh_id,
            hub_set,
            desired,
            states,
            scope,
            self.settings.delivery,
            joined,
            swept={location(region, "") for region in regions},
        )
        report.pending += profiles.pending
        report.profiles_pending = bool(profiles.pending)
        for failed in profiles.failed:
            report.error("profile", failed)

        plan = make_plan(
            self.settings.mesh_id,
            profiles.desired,
            states,
            scope,
            adopt=self.settings.adopt_unmanaged,
            home_account=home_account,
            also_shared=profiles.also_shared,
            profile_serving=profiles.serving,
            lingering=profiles.lingering,
            led_back=frozenset(departed),
        )
        plan = with_profile_changes(plan, profiles)
        if request.apply:
            self._forget_departed(departed, states, plan, report)
        verdict = check_plan(
            plan,
            states,
            scope,
            self.settings.mesh_id,
            self.settings.guard,
            force=request.force,
            staying=hub_set.enabled,
            partial=request.regions is not None,
            home_account=home_account,
        )
        report.plan(plan)
        report.notes += list(verdict.warnings)
        report.refused = list(verdict.refusals) if not verdict.allowed else []
        report.forced_past = list(verdict.refusals) if verdict.allowed and verdict.forced else []
        if not (request.apply and verdict.allowed):
            return False
        sharing_regions = {share.region for share in desired.shares}
        if self._fans_out(plan, report):
            # Orders do not wait on one another: receivers accept and associate the next pass.
            plan = replace(plan, changes=tuple(c for c in plan.changes if not c.follows))
            tags = TagBasis(tagged, joined, reads.vpcs, home_account)
            self._fan_out(
                plan, states, hubs_digest, tags, sorted(sharing_regions), profiles.active, report
            )
            return False  # the wave's last worker asks for the next pass
        self._apply(plan, report)
        followed = _followed_whole(plan, report.changes)
        return _sharing_goes_on(report.changes, sharing_regions, followed) or any(
            _leads_to_profile(change, profiles.active) for change in report.changes
        )

    def check_item(
        self, items: list[dict[str, Any]], region: str
    ) -> tuple[list[ItemError], list[str]]:
        """The item of `region` among `items`, checked as a reconcile would check it, against
        the live state of its locations (its VPCs, endpoints, spokes and shared VPCs): its
        errors, and what is not usable yet (an endpoint not OPERATIONAL, no ATTACHED IP, a
        location that cannot be read). Reads only; nothing is written."""
        known = self.aws.known_regions(str(item.get("region")) for item in items)
        home_account = self.aws.account_id() if names_accounts(items) else ""
        hub_set = parse_hubs(items, known, home_account or None)
        self._accounts = hub_set.accounts()
        reads = _Reads.of(hub_set, self.settings.delivery)
        here = {w for w in reads.endpoints | set(reads.vpcs) if split_location(w)[0] == region}
        states = per_region(lambda where: self._observe(where, False, reads, hub_set), here)
        desired = desired_rules(self.settings.mesh_id, hub_set, states)
        own = (f"hub {region}:", f"of hub {region}:")
        return (
            [e for e in desired.errors if e.region == region],
            [d for d in desired.degraded if any(mark in d for mark in own)],
        )

    def _needless_for_endpoints(self, at: Collection[tuple[str, str]], hub_set: HubSet) -> str:
        """Why a pass asked for by interface VPC endpoint changes at `at` ((Region, account
        id)) can change nothing, or "" when it may: interface endpoints are read only in hub
        locations (a disabled hub's included), so a change in another account's Region
        without a hub changes nothing (an organisation's accounts send them all). A change in
        the reconciler's own account always makes the full pass, as any trigger does."""
        try:
            home = self.aws.account_id()
        except Exception:  # unknown: the pass decides
            return ""
        hubs = {(hub.region, hub.account or home) for hub in hub_set.hubs.values()}
        if any(account == home or (region, account) in hubs for region, account in at):
            return ""
        where = ", ".join(f"{region} ({account})" for region, account in sorted(at))
        return (
            f"interface VPC endpoint changes in {where}: no hub there, so nothing to reconcile"
            " (only hubs' interface endpoints are read)"
        )

    def _scope(
        self, request: Request, hub_set: HubSet, known: frozenset[str], report: Report
    ) -> set[str] | None:
        """The Regions to sweep (in the reconciler's own account; other accounts: those of
        the items among them)."""
        if request.regions is not None:
            unknown = sorted(set(request.regions) - known)
            if unknown:
                report.error("request", f"unknown Region(s) in 'regions': {', '.join(unknown)}")
                return None
            excluded = sorted(set(request.regions) & set(self.settings.excluded_regions))
            if excluded:
                report.error(
                    "request",
                    f"Region(s) in 'regions' are in EXCLUDED_REGIONS: {', '.join(excluded)}",
                )
                return None
            return set(request.regions)
        swept: Collection[str] = self.settings.mesh_regions
        outside = sorted((set(hub_set.item_regions) & known) - set(swept)) if swept else []
        if outside:
            report.notes.append(
                f"hub Region(s) {', '.join(outside)} missing from MESH_REGIONS: once such a hub"
                " item is deleted, its Region is no longer swept; add them"
            )
        if not swept:
            try:
                swept = self.aws.enabled_regions()
            except Exception as error:
                report.error("regions", f"cannot list the account's enabled Regions: {error}")
                swept = ()
        return (set(hub_set.item_regions) & known) | set(swept)

    def _organization_members(
        self, found: Callable[[dict[str, AccountAccess]], None]
    ) -> dict[str, AccountAccess]:
        """The ACTIVE accounts under `MEMBER_OUS` other than the reconciler's own, each with
        the member role; read once per run, each page's accounts given to `found` as it is
        read. Raises when the organisation cannot be read."""
        if self._members is None:
            self._members = self.aws.organization_members(found)
        return self._members

    def _leaving(self, states: Mapping[str, RegionState]) -> dict[str, AccountAccess]:
        """Accounts that our shares (read where the hubs are) still name but that are no
        longer members of `MEMBER_OUS` nor named by items or `MEMBER_ROLES`: they are swept in
        this pass, through the member role, which takes our shared rules off their VPCs and
        unshares them; after that nothing of ours names them and they are no longer visited.
        The walk is no snapshot (an account moved from one OU to another while it went on may
        be listed by neither), so when any would be swept the organisation is walked once more:
        one it lists after all raises `MissedMembersError`, and nothing is swept. The cost is a
        walk's pages, whatever the number of accounts that leave."""
        if not self.settings.member_ous:
            return {}
        named = {
            principal
            for state in states.values()
            for share in state.shares
            for principal in share.principals
            if ACCOUNT_ID.match(principal)
        }
        gone = named - set(self._accounts) - {self.aws.account_id()} if named else set()
        if gone:  # the walk is no snapshot: an account moved while it went on may be missed
            again = self.aws.organization().active_accounts(self.settings.member_ous)
            if missed := sorted(gone & again):
                raise MissedMembersError(
                    f"{', '.join(missed)} under MEMBER_OUS, but not listed by the first walk of"
                    " the organisation (moved while it was walked?): nothing is planned, the"
                    " next reconcile reads them"
                )
        return {account: self.aws.member_access(account) for account in sorted(gone)}

    def _aws_of(self, account: str) -> Aws:
        return self.aws.member(self._accounts[account]) if account else self.aws

    def _read_vpcs(self, where: str, named: Collection[str]) -> VpcRead:
        """One location's VPC read: the VPCs tagged to join this mesh there, and which of
        `named` exist; a failed read says why, and answers neither."""
        region, account = split_location(where)
        try:
            return self._aws_of(account).vpcs(region, self.settings.mesh_id, named)
        except Exception as error:
            return VpcRead(TaggedVpcs(error=f"{type(error).__name__}: {error}"))

    def _read_tags(self, where: str) -> TaggedVpcs:
        """The VPCs tagged to join this mesh at one location, read as a pass reads them."""
        return self._read_vpcs(where, ()).tagged

    def _observe(
        self, where: str, rules: bool, reads: _Reads, hub_set: HubSet, lead: bool = False
    ) -> RegionState:
        """One location's reads (`_Reads`); where a hub item stopped naming it (`lead`), its
        Profiles and shares too, so that nothing of ours there goes unseen."""
        region, account = split_location(where)
        hub = hub_set.hubs.get(region)
        hub_here = hub is not None and hub.location == where
        endpoints = where in reads.endpoints
        inbound = (hub.inbound_endpoint_id,) if hub and hub_here else ()
        try:
            aws = self._aws_of(account)
            state = aws.resolver(region).read(  # adoption needs the tags of unowned rules
                read_tags=rules and self.settings.adopt_unmanaged,
                rules=rules,
                endpoints=endpoints,
                inbound_ids=inbound,
            )
            state = replace(state, account=account)
            if where in reads.vpcs:  # the VPCs the items name here: a missing one is an error
                existing = reads.vpcs_found.get(where)  # None: no VPC read answered it
                if existing is None:
                    existing = aws.existing_vpcs(region, reads.vpcs[where])
                state = replace(state, vpcs=existing)
            if hub and hub_here and any(h.uses_services for h in hub_set.enabled.values()):
                # `{services}` hubs answer for their interface endpoints; every hub's are read
                # to find the cross-Region endpoints that make forwarding needless.
                found = aws.interface_endpoints(region, hub.vpc_id)
                state = replace(state, interface_endpoints=found)
            delivers = where in reads.profile_deliveries
            reading = self._profile_reading(state, delivers, hub_here or lead)
            if rules and reading:
                try:
                    read = aws.profiles(region).read(self.settings.mesh_id, lean=reading == "lean")
                    state = replace(state, profiles=read)
                except Exception as error:
                    if reading == "full":
                        raise  # the location delivers through a Profile: unreadable
                    state = replace(state, profiles_unread=f"{type(error).__name__}: {error}")
            # Our shares: where a hub shares, or rules or a Profile of ours are shared from
            # (which accounts it gives our Profile to: they let go of it before it goes).
            mesh_id = self.settings.mesh_id
            if (
                lead
                or where in reads.share_owners
                or any(r.share_status == SHARED_BY_ME for r in managed_rules(state, mesh_id))
                or any(p.share_status == SHARED_BY_ME and p.ours for p in _profiles_of(state))
            ):
                state = replace(state, shares=aws.ram(region).our_shares(mesh_id))
            return state
        except Exception as error:
            return self._not_enabled.unread(region, account, error)

    def _departed(
        self, report: Report, home_account: str, regions: Collection[str]
    ) -> dict[str, DepartedLocation]:
        """The locations kept in the work table because a hub item stopped naming them, in
        `regions` and other accounts, their accounts made reachable (a role already known
        wins); {} without a work table. Unreadable: an error, and this pass sweeps only what
        else leads it (the leads stay for the next)."""
        if self.work is None:
            return {}
        try:
            kept = self.work.table.departed()
            if kept:
                home_account = home_account or self.aws.account_id()
        except Exception as error:
            report.error("departed", f"cannot read where items stopped naming accounts: {error}")
            return {}
        others = {w: lead for w, lead in kept.items() if lead.access.account != home_account}
        departed = {w: lead for w, lead in others.items() if split_location(w)[0] in regions}
        if unread := sorted(others.keys() - departed.keys()):
            report.notes.append(
                f"not read where hub items stopped naming these accounts: {', '.join(unread)}"
                " (excluded or unknown Regions; forgotten 30 days after they were noted)"
            )
        for lead in departed.values():
            self._accounts.setdefault(lead.access.account, lead.access)
        if departed:
            report.notes.append(
                f"read where hub items stopped naming these accounts: {', '.join(sorted(departed))}"
                " (until nothing of ours is left there)"
            )
        return departed

    def _forget_departed(
        self,
        departed: Mapping[str, DepartedLocation],
        states: Mapping[str, RegionState],
        plan: Plan,
        report: Report,
    ) -> None:
        """Stop reading a departed location once it was read whole (its Profiles and shares
        too, `_observe`'s `lead`) with nothing of ours in it, and nothing is planned there: a
        pass that deletes what is there forgets it only the pass after. A location its
        account has not enabled holds nothing. Not if it was noted again since it was read."""
        if self.work is None:
            return
        planned = _by_location(plan)
        mesh_id = self.settings.mesh_id
        for where, lead in sorted(departed.items()):
            state = states.get(where)
            if state is None or where in planned:
                continue
            empty = state.not_enabled or (
                state.error is None
                and state.profiles is not None
                and state.profiles_unread is None
                and not managed_rules(state, mesh_id)
                and not state.shares
                and not any(p.ours for p in state.profiles.profiles)
            )
            if empty:
                try:
                    self.work.table.forget_departed(where, lead.noted)
                except Exception as error:
                    report.notes.append(f"{where}: still kept as departed: {error}")

    def _regions_not_enabled(self) -> RegionsNotEnabled:
        return RegionsNotEnabled(lambda account: self._aws_of(account).regions_not_enabled())

    def _observe_more(
        self,
        states: Mapping[str, RegionState],
        scope: Collection[str],
        receivers: Collection[str],
        offers: Offers,
    ) -> dict[str, RegionState]:
        """The second reads of `scope` (`_read_more`): the receivers' and, for their Profiles
        alone, those of other locations a share of ours still gives a Profile to, whose VPCs
        on it the guard counts if the share stops naming them."""
        more = [w for w in sorted(receivers) if offers.wants_more(states[w])]
        more += [
            w
            for w in sorted(set(scope) - set(receivers))
            if offers.given_a_profile(states[w]) and offers.needs_profiles(states[w])
        ]
        return per_region(
            lambda where: self._read_more(states[where], offers, where in receivers), more
        )

    def _read_more(self, state: RegionState, offers: Offers, receiving: bool) -> RegionState:
        """A location's reads that depend on what the pass's first reads showed elsewhere
        (`Offers`): its Profiles (lean: a failed read is a note) and, where it receives our
        rules (`receiving`), its pending invitations. If the invitations cannot be read, the
        location cannot be read."""
        aws = self._aws_of(state.account)
        try:
            if offers.needs_profiles(state):
                try:
                    read = aws.profiles(state.region).read(self.settings.mesh_id, lean=True)
                    state = replace(state, profiles=read)
                except Exception as error:
                    state = replace(state, profiles_unread=f"{type(error).__name__}: {error}")
            if receiving and offers.needs_invitations(state):
                ram = aws.ram(state.region)
                state = replace(state, invitations=ram.pending_invitations())
            return state
        except Exception as error:
            return self._not_enabled.unread(state.region, state.account, error)

    def _profile_reading(self, state: RegionState, delivers: bool, hub_here: bool) -> str | None:
        """How Profiles are read here: "full" where a hub delivers through a Profile
        (`delivers`: `_Reads.profile_deliveries`), so that a failed read makes the location
        unreadable; "lean" where our hub rules are or a hub item is (`hub_here`, disabled
        ones too: a hub without rules of ours may still have its Profile on its VPCs), only to
        find a Profile of ours left from an earlier delivery (one `ListProfiles` when there is
        none, and a failed read is a note); None elsewhere (where shared rules arrive,
        `Offers.needs_profiles` decides)."""
        if delivers:
            return "full"
        mesh_id = self.settings.mesh_id
        if hub_here or any(not rule_source(r, mesh_id) for r in managed_rules(state, mesh_id)):
            return "lean"
        return None

    def _report_state(
        self,
        report: Report,
        desired: Desired,
        states: dict[str, RegionState],
        scope: set[str],
        hub_regions: Collection[str] | None,
    ) -> None:
        """Item errors, degraded and pending hubs, unreadable locations. A location refused by
        policy is `denied`, not an error, when `hub_regions` (a full resync's) lacks its Region;
        one in a Region its account has not enabled is a note (an item naming a VPC there has
        the error)."""
        for item_error in desired.errors:
            report.item_error(item_error)
        report.degraded = list(desired.degraded)
        report.notes += list(desired.notes)
        report.pending = sorted(desired.pending)
        not_enabled: list[str] = []
        for where, state in sorted(states.items()):
            tolerated = hub_regions is not None and state.region not in hub_regions
            if state.error and state.not_enabled:
                not_enabled.append(where)
            elif state.error and state.denied and tolerated:
                report.denied_regions.append(where)
            elif state.error:
                report.error(
                    "region", f"{where}: cannot read Route 53 Resolver: {state.error}", where
                )
            elif state.profiles_unread:
                report.notes.append(
                    f"{where}: cannot read Route 53 Profiles ({state.profiles_unread}): no hub"
                    " delivers through a Profile to VPCs here, so the rules are reconciled; a"
                    " Profile of ours left here from an earlier delivery is not pruned, and if a"
                    " share of ours gives this account a Profile, the guard counts its VPCs on it"
                    " as the other accounts' average"
                )
        if not_enabled:
            report.notes.append(
                f"not enabled: {_by_region(not_enabled)}: opt-in Regions these accounts have not"
                " enabled; AWS refuses every call there, so nothing is read or changed there"
            )
        if report.denied_regions:
            report.notes.append(
                f"denied: {', '.join(report.denied_regions)}: AWS refused the reads there"
                " (AccessDenied: an SCP?), so rules of ours left there are not found or"
                " removed; list such Regions in EXCLUDED_REGIONS if that is intended"
            )
        report.managed_rules = sum(
            len(managed_rules(s, self.settings.mesh_id))
            for where, s in states.items()
            if where in scope and not s.error
        )

    def _report_joined(
        self,
        report: Report,
        joined: Joined,
        tagged: Mapping[str, TaggedVpcs],
        states: Mapping[str, RegionState],
    ) -> None:
        """Who joined by tag, who cannot and why, and the tag reads that failed: an error,
        unless the location could not be read at all (that error is reported with its state).
        Where only the tags were read (a member account's swept Region without a hub item,
        where nothing is planned), a failure loses nothing but a report: one note for them all
        (a Region AWS refuses there by policy, or one the account has not enabled)."""
        report.joined = [vpc.as_dict() for vpc in joined.vpcs]
        report.not_joined = list(joined.refused)
        unread: dict[str, str] = {}
        for where, read in sorted(tagged.items()):
            state = states.get(where)
            if read.error and state is None:
                unread[where] = read.error
            elif read.error and state is not None and not state.error:
                report.error(
                    "tags",
                    f"{where}: cannot read the VPCs tagged {MESH_TAG_KEY}={self.settings.mesh_id}"
                    f" ({read.error}): the VPCs there that use the mesh's rules keep them, and"
                    " shares with the account stay as they are",
                    where,
                )
        if unread:
            first = next(iter(unread.values()))
            report.notes.append(
                f"tags not read: {_by_region(unread)}: no hub item there, so nothing is planned;"
                f" a VPC tagged {MESH_TAG_KEY}={self.settings.mesh_id} there is not reported"
                f" ({first}{'; and others' if len(set(unread.values())) > 1 else ''})"
            )

    # --- apply ---------------------------------------------------------------------------

    def _fans_out(self, plan: Plan, report: Report) -> bool:
        """Whether this pass's plan goes to workers: only when the deployment can fan out
        and applying it here could outlast the invocation."""
        if self.work is None or not self.work.settings.enabled or not plan.changes:
            return False
        by_location = _by_location(plan)
        # A follower waits for its hub's share and rules: its own changes come after those.
        hubs = {c.location: c.follows for c in plan.changes if c.follows}
        waits = {where: by_location[where] + by_location.get(hub, 0) for where, hub in hubs.items()}
        # A followed hub adds each rule it creates to its share: one more call (RAM's budget,
        # taken between its creates, so no longer, but this process's CPU all the same).
        followed = set(hubs.values())
        shared_one_by_one = sum(
            c.kind is ChangeKind.CREATE_RULE and not c.source and c.location in followed
            for c in plan.changes
        )
        calls = sum(by_location.values()) + shared_one_by_one + 2 * len(by_location)
        estimate = max(  # the changes, and every location's lease taken and given back
            apply_seconds(by_location | waits, self.settings.calls_per_second, worker_cap()),
            2 * len(by_location) / WORK_CALLS_PER_SECOND,
            process_seconds(calls, function_memory()),
        )
        left = self.work.seconds_left()
        if not must_fan_out(estimate, left):
            return False
        report.notes.append(
            f"fanned out: applying here would take about {estimate:.0f} s, with {left:.0f} s"
            " left in the invocation"
        )
        return True

    def _fan_out(
        self,
        plan: Plan,
        states: Mapping[str, RegionState],
        hubs_digest: str,
        tags: TagBasis,
        sharing_regions: list[str],
        profile_active: Collection[str],
        report: Report,
    ) -> None:
        """One order per location with changes, under one wave; a location whose order
        could not be queued is reported, and finished in the wave as asking for a pass."""
        assert self.work is not None
        wave = str(uuid.uuid4())
        by_location = _by_location_changes(plan)
        orders = []
        for where, changes in sorted(by_location.items()):
            tag_locations = tags.locations(where, changes)
            read = {w: tags.reads[w] for w in tag_locations}
            tag_accounts = sorted({split_location(w)[1] for w in tag_locations} - {""})
            orders.append(
                ApplyOrder(
                    mesh_id=self.settings.mesh_id,
                    wave=wave,
                    pass_number=self._pass,
                    location=where,
                    changes=tuple(changes),
                    hubs_digest=hubs_digest,
                    state_digest=state_digest(states.get(where) or _unread(where), changes, read),
                    access=self._accounts.get(split_location(where)[1]),
                    sharing_regions=tuple(sharing_regions),
                    profile_active=where in profile_active,
                    tag_locations=tag_locations,
                    tag_access=tuple(self._accounts[a] for a in tag_accounts),
                )
            )
        try:
            self.work.table.start_wave(wave, by_location, self._pass)
        except Exception as error:  # no wave, no orders: nothing goes anywhere
            report.error("fan_out", f"the wave could not be started: {error}; nothing applied")
            report.applied_changes([c.as_dict() | {"status": "not started"} for c in plan.changes])
            return
        unsent = self.work.queues.send_orders(orders)
        results: list[dict[str, Any]] = []
        for order in orders:
            why = unsent.get(order.location)
            status = "not started" if why else "queued"
            for change in order.changes:
                results.append(change.as_dict() | {"status": status, "wave": wave})
            if why:
                report.error("fan_out", f"{order.location}: the apply order was not queued: {why}")
                self.work.table.finish(wave, order.location, follow_up=True)
        report.applied_changes(results)
        report.notes.append(
            f"wave {wave} (pass {self._pass}): {len(orders) - len(unsent)} location(s)"
            f" queued on the apply queue, {len(plan.changes)} change(s)"
        )

    def _apply(self, plan: Plan, report: Report) -> None:
        by_location = _by_location_changes(plan)
        handoffs = _Handoffs(plan)
        calls = _by_location(plan)
        first = max(calls.values(), default=0) + 1  # the hubs that others follow start first
        calls |= {where: first + calls[where] for where in by_location if where in handoffs}

        def apply(where: str) -> _Applied:
            changes = by_location[where]
            if where in handoffs:  # followed: the share first, each rule joins it once created
                shares = [c for c in changes if c.kind in SHARE_GROWS]
                changes = shares + [c for c in changes if c not in shares]
            try:
                return self._apply_leased(where, changes, handoffs)
            finally:
                handoffs.end(where)

        outcomes = per_region(apply, by_location, calls)
        results: list[dict[str, Any]] = []
        for where in sorted(outcomes):
            results.extend(outcomes[where].results)
            report.errors.extend(outcomes[where].errors)
            report.notes.extend(outcomes[where].notes)
        report.applied_changes(results)

    def _apply_leased(
        self, where: str, changes: list[Change], handoffs: _Handoffs = _NO_HANDOFFS
    ) -> _Applied:
        """`_apply_location` under the location's lease (when the deployment has leases);
        while another reconcile holds it, nothing is started there and that is an error."""
        if self.work is None or not self.work.settings.work_table:
            return self._apply_location(where, changes, handoffs)
        holder = f"pass/{uuid.uuid4()}"
        try:
            leased = self.work.table.acquire(where, holder, self.work.lease_seconds())
        except Exception as error:
            return _not_started(where, changes, f"its lease could not be taken: {error}")
        if not leased:
            return _not_started(where, changes, "another reconcile holds its lease")
        try:
            applied = self._apply_location(where, changes, handoffs)
        finally:
            unreleased = self._release(where, holder)
        if unreleased:
            applied.errors.append({"kind": "lease", "region": where, "message": unreleased})
        return applied

    def _release(self, where: str, holder: str) -> str:
        """Give the location's lease back; why it could not be, or "" (what was applied is
        reported all the same, and the lease expires on its own)."""
        assert self.work is not None
        try:
            self.work.table.release(where, holder)
        except Exception as error:
            return (
                f"{where}: its lease could not be given back ({type(error).__name__}: {error});"
                " it expires on its own"
            )
        return ""

    def apply_order(self, order: ApplyOrder) -> Report:
        """A worker's part of a fanned-out pass: the order's changes, applied under the
        location's lease while the hub items and the location read as planned; then the
        location finished in its wave (the last one asks for the next pass)."""
        assert self.work is not None
        where = order.location
        report = Report(action="apply", trigger=f"wave {order.wave} (pass {order.pass_number})")
        report.mesh_id, report.regions, report.planned = self.settings.mesh_id, [where], True
        if order.mesh_id != self.settings.mesh_id:
            report.error("order", f"an order of mesh {order.mesh_id!r}, not of this one")
            return report
        reached = (order.access, *order.tag_access)
        self._accounts = {access.account: access for access in reached if access}
        changes = list(order.changes)
        holder = f"wave/{order.wave}/{uuid.uuid4()}"
        outcome: _Applied | None = None
        if not self.work.table.acquire(where, holder, self.work.lease_seconds()):
            report.notes.append(f"{where}: another reconcile holds its lease; re-planned next")
        else:
            try:
                why = self._stale(order)
                if why:
                    report.notes.append(f"{where}: stale order ({why}); re-planned next")
                else:
                    outcome = self._apply_location(where, changes)
            except Exception as error:  # the location or the table could not be read
                report.error("order", f"{where}: {type(error).__name__}: {error}", where)
            finally:
                if unreleased := self._release(where, holder):
                    report.error("lease", unreleased, where)
        if outcome is None:
            outcome = _not_started(where, changes, "not applied (see notes and errors)")
            outcome.errors.clear()
        report.errors.extend(outcome.errors)
        report.notes.extend(outcome.notes)
        report.applied_changes(outcome.results)
        follow_up = (
            bool(report.errors)
            or any(r["status"] != "applied" for r in outcome.results)
            or _sharing_goes_on(outcome.results, order.sharing_regions)
            or (order.profile_active and any(r["status"] == "applied" for r in outcome.results))
        )
        end = self.work.table.finish(order.wave, where, follow_up)
        if end is not None and end.follow_up and end.pass_number < MAX_PASSES:
            self.work.queues.follow_up(self.settings.mesh_id, order.wave, end.pass_number)
            report.notes.append(f"wave {order.wave} finished: pass {end.pass_number + 1} asked")
        elif end is not None:
            report.notes.append(f"wave {order.wave} finished")
        return report

    def _stale(self, order: ApplyOrder) -> str | None:
        """Why an order no longer holds (the hub items, the location or the tags its changes
        depend on changed since it was planned, or could not be read again), or None."""
        if digest(self.aws.hubs_table().read_items()) != order.hubs_digest:
            return "the hub items changed since the plan"
        region, account = split_location(order.location)
        aws = self._aws_of(account)
        state = aws.resolver(region).read(
            rules=True, endpoints=False, read_tags=self.settings.adopt_unmanaged
        )
        shares, invitations, profiles = worker_reads(order.changes)
        if shares:
            state = replace(state, shares=aws.ram(region).our_shares(self.settings.mesh_id))
        if invitations:
            state = replace(state, invitations=aws.ram(region).pending_invitations())
        if profiles:
            state = replace(state, profiles=aws.profiles(region).read(self.settings.mesh_id))
        tags = {where: self._read_tags(where) for where in order.tag_locations}
        for where, read in sorted(tags.items()):
            if read.error:
                return f"the VPCs tagged at {where} could not be read ({read.error})"
        if state_digest(state, order.changes, tags) != order.state_digest:
            tagged = f" or the VPCs tagged at {', '.join(sorted(tags))}" if tags else ""
            return f"{order.location}{tagged} changed since the plan"
        return None

    def _apply_location(
        self, where: str, changes: list[Change], handoffs: _Handoffs = _NO_HANDOFFS
    ) -> _Applied:
        region, account = split_location(where)
        aws = self._aws_of(account)
        resolver, ram = aws.resolver(region), aws.ram(region)
        created: dict[tuple[str, str], str] = {}  # (source, domain) -> rule created in this run
        hub_rules_made: list[str] = []  # the hub's rules created or adopted, for its share
        new_profile: str | None = None  # the Profile created in this run
        accepted: set[str] = set()  # the invitations accepted in this run
        joined: dict[str, str] = {}  # shares followed in: share ARN -> invitation accepted, ""
        followed_share = ""  # as a followed hub: the share made in this run
        empty_share = ""  # that share while no rule is in it
        not_arrived: dict[str, str] = {}  # rule -> why it was not visible after its wait
        undeletable: set[str] = set()  # rules whose disassociation failed
        staying: set[str] = set()  # rules still on a VPC whose new rule is not there yet
        freed: dict[tuple[str, str | None], str] = {}  # (domain, VPC) -> the rule that left it
        occupied: set[tuple[str, str | None]] = set()  # (domain, VPC) a duplicate still holds
        unsettled: set[str | None] = set()  # VPCs an association of this apply did not reach
        profile_kept = False  # our Profile here was to go and did not: its rules lead back
        out = _Applied()
        for change, following in zip(changes, [*changes[1:], None], strict=True):
            is_profile = change.kind in PROFILE_KINDS
            is_rule = change.kind not in SHARE_KINDS and not is_profile
            rule_id = change.rule_id or created.get((change.source, change.domain))
            profile_id = change.profile_id or new_profile
            status, message, why = "applied", "", ""
            if stop_requested.is_set():
                status = "not started"
            elif change.follows:
                status, why, message, rule_id = self._follow(
                    ram, resolver, change, handoffs, joined, not_arrived
                )
            elif is_profile and profile_id is None and change.kind is not ChangeKind.CREATE_PROFILE:
                status, message = "skipped", "the Profile was not created"
            elif is_rule and rule_id is None and change.kind is not ChangeKind.CREATE_RULE:
                status, message = "skipped", f"the rule for {change.domain} was not created"
            elif _awaits_acceptance(change) and change.share_arn not in accepted:
                status, why = "skipped", NOT_ACCEPTED
            elif _awaits_acceptance(change) and rule_id in not_arrived:
                status, why = "waiting", not_arrived[str(rule_id)]  # waited for once already
            elif _shares_nothing(change) and not hub_rules_made and where not in handoffs:
                status, message = "skipped", "no rule of the hub was made in this apply to share"
            elif _makes_way_for_nothing(change, following, created, accepted):
                status, message = "skipped", "the rule that was to take its place is not there"
            elif (change.kind is ChangeKind.DELETE_RULE and rule_id in undeletable) or (
                change.kind is ChangeKind.ASSOCIATE and (change.domain, change.vpc_id) in occupied
            ):
                status, message = "skipped", "a disassociation it depends on failed"
            elif change.kind is ChangeKind.DELETE_RULE and profile_kept:
                status, message = "skipped", "our Profile here was not deleted: its rules stay"
            elif change.kind is ChangeKind.DELETE_RULE and rule_id in staying:
                status, why = (
                    "waiting",
                    "it stays on a VPC until the rule taking its place is there",
                )
            elif change.reason == PARENT_MAKES_WAY and change.vpc_id in unsettled:
                status, why = (
                    "waiting",
                    "it stays on the VPC until the hub's rules of every domain under it are there",
                )
            else:
                try:
                    arriving = _freed_for_arriving(change, following)
                    if arriving and (why := self._not_arrived(resolver, arriving, not_arrived)):
                        status = "waiting"  # the VPC keeps its rule; the next pass swaps them
                    elif is_rule:
                        rule_id = self._write(resolver, change, rule_id)
                    elif is_profile:
                        profile_id = self._write_profile(aws.profiles(region), change, profile_id)
                        new_profile = new_profile or (
                            profile_id if change.kind is ChangeKind.CREATE_PROFILE else None
                        )
                    else:
                        if hub_rules_made and change.kind in SHARE_GROWS:
                            arns = [_rule_arn(aws, region, r) for r in hub_rules_made]
                            change = _with_hub_rules_made(change, arns)
                        made = self._write_share(ram, change)
                        if change.kind is ChangeKind.ACCEPT_SHARE:
                            accepted.add(str(change.share_arn))
                        if change.kind in SHARE_GROWS and where in handoffs:
                            followed_share = made  # the rules created next join it one by one
                            empty_share = made if _shares_nothing(change) else ""
                            handoffs.give(where, made)
                            for (source, domain), created_id in created.items():
                                if not source:
                                    handoffs.add(where, domain, created_id)
                    if change.kind is ChangeKind.CREATE_RULE:
                        created[(change.source, change.domain)] = str(rule_id)
                    if change.kind in MADE_HERE and not change.source:  # created or adopted
                        hub_rules_made.append(str(rule_id))
                        if followed_share:
                            message = self._share_created(
                                aws, ram, followed_share, change, str(rule_id), handoffs
                            )
                            if empty_share and handoffs.holds(where, rule_id):
                                empty_share = ""
                except CallInterruptedError:
                    status = "not started"  # nothing of it was written (see `Caller`)
                except RuleNotVisibleError as waiting:  # not an error: the next pass does it
                    status, why = "waiting", f"{waiting}; the next pass associates it"
                    not_arrived[str(rule_id)] = why
                except Exception as error:
                    status, message = "failed", f"{type(error).__name__}: {error}"
                    if change.kind in SHARE_GROWS:
                        handoffs.end(where)  # not made: its followers wait for the next pass
                    if change.kind is ChangeKind.DISASSOCIATE and rule_id:
                        undeletable.add(rule_id)
                        occupied.add((change.domain, change.vpc_id))
                    if change.kind is ChangeKind.UNSHARE:  # still shared: not deletable
                        undeletable |= {arn.rsplit("/", 1)[-1] for arn in change.resources}
                    # the next pass must find the Profile: only rules of ours lead a pass to a
                    # Region without an item, so they stay
                    profile_kept |= change.kind is ChangeKind.DELETE_PROFILE
            if change.kind is ChangeKind.DISASSOCIATE and status in ("waiting", "skipped"):
                staying.add(str(rule_id))  # it freed nothing: the rule is still in use
            if change.kind is ChangeKind.ASSOCIATE and status != "applied":
                unsettled.add(change.vpc_id)
            if change.kind is ChangeKind.DISASSOCIATE and status == "applied" and rule_id:
                if _makes_way_for(change, following):
                    freed[(change.domain, change.vpc_id)] = rule_id
            elif change.kind is ChangeKind.ASSOCIATE and status in ("failed", "waiting"):
                left = freed.pop((change.domain, change.vpc_id), None)
                if left is not None:  # the VPC would have neither: the old rule goes back
                    staying.add(left)
                    back, ok = self._put_back(resolver, left, change)
                    if status == "waiting" and ok:
                        why = f"{why}; {back}"
                    else:
                        status, message = "failed", "; ".join(m for m in (message or why, back))
            result = change.as_dict() | {"status": status}
            if rule_id:
                result["rule_id"] = rule_id
            if change.follows and (invitation := joined.get(handoffs.share_arn(change.follows))):
                result["share_arn"] = invitation
            if is_profile and profile_id:
                result["profile_id"] = profile_id
            if status == "skipped" and message and out.errors:  # after an error of this apply:
                why, message = message, ""  # that error is its cause, reported once
            if status == "waiting":
                result["message"] = why
                what = change.vpc_id or (
                    f"deleting {rule_id}"
                    if rule_id
                    else f"{change.kind.value} (follows {change.follows})"
                )
                domain = f" for {change.domain}" if change.domain else ""
                out.notes.append(f"{where}: {what} waits{domain}: {why}")
            elif status == "skipped" and why:  # its cause is an error of its own change
                result["message"] = why
            if message:
                result["message"] = message
                named = change.domain or change.share_arn or change.name
                about = named or (f"(follows {change.follows})" if change.follows else "")
                out.errors.append(
                    {
                        "kind": "apply",
                        "region": where,
                        "message": f"{change.kind.value} {about} in {where}"
                        f"{' for ' + change.vpc_id if change.vpc_id else ''}: {message}",
                    }
                )
            out.results.append(result)
        if empty_share:
            out.notes.append(self._drop_empty_share(ram, where, empty_share))
        return out

    @staticmethod
    def _drop_empty_share(ram: RamRegion, where: str, share_arn: str) -> str:
        """The share made first in this apply for the hub rules it was to create, none of
        which came into it: deleted, since a share holding no rule of ours is read again only
        while a VPC of another account needs it (the next pass that still needs it makes it
        again, with its rules); what became of it."""
        try:
            ram.delete_share(share_arn)
        except Exception as error:
            return (
                f"{where}: {share_arn} holds no rule (none was created into it) and could not"
                f" be deleted: {type(error).__name__}: {error}"
            )
        return f"{where}: deleted {share_arn}, made for hub rules none of which came into it"

    @staticmethod
    def _share_created(
        aws: Aws, ram: RamRegion, share_arn: str, change: Change, rule_id: str, handoffs: _Handoffs
    ) -> str:
        """As a followed hub whose share was made first in this run: add a rule just created
        (or adopted) to it, so that its followers take it now; the error, if it could not be
        (the rule stays; its followers wait for the next pass, which shares it)."""
        try:
            ram.share(share_arn, [_rule_arn(aws, change.region, rule_id)], [])
        except CallInterruptedError:
            return ""  # a stop was asked for: the next pass shares it
        except Exception as error:
            return f"created, but not added to {share_arn}: {type(error).__name__}: {error}"
        handoffs.add(change.location, change.domain, rule_id)
        return ""

    @staticmethod
    def _follow(
        ram: RamRegion,
        resolver: ResolverRegion,
        change: Change,
        handoffs: _Handoffs,
        joined: dict[str, str],
        not_arrived: dict[str, str],
    ) -> tuple[str, str, str, str | None]:
        """A receiver's change that follows its hub's share change (`Change.follows`), once
        that is done: the acceptance of the share's invitation (`NO_INVITATION` when none is
        pending: none is sent within an organisation that shares without them, and one late
        to show is accepted by the next pass), or a hub rule put on a VPC
        once that acceptance is done and the rule is visible here (waited for once per rule,
        as `_not_arrived`; where no invitation was found, once per share: it may only be late
        to show). Status, why it waits (or is skipped), the error, the rule's id; `joined`
        records the shares followed in (with the invitation accepted, if any). A follower whose
        hub did not share waits for the next pass (the hub reports why)."""
        handoff = handoffs.wait(change.follows)
        rule_id = change.rule_id
        if not handoff.made:
            return "waiting", f"{change.follows} did not share its rules in this apply", "", None
        try:
            if change.kind is ChangeKind.ACCEPT_SHARE:
                found = [i for i in ram.pending_invitations() if i.share_arn == handoff.share_arn]
                for invitation in found:
                    ram.accept(invitation.arn)
                joined[handoff.share_arn] = found[0].arn if found else ""
                return ("applied" if found else NO_INVITATION), "", "", None
            if handoff.share_arn not in joined:
                return "skipped", NOT_ACCEPTED, "", None
            rule_id = change.rule_id or handoffs.rule(change.follows, change.domain)
            if rule_id is None:
                return "waiting", f"{change.follows} did not share it in this apply", "", None
            unseen = not_arrived.get(handoff.share_arn)  # no invitation, and nothing came
            if rule_id in not_arrived or unseen:
                return "waiting", not_arrived.get(rule_id) or str(unseen), "", rule_id
            resolver.associate_arriving(rule_id, str(change.vpc_id), str(change.name))
        except CallInterruptedError:
            return "not started", "", "", rule_id
        except RuleNotVisibleError as waiting:
            not_arrived[str(rule_id)] = f"{waiting}; the next pass associates it"
            if not joined.get(handoff.share_arn):  # its invitation may be late: wait no more
                not_arrived[handoff.share_arn] = not_arrived[str(rule_id)]
            return "waiting", not_arrived[str(rule_id)], "", rule_id
        except Exception as error:
            return "failed", "", f"{type(error).__name__}: {error}", rule_id
        return "applied", "", "", rule_id

    @staticmethod
    def _put_back(resolver: ResolverRegion, rule_id: str, failed: Change) -> tuple[str, bool]:
        """Associate `rule_id` again with the VPC it left for `failed`, which did not take its
        place: what became of the VPC, and whether the rule is back."""
        try:
            resolver.associate(rule_id, str(failed.vpc_id), str(failed.name or ""))
        except Exception as error:
            return (
                f"{rule_id}, which made way for it, could not be put back on {failed.vpc_id}:"
                f" {type(error).__name__}: {error}",
                False,
            )
        return f"{rule_id}, which made way for it, was put back on {failed.vpc_id}", True

    @staticmethod
    def _not_arrived(
        resolver: ResolverRegion, arriving: Change, not_arrived: dict[str, str]
    ) -> str:
        """Why the shared rule of `arriving` (an association awaiting its share's acceptance)
        is not visible here after its wait; "" once it is. Waited for once per rule."""
        rule_id = str(arriving.rule_id)
        if rule_id not in not_arrived:
            try:
                resolver.await_arrival(rule_id)
                return ""
            except RuleNotVisibleError as waiting:
                not_arrived[rule_id] = f"{waiting}; the next pass associates it"
        return not_arrived[rule_id]

    def _write(self, resolver: ResolverRegion, change: Change, rule_id: str | None) -> str:
        """Make one change to a rule; returns the id of the rule it concerns."""
        if change.kind is ChangeKind.CREATE_RULE:
            markers = creator_request_ids(
                self.settings.mesh_id,
                change.region,
                change.domain,
                change.target_region or "",
                change.source,
            )
            return resolver.create_rule(change, markers, self.settings.mesh_id)
        assert rule_id is not None
        if change.kind is ChangeKind.ADOPT_RULE:
            resolver.adopt_rule(rule_id, self.settings.mesh_id, change.target_region or "")
        elif change.kind is ChangeKind.UPDATE_RULE:
            resolver.update_rule(change)
        elif _awaits_acceptance(change):
            resolver.associate_arriving(rule_id, str(change.vpc_id), str(change.name))
        elif change.kind is ChangeKind.ASSOCIATE:
            resolver.associate(rule_id, str(change.vpc_id), str(change.name))
        elif change.kind is ChangeKind.DISASSOCIATE:
            resolver.disassociate(rule_id, str(change.vpc_id))
        else:
            resolver.delete_rule(rule_id)
        return rule_id

    def _write_profile(
        self, profiles: ProfilesRegion, change: Change, profile_id: str | None
    ) -> str:
        """Make one change to our Profile; returns the Profile's id."""
        mesh_id = self.settings.mesh_id
        if change.kind is ChangeKind.CREATE_PROFILE:
            return profiles.create_profile(mesh_id)
        assert profile_id is not None
        if change.kind is ChangeKind.PROFILE_ADD_RULE:
            for arn in change.resources:
                profiles.add_rule(profile_id, arn, str(change.name))
        elif change.kind is ChangeKind.PROFILE_REMOVE_RULE:
            for arn in change.resources:
                profiles.remove_rule(profile_id, arn)
        elif change.kind is ChangeKind.ASSOCIATE_PROFILE:
            profiles.associate(profile_id, str(change.vpc_id), mesh_id)
        elif change.kind is ChangeKind.DISASSOCIATE_PROFILE:
            profiles.disassociate(profile_id, str(change.vpc_id))
        else:
            profiles.delete_profile(profile_id)
        return profile_id

    def _write_share(self, ram: RamRegion, change: Change) -> str:
        """Make one change to a share of ours, or accept one; returns the share's ARN."""
        arn = str(change.share_arn)
        if change.kind is ChangeKind.CREATE_SHARE:
            name = str(change.name)
            return ram.create_share(
                name, change.resources, change.principals, self.settings.mesh_id
            )
        if change.kind is ChangeKind.SHARE:
            ram.share(arn, change.resources, change.principals)
        elif change.kind is ChangeKind.UNSHARE:
            ram.unshare(arn, change.resources, change.principals)
        elif change.kind is ChangeKind.DELETE_SHARE:
            ram.delete_share(arn)
        else:
            ram.accept(arn)
        return arn


def _with_hub_rules_made(change: Change, arns: list[str]) -> Change:
    """The hub's share (made or extended) with the hub rules created or adopted before it in
    this location's apply: the plan, made before they existed or were ours, could not name
    them, and the next pass would add them (the hub's share holds all its live rules). A rule
    is COMPLETE once created, so it can be shared at once, and the receivers associate it a
    pass sooner."""
    if change.kind not in SHARE_GROWS or not arns:
        return change
    return replace(change, resources=tuple(sorted({*change.resources, *arns})))


def _shares_nothing(change: Change) -> bool:
    """A share to be made with nothing in it (every rule it is for is still to be made)."""
    return change.kind is ChangeKind.CREATE_SHARE and not change.resources


def _rule_arn(aws: Aws, region: str, rule_id: str) -> str:
    """A Resolver rule's ARN (its documented form, as AWS and the emulator give it)."""
    return (
        f"arn:{aws.partition}:route53resolver:{region}:{aws.account_id()}:resolver-rule/{rule_id}"
    )


def _by_location_changes(plan: Plan) -> dict[str, list[Change]]:
    """The plan's changes by location, each location's in the plan's order."""
    by_location: dict[str, list[Change]] = {}
    for change in plan.changes:
        by_location.setdefault(change.location, []).append(change)
    return by_location


def _by_location(plan: Plan) -> dict[str, int]:
    """How many changes each location has."""
    return {where: len(changes) for where, changes in _by_location_changes(plan).items()}


def _profiles_of(state: RegionState) -> tuple[ObservedProfile, ...]:
    return state.profiles.profiles if state.profiles else ()


def _unread(where: str) -> RegionState:
    """The state of a location with changes but no state read (none is expected: changes are
    planned only where the state was read): empty, so its worker applies only into an empty
    location."""
    region, account = split_location(where)
    return RegionState(region, account=account, error="not read")


def _not_started(where: str, changes: list[Change], why: str) -> _Applied:
    """Every change of a location reported as not started, with one error saying why."""
    out = _Applied(
        results=[c.as_dict() | {"status": "not started", "message": why} for c in changes]
    )
    out.errors.append(
        {"kind": "apply", "region": where, "message": f"{where}: nothing applied: {why}"}
    )
    return out


def _by_region(locations: Collection[str]) -> str:
    """Locations as a short text: by Region, naming up to 3 accounts there, counting more
    (a Region refused in every account of an organisation: one line, not hundreds)."""
    accounts: dict[str, list[str]] = {}
    for where in sorted(locations):
        region, account = split_location(where)
        accounts.setdefault(region, []).append(account or "the home account")
    return ", ".join(
        f"{region} ({', '.join(names) if len(names) <= 3 else f'{len(names)} accounts'})"
        if names != ["the home account"]
        else region
        for region, names in accounts.items()
    )


def _shares_beyond_items(
    joined: Joined, tagged: Mapping[str, TaggedVpcs], hub_regions: Collection[str]
) -> bool:
    """Whether sharing may involve accounts no item names: a VPC of another account than its
    hub's joined by tag, or a member account whose tags could not be read in a hub's Region
    (its share stays)."""
    return any(vpc.shared for vpc in joined.vpcs) or any(
        read.error and account and region in hub_regions
        for (region, account), read in ((split_location(w), r) for w, r in tagged.items())
    )


def _awaits_acceptance(change: Change) -> bool:
    """An association of a shared rule planned with the acceptance of its share (it names the
    invitation): applied only once the invitation is accepted, and its rule may arrive late."""
    return change.kind is ChangeKind.ASSOCIATE and bool(change.share_arn)


def _sharing_goes_on(
    results: Iterable[Mapping[str, Any]],
    sharing_regions: Collection[str],
    followed: Collection[str] = frozenset(),
) -> bool:
    """Whether sharing has a next step after these results (see `_leads_to_sharing`); an
    invitation accepted in a location counts as done when a shared rule it brings was put on a
    VPC right after it (the plan put every rule the share holds on the listed VPCs). So do a
    hub location's share change and rule creations when every account the change took in
    followed it whole (`followed`: `_followed_whole`), and those accounts' acceptances."""
    results = list(results)
    associated = {
        r.get("share_arn")
        for r in results
        if r["kind"] == ChangeKind.ASSOCIATE and r["status"] == "applied"
    }
    return any(
        _leads_to_sharing(r, sharing_regions, associated)
        for r in results
        if not _done_by_followers(r, followed)
    )


def _followed_whole(plan: Plan, results: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The hub locations the plan's receivers follow whole (`Plan.followed`) whose every
    follow change was applied (an acceptance: or found no invitation, and its rules came)."""
    followed = set(plan.followed)
    for result in results:
        if result.get("follows") and result["status"] not in ("applied", NO_INVITATION):
            followed.discard(result["follows"])
    return frozenset(followed)


def _done_by_followers(result: Mapping[str, Any], followed: Collection[str]) -> bool:
    """A result with no next step because the receivers followed it whole in the same apply:
    the hub location's share change and rule creations, and their acceptances."""
    if result.get("follows") in followed:
        return True
    where = location(result["region"], result.get("account", ""))
    kinds = (ChangeKind.CREATE_SHARE, ChangeKind.SHARE, ChangeKind.CREATE_RULE)
    return where in followed and ChangeKind(result["kind"]) in kinds and not result.get("source")


def _leads_to_sharing(
    result: Mapping[str, Any],
    sharing_regions: Collection[str],
    associated: Collection[str | None] = frozenset(),
) -> bool:
    """A change after which sharing has a next step: a share changed or accepted (the
    receiver can associate; not when it did in the same apply, `associated` naming such
    invitations), a hub rule created where the hub shares its rules (it can be shared), a
    shared rule taken off a receiving VPC (the owner can let it go), a shared rule that did
    not arrive in time (`waiting`). A shared rule put on a receiving VPC ends its sharing:
    nothing waits for it."""
    if result["status"] == "waiting":
        return True
    if result["status"] != "applied":
        return False
    kind = ChangeKind(result["kind"])
    if kind is ChangeKind.ACCEPT_SHARE:
        return result.get("share_arn") not in associated
    return (
        kind in SHARE_KINDS
        or (
            kind is ChangeKind.CREATE_RULE
            and not result.get("source")
            and result["region"] in sharing_regions
        )
        or (bool(result.get("owner")) and kind is ChangeKind.DISASSOCIATE)
    )


def _leads_to_profile(result: Mapping[str, Any], active: Collection[str]) -> bool:
    """An applied change where our Profile is or should be: the Profile may have a next step
    (a new rule to hold, a VPC it now serves, a VPC that now has its rules directly)."""
    where = location(result["region"], result.get("account", ""))
    return result["status"] == "applied" and where in active


def _makes_way_for_nothing(
    change: Change,
    following: Change | None,
    created: Mapping[tuple[str, str], str],
    accepted: Collection[str] = frozenset(),
) -> bool:
    """A disassociation that frees a VPC for the association right after it, when that
    association cannot come: its rule was to be created in this run and was not, or it is a
    shared rule whose share was to be accepted in this run and was not. The VPC keeps what it
    has."""
    if following is None or not _makes_way_for(change, following):
        return False
    if _awaits_acceptance(following):
        return following.share_arn not in accepted
    return following.rule_id is None and (following.source, following.domain) not in created


def _makes_way_for(change: Change, following: Change | None) -> bool:
    """A disassociation that frees its VPC for the association right after it (the same
    domain and VPC)."""
    return (
        change.kind is ChangeKind.DISASSOCIATE
        and following is not None
        and following.kind is ChangeKind.ASSOCIATE
        and (following.domain, following.vpc_id) == (change.domain, change.vpc_id)
    )


def _freed_for_arriving(change: Change, following: Change | None) -> Change | None:
    """The association right after `change` when `change` frees its VPC for it and it puts
    on the VPC a shared rule whose share was accepted in this run (the rule may not have
    arrived yet); otherwise None."""
    if following is not None and _makes_way_for(change, following):
        return following if _awaits_acceptance(following) else None
    return None


def _extra_reads(reads: _Reads) -> dict[str, int]:
    """An estimate of the reads each location needs beyond its rules and associations (its
    endpoints and their IPs, its VPCs, shares, invitations): the order workers start in."""
    calls: dict[str, int] = defaultdict(int)
    for where in reads.endpoints:
        calls[where] += 2
    for where in set(reads.vpcs) - set(reads.vpcs_found):
        calls[where] += 1
    for group in (reads.share_owners, reads.share_receivers):
        for where in group:
            calls[where] += 1
    return calls


@dataclass(frozen=True)
class Offers:
    """What a pass's first reads show of our shares and Profiles, by Region: which receiving
    locations need more read, once those reads are in.

    Invariants:
    - Invitations are read where a share of ours (read where it is owned, in the same Region)
      names the location's account and holds something the location does not see (a rule, a
      Profile), or where that share's owner holds more than one share of ours (an accepted
      duplicate must not hide a pending keeper). An accepted share shows everything it holds,
      so where every share of ours naming the account is seen whole, no invitation of ours can
      be accepted usefully (an organisation that shares without invitations never needs one).
      Where the account id is unknown (the home account, its id not read), every share of ours
      in the Region counts.
    - Profiles are read (lean) in a receiving location not read for them yet only in a Region
      where a Profile of ours was found where it is owned, or a share of ours holds more than
      rules: a Profile shared with the account is acted on only as one of ours read where it
      lives, so elsewhere there is nothing of ours to find."""

    shares: Mapping[str, tuple[tuple[ObservedShare, bool], ...]]  # with "owner has duplicates"
    profile_regions: frozenset[str]
    home_account: str = ""

    @classmethod
    def of(cls, states: Mapping[str, RegionState], home_account: str) -> Offers:
        shares: dict[str, list[tuple[ObservedShare, bool]]] = defaultdict(list)
        regions: set[str] = set()
        for owner in states.values():
            if owner.error:
                continue
            duplicated = len(owner.shares) > 1
            shares[owner.region] += [(share, duplicated) for share in owner.shares]
            if any(":resolver-rule/" not in arn for s in owner.shares for arn in s.resources):
                regions.add(owner.region)
            found = owner.profiles.profiles if owner.profiles else ()
            if any(p.ours and p.share_status != "SHARED_WITH_ME" for p in found):
                regions.add(owner.region)
        return cls(
            shares={region: tuple(found) for region, found in shares.items()},
            profile_regions=frozenset(regions),
            home_account=home_account,
        )

    def wants_more(self, state: RegionState) -> bool:
        return self.needs_profiles(state) or self.needs_invitations(state)

    def given_a_profile(self, state: RegionState) -> bool:
        """Whether a share of ours in the location's Region names its account and holds more
        than rules (our Profile)."""
        account = state.account or self.home_account
        return bool(account) and any(
            account in share.principals
            and any(":resolver-rule/" not in arn for arn in share.resources)
            for share, _ in self.shares.get(state.region, ())
        )

    def needs_profiles(self, state: RegionState) -> bool:
        return (
            not state.error
            and state.profiles is None
            and state.profiles_unread is None
            and state.region in self.profile_regions
        )

    def needs_invitations(self, state: RegionState) -> bool:
        if state.error:
            return False
        account = state.account or self.home_account
        seen = {rule.arn for rule in state.rules}
        seen |= {profile.arn for profile in (state.profiles or ProfileState()).profiles}
        return any(
            (not account or account in share.principals)
            and (duplicated or not share.resources <= seen)
            for share, duplicated in self.shares.get(state.region, ())
        )


def _named_vpcs(hub_set: HubSet) -> dict[str, frozenset[str]]:
    """The VPCs the enabled items name, by location (each in its own account)."""
    vpcs: dict[str, set[str]] = defaultdict(set)
    for hub in hub_set.enabled.values():
        vpcs[hub.location] |= hub.associated_vpc_ids
        for spoke in hub.spokes:
            if spoke.enabled:
                vpcs[location(hub.region, spoke.account)].add(spoke.vpc_id)
        for shared in hub.shared_vpcs:
            vpcs[location(hub.region, shared.account)].add(shared.vpc_id)
    return {where: frozenset(ids) for where, ids in vpcs.items()}


@dataclass(frozen=True)
class _Reads:
    """Where more than rules must be read: endpoints (hubs and spokes), the VPCs items name,
    our shares (where a hub shares its rules) and invitations (where shared rules arrive).
    `vpcs_found`: where the location's VPC read (the tag read) answered which of the named VPCs
    exist, no second read is made. `profile_deliveries`: where a hub delivers through a Profile
    (its own location when any of its VPCs, or a VPC it shares with, gets its rules that way; a
    receiving location when its VPCs do), worked out once per pass: a hub names every account it
    shares with, so asking each location would grow with the square of the accounts."""

    endpoints: frozenset[str]
    share_owners: frozenset[str]
    share_receivers: frozenset[str]
    profile_deliveries: frozenset[str]
    vpcs: Mapping[str, frozenset[str]] = field(default_factory=dict)  # location -> VPC ids
    vpcs_found: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        hub_set: HubSet,
        default: Delivery,
        joined: Joined | None = None,
        vpc_reads: Mapping[str, VpcRead] | None = None,
    ) -> _Reads:
        """What the items (and the VPCs that joined by tag, which were just seen) need read,
        with `default` the delivery of hubs that name none, and what the locations' VPC reads
        (`vpc_reads`) answered already."""
        enabled = hub_set.enabled.values()
        joined = joined or Joined()
        vpcs = _named_vpcs(hub_set)
        share_receivers = frozenset(
            location(hub.region, shared.account) for hub in enabled for shared in hub.shared_vpcs
        ) | {location(vpc.region, vpc.account) for vpc in joined.vpcs if vpc.shared}
        receivers: dict[str, list[str]] = defaultdict(list)  # by Region
        for where in share_receivers:
            receivers[split_location(where)[0]].append(where)
        return cls(
            vpcs=vpcs,
            vpcs_found={
                where: read.named
                for where, read in (vpc_reads or {}).items()
                if where in vpcs and read.named is not None
            },
            endpoints=frozenset(
                where
                for hub in enabled
                for where in (
                    hub.location,
                    *(location(hub.region, s.account) for s in hub.spokes if s.enabled),
                )
            ),
            share_owners=frozenset(
                hub.location for hub in enabled if hub.shared_vpcs or joined.shared(hub.region)
            ),
            share_receivers=share_receivers,
            profile_deliveries=frozenset(
                where
                for hub in enabled
                for where in _profile_deliveries(
                    hub, default, receivers.get(hub.region, ()), joined
                )
            ),
        )


def _profile_deliveries(
    hub: HubItem, default: Delivery, receivers: Collection[str], joined: Joined
) -> Iterable[str]:
    """The hub's locations that get its rules through its Profile (`_Reads.profile_deliveries`),
    among its own and `receivers` (the receiving locations of its Region)."""
    mode = hub.delivery or default
    shared = shared_deliveries(hub, default, joined)
    if "profile" in vpc_deliveries(hub, default).values() or any(
        "profile" in modes.values() for modes in shared.values()
    ):
        yield hub.location
    for where in receivers:
        if mode == "profile" or "profile" in shared.get(split_location(where)[1], {}).values():
            yield where
