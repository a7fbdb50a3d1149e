"""The fault-injection harness: a four-hub mesh on the HTTP emulator, taps, kill switches,
invariants. (A module of its own, so that test modules can import it; conftest.py holds the
fixtures.)

Everything goes through the moto server on 127.0.0.1 (the `emulator` and `aws` fixtures of
tests/conftest.py):

- `build_fault_mesh(...)` builds four hubs (us-east-1 with two workload VPCs), the hubs table
  and the unmanaged rules the invariants watch, and returns a `FaultMesh`.
- `FaultMesh.reconcile(...)` runs `Reconciler(Aws(settings, session))` with a short backoff
  (and a short client timeout where a test injects slow replies), as a new process would;
  `assert_invariants(mesh, converged=...)` reads the live state with plain boto3 (every page)
  and checks the invariants of issue 4.
- `tapped(emulator, answer=...)` wraps the server's WSGI app: it records every request (time,
  Region, operation, status, a create's marker, an error's code), counts requests in flight so
  that a test can wait until delayed requests have landed, and can answer some requests itself
  (a full quota).
- `KillSwitch` raises `Killed` (a BaseException, as a SIGKILL ends a process without cleanup)
  once write k has completed, and before every later write in any thread.
- `LEDGER` collects runs and faults for the session's one-line summary.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from boto3.dynamodb.types import TypeSerializer

from mesh_emulator.server import LocalEmulator
from resolver_mesh.aws.session import Aws
from resolver_mesh.config import Settings
from resolver_mesh.local.topology import (
    CachedClients,
    ClientFactory,
    HubResources,
    build_hub,
    create_hubs_table,
    create_unmanaged_rule,
    hub_item,
)
from resolver_mesh.models import Request
from resolver_mesh.reconcile import Reconciler
from resolver_mesh.report import Report

HOME = "us-east-1"
HUB_REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1")
TABLE = "resolver-mesh-hubs"
MESH_ID = "resolver-mesh"
OURS = f"resolver-mesh/{MESH_ID}/"
DOMAINS = ("{region}.amazonaws.com", "{region}.vpce.amazonaws.com")
GONE = "DELETING"
WRITE_OPERATIONS = frozenset(
    {
        "CreateResolverRule",
        "UpdateResolverRule",
        "DeleteResolverRule",
        "AssociateResolverRule",
        "DisassociateResolverRule",
        "TagResource",  # adopting a rule (ADOPT_UNMANAGED) tags it
        # Route 53 Profiles (DELIVERY=profile)
        "CreateProfile",
        "DeleteProfile",
        "AssociateProfile",
        "DisassociateProfile",
        "AssociateResourceToProfile",
        "DisassociateResourceFromProfile",
    }
)
KILLED_SERVICES = ("route53resolver", "route53profiles")
# A generous client timeout: on a busy machine any emulator call can take a second or more, and
# a timed-out call is retried, which would add attempts no test asked for.
FAST = {"calls_per_second": 200.0, "call_timeout_seconds": 30.0, "max_attempts": 8}
# Runs that inject slow replies shorten the timeout (`mesh.reconcile(**SLOW_REPLY_TIMEOUT)`):
# a reply delayed by SLOW_REPLY_DELAY times out at the client while the server carries it out.
SLOW_REPLY_TIMEOUT = {"call_timeout_seconds": 0.3}
SLOW_REPLY_DELAY = 0.6
BASE_DELAY = 0.01  # Caller.base_delay (a public attribute), instead of 0.2 s

_serializer = TypeSerializer()
# One botocore loader for every session the tests make: each "process" still gets its own
# session, clients, callers and rate limits, without parsing the service models again (~0.3 s).
_LOADER = botocore.session.get_session().get_component("data_loader")


def new_session() -> boto3.session.Session:
    """A boto3 session as a new process would make it (configured by the environment)."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _LOADER)
    return boto3.session.Session(botocore_session=core)


def normalise(domain: str) -> str:
    return domain.strip().lower().rstrip(".") + "."


