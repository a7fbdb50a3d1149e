"""`resolver-mesh verify`: how every mesh name would resolve from every hub and workload VPC.

The pure part (`verify_mesh`) takes the hubs and what was observed in their Regions (rules,
associations, Resolver endpoints, interface VPC endpoints with their services' private DNS
names) and returns a `Matrix`: one `Cell` per (VPC, name). Names are every enabled hub's names
as `apply` forwards them (`desired.target_domains`: its domains and, with `{services}`, the
private DNS names of its interface endpoints) and the private DNS names of every interface
endpoint of a hub VPC (`s3.us-east-2.amazonaws.com`). The owner of a name is the hub whose
names cover it most specifically. For each cell, the rules associated with the VPC are matched,
the most specific domain winning, as Route 53 Resolver does. A VPC's rules are those
associated with it directly plus those of its Route 53 Profile (association `COMPLETE`, rule
`COMPLETE` in it; read for our Profiles). For one domain the direct rule is taken to win (AWS
does not document it; the mesh's switch between deliveries does not depend on it); a cell
answered through the Profile names it (`profile_id`, `P` in the text, "Profile" in mermaid):

| status | meaning | a problem? |
|---|---|---|
| `private` | forwarded to the owner hub's inbound IPs, every one of them ATTACHED | no |
| `local` | the VPC's own Region answers (its own hub's names), no rule involved | no |
| `public` | no rule, and none expected: the built-in recursive resolver answers | no |
| `gap` | no rule, but the VPC's hub peers with the owner: the name resolves publicly | yes |
| `stale` | forwarded to IPs that are not (all) the owner hub's current ATTACHED IPs | yes |
| `loop` | forwarded to a hub whose own VPC forwards the name onward again | yes |
| `conflict` | two rules for the name's domain in one VPC, or a rule not ours wins | yes |
| `unknown` | the VPC's location, or a hub on the name's way, could not be read (`path`) | yes |

A `private` cell whose rule misses some of the hub's ATTACHED IPs still resolves privately;
it is flagged `missing_ips` (a resync adds them) but is not a problem.

The I/O part (`observe_mesh`, through `Aws`) reads every hub Region in parallel
through the rate-limited adapters of `resolver_mesh.aws`: one `ResolverRegion.read` with rules
and endpoints, one paginated `DescribeVpcEndpoints` per hub VPC and one
`DescribeVpcEndpointServices` for the services its endpoints use. Before that, `verify` reads
the VPCs tagged to join the mesh (`tagged_vpcs`, one DescribeVpcs per account and enabled
hub Region) and lists them in their hubs, so that they are rows like the VPCs the items list;
a tagged VPC that a reconcile would keep out (`desired.without_conflicting`) is a note, not a
row.

Invariants: `verify_mesh` is pure and deterministic (sorted rows, columns and problems); it
never writes; `Matrix.ok` is False whenever a cell is a problem or something could not be read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from resolver_mesh.desired import (
    HubSet,
    Joined,
    TaggedVpcs,
    desired_rules,
    join_by_tag,
    names_accounts,
    parse_hubs,
    target_domains,
    without_conflicting,
)
from resolver_mesh.models import (
    AccountAccess,
    HubItem,
    ObservedRule,
    RegionState,
    location,
    split_location,
)
from resolver_mesh.names import MESH_TAG_KEY, normalise_domain
from resolver_mesh.plan import rule_target
from resolver_mesh.reconcile import RegionsNotEnabled, per_region

if TYPE_CHECKING:  # boto3 stays out of the pure part
    from resolver_mesh.aws.session import Aws

PROBLEMS = ("gap", "stale", "loop", "conflict", "unknown")
STATUSES = ("private", "local", "public", *PROBLEMS)
INACTIVE_ASSOCIATION = frozenset({"DELETING", "FAILED", "OVERRIDDEN"})
INACTIVE_RULE = frozenset({"DELETING", "FAILED"})
_MAX_HOPS = 8


# --- inputs ----------------------------------------------------------------------------------


# --- the result ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    region: str
    vpc_id: str
    role: str  # "hub", "workload", "direct spoke", "central spoke" or "shared"
    account: str = ""  # "" for the reconciler's own account

    @property
    def location(self) -> str:
        return location(self.region, self.account)

    def as_dict(self) -> dict[str, str]:
        data = {"region": self.region, "vpc_id": self.vpc_id, "role": self.role}
        return data | ({"account": self.account} if self.account else {})


@dataclass(frozen=True)
class Column:
    name: str  # normalised
    kind: str  # "domain" or "endpoint"
    owner: str  # the hub Region whose names cover the name (most specific)


@dataclass(frozen=True)
class Cell:
    region: str
    vpc_id: str
    name: str
    status: str
    via: str | None = None  # the hub Region the name is forwarded to
    rule_id: str | None = None
    rule_domain: str | None = None
    targets: tuple[str, ...] = ()
    stale_ips: tuple[str, ...] = ()
    missing_ips: tuple[str, ...] = ()
    path: tuple[str, ...] = ()  # Regions a looping name goes through
    detail: str = ""
    profile_id: str | None = None  # the VPC's Profile, when its rule answers

    @property
    def problem(self) -> bool:
        return self.status in PROBLEMS

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "region": self.region,
            "vpc_id": self.vpc_id,
            "name": self.name,
            "status": self.status,
        }
        optional: dict[str, Any] = {
            "via": self.via,
            "rule_id": self.rule_id,
            "rule_domain": self.rule_domain,
            "targets": list(self.targets),
            "stale_ips": list(self.stale_ips),
            "missing_ips": list(self.missing_ips),
            "path": list(self.path),
            "detail": self.detail,
            "profile_id": self.profile_id,
        }
        data.update({k: v for k, v in optional.items() if v})
        return data


@dataclass(frozen=True)
class Matrix:
    mesh_id: str
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    cells: tuple[Cell, ...]
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[Cell, ...]:
        return tuple(cell for cell in self.cells if cell.problem)

    @property
    def ok(self) -> bool:
        return not (self.problems or self.errors)

    def cell(self, vpc_id: str, name: str) -> Cell:
        wanted = normalise_domain(name)
        return next(c for c in self.cells if c.vpc_id == vpc_id and c.name == wanted)

    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys(STATUSES, 0)
        for cell in self.cells:
            totals[cell.status] += 1
        return totals

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "mesh_id": self.mesh_id,
            "regions": sorted({row.region for row in self.rows}),
            "vpcs": [row.as_dict() for row in self.rows],
            "names": [vars(column) for column in self.columns],
            "counts": self.counts(),
            "cells": [cell.as_dict() for cell in self.cells],
            "problems": [cell.as_dict() for cell in self.problems],
            "errors": list(self.errors),
            "notes": list(self.notes),
        }


# --- the pure part ---------------------------------------------------------------------------


def _covers(domain: str, name: str) -> bool:
    """A rule for `domain` applies to `name` (itself or a subdomain); both normalised."""
    return name == domain or name.endswith("." + domain)


def _owner(name: str, names_of: Mapping[str, Sequence[str]]) -> str | None:
    """The hub whose names (`names_of`: by hub Region) cover `name` most specifically."""
    best: tuple[int, str] | None = None
    for region, names in names_of.items():
        for domain in names:
            if _covers(domain, name) and (best is None or len(domain) > best[0]):
                best = (len(domain), region)
    return best[1] if best else None


@dataclass
class _World:
    """The observed mesh, indexed for resolving names."""

    mesh_id: str
    hubs: Mapping[str, HubItem]
    states: Mapping[str, RegionState]
    inbound_ips: dict[str, frozenset[str]] = field(default_factory=dict)  # hub -> ATTACHED IPs
    ip_owner: dict[str, str] = field(default_factory=dict)  # ATTACHED IP -> hub Region

    def __post_init__(self) -> None:
        for region, hub in self.hubs.items():
            state = self.states.get(hub.location)
            endpoint = state.endpoint(hub.inbound_endpoint_id) if state else None
            ips = frozenset(endpoint.attached_ips) if endpoint else frozenset()
            self.inbound_ips[region] = ips
            for ip in ips:
                self.ip_owner[ip] = region

    def readable(self, where: str) -> bool:
        """Whether a location (a hub Region, or `region@account`) was read."""
        state = self.states.get(self.hubs[where].location if where in self.hubs else where)
        return state is not None and state.error is None

    def matching_rules(self, where: str, vpc_id: str, name: str) -> list[ObservedRule]:
        """The live rules associated with the VPC (of location `where`) whose domain covers
        `name`, the most specific first: direct ones, and those of its Profile for domains
        no direct rule covers."""
        state = self.states[where]
        rules = {rule.id: rule for rule in state.rules if rule.status not in INACTIVE_RULE}
        found = {
            association.rule_id: rules[association.rule_id]
            for association in state.associations
            if association.vpc_id == vpc_id
            and association.status not in INACTIVE_ASSOCIATION
            and association.rule_id in rules
            and _covers(rules[association.rule_id].domain, name)
        }
        direct = {rule.domain for rule in found.values()}
        _, held = self.profile_rules(where, vpc_id)
        for rule in held:
            if rule.domain not in direct and _covers(rule.domain, name):
                found[rule.id] = rule
        return sorted(found.values(), key=lambda r: (-len(r.domain), r.id))

    def profile_rules(self, where: str, vpc_id: str) -> tuple[str | None, list[ObservedRule]]:
        """The VPC's Profile (when `COMPLETE` on it) and the live rules it holds `COMPLETE`
        (read for our Profiles only)."""
        state = self.states[where]
        if state.profiles is None:
            return None, []
        association = next((a for a in state.profiles.associations if a.vpc_id == vpc_id), None)
        if association is None or association.status != "COMPLETE":
            return None, []
        # A Profile shared with this account holds rules of the hub's location: look there too.
        arns = {
            r.resource_arn
            for other in self.states.values()
            for r in (other.profiles.resources if other.profiles else ())
            if r.profile_id == association.profile_id and r.status == "COMPLETE"
        }
        live = {
            r.id: r
            for other in self.states.values()
            for r in other.rules
            if r.arn in arns and r.status not in INACTIVE_RULE
        }
        return association.profile_id, sorted(live.values(), key=lambda r: r.id)

    def target_hub(self, rule: ObservedRule) -> str | None:
        """The hub whose inbound endpoint the rule's targets point at (or our marker names)."""
        owners = {self.ip_owner[t.ip] for t in rule.targets if t.ip in self.ip_owner}
        if len(owners) == 1:
            return owners.pop()
        return rule_target(rule, self.mesh_id)


