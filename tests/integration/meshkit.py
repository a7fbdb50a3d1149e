"""Helpers for the end-to-end tests (the fixtures in conftest.py hand them out).

- `make_mesh(regions, ...)` (a fixture) builds one hub per Region with `build_hub` (us-east-1
  gets a workload VPC), creates the hubs table, writes the items and points the settings (env
  vars) at them.
- `Mesh.invoke(event)` runs the Lambda handler in-process with a fake context, `Mesh.cli(...)`
  runs `resolver_mesh.cli.main` in-process, `Mesh.script(...)` runs the real console script
  (or `python -m resolver_mesh`) as a subprocess against the same emulator.
- `observe(region)` lists rules and associations with plain boto3 (paginated), so assertions
  never depend on the product's own reader; `Mesh.expected()` derives the desired rules from the
  items independently, and `Mesh.assert_converged()` compares the two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from resolver_mesh import cli
from resolver_mesh.local.lambda_events import FakeLambdaContext, sqs_event
from resolver_mesh.local.topology import (
    ClientFactory,
    HubResources,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "functions" / "reconciler"))
import app  # noqa: E402  (the Lambda's module, as the runtime imports it)

VENV_BIN = ROOT / ".venv" / "bin"
HOME_REGION = "us-east-1"
TABLE = "resolver-mesh-hubs"
WORK_TABLE = "resolver-mesh-work"
DEFAULT_MESH_ID = "resolver-mesh"
DEFAULT_REGIONS = ("us-east-1", "us-east-2", "us-west-2")
FOUR_REGIONS = (*DEFAULT_REGIONS, "eu-west-1")
# Every Region any test uses, swept by a full resync (instead of the account's ~30 Regions).
MESH_REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "ap-southeast-2")
DEFAULT_DOMAINS = ("{region}.amazonaws.com", "{region}.vpce.amazonaws.com")
OWNER_TAG = "resolver-mesh:owner"
GONE = "DELETING"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def normalise(domain: str) -> str:
    return domain.strip().lower().rstrip(".") + "."


def domains_of(item: Mapping[str, Any]) -> set[str]:
    templates = item.get("domains") or DEFAULT_DOMAINS
    return {normalise(t.replace("{region}", item["region"])) for t in templates}


# --- observing the live state with plain boto3 --------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """Rules and associations of one Region, as plain boto3 lists them (every page)."""

    region: str
    rules: tuple[dict[str, Any], ...]
    associations: tuple[dict[str, Any], ...]

    def rule(self, rule_id: str) -> dict[str, Any]:
        return next(r for r in self.rules if r["Id"] == rule_id)

    def managed(self, mesh_id: str = DEFAULT_MESH_ID) -> list[dict[str, Any]]:
        prefix = f"resolver-mesh/{mesh_id}/"
        return [
            r
            for r in self.rules
            if r.get("CreatorRequestId", "").startswith(prefix) and r.get("Status") != GONE
        ]

    def vpcs_of(self, rule_id: str) -> set[str]:
        return {
            a["VPCId"]
            for a in self.associations
            if a["ResolverRuleId"] == rule_id and a.get("Status") != GONE
        }

    def rules_for(self, domain: str) -> list[dict[str, Any]]:
        return [r for r in self.rules if normalise(r["DomainName"]) == normalise(domain)]

    def managed_rules_for(
        self, domain: str, mesh_id: str = DEFAULT_MESH_ID
    ) -> list[dict[str, Any]]:
        return [r for r in self.managed(mesh_id) if normalise(r["DomainName"]) == normalise(domain)]

    def orphans(self) -> list[dict[str, Any]]:
        """Associations whose rule no longer exists."""
        ids = {r["Id"] for r in self.rules}
        return [a for a in self.associations if a["ResolverRuleId"] not in ids]


def observe_region(client_factory: ClientFactory, region: str) -> Observed:
    resolver = client_factory("route53resolver", region)
    rules = [
        rule
        for page in resolver.get_paginator("list_resolver_rules").paginate()
        for rule in page["ResolverRules"]
    ]
    associations = [
        association
        for page in resolver.get_paginator("list_resolver_rule_associations").paginate()
        for association in page["ResolverRuleAssociations"]
    ]
    return Observed(region, tuple(rules), tuple(associations))


def targets_of(rule: Mapping[str, Any]) -> set[tuple[str, int]]:
    return {(t["Ip"], t["Port"]) for t in rule.get("TargetIps", [])}


@dataclass(frozen=True)
class Expected:
    """One rule the contract says must exist (derived from the items, not by the product)."""

    region: str
    domain: str
    target_region: str
    endpoint_id: str
    targets: frozenset[tuple[str, int]]
    vpc_ids: frozenset[str]


# --- the fake Lambda context and CLI results ------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


# --- the mesh ------------------------------------------------------------------------------------


@dataclass
class Mesh:
    """Hubs on the emulator, their table, and the settings a reconcile runs with."""

    aws: ClientFactory
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    hubs: dict[str, HubResources]
    items: dict[str, dict[str, Any]]
    table: str = TABLE
    mesh_id: str = DEFAULT_MESH_ID
    mesh_regions: tuple[str, ...] = MESH_REGIONS  # (): sweep the account's enabled Regions

    # settings ---------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            "HUBS_TABLE_NAME": self.table,
            "MESH_ID": self.mesh_id,
            "HOME_REGION": HOME_REGION,
            "MESH_REGIONS": ",".join(self.mesh_regions),
            "CALLS_PER_SECOND": "1000",
        }

    def activate(self) -> None:
        for name, value in self.env().items():
            self.monkeypatch.setenv(name, value)

    # the table (written with plain boto3, as a user's IaC would) -------------------------------

    def put(self, item: Mapping[str, Any]) -> None:
        self.aws("dynamodb", HOME_REGION).put_item(
            TableName=self.table, Item={k: _serializer.serialize(v) for k, v in item.items()}
        )
        self.items[item["region"]] = dict(item)

    def update(self, region: str, **changes: Any) -> dict[str, Any]:
        """Rewrite the item of `region` with `changes` (a value of None drops the attribute)."""
        item = {**self.items[region], **changes}
        item = {k: v for k, v in item.items() if v is not None}
        self.put(item)
        return item

    def remove(self, region: str) -> None:
        self.aws("dynamodb", HOME_REGION).delete_item(
            TableName=self.table, Key={"region": {"S": region}}
        )
        self.items.pop(region, None)

    def stored(self) -> dict[str, dict[str, Any]]:
        raw = self.aws("dynamodb", HOME_REGION).scan(TableName=self.table, ConsistentRead=True)
        items = [{k: _deserializer.deserialize(v) for k, v in i.items()} for i in raw["Items"]]
        return {item["region"]: item for item in items}

    # driving the product ------------------------------------------------------------------------

    def invoke(self, event: Any) -> dict[str, Any]:
        """The Lambda handler, in-process; the result must survive a JSON round trip."""
        self.activate()
        result: dict[str, Any] = app.lambda_handler(event, FakeLambdaContext())
        assert json.loads(json.dumps(result)) == result
        return result

    def resync(self, regions: Sequence[str] | None = None, force: bool | None = None) -> Any:
        event: dict[str, Any] = {"action": "resync"}
        if regions is not None:
            event["regions"] = list(regions)
        if force is not None:
            event["force"] = force
        return self.invoke(event)

    def plan(self, regions: Sequence[str] | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {"action": "plan"}
        if regions is not None:
            event["regions"] = list(regions)
        return self.invoke(event)

    def cli(self, *args: str) -> CliResult:
        """`resolver_mesh.cli.main(args)` in-process; stdout and stderr captured."""
        self.activate()
        self.capsys.readouterr()
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = self.capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    def script(self, *args: str, module: bool = False, **env: str) -> CliResult:
        """The installed console script (or `python -m resolver_mesh`) as a subprocess."""
        command = (
            [str(VENV_BIN / "python"), "-m", "resolver_mesh", *args]
            if module
            else [str(VENV_BIN / "resolver-mesh"), *args]
        )
        environment = {**os.environ, **self.env(), **env}
        done = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=120, check=False
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    # observing ----------------------------------------------------------------------------------

    def observe(self, region: str) -> Observed:
        return observe_region(self.aws, region)

    def snapshot(self, regions: Sequence[str] = MESH_REGIONS) -> dict[str, Any]:
        """Everything a write could change, for "nothing changed" assertions."""
        state: dict[str, Any] = {}
        for region in regions:
            seen = self.observe(region)
            state[region] = (
                sorted(
                    (
                        r["Id"],
                        r.get("Name"),
                        r["DomainName"],
                        r.get("ResolverEndpointId"),
                        tuple(sorted(targets_of(r))),
                        r.get("Status"),
                        r.get("ModificationTime"),
                    )
                    for r in seen.rules
                ),
                sorted(
                    (a["ResolverRuleId"], a["VPCId"], a.get("Status")) for a in seen.associations
                ),
            )
        return state

    def inbound_ips(self, region: str) -> frozenset[tuple[str, int]]:
        resolver = self.aws("route53resolver", region)
        ips = [
            ip
            for page in resolver.get_paginator("list_resolver_endpoint_ip_addresses").paginate(
                ResolverEndpointId=self.items[region]["inbound_endpoint_id"]
            )
            for ip in page["IpAddresses"]
        ]
        return frozenset((ip["Ip"], 53) for ip in ips if ip["Status"] == "ATTACHED")

    def expected(self) -> dict[tuple[str, str], Expected]:
        """The rules the contract asks for, derived from the items independently."""
        enabled = {r: i for r, i in self.items.items() if i.get("enabled", True)}
        wanted: dict[tuple[str, str], Expected] = {}
        for source, item in enabled.items():
            if not item.get("outbound_endpoint_id"):
                continue
            peers = item.get("peers")
            for target in sorted(enabled if peers is None else peers):
                if target == source or target not in enabled:
                    continue
                for domain in domains_of(enabled[target]):
                    wanted[source, domain] = Expected(
                        region=source,
                        domain=domain,
                        target_region=target,
                        endpoint_id=item["outbound_endpoint_id"],
                        targets=self.inbound_ips(target),
                        vpc_ids=frozenset([item["vpc_id"], *item.get("vpc_ids", [])]),
                    )
        return wanted

    def managed_rules(
        self, regions: Sequence[str] = MESH_REGIONS
    ) -> dict[str, list[dict[str, Any]]]:
        return {region: self.observe(region).managed(self.mesh_id) for region in regions}

    def assert_converged(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Exactly the expected managed rules exist, each exactly right; returns them by key."""
        expected = self.expected()
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for region in sorted({*MESH_REGIONS, *self.hubs}):
            seen = self.observe(region)
            assert not seen.orphans(), f"{region}: associations of missing rules {seen.orphans()}"
            own = {d for r, i in self.items.items() if r == region for d in domains_of(i)}
            for rule in seen.managed(self.mesh_id):
                key = (region, normalise(rule["DomainName"]))
                assert key not in found, f"two managed rules for {key}"
                assert key[1] not in own, f"{region} got a rule for its own domain {key[1]}"
                found[key] = rule
        assert sorted(found) == sorted(expected), "managed rules differ from the contract"
        for key, want in expected.items():
            rule = found[key]
            seen = self.observe(want.region)
            assert rule["RuleType"] == "FORWARD", key
            assert rule["Status"] == "COMPLETE", key
            assert rule["ResolverEndpointId"] == want.endpoint_id, key
            assert targets_of(rule) == set(want.targets), key
            assert seen.vpcs_of(rule["Id"]) == set(want.vpc_ids), key
            assert "." not in rule["Name"], key
        return found


class HubsStream:
    """The hubs table's stream (moto keeps one shard), read from where the last read stopped;
    `batch` hands its new records over as the template's pipe and queue do."""

    def __init__(self, aws: ClientFactory, table: str) -> None:
        self.client = aws("dynamodbstreams", HOME_REGION)
        described = aws("dynamodb", HOME_REGION).describe_table(TableName=table)
        self.arn = described["Table"]["LatestStreamArn"]
        self.seen = 0

    def records(self) -> list[dict[str, Any]]:
        [shard] = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        iterator = self.client.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        every = self.client.get_records(ShardIterator=iterator)["Records"]
        new, self.seen = every[self.seen :], len(every)
        return new

    def batch(self) -> dict[str, Any]:
        """The new records as the reconcile queue hands them to the function: one per body."""
        return sqs_event(
            {"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": json.dumps(r, default=str)}
            for n, r in enumerate(self.records())
        )


def create_work_table(aws: ClientFactory, name: str = WORK_TABLE) -> str:
    """The work table as template.yaml makes it (key `id`, on demand)."""
    aws("dynamodb", HOME_REGION).create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name