# --- the results collector -----------------------------------------------------------------------


@dataclass
class FaultLedger:
    """Runs made under faults (injected, kills, races, quotas) and whether the invariants held."""

    runs: int = 0
    recovered: int = 0  # runs that reported errors and needed a clean follow-up reconcile
    faults: Counter[str] = field(default_factory=Counter)
    broken: list[str] = field(default_factory=list)
    failed_tests: list[str] = field(default_factory=list)  # failed anywhere, in or out of a run
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def run(self, label: str, faults: Mapping[str, int] | None = None) -> Iterator[None]:
        """Count one run (and its faults); the block checks its invariants."""
        with self._lock:
            self.runs += 1
            self.faults.update({k: v for k, v in (faults or {}).items() if v})
        try:
            yield
        except BaseException:
            with self._lock:
                self.broken.append(label)
            raise

    def summary(self) -> str:
        kinds = ("throttle", "error", "lost", "slow")
        parts = [f"{kind} {self.faults[kind]}" for kind in kinds]
        parts += [f"{kind} {n}" for kind, n in sorted(self.faults.items()) if kind not in kinds]
        if self.broken:
            verdict = (
                f"invariants BROKEN in {len(self.broken)} run(s): {'; '.join(self.broken[:5])}"
            )
        elif self.failed_tests:
            verdict = f"{len(self.failed_tests)} test(s) FAILED: {'; '.join(self.failed_tests[:5])}"
        else:
            verdict = "invariants held in every run"
        return (
            f"fault injection: {self.runs} runs, {sum(self.faults.values())} faults injected"
            f" ({', '.join(parts)}); {verdict}"
            f" ({self.recovered} runs reported errors and converged on a clean follow-up)"
        )


LEDGER = FaultLedger()


# --- the emulator: atomic writes, taps ------------------------------------------------------------


_CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it."""

    started: float
    region: str
    operation: str  # e.g. "CreateResolverRule"; "" for query-protocol services (EC2)
    status: int
    marker: str = ""  # the CreatorRequestId of a CreateResolverRule
    error: str = ""  # the error code of a JSON-protocol reply that is not a 2xx


def _request_marker(environ: dict[str, Any], operation: str) -> str:
    """The CreatorRequestId of a CreateResolverRule; the body is put back for the app."""
    if operation != "CreateResolverRule":
        return ""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"] = io.BytesIO(body)
    return str(json.loads(body).get("CreatorRequestId", ""))


def _error_code(body: bytes) -> str:
    try:
        reply = json.loads(body)
    except ValueError:
        return ""
    return str(reply.get("__type", "")).rpartition("#")[2] if isinstance(reply, dict) else ""


Answer = Callable[[str, str], tuple[str, str, str] | None]


class Tap:
    """WSGI middleware: records requests, counts those in flight, may answer some itself.

    `answer(region, operation)` returns (HTTP status, error code, message) to answer a request
    without passing it on, or None. A reply that is not a 2xx is read whole (to record its error
    code) and passed on unchanged.
    """

    def __init__(self, app: Any, answer: Answer | None = None) -> None:
        self.app = app
        self.answer = answer
        self.seen: list[Seen] = []
        self._in_flight = 0
        self._idle = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.monotonic()
        match = _CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION", "")))
        region = match.group(1) if match else ""
        operation = str(environ.get("HTTP_X_AMZ_TARGET", "")).rpartition(".")[2]
        marker = _request_marker(environ, operation)
        statuses: list[int] = []
        errors: list[str] = []

        def recording(status: str, headers: Any, *exc_info: Any) -> Any:
            statuses.append(int(status.split()[0]))
            return start_response(status, headers, *exc_info)

        with self._idle:
            self._in_flight += 1
        try:
            canned = self.answer(region, operation) if self.answer else None
            if canned is None:
                reply = self.app(environ, recording)
                if statuses and statuses[-1] < 300:
                    return reply
                body = b"".join(reply)
                errors.append(_error_code(body))
                return [body]
            status, code, message = canned
            errors.append(code)
            payload = json.dumps({"__type": code, "message": message}).encode()
            recording(
                status,
                [
                    ("Content-Type", "application/x-amz-json-1.1"),
                    ("Content-Length", str(len(payload))),
                ],
            )
            return [payload]
        finally:
            with self._idle:
                status_code = statuses[-1] if statuses else 0
                error = errors[-1] if errors else ""
                self.seen.append(Seen(started, region, operation, status_code, marker, error))
                self._in_flight -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until every request that reached the tap has been carried out (or answered)."""
        with self._idle:
            assert self._idle.wait_for(lambda: self._in_flight == 0, timeout), "requests hang"

    def writes(self) -> list[Seen]:
        return [s for s in self.seen if s.operation in WRITE_OPERATIONS]