def _expected_via(world: _World, row: Row, owner: str, name: str) -> str | None:
    """The hub a row's VPC should forward `name` to, by its role; None: no rule expected."""
    hub = world.hubs[row.region]
    if row.role == "central spoke":
        spoke = next(s for s in hub.spokes if s.vpc_id == row.vpc_id)
        if spoke.parent and _covers(spoke.parent, name):
            return row.region
        return row.region if owner in hub.peer_regions(world.hubs) else None
    peers = (
        hub.peer_regions(world.hubs) if row.role == "direct spoke" else hub.forwards_to(world.hubs)
    )
    return owner if owner in peers else None


def _resolve(world: _World, row: Row, name: str, owner: str) -> Cell:
    """How `name` resolves in the row's VPC."""
    region, vpc_id = row.region, row.vpc_id
    cell = Cell(region, vpc_id, name, "unknown")
    if not world.readable(row.location):
        state = world.states.get(row.location)
        why = f": {state.error}" if state and state.error else ""
        return _with(cell, detail=f"{row.location} could not be read{why}")
    rules = world.matching_rules(row.location, vpc_id, name)
    expected = _expected_via(world, row, owner, name)
    if not rules:
        if expected:
            why = "" if world.inbound_ips.get(expected) else f"; {expected} has no ATTACHED IP"
            return _with(cell, status="gap", detail=f"no rule forwards it to {expected}{why}")
        if owner == region:
            return _with(cell, status="local", detail="answered in its own Region")
        return _with(cell, status="public", detail="no rule: the recursive resolver answers")
    winner = rules[0]
    profile_id, held = world.profile_rules(row.location, vpc_id)
    direct = {a.rule_id for a in world.states[row.location].associations if a.vpc_id == vpc_id}
    cell = _with(
        cell,
        rule_id=winner.id,
        rule_domain=winner.domain,
        targets=tuple(sorted(t.ip for t in winner.targets)),
        profile_id=profile_id if winner in held and winner.id not in direct else None,
    )
    rivals = [r.id for r in rules[1:] if r.domain == winner.domain]
    if rivals:
        return _with(
            cell,
            status="conflict",
            detail=f"rules {', '.join([winner.id, *rivals])} all cover {winner.domain} here",
        )
    if rule_target(winner, world.mesh_id) is None:
        kind = winner.rule_type.lower() or "unknown"
        return _with(
            cell,
            status="conflict",
            detail=f"{kind} rule {winner.id} ({winner.name or 'no name'}) is not ours and wins",
        )
    if winner.rule_type != "FORWARD":
        return _with(
            cell,
            status="local" if owner == region else "public",
            detail=f"{winner.rule_type} rule {winner.id}",
        )

    via = world.target_hub(winner) or owner  # ours: its marker names a Region
    cell = _with(cell, via=via)
    if not world.readable(via):
        return _with(cell, status="unknown", detail=f"{via} could not be read")
    current = world.inbound_ips[via]
    stale = tuple(ip for ip in cell.targets if ip not in current)
    missing = tuple(sorted(current - set(cell.targets)))
    cell = _with(cell, stale_ips=stale, missing_ips=missing)
    path = _onward(world, via, name, [region])
    if path and not world.readable(path[-1]):
        return _with(
            cell,
            status="unknown",
            path=tuple(path),
            detail=f"{path[-1]} could not be read: {' -> '.join(path)}",
        )
    if row.role == "central spoke" and via == region and not stale:
        return _through_own_hub(cell, path, owner)
    if path:
        return _with(
            cell,
            status="loop",
            path=tuple(path),
            detail=f"{via} forwards it onward again"
            f" ({'a cycle' if path[-1] in path[:-1] else 'a chain'}: {' -> '.join(path)})",
        )
    if via != owner:
        return _with(cell, status="stale", detail=f"forwarded to {via}, but {owner} owns it")
    if stale:
        return _with(
            cell,
            status="stale",
            detail=f"targets {', '.join(stale)} are not ATTACHED to {via}'s inbound endpoint",
        )
    detail = f"forwarded to {via} ({', '.join(cell.targets)})"
    if missing:
        detail += f"; {', '.join(missing)} not targeted yet"
    return _with(cell, status="private", detail=detail)


