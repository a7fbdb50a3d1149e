"""The engine: scope -> observe -> plan -> check -> apply -> report, once.

Invariants:
- If the hubs table cannot be read, nothing is planned or changed anywhere.
- Regions are read, and written, in parallel; inside a Region the plan's order is kept.
- A change whose prerequisite failed (the rule was not created, the VPC not freed, the rule not
  disassociated) is skipped, never attempted against a half-made state.
- `apply=False` makes no write call at all.
- Once a stop is requested (`stop_requested`, Ctrl-C in the CLI), no further change is started:
  the changes left are reported as "not started", the one in flight finishes.
- Two reconciles of one mesh never interleave in a process; the second plans from what the
  first left, so concurrent triggers cause neither duplicates nor flapping.
- Other accounts are read and written through their assumed role, location by location
  (`region@account`); an account that cannot be reached is a location that cannot be read.
- `EXCLUDED_REGIONS` are never read or written, in any account; a report says which Regions
  were not swept because of them, and a hub item there is an error.
- On a full resync, a Region without a hub item whose read AWS refuses by policy (an SCP) is
  reported as denied, with a note, not as an error; anywhere else a refused read is an error.
- VPCs join hubs by tag: one tag read (DescribeVpcs) per location swept, before the rest is
  read. A location whose tag read fails is reported, and what its VPCs use is kept as it is.
- Sharing spans accounts (rules are created, then shared, then associated by the receiver):
  while a pass that involves sharing changes something, another pass follows (at most
  `MAX_PASSES`), each planned from what it reads.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from resolver_mesh.aws.calls import CallInterruptedError, is_denied, stop_requested
from resolver_mesh.aws.hubs import MissingTableError
from resolver_mesh.aws.resolver import ResolverRegion
from resolver_mesh.aws.session import Aws
from resolver_mesh.aws.shares import RamRegion
from resolver_mesh.desired import (
    Desired,
    HubSet,
    Joined,
    TaggedVpcs,
    desired_rules,
    join_by_tag,
    names_accounts,
    parse_hubs,
)
from resolver_mesh.models import (
    AccountAccess,
    Change,
    ChangeKind,
    ItemError,
    Plan,
    RegionState,
    Request,
    location,
    split_location,
)
from resolver_mesh.names import MESH_TAG_KEY, creator_request_ids
from resolver_mesh.plan import SHARED_BY_ME, make_plan, managed_rules, rule_target
from resolver_mesh.report import Report
from resolver_mesh.safety import check_plan

# One thread per Region (they mostly wait on their Region's rate limit); fewer would make a
# Region wait for another to finish, doubling the time of a 16-Region converge.
MAX_PARALLEL_REGIONS = 64
# Reconciles of the same mesh in one process wait for each other (threads, warm Lambda). Across
# processes, deterministic rule markers make concurrent creates meet instead of duplicating.
_MESH_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_MESH_LOCKS_GUARD = threading.Lock()
MAX_PASSES = 3
SHARE_KINDS = frozenset(
    {
        ChangeKind.CREATE_SHARE,
        ChangeKind.SHARE,
        ChangeKind.UNSHARE,
        ChangeKind.DELETE_SHARE,
        ChangeKind.ACCEPT_SHARE,
    }
)


def per_region(work: Callable[[str], Any], regions: Iterable[str]) -> dict[str, Any]:
    """`work(region)` for every Region at once, one thread each (they mostly wait on their
    Region's rate limit); the results by Region."""
    regions = sorted(set(regions))
    if not regions:
        return {}
    with ThreadPoolExecutor(max_workers=min(len(regions), MAX_PARALLEL_REGIONS)) as pool:
        return dict(zip(regions, pool.map(work, regions), strict=True))


@dataclass
class _Applied:
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


class Reconciler:
    """Runs one reconcile against AWS with the given settings and adapters."""

    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self.settings = aws.settings
        self._accounts: dict[str, AccountAccess] = {}  # the other accounts of this pass

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
    ) -> list[Report]:
        """Run, then run again while a hub endpoint is still becoming ready, for at most
        `wait_seconds`: no event says when a new endpoint turns OPERATIONAL."""
        deadline = time.monotonic() + wait_seconds
        reports = [self.run(request)]
        while reports[-1].pending and time.monotonic() + poll_seconds <= deadline:
            sleep(poll_seconds)
            reports.append(self.run(request))
        return reports

    def _run_locked(self, request: Request, started: float) -> Report:
        calls_before = self.aws.call_counts()
        earlier: list[Report] = []
        report = self._new_report(request)
        try:
            while (
                self._run(request, report)
                and len(earlier) + 1 < MAX_PASSES
                and not stop_requested.is_set()
            ):
                earlier.append(report)
                report = self._new_report(request)
        finally:
            report.include_earlier_passes(earlier)
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
        try:
            items = self.aws.hubs_table().read_items()
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

        regions = self._scope(request, hub_set, known, report)
        if regions is None:
            return False
        excluded = frozenset(self.settings.excluded_regions)
        not_swept, regions = regions & excluded, regions - excluded
        self._accounts = {a.account: a for a in self.settings.member_roles} | hub_set.accounts()
        accounts = ["", *sorted(self._accounts)]
        member_regions = regions & set(hub_set.item_regions)
        scope = {location(r, a) for a in accounts for r in (member_regions if a else regions)}
        tagged: dict[str, TaggedVpcs] = per_region(self._read_tags, scope)
        joined = join_by_tag(self.settings.mesh_id, hub_set, tagged)
        if not home_account and _shares_beyond_items(joined, tagged):
            try:  # invitations are accepted from, and shares read for, this account's id
                home_account = self.aws.account_id()
            except Exception as error:
                report.error("account", f"cannot read the reconciler's own account id: {error}")
                return False
        reads = _Reads.of(hub_set, joined)

        def observe(where: str) -> RegionState:
            region, account = split_location(where)
            if region in excluded:  # only a hub's endpoints lead here: an error
                return RegionState(region, account=account, error="in EXCLUDED_REGIONS: not read")
            return self._observe(where, where in scope, reads, hub_set)

        states = per_region(observe, scope | reads.endpoints | set(reads.vpcs))
        if request.regions is None:
            # Our rules name the Region they forward to: a hub whose item is gone and whose
            # Region is not swept is still found through them, and its own rules removed.
            found = {
                target
                for state in states.values()
                for rule in managed_rules(state, self.settings.mesh_id)
                if (target := rule_target(rule, self.settings.mesh_id))
            }
            not_swept |= found & excluded
            trail = {location(r, a) for a in accounts for r in (found & known) - excluded} - scope
            scope |= trail
            states |= per_region(observe, trail)
        report.regions = sorted(scope)
        if not_swept:
            report.notes.append(
                f"not swept (excluded): {', '.join(sorted(not_swept))}: EXCLUDED_REGIONS are"
                " never read, so rules of ours left there are not found or removed"
            )
        desired = desired_rules(self.settings.mesh_id, hub_set, states, joined, home_account)
        full_resync = request.regions is None
        hub_regions = hub_set.item_regions if full_resync else None
        self._report_state(report, desired, states, scope, hub_regions)
        self._report_joined(report, joined, tagged, states)

        plan = make_plan(
            self.settings.mesh_id,
            desired,
            states,
            scope,
            adopt=self.settings.adopt_unmanaged,
            home_account=home_account,
        )
        verdict = check_plan(
            plan,
            states,
            scope,
            self.settings.mesh_id,
            self.settings.guard,
            force=request.force,
            staying=hub_set.enabled,
        )
        report.plan(plan)
        report.notes += list(verdict.warnings)
        report.refused = list(verdict.refusals) if not verdict.allowed else []
        report.forced_past = list(verdict.refusals) if verdict.allowed and verdict.forced else []
        if not (request.apply and verdict.allowed):
            return False
        self._apply(plan, report)
        sharing_regions = {share.region for share in desired.shares}
        return any(_leads_to_sharing(change, sharing_regions) for change in report.changes)

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
        reads = _Reads.of(hub_set)
        here = {w for w in reads.endpoints | set(reads.vpcs) if split_location(w)[0] == region}
        states = per_region(lambda where: self._observe(where, False, reads, hub_set), here)
        desired = desired_rules(self.settings.mesh_id, hub_set, states)
        own = (f"hub {region}:", f"of hub {region}:")
        return (
            [e for e in desired.errors if e.region == region],
            [d for d in desired.degraded if any(mark in d for mark in own)],
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

    def _aws_of(self, account: str) -> Aws:
        return self.aws.member(self._accounts[account]) if account else self.aws

    def _read_tags(self, where: str) -> TaggedVpcs:
        """The VPCs tagged to join this mesh at one location; a failed read says why."""
        region, account = split_location(where)
        try:
            return self._aws_of(account).tagged_vpcs(region, self.settings.mesh_id)
        except Exception as error:
            return TaggedVpcs(error=f"{type(error).__name__}: {error}")

    def _observe(self, where: str, rules: bool, reads: _Reads, hub_set: HubSet) -> RegionState:
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
                state = replace(state, vpcs=aws.existing_vpcs(region, reads.vpcs[where]))
            if hub and hub_here and any(h.uses_services for h in hub_set.enabled.values()):
                # `{services}` hubs answer for their interface endpoints; every hub's are read
                # to find the cross-Region endpoints that make forwarding needless.
                found = aws.interface_endpoints(region, hub.vpc_id)
                state = replace(state, interface_endpoints=found)
            if where in reads.share_owners or any(
                r.share_status == SHARED_BY_ME for r in managed_rules(state, self.settings.mesh_id)
            ):
                state = replace(state, shares=aws.ram(region).our_shares(self.settings.mesh_id))
            if where in reads.share_receivers:
                state = replace(state, invitations=aws.ram(region).pending_invitations())
            return state
        except Exception as error:
            return RegionState(
                region,
                account=account,
                error=f"{type(error).__name__}: {error}",
                denied=is_denied(error),
            )

    def _report_state(
        self,
        report: Report,
        desired: Desired,
        states: dict[str, RegionState],
        scope: set[str],
        hub_regions: Collection[str] | None,
    ) -> None:
        """Item errors, degraded and pending hubs, unreadable locations. A location refused by
        policy is `denied`, not an error, when `hub_regions` (a full resync's) lacks its Region."""
        for item_error in desired.errors:
            report.item_error(item_error)
        report.degraded = list(desired.degraded)
        report.notes += list(desired.notes)
        report.pending = sorted(desired.pending)
        for where, state in sorted(states.items()):
            tolerated = hub_regions is not None and state.region not in hub_regions
            if state.error and state.denied and tolerated:
                report.denied_regions.append(where)
            elif state.error:
                report.error(
                    "region", f"{where}: cannot read Route 53 Resolver: {state.error}", where
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
        """Who joined by tag, who cannot and why, and the tag reads that failed (an error,
        unless the location could not be read at all: that error is reported already)."""
        report.joined = [vpc.as_dict() for vpc in joined.vpcs]
        report.not_joined = list(joined.refused)
        for where, read in sorted(tagged.items()):
            state = states.get(where)
            if read.error and (state is None or not state.error):
                report.error(
                    "tags",
                    f"{where}: cannot read the VPCs tagged {MESH_TAG_KEY}={self.settings.mesh_id}"
                    f" ({read.error}): the VPCs there that use the mesh's rules keep them, and"
                    " shares with the account stay as they are",
                    where,
                )

    # --- apply ---------------------------------------------------------------------------

    def _apply(self, plan: Plan, report: Report) -> None:
        by_location: dict[str, list[Change]] = {}
        for change in plan.changes:
            by_location.setdefault(change.location, []).append(change)
        outcomes = per_region(
            lambda where: self._apply_location(where, by_location[where]), by_location
        )
        results: list[dict[str, Any]] = []
        for where in sorted(outcomes):
            results.extend(outcomes[where].results)
            report.errors.extend(outcomes[where].errors)
        report.applied_changes(results)

    def _apply_location(self, where: str, changes: list[Change]) -> _Applied:
        region, account = split_location(where)
        aws = self._aws_of(account)
        resolver, ram = aws.resolver(region), aws.ram(region)
        created: dict[tuple[str, str], str] = {}  # (source, domain) -> rule created in this run
        undeletable: set[str] = set()  # rules whose disassociation failed
        occupied: set[tuple[str, str | None]] = set()  # (domain, VPC) a duplicate still holds
        out = _Applied()
        for change, following in zip(changes, [*changes[1:], None], strict=True):
            is_rule = change.kind not in SHARE_KINDS
            rule_id = change.rule_id or created.get((change.source, change.domain))
            status, message = "applied", ""
            if stop_requested.is_set():
                status = "not started"
            elif is_rule and rule_id is None and change.kind is not ChangeKind.CREATE_RULE:
                status, message = "skipped", f"the rule for {change.domain} was not created"
            elif _makes_way_for_nothing(change, following, created):
                status, message = "skipped", "the rule that was to take its place was not created"
            elif (change.kind is ChangeKind.DELETE_RULE and rule_id in undeletable) or (
                change.kind is ChangeKind.ASSOCIATE and (change.domain, change.vpc_id) in occupied
            ):
                status, message = "skipped", "a disassociation it depends on failed"
            else:
                try:
                    if is_rule:
                        rule_id = self._write(resolver, change, rule_id)
                    else:
                        self._write_share(ram, change)
                    if change.kind is ChangeKind.CREATE_RULE:
                        created[(change.source, change.domain)] = str(rule_id)
                except CallInterruptedError:
                    status = "not started"  # nothing of it was written (see `Caller`)
                except Exception as error:
                    status, message = "failed", f"{type(error).__name__}: {error}"
                    if change.kind is ChangeKind.DISASSOCIATE and rule_id:
                        undeletable.add(rule_id)
                        occupied.add((change.domain, change.vpc_id))
                    if change.kind is ChangeKind.UNSHARE:  # still shared: not deletable
                        undeletable |= {arn.rsplit("/", 1)[-1] for arn in change.resources}
            result = change.as_dict() | {"status": status}
            if rule_id:
                result["rule_id"] = rule_id
            if message:
                result["message"] = message
                what = change.domain or change.share_arn or change.name or ""
                out.errors.append(
                    {
                        "kind": "apply",
                        "region": where,
                        "message": f"{change.kind.value} {what} in {where}"
                        f"{' for ' + change.vpc_id if change.vpc_id else ''}: {message}",
                    }
                )
            out.results.append(result)
        return out

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
        elif change.kind is ChangeKind.ASSOCIATE:
            resolver.associate(rule_id, str(change.vpc_id), str(change.name))
        elif change.kind is ChangeKind.DISASSOCIATE:
            resolver.disassociate(rule_id, str(change.vpc_id))
        else:
            resolver.delete_rule(rule_id)
        return rule_id

    def _write_share(self, ram: RamRegion, change: Change) -> None:
        """Make one change to a share of ours, or accept one."""
        arn = str(change.share_arn)
        if change.kind is ChangeKind.CREATE_SHARE:
            name = str(change.name)
            ram.create_share(name, change.resources, change.principals, self.settings.mesh_id)
        elif change.kind is ChangeKind.SHARE:
            ram.share(arn, change.resources, change.principals)
        elif change.kind is ChangeKind.UNSHARE:
            ram.unshare(arn, change.resources, change.principals)
        elif change.kind is ChangeKind.DELETE_SHARE:
            ram.delete_share(arn)
        else:
            ram.accept(arn)


def _shares_beyond_items(joined: Joined, tagged: Mapping[str, TaggedVpcs]) -> bool:
    """Whether sharing may involve accounts no item names: a VPC of another account than its
    hub's joined by tag, or a member account whose tags could not be read (its share stays)."""
    return any(vpc.shared for vpc in joined.vpcs) or any(
        read.error and split_location(where)[1] for where, read in tagged.items()
    )


def _leads_to_sharing(result: Mapping[str, Any], sharing_regions: Collection[str]) -> bool:
    """An applied change after which sharing has a next step: a share changed or accepted (the
    receiver can associate), a hub rule created where the hub shares its rules (it can be
    shared), a receiving VPC moved to another shared rule (the owner can let the old go)."""
    if result["status"] != "applied":
        return False
    kind = ChangeKind(result["kind"])
    return (
        kind in SHARE_KINDS
        or (
            kind is ChangeKind.CREATE_RULE
            and not result.get("source")
            and result["region"] in sharing_regions
        )
        or bool(result.get("owner"))
    )


def _makes_way_for_nothing(
    change: Change, following: Change | None, created: Mapping[tuple[str, str], str]
) -> bool:
    """A disassociation that frees a VPC for a rule created in this run (the association
    right after it), when that rule was not created: the VPC keeps what it has."""
    return (
        change.kind is ChangeKind.DISASSOCIATE
        and following is not None
        and following.kind is ChangeKind.ASSOCIATE
        and (following.domain, following.vpc_id) == (change.domain, change.vpc_id)
        and following.rule_id is None
        and (following.source, following.domain) not in created
    )


@dataclass(frozen=True)
class _Reads:
    """Where more than rules must be read: endpoints (hubs and spokes), the VPCs items name,
    our shares (where a hub shares its rules) and invitations (where shared rules arrive)."""

    endpoints: frozenset[str]
    share_owners: frozenset[str]
    share_receivers: frozenset[str]
    vpcs: Mapping[str, frozenset[str]] = field(default_factory=dict)  # location -> VPC ids

    @classmethod
    def of(cls, hub_set: HubSet, joined: Joined | None = None) -> _Reads:
        """What the items (and the VPCs that joined by tag, which were just seen) need read."""
        enabled = hub_set.enabled.values()
        joined = joined or Joined()
        vpcs: dict[str, set[str]] = defaultdict(set)
        for hub in enabled:
            vpcs[hub.location] |= hub.associated_vpc_ids
            for spoke in hub.spokes:
                if spoke.enabled:
                    vpcs[location(hub.region, spoke.account)].add(spoke.vpc_id)
            for shared in hub.shared_vpcs:
                vpcs[location(hub.region, shared.account)].add(shared.vpc_id)
        return cls(
            vpcs={where: frozenset(ids) for where, ids in vpcs.items()},
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
            share_receivers=frozenset(
                location(hub.region, shared.account)
                for hub in enabled
                for shared in hub.shared_vpcs
            )
            | {location(vpc.region, vpc.account) for vpc in joined.vpcs if vpc.shared},
        )