@contextmanager
def tapped(emulator: LocalEmulator, answer: Answer | None = None) -> Iterator[Tap]:
    """Put a `Tap` in front of whatever the server runs now (faults included) for the block."""
    server = emulator.wsgi_server()
    tap = Tap(server.app, answer)
    server.app = tap
    try:
        yield tap
    finally:
        assert server.app is tap, "taps and injectors must be removed in reverse order"
        server.app = tap.app
        tap.wait_idle()


# --- the kill switch ------------------------------------------------------------------------------


class Killed(BaseException):
    """The process died: not an `Exception`, so the engine cannot catch it."""


class KillSwitch:
    """Kills the reconcile once write `after` has completed, and every write after it.

    Installed on a boto3 Session before `Aws` creates its clients. Writes are made one at a
    time (the switch holds a lock from `before-call` to `after-call`), so "after write k" is
    exact even though Regions are written in parallel; reads stay parallel. `after=None` only
    counts. `services` and `writes` widen what is killed (RAM, say).
    """

    def __init__(
        self,
        after: int | None = None,
        *,
        services: tuple[str, ...] = KILLED_SERVICES,
        writes: frozenset[str] = WRITE_OPERATIONS,
    ) -> None:
        self.after = after
        self.services = services
        self.writes = writes
        self.completed: list[str] = []
        self.killed = False
        self._serial = threading.Lock()

    def install(self, session: boto3.session.Session) -> boto3.session.Session:
        for service in self.services:
            session.events.register(f"before-call.{service}", self._before)
            session.events.register(f"after-call.{service}", self._after)
            for operation in self.writes:  # after-call-error names no model: one per write
                session.events.register(f"after-call-error.{service}.{operation}", self._error)
        return session

    def _before(self, model: Any, **_: Any) -> None:
        if model.name not in self.writes:
            return
        self._serial.acquire()
        if self.killed:
            self._serial.release()
            raise Killed(f"{model.name} after the kill")

    def _after(self, model: Any, http_response: Any, **_: Any) -> None:
        if model.name not in self.writes:
            return
        try:
            if http_response.status_code < 300:
                self.completed.append(model.name)
                if self.after is not None and len(self.completed) >= self.after:
                    self.killed = True
                    raise Killed(f"killed after write {len(self.completed)} ({model.name})")
        finally:
            self._serial.release()

    def _error(self, **_: Any) -> None:
        # A write failed in transport and never reached after-call (not expected without faults)
        self._serial.release()


# --- observing the live state with plain boto3 ----------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """Rules and associations of one Region, as plain boto3 lists them (every page)."""

    region: str
    rules: tuple[dict[str, Any], ...]
    associations: tuple[dict[str, Any], ...]

    def live_rules(self) -> list[dict[str, Any]]:
        return [r for r in self.rules if r.get("Status") != GONE]

    def managed(self) -> list[dict[str, Any]]:
        return [r for r in self.live_rules() if r.get("CreatorRequestId", "").startswith(OURS)]

    def unmanaged(self) -> list[dict[str, Any]]:
        return [r for r in self.live_rules() if not r.get("CreatorRequestId", "").startswith(OURS)]

    def vpcs_of(self, rule_id: str) -> frozenset[str]:
        return frozenset(
            a["VPCId"]
            for a in self.associations
            if a["ResolverRuleId"] == rule_id and a.get("Status") != GONE
        )