def _through_own_hub(cell: Cell, path: list[str], owner: str) -> Cell:
    """A central spoke's name reached its own hub: private if the hub answers it (its own
    names) or forwards it once, straight to the owner."""
    region = cell.region
    if not path and owner == region:
        return _with(cell, status="private", detail=f"answered by its hub in {region}")
    if path == [region, region, owner]:
        return _with(cell, status="private", detail=f"forwarded to {owner} through its hub")
    if not path:
        return _with(cell, status="gap", detail=f"its hub in {region} does not forward it")
    return _with(
        cell, status="loop", path=tuple(path), detail=f"its hub sends it on: {' -> '.join(path)}"
    )


def _onward(world: _World, via: str, name: str, path: list[str]) -> list[str]:
    """The Regions a query goes through once it reaches `via`'s inbound endpoint, when the
    hub VPC there forwards it onward again (a chain, or a cycle when a Region comes back);
    empty when `via` answers it. A hop that could not be read ends the path (it is its last
    Region): what happens there is unknown."""
    hops = [*path, via]
    while len(hops) <= _MAX_HOPS and hops[-1] in world.hubs and world.readable(hops[-1]):
        here = world.hubs[hops[-1]]
        rules = world.matching_rules(here.location, here.vpc_id, name)
        nxt = world.target_hub(rules[0]) if rules and rules[0].rule_type == "FORWARD" else None
        if nxt is None:
            break
        hops.append(nxt)
        if nxt in hops[:-1]:
            break
    return hops if len(hops) > len(path) + 1 else []


def _with(cell: Cell, **changes: Any) -> Cell:
    return Cell(**{**vars(cell), **changes})


def verify_mesh(mesh_id: str, hub_set: HubSet, states: Mapping[str, RegionState]) -> Matrix:
    """The resolution matrix of the enabled hubs' VPCs and names, from observed states (by
    location; a hub's state holds the interface endpoints of its VPC)."""
    hubs = dict(sorted(hub_set.enabled.items()))
    errors = [str(error) for error in hub_set.errors]
    notes: list[str] = []
    for region in hubs:
        state = states.get(hubs[region].location)
        if state is None or state.error:
            errors.append(
                f"{hubs[region].location}: cannot read Route 53 Resolver:"
                f" {state.error if state else ''}"
            )
        elif not state.endpoint(hubs[region].inbound_endpoint_id):
            errors.append(
                f"{region}: inbound endpoint {hubs[region].inbound_endpoint_id} not found"
            )
    world = _World(mesh_id, hubs, states)

    names_of = {r: target_domains(hub, states.get(hub.location)) for r, hub in hubs.items()}
    names = {name: "domain" for hub in hubs.values() for name in hub.domain_names}
    names |= {n: "endpoint" for found in names_of.values() for n in found if n not in names}
    for region, hub in hubs.items():
        state = states.get(hub.location)
        for endpoint in state.interface_endpoints if state else ():
            if endpoint.vpc_id != hub.vpc_id or endpoint.service_region:
                continue
            found = ", ".join(n.rstrip(".") for n in endpoint.dns_names)
            if not endpoint.is_aws_service:
                notes.append(f"{region}: {endpoint.id} ({endpoint.service_name}) has no AWS name")
            elif endpoint.names_unknown:
                errors.append(
                    f"{region}: cannot read the private DNS names of {endpoint.service_name}"
                    f" ({endpoint.id}): {endpoint.names_unread}"
                )
            elif not endpoint.private_dns:
                notes.append(f"{region}: {endpoint.id} has private DNS off, so public: {found}")
            unowned = [n for n in endpoint.private_names if _owner(n, names_of) is None]
            if unowned:
                notes.append(
                    f"{region}: {endpoint.id} answers {', '.join(n.rstrip('.') for n in unowned)}"
                    " in the hub VPC only: no hub forwards them"
                )
            names |= {n: "endpoint" for n in endpoint.private_names if n not in [*names, *unowned]}
    columns = tuple(
        sorted(
            (
                Column(name, kind, owner)
                for name, kind in names.items()
                if (owner := _owner(name, names_of))
            ),
            key=_column_key,
        )
    )
    rows = tuple(row for hub in hubs.values() for row in _rows(hub))
    cells = tuple(
        _resolve(world, row, column.name, column.owner) for row in rows for column in columns
    )
    return Matrix(mesh_id, rows, columns, cells, tuple(errors), tuple(notes))