def observe(aws: ClientFactory, region: str) -> Observed:
    resolver = aws("route53resolver", region)
    rules = [
        rule
        for page in resolver.get_paginator("list_resolver_rules").paginate(MaxResults=5)
        for rule in page["ResolverRules"]
    ]
    associations = [
        association
        for page in resolver.get_paginator("list_resolver_rule_associations").paginate(MaxResults=5)
        for association in page["ResolverRuleAssociations"]
    ]
    return Observed(region, tuple(rules), tuple(associations))


def targets_of(rule: Mapping[str, Any]) -> frozenset[tuple[str, int]]:
    return frozenset((t["Ip"], t["Port"]) for t in rule.get("TargetIps") or ())


def marker_target(rule: Mapping[str, Any]) -> str:
    """The target Region recorded in our CreatorRequestId."""
    return str(rule["CreatorRequestId"])[len(OURS) :].partition("/")[0]


@dataclass(frozen=True)
class Expected:
    """One rule the contract wants, derived from the items (not by the product)."""

    region: str
    domain: str
    target_region: str
    endpoint_id: str
    targets: frozenset[tuple[str, int]]
    vpc_ids: frozenset[str]


# --- the mesh -------------------------------------------------------------------------------------


@dataclass
class FaultMesh:
    """Four hubs on the emulator, their table, unmanaged rules, and the engine's settings."""

    aws: ClientFactory
    emulator: LocalEmulator
    hubs: dict[str, HubResources]
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    unmanaged_ids: dict[str, str] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    regions: tuple[str, ...] = HUB_REGIONS
    _extra_ips: int = 0

    # driving the engine -------------------------------------------------------------------------

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            **FAST,
            "home_region": HOME,
            "mesh_regions": self.regions,
            "table_name": TABLE,
            "mesh_id": MESH_ID,
            **overrides,
        }
        return Settings.from_env({}, **values)

    def engine(self, session: boto3.session.Session | None = None, **overrides: Any) -> Reconciler:
        """A new "process": its own session, clients and rate limits; backoff shortened."""
        aws = Aws(self.settings(**overrides), session or new_session())
        for region in self.regions:
            aws.caller(region).base_delay = BASE_DELAY
        return Reconciler(aws)

    def reconcile(
        self,
        *,
        apply: bool = True,
        force: bool = False,
        session: boto3.session.Session | None = None,
        **overrides: Any,
    ) -> Report:
        return self.engine(session, **overrides).run(Request(apply=apply, force=force))

    def converge(self) -> Report:
        """A clean reconcile that must succeed (setting a scene up)."""
        report = self.reconcile()
        assert report.ok, report.as_dict()
        return report

    def planned_writes(self) -> int:
        report = self.reconcile(apply=False)
        assert report.ok, report.as_dict()
        return sum(report.counts.values())

    # the table (plain boto3, as a user's IaC would) ---------------------------------------------

    def put(self, region: str, **extra: Any) -> None:
        item = hub_item(self.hubs[region])
        item.pop("vpc_ids", None)
        item.update(self.default_extra(region), **extra)
        self.aws("dynamodb", HOME).put_item(
            TableName=TABLE, Item={k: _serializer.serialize(v) for k, v in item.items()}
        )
        self.items[region] = item

    def default_extra(self, region: str) -> dict[str, Any]:
        """Only the first workload VPC is listed: the second is for `vpc_ids` changes."""
        workloads = self.hubs[region].workload_vpc_ids
        return {"vpc_ids": [workloads[0]]} if workloads else {}

    def remove(self, region: str) -> None:
        self.aws("dynamodb", HOME).delete_item(TableName=TABLE, Key={"region": {"S": region}})
        self.items.pop(region)

    def set_vpc_ids(self, region: str, vpc_ids: Iterable[str]) -> None:
        self.put(region, vpc_ids=list(vpc_ids))

    # the hubs' inbound endpoints ----------------------------------------------------------------

    def add_inbound_ip(self, region: str) -> str:
        """A third IP on the hub's inbound endpoint (AssociateResolverEndpointIpAddress)."""
        hub = self.hubs[region]
        subnet = self.aws("ec2", region).describe_subnets(SubnetIds=[hub.subnet_ids[0]])
        network = ip_network(subnet["Subnets"][0]["CidrBlock"])
        self._extra_ips += 1
        ip = str(network.network_address + 20 + self._extra_ips)
        self.aws("route53resolver", region).associate_resolver_endpoint_ip_address(
            ResolverEndpointId=hub.inbound_endpoint_id,
            IpAddress={"SubnetId": hub.subnet_ids[0], "Ip": ip},
        )
        return ip

    def remove_inbound_ip(self, region: str, ip: str) -> None:
        hub = self.hubs[region]
        self.aws("route53resolver", region).disassociate_resolver_endpoint_ip_address(
            ResolverEndpointId=hub.inbound_endpoint_id,
            IpAddress={"SubnetId": hub.subnet_ids[0], "Ip": ip},
        )

    def inbound_targets(self, region: str) -> frozenset[tuple[str, int]]:
        resolver = self.aws("route53resolver", region)
        ips = [
            ip
            for page in resolver.get_paginator("list_resolver_endpoint_ip_addresses").paginate(
                ResolverEndpointId=self.hubs[region].inbound_endpoint_id, MaxResults=5
            )
            for ip in page["IpAddresses"]
        ]
        return frozenset((ip["Ip"], 53) for ip in ips if ip["Status"] == "ATTACHED")

    # observing ----------------------------------------------------------------------------------

    def observe(self, region: str) -> Observed:
        return observe(self.aws, region)

    def managed_count(self) -> int:
        return sum(len(self.observe(region).managed()) for region in self.regions)

    def observe_all(self) -> dict[str, Observed]:
        return {region: self.observe(region) for region in self.regions}

    def unmanaged_state(self, seen: Mapping[str, Observed] | None = None) -> dict[str, Any]:
        """Every rule that is not ours, field by field, with the VPCs it is associated with."""
        state: dict[str, Any] = {}
        for region, observed in sorted((seen or self.observe_all()).items()):
            for rule in observed.unmanaged():
                state[rule["Id"]] = (
                    region,
                    rule.get("Name"),
                    rule.get("DomainName"),
                    rule.get("RuleType"),
                    rule.get("ResolverEndpointId"),
                    rule.get("CreatorRequestId"),
                    rule.get("Status"),
                    rule.get("ModificationTime"),
                    tuple(sorted(targets_of(rule))),
                    tuple(sorted(observed.vpcs_of(rule["Id"]))),
                )
        return state

    def expected(self) -> dict[tuple[str, str], Expected]:
        """The rules the contract asks for, derived from the items independently."""
        enabled = {r: i for r, i in self.items.items() if i.get("enabled", True)}
        wanted: dict[tuple[str, str], Expected] = {}
        inbound = {region: self.inbound_targets(region) for region in enabled}
        for source, item in sorted(enabled.items()):
            if not item.get("outbound_endpoint_id"):
                continue
            for target in sorted(enabled):
                if target == source:
                    continue
                for template in enabled[target].get("domains") or DOMAINS:
                    domain = normalise(template.replace("{region}", target))
                    wanted[source, domain] = Expected(
                        region=source,
                        domain=domain,
                        target_region=target,
                        endpoint_id=item["outbound_endpoint_id"],
                        targets=inbound[target],
                        vpc_ids=frozenset([item["vpc_id"], *item.get("vpc_ids", [])]),
                    )
        return wanted

    # the invariants -----------------------------------------------------------------------------

    def assert_invariants(self, *, converged: bool = True) -> None:
        assert_invariants(self, converged=converged)

    def remove_managed_rules(self) -> None:
        """Back to "never reconciled" (plain boto3), for the next kill of a cold converge."""
        for region in self.regions:
            resolver = self.aws("route53resolver", region)
            seen = self.observe(region)
            for rule in seen.managed():
                for vpc_id in seen.vpcs_of(rule["Id"]):
                    resolver.disassociate_resolver_rule(ResolverRuleId=rule["Id"], VPCId=vpc_id)
                resolver.delete_resolver_rule(ResolverRuleId=rule["Id"])