def _rows(hub: HubItem) -> list[Row]:
    """The VPCs that use a hub's Region's rules: the hub, its workload VPCs, its enabled spokes
    and its shared VPCs (in their accounts)."""
    rows = [Row(hub.region, hub.vpc_id, "hub", hub.account)]
    rows += [Row(hub.region, v, "workload", hub.account) for v in sorted(set(hub.vpc_ids))]
    rows += [
        Row(hub.region, s.vpc_id, f"{s.mode} spoke", s.account) for s in hub.spokes if s.enabled
    ]
    rows += [Row(hub.region, v.vpc_id, "shared", v.account) for v in hub.shared_vpcs]
    return rows


def _column_key(column: Column) -> tuple[str, str]:
    """Columns by the owner's Region (`corp.example` with the hub that claims it), then by
    name."""
    return column.owner, column.name


# --- rendering -------------------------------------------------------------------------------


def short_name(name: str) -> str:
    """`us-east-2.amazonaws.com.` -> `us-east-2`; names outside amazonaws.com stay whole."""
    bare = name.rstrip(".")
    return bare.removesuffix(".amazonaws.com") if bare.endswith(".amazonaws.com") else bare


def cell_text(cell: Cell) -> str:
    if cell.status == "private":
        mark = ("*" if cell.missing_ips else "") + (" P" if cell.profile_id else "")
        return f"→ {cell.via} ✓{mark}"
    if cell.status == "stale":
        return f"→ {cell.via} STALE"
    if cell.status == "unknown":
        return f"→ {cell.via} ?" if cell.via else "?"
    if cell.status in PROBLEMS:
        return cell.status.upper()
    return cell.status