def assert_invariants(mesh: FaultMesh, *, converged: bool = True) -> None:
    """The invariants of issue 4, checked on the live state with plain boto3 (every page).

    Always (whatever happened): every unmanaged rule is exactly as it was (fields, targets,
    modification time, associations) and none appeared or vanished; at most one managed rule per
    (Region, domain); no association of a missing rule; no managed rule without targets.

    With `converged`: the managed rules are exactly the desired ones (no orphan, none missing),
    each with the desired endpoint, targets, marker and exactly the desired VPCs; a plan finds
    nothing to do and a resync makes no write (seen at the server).
    """
    seen_in = mesh.observe_all()
    assert mesh.unmanaged_state(seen_in) == mesh.baseline, "an unmanaged rule was touched"
    expected = mesh.expected()
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for region, seen in seen_in.items():
        rule_ids = {r["Id"] for r in seen.rules}
        dangling = [a for a in seen.associations if a["ResolverRuleId"] not in rule_ids]
        assert not dangling, f"{region}: associations of missing rules: {dangling}"
        for rule in seen.managed():
            key = (region, normalise(rule["DomainName"]))
            assert key not in found, (
                f"two managed rules for {key}: {found[key]['Id']}, {rule['Id']}"
            )
            assert targets_of(rule), f"{key}: managed rule {rule['Id']} has no target"
            found[key] = rule
    if not converged:
        return

    orphans = sorted(set(found) - set(expected))
    missing = sorted(set(expected) - set(found))
    assert not orphans, f"managed rules nobody wants: {orphans}"
    assert not missing, f"desired rules missing: {missing}"
    for key, want in expected.items():
        rule = found[key]
        assert rule["RuleType"] == "FORWARD", key
        assert rule["Status"] == "COMPLETE", key
        assert marker_target(rule) == want.target_region, key
        assert rule["ResolverEndpointId"] == want.endpoint_id, key
        assert targets_of(rule) == want.targets, (key, targets_of(rule), want.targets)
        assert "." not in rule["Name"], key
        vpcs = seen_in[want.region].vpcs_of(rule["Id"])
        assert vpcs == want.vpc_ids, (key, "associated with", sorted(vpcs), "want", want.vpc_ids)

    plan = mesh.reconcile(apply=False)
    assert plan.ok, plan.as_dict()
    assert sum(plan.counts.values()) == 0, plan.changes
    with tapped(mesh.emulator) as tap:
        resync = mesh.reconcile()
    assert resync.ok, resync.as_dict()
    assert resync.calls["writes"] == 0, resync.changes
    assert tap.writes() == [], tap.writes()


# --- building the mesh ----------------------------------------------------------------------------


def _unmanaged_rules(aws: ClientFactory, hubs: Mapping[str, HubResources]) -> dict[str, str]:
    """Rules of other owners the reconciler must never touch (in the Regions that have a hub)."""

    def outbound(region: str) -> str:
        endpoint_id = hubs[region].outbound_endpoint_id
        assert endpoint_id
        return endpoint_id

    ids: dict[str, str] = {}
    if HOME in hubs:
        east1 = hubs[HOME]
        # associated with the hub VPC and a workload VPC, for a domain the mesh does not manage
        ids["corp"] = create_unmanaged_rule(
            aws, HOME, "corp.example.com", outbound(HOME), "192.0.2.10", east1.vpc_id, "corp"
        )
        aws("route53resolver", HOME).associate_resolver_rule(
            ResolverRuleId=ids["corp"], VPCId=east1.workload_vpc_ids[0], Name="corp-workload"
        )
        # a domain the mesh DOES manage in us-east-1, but not associated with our VPCs
        ids["shadow"] = create_unmanaged_rule(
            aws, HOME, "us-east-2.amazonaws.com", outbound(HOME), "192.0.2.40", None, "shadow"
        )
    for key, region, domain, ip in (
        ("onprem", "us-east-2", "onprem.internal", "192.0.2.20"),
        ("legacy", "us-west-2", "legacy.example.net", "192.0.2.30"),
    ):
        if region in hubs:
            ids[key] = create_unmanaged_rule(
                aws, region, domain, outbound(region), ip, hubs[region].vpc_id
            )
    if "eu-west-1" in hubs:
        # another mesh's rule: its marker shares our prefix up to the mesh id
        ids["other-mesh"] = aws("route53resolver", "eu-west-1").create_resolver_rule(
            CreatorRequestId=f"resolver-mesh/{MESH_ID}-2/us-east-1/0123456789abcdef",
            Name="other-mesh-rule",
            RuleType="FORWARD",
            DomainName="us-east-1.vpce.amazonaws.com",
            TargetIps=[{"Ip": "192.0.2.50", "Port": 53}],
            ResolverEndpointId=outbound("eu-west-1"),
        )["ResolverRule"]["Id"]
    return ids