def matrix_text(matrix: Matrix) -> str:
    """Rows VPCs, columns names (`.amazonaws.com` left out), then the problems."""
    header = ["VPC", *(short_name(c.name) for c in matrix.columns)]
    table = [header]
    by_key = {(c.vpc_id, c.name): c for c in matrix.cells}
    for row in matrix.rows:
        label = f"{row.region} {row.vpc_id} ({row.role})"
        table.append([label, *(cell_text(by_key[row.vpc_id, c.name]) for c in matrix.columns)])
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = [f"How names resolve in mesh {matrix.mesh_id} (names end in .amazonaws.com):"]
    if not matrix.rows:
        lines.append("  no enabled hubs")
    else:
        lines += [
            "  " + "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
            for line in table
        ]
    if any(c.profile_id for c in matrix.cells):
        lines.append("  P: through the VPC's Route 53 Profile (not a direct rule association)")
    if any(c.missing_ips for c in matrix.cells if c.status == "private"):
        lines.append(
            "  * the hub has ATTACHED IPs the rule does not target yet (a resync adds them)"
        )
    problems = [
        f"{c.region} {c.vpc_id} {c.name.rstrip('.')}: {c.status}: {c.detail}"
        for c in matrix.problems
    ]
    for title, entries in (
        ("Problems", problems),
        ("Errors", list(matrix.errors)),
        ("Notes", list(matrix.notes)),
    ):
        if entries:
            lines.append(f"{title}:")
            lines += [f"  {'-' if title == 'Notes' else '!'} {entry}" for entry in entries]
    counts = ", ".join(f"{n} {status}" for status, n in matrix.counts().items() if n)
    lines.append(f"{'ok' if matrix.ok else 'NOT OK'}: {counts or 'nothing to verify'}")
    return "\n".join(lines)


def _node(region: str) -> str:
    return region.replace("-", "_")


def matrix_mermaid(matrix: Matrix) -> str:
    """A `graph LR` of the hub Regions: an edge per (Region, target) with the names it
    forwards privately from all of its VPCs; dashed edges for gaps, stale targets and loops."""
    lines = ["graph LR"]
    for region in sorted({row.region for row in matrix.rows}):
        lines.append(f'  {_node(region)}["{region}"]')
    edges: dict[tuple[str, str, str], set[str]] = {}
    owners = {column.name: column.owner for column in matrix.columns}
    for cell in matrix.cells:
        target = cell.via if cell.status != "gap" else owners.get(cell.name)
        if target is None or cell.status in ("local", "public", "unknown"):
            continue
        label = "ok" if cell.status == "private" else cell.status.upper()
        if label == "ok" and cell.profile_id:
            label = "Profile"
        edges.setdefault((cell.region, target, label), set()).add(short_name(cell.name))
    for (source, target, label), names in sorted(edges.items()):
        if label in ("ok", "Profile"):
            text = ("Profile: " if label == "Profile" else "") + ", ".join(sorted(names))
            lines.append(f'  {_node(source)} -->|"{text}"| {_node(target)}')
        else:
            text = f"{label}: " + ", ".join(sorted(names))
            lines.append(f'  {_node(source)} -.->|"{text}"| {_node(target)}')
    return "\n".join(lines)


# --- the I/O part ----------------------------------------------------------------------------


def observe_mesh(aws: Aws, hub_set: HubSet) -> tuple[dict[str, RegionState], list[str]]:
    """Rules, associations and endpoints of every location of the matrix (each enabled hub's
    Region and account, and those of its spokes and shared VPCs), and in each hub's state the
    interface endpoints of its VPC with their services' names, read in parallel. Returns the
    states by location and the errors of the interface endpoint reads (a location that cannot
    be read has `RegionState.error`; one in `EXCLUDED_REGIONS` is never read, and says so)."""
    hubs = hub_set.enabled
    excluded = frozenset(aws.settings.excluded_regions)
    errors: list[str] = []
    accounts = hub_set.accounts()
    locations = {row.location for hub in hubs.values() for row in _rows(hub)}
    not_enabled = RegionsNotEnabled(
        lambda account: aws.member(accounts[account]).regions_not_enabled()
    )

    def observe(where: str) -> RegionState:
        region, account = split_location(where)
        hub = hubs[region] if hubs[region].location == where else None
        if region in excluded:
            return RegionState(region, account=account, error="in EXCLUDED_REGIONS: not read")
        try:
            here = aws.member(accounts[account]) if account else aws
            state = here.resolver(region).read(
                rules=True,
                endpoints=hub is not None,
                inbound_ids=(hub.inbound_endpoint_id,) if hub else (),
            )
            state = replace(state, account=account)
            profiles = here.profiles(region).read(aws.settings.mesh_id)
            state = replace(state, profiles=profiles)
        except Exception as error:
            return not_enabled.unread(region, account, error)
        if hub is not None:
            try:
                found = here.interface_endpoints(region, hub.vpc_id)
                state = replace(state, interface_endpoints=found)
            except Exception as error:
                errors.append(f"{where}: cannot list the VPC endpoints of {hub.vpc_id}: {error}")
        return state

    return per_region(observe, locations), errors


def tagged_vpcs(aws: Aws, hub_set: HubSet) -> tuple[Joined, dict[str, AccountAccess], list[str]]:
    """The VPCs that join the hubs by tag, as a reconcile would have them join (one tag read
    per account and enabled hub Region outside `EXCLUDED_REGIONS`, in the accounts of
    `MEMBER_OUS`, of `MEMBER_ROLES` and of the items), how each account is reached, and the
    reads that failed (errors: an organisation that cannot be read leaves its accounts
    unread)."""
    errors: list[str] = []
    try:
        members = aws.organization_members()
    except Exception as error:
        members = {}
        ous = ",".join(aws.settings.member_ous)
        errors.append(f"MEMBER_OUS {ous}: cannot list the accounts of the organisation: {error}")
    try:
        explicit = aws.member_roles() | hub_set.accounts()
    except Exception as error:
        explicit = hub_set.accounts()
        errors.append(f"MEMBER_ROLES: cannot read the reconciler's own account id: {error}")
    # An explicit role wins for its account, as in a reconcile; an item with errors names
    # accounts that no other role reaches.
    accesses = dict(hub_set.named_by_invalid) | members | explicit
    regions = set(hub_set.enabled) - set(aws.settings.excluded_regions)  # never read
    where = {location(r, a) for r in regions for a in ("", *accesses)}

    def read(at: str) -> TaggedVpcs:
        region, account = split_location(at)
        try:
            here = aws.member(accesses[account]) if account else aws
            return here.tagged_vpcs(region, aws.settings.mesh_id)
        except Exception as error:
            return TaggedVpcs(error=f"{type(error).__name__}: {error}")

    tagged = per_region(read, where)
    joined = join_by_tag(aws.settings.mesh_id, hub_set, tagged)
    errors += [
        f"{at}: cannot read the VPCs tagged {MESH_TAG_KEY}: {found.error}"
        for at, found in sorted(tagged.items())
        if found.error
    ]
    return joined, accesses, errors


def verify(aws: Aws) -> Matrix:
    """Read the table, the VPCs that join by tag and the live state, and build the matrix."""
    items = aws.hubs_table().read_items()
    home_account = aws.account_id() if names_accounts(items) else None
    hub_set = parse_hubs(
        items, aws.known_regions(str(i.get("region")) for i in items), home_account
    )
    mesh_id = aws.settings.mesh_id
    joined, accesses, tag_errors = tagged_vpcs(aws, hub_set)
    states, errors = observe_mesh(aws, joined.listed(hub_set, accesses))
    desired = desired_rules(mesh_id, hub_set, states, joined, home_account or "")
    joined = without_conflicting(mesh_id, joined, desired, states, aws.settings.adopt_unmanaged)
    matrix = verify_mesh(mesh_id, joined.listed(hub_set, accesses), states)
    return replace(
        matrix,
        errors=(*matrix.errors, *tag_errors, *errors),
        notes=(*matrix.notes, *joined.refused),
    )