def build_fault_mesh(
    aws: ClientFactory,
    emulator: LocalEmulator,
    registered: Iterable[str] = HUB_REGIONS,
    regions: tuple[str, ...] = HUB_REGIONS,
) -> FaultMesh:
    """Hubs in `regions` (us-east-1 with two workload VPCs), the table, unmanaged rules.

    The items of `registered` are written. us-east-1's item lists only its first workload VPC
    (`vpc_ids`), so a test can swap in the second. The unmanaged rules are made before any
    reconcile and form the baseline. `regions` are also the Regions the mesh sweeps.
    """
    with ThreadPoolExecutor(max_workers=len(regions)) as pool:
        built = pool.map(
            lambda region: build_hub(
                aws, region, services=(), workload_vpcs=2 if region == HOME else 0
            ),
            regions,
        )
        hubs = dict(zip(regions, built, strict=True))
    create_hubs_table(aws, HOME, TABLE)
    mesh = FaultMesh(aws, emulator, hubs, regions=regions)
    mesh.unmanaged_ids = _unmanaged_rules(aws, hubs)
    mesh.baseline = mesh.unmanaged_state()
    assert len(mesh.baseline) == len(mesh.unmanaged_ids)
    for region in registered:
        mesh.put(region)
    return mesh


_FACTORIES: dict[str, ClientFactory] = {}


def client_factory(emulator: LocalEmulator) -> ClientFactory:
    """Plain boto3 clients on the emulator, cached for the session (they hold no state)."""
    url = emulator.endpoint_url
    if url in _FACTORIES:
        return _FACTORIES[url]
    _FACTORIES[url] = CachedClients(new_session(), url)
    return _FACTORIES[url]


# --- the Lambda handler ---------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def lambda_app() -> Any:
    """The Lambda's module, imported as the runtime imports it (from its code directory)."""
    code = str(ROOT / "functions" / "reconciler")
    if code not in sys.path:
        sys.path.insert(0, code)
    return importlib.import_module("app")


def lambda_environment(mesh: FaultMesh) -> dict[str, str]:
    """The settings of `mesh.settings()` as the Lambda reads them (environment variables)."""
    settings = mesh.settings()
    return {
        "HUBS_TABLE_NAME": settings.table_name,
        "MESH_ID": settings.mesh_id,
        "HOME_REGION": str(settings.home_region),
        "MESH_REGIONS": ",".join(settings.mesh_regions),
        "CALLS_PER_SECOND": str(settings.calls_per_second),
        "CALL_TIMEOUT_SECONDS": str(settings.call_timeout_seconds),
        "MAX_ATTEMPTS": str(settings.max_attempts),
    }
