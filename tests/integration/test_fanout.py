"""Fan-out through the handler against the HTTP emulator: a pass too large for the time left
goes to the apply queue, one order per location; workers apply them under leases; stale
orders are not applied; the mass-change guard still decides before anything is queued.

The queues and the work table are made as template.yaml makes them; "too large" is made by
a Lambda context with little time left, not by a large mesh.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError
from meshkit import HOME_REGION, WORK_TABLE, Mesh, app, create_work_table
from test_spokes_accounts import (
    EXTERNAL_ID,
    MEMBER,
    PEER_DOMAINS,
    ROLE,
    member,
    of_vpc,
    our_shares,
    rules_and_vpcs,
)
from test_tag_join import VPC_READ, tag_reads, tagged_vpc, untag

from mesh_emulator.faults import FaultInjector, injected_faults
from mesh_emulator.ram import arrival_lag
from mesh_emulator.server import LocalEmulator
from resolver_mesh.aws import resolver
from resolver_mesh.aws.calls import Caller, RateLimiter
from resolver_mesh.aws.work import MAX_BATCH_BYTES, WaveEnd, Work, WorkQueues, WorkTable
from resolver_mesh.fanout import SAFETY_SECONDS, ApplyOrder, FanoutSettings, order_from_json
from resolver_mesh.local.lambda_events import FakeLambdaContext, sqs_event
from resolver_mesh.local.topology import CachedClients, ClientFactory
from resolver_mesh.models import Change, ChangeKind
from resolver_mesh.reconcile import Reconciler

__all__ = ["member", "tag_reads"]  # fixtures shared with test_spokes_accounts, test_tag_join


@dataclass
class ShortContext(FakeLambdaContext):
    """An invocation with `seconds` left: any plan with changes is fanned out."""

    seconds: float = SAFETY_SECONDS

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


@dataclass
class FanOut:
    """The template's fan-out resources in the emulator, and ways to drive them."""

    aws: ClientFactory
    apply_url: str
    reconcile_url: str

    def arn(self, url: str) -> str:
        attrs = self.aws("sqs", HOME_REGION).get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"]
        )
        return str(attrs["Attributes"]["QueueArn"])

    def receive(self, url: str) -> list[dict[str, Any]]:
        """Every message visible now (they stay in flight until deleted)."""
        sqs = self.aws("sqs", HOME_REGION)
        messages: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=60,
                AttributeNames=["MessageGroupId"],
            ).get("Messages", [])
            if not got:
                return messages
            messages += got

    def batch(self, url: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        event = sqs_event(messages)
        for record in event["Records"]:
            record["eventSourceARN"] = self.arn(url)
        return event

    def delete(self, url: str, messages: list[dict[str, Any]], failed: set[str]) -> None:
        """What Lambda does with a batch: deletes the records that did not fail."""
        sqs = self.aws("sqs", HOME_REGION)
        for message in messages:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def run_workers(self, mesh: Mesh) -> list[dict[str, Any]]:
        """Hand every queued order to the handler, batch by batch, until none is left; the
        workers' reports."""
        reports: list[dict[str, Any]] = []
        while messages := self.receive(self.apply_url)[:10]:
            result = invoke(mesh, self.batch(self.apply_url, messages))
            failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
            assert not failed, result
            self.delete(self.apply_url, messages, failed)
            reports += result["reports"]
        return reports

    def table(self) -> WorkTable:
        return WorkTable(WORK_TABLE, self.aws("dynamodb", HOME_REGION), Caller(RateLimiter(1000.0)))

    def items(self) -> list[dict[str, Any]]:
        scan = self.aws("dynamodb", HOME_REGION).scan(TableName=WORK_TABLE, ConsistentRead=True)
        return list(scan["Items"])


def invoke(mesh: Mesh, event: Any, context: Any = None) -> dict[str, Any]:
    mesh.activate()
    result: dict[str, Any] = app.lambda_handler(event, context or FakeLambdaContext())
    assert json.loads(json.dumps(result)) == result
    return result


@pytest.fixture
def fan_out(aws: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> FanOut:
    sqs = aws("sqs", HOME_REGION)
    apply_url = sqs.create_queue(
        QueueName="resolver-mesh-apply.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
    )["QueueUrl"]
    reconcile_url = sqs.create_queue(
        QueueName="resolver-mesh-reconcile.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    create_work_table(aws)
    monkeypatch.setenv("APPLY_QUEUE_URL", apply_url)
    monkeypatch.setenv("RECONCILE_QUEUE_URL", reconcile_url)
    monkeypatch.setenv("WORK_TABLE_NAME", WORK_TABLE)
    return FanOut(aws, apply_url, reconcile_url)


def managed(mesh: Mesh) -> int:
    return sum(len(mesh.observe(region).managed()) for region in mesh.hubs)


def test_a_small_mesh_keeps_one_pass_under_leases(mesh: Mesh, fan_out: FanOut) -> None:
    result = invoke(mesh, {"action": "resync"})
    assert result["ok"], result
    assert result["counts"]["create_rule"] == 12
    assert {c["status"] for c in result["changes"]} == {"applied"}
    assert fan_out.receive(fan_out.apply_url) == []
    assert fan_out.items() == []  # every lease given back
    mesh.assert_converged()


def test_a_location_leased_by_another_reconcile_is_not_written(mesh: Mesh, fan_out: FanOut) -> None:
    assert fan_out.table().acquire("us-east-2", "someone-else", 600)
    result = invoke(mesh, {"action": "resync"})
    assert not result["ok"]
    east_2 = [c for c in result["changes"] if c["region"] == "us-east-2"]
    assert east_2
    assert {c["status"] for c in east_2} == {"not started"}
    assert any("another reconcile holds its lease" in e["message"] for e in result["errors"])
    assert mesh.observe("us-east-2").managed() == []
    assert len(mesh.observe("us-west-2").managed()) == 4  # the other locations went on
    fan_out.table().release("us-east-2", "someone-else")
    assert invoke(mesh, {"action": "resync"})["ok"]
    mesh.assert_converged()


def test_a_lease_not_given_back_is_an_error_and_what_was_applied_is_reported(
    mesh: Mesh, fan_out: FanOut, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writes of a location are done when its lease cannot be given back (DynamoDB
    throttled past the retries): they are reported as applied, with an error naming the
    location, and the other locations go on; the lease expires on its own."""
    give_back = WorkTable.release

    def throttled(table: WorkTable, where: str, holder: str) -> None:
        if where == "us-east-2":
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                "DeleteItem",
            )
        give_back(table, where, holder)

    monkeypatch.setattr(WorkTable, "release", throttled)
    result = invoke(mesh, {"action": "resync"})
    assert not result["ok"]
    assert {c["status"] for c in result["changes"]} == {"applied"}
    [error] = [e for e in result["errors"] if e["kind"] == "lease"]
    assert error["region"] == "us-east-2"
    assert "could not be given back" in error["message"]
    assert "ThrottlingException" in error["message"]
    mesh.assert_converged()
    assert [i["id"]["S"] for i in fan_out.items()] == ["lease#us-east-2"]


def test_a_large_pass_fans_out_and_the_workers_converge(mesh: Mesh, fan_out: FanOut) -> None:
    result = invoke(mesh, {"action": "resync"}, ShortContext())
    assert result["ok"], result
    assert {c["status"] for c in result["changes"]} == {"queued"}
    queued = Counter(c["kind"] for c in result["changes"])
    assert queued == {"create_rule": 12, "associate": 16}  # us-east-1 has a workload VPC
    assert sum(result["counts"].values()) == 0  # nothing applied by the coordinator
    assert any(note.startswith("fanned out") for note in result["notes"])
    assert managed(mesh) == 0

    orders = fan_out.receive(fan_out.apply_url)
    groups = [m["Attributes"]["MessageGroupId"] for m in orders]
    assert groups == [json.loads(m["Body"])["location"] for m in orders]
    assert sorted(groups) == sorted(mesh.hubs)  # one order per location
    fan_out.aws("sqs", HOME_REGION).change_message_visibility_batch(
        QueueUrl=fan_out.apply_url,
        Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for n, m in enumerate(orders)
        ],
    )
    reports = fan_out.run_workers(mesh)
    assert len(reports) == 3
    assert all(r["ok"] for r in reports), reports
    applied = Counter(c["kind"] for r in reports for c in r["changes"] if c["status"] == "applied")
    assert applied == queued
    mesh.assert_converged()
    # The wave is over and asked for nothing more (no sharing, nothing failed).
    assert fan_out.receive(fan_out.reconcile_url) == []
    assert [i["id"]["S"].split("#")[0] for i in fan_out.items()] == ["wave"]
    assert "pending" not in fan_out.items()[0]
    plan = mesh.plan()
    assert plan["changes"] == []


def test_the_guard_refuses_before_anything_is_queued(mesh: Mesh, fan_out: FanOut) -> None:
    assert invoke(mesh, {"action": "resync"})["ok"]
    mesh.update("us-east-1", domains=["example.internal"])  # every other hub's rules retarget
    mesh.update("us-west-2", domains=["west.internal"])
    result = invoke(mesh, {"action": "resync"}, ShortContext())
    assert result["refused"], result
    assert fan_out.receive(fan_out.apply_url) == []
    assert fan_out.items() == []
    assert managed(mesh) == 12


def test_a_stale_order_is_not_applied_and_the_next_pass_replans(
    mesh: Mesh, fan_out: FanOut
) -> None:
    assert invoke(mesh, {"action": "resync"}, ShortContext())["ok"]
    mesh.update("us-west-2", enabled=False)  # the hub items change after the plan
    reports = fan_out.run_workers(mesh)
    assert len(reports) == 3
    assert all(any("stale order" in n for n in r["notes"]) for r in reports), reports
    assert all(sum(r["counts"].values()) == 0 for r in reports)
    assert managed(mesh) == 0  # nothing of the stale plan was written
    (finished,) = fan_out.receive(fan_out.reconcile_url)
    body = json.loads(finished["Body"])
    assert body["detail"]["pass"] == 1
    # The pass after the wave re-plans from what is there now (pass 2 of at most 3).
    event = fan_out.batch(fan_out.reconcile_url, [finished])
    result = invoke(mesh, event)
    assert result["report"]["ok"], result
    assert mesh.observe("us-west-2").managed() == []
    assert len(mesh.observe("us-east-1").managed()) == 2
    assert len(mesh.observe("us-east-2").managed()) == 2


def test_a_location_changed_since_the_plan_is_stale(mesh: Mesh, fan_out: FanOut) -> None:
    assert invoke(mesh, {"action": "resync"})["ok"]
    east_2 = mesh.observe("us-east-2").managed()
    resolver = fan_out.aws("route53resolver", "us-east-2")
    rule = east_2[0]
    vpc = mesh.hubs["us-east-2"].vpc_id
    resolver.disassociate_resolver_rule(VPCId=vpc, ResolverRuleId=rule["Id"])
    result = invoke(mesh, {"action": "resync"}, ShortContext())
    assert [c["kind"] for c in result["changes"]] == ["associate"]
    resolver.associate_resolver_rule(VPCId=vpc, ResolverRuleId=rule["Id"], Name="by hand")
    (report,) = fan_out.run_workers(mesh)
    assert any("us-east-2 changed since the plan" in n for n in report["notes"]), report
    assert report["changes"][0]["status"] == "not started"
    assert len(fan_out.receive(fan_out.reconcile_url)) == 1  # re-planned next
    assert mesh.observe("us-east-2").vpcs_of(rule["Id"]) == {vpc}  # one association, not two


def test_a_crashed_order_goes_back_with_the_ones_after_it(
    mesh: Mesh, fan_out: FanOut, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke(mesh, {"action": "resync"}, ShortContext())["ok"]
    messages = fan_out.receive(fan_out.apply_url)
    bodies = [json.loads(m["Body"]) for m in messages]
    crashing = next(i for i, b in enumerate(bodies) if b["location"] == "us-east-2")
    original: Callable[..., Any] = app.Reconciler.apply_order

    def crash_in_us_east_2(self: Any, order: Any) -> Any:
        if order.location == "us-east-2":
            raise RuntimeError("the function died")
        return original(self, order)

    monkeypatch.setattr(app.Reconciler, "apply_order", crash_in_us_east_2)
    result = invoke(mesh, fan_out.batch(fan_out.apply_url, messages))
    failed = [f["itemIdentifier"] for f in result["batchItemFailures"]]
    assert failed == [m["MessageId"] for m in messages[crashing:]]
    assert mesh.observe("us-east-2").managed() == []
    assert len(result["reports"]) == 2  # the others applied


def test_sharing_across_accounts_takes_two_waves_in_order(
    mesh: Mesh, fan_out: FanOut, member: CachedClients, aws: ClientFactory
) -> None:
    """Make before break across accounts, fanned out: the hub's rules are created and shared
    in one wave, accepted and associated by the member in the next (one order: the
    acceptance, then the associations, under the member location's lease), planned after the
    first wave finished (its last worker asks for the next pass); the second asks for none."""
    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    shared = {"vpc_id": vpc, "account_id": MEMBER, "role_arn": ROLE, "external_id": EXTERNAL_ID}
    mesh.update(HOME_REGION, shared_vpcs=[shared])
    result = invoke(mesh, {"action": "resync"}, ShortContext())
    passes = [result]
    while True:
        assert passes[-1]["ok"], passes[-1]
        reports = fan_out.run_workers(mesh)
        assert all(r["ok"] for r in reports), reports
        assert not [i for i in fan_out.items() if i["id"]["S"].startswith("lease#")]
        follow_ups = fan_out.receive(fan_out.reconcile_url)
        if not follow_ups:
            break
        (message,) = follow_ups
        assert json.loads(message["Body"])["detail"]["pass"] == len(passes)
        event = fan_out.batch(fan_out.reconcile_url, [message])
        fan_out.delete(fan_out.reconcile_url, [message], set())
        passes.append(invoke(mesh, event, ShortContext())["report"])
    queued = [{c["kind"] for c in p["changes"] if c["status"] == "queued"} for p in passes]
    # Each wave was planned from what the one before it left: rules and shares first, then
    # the member's acceptance and, in its same order, its associations of the shared rules.
    assert len(queued) == 2
    assert {"create_rule", "create_share"} <= queued[0]
    assert "accept_share" not in queued[0]
    in_member = [c for c in passes[1]["changes"] if c.get("account") == MEMBER]
    kinds = [c["kind"] for c in in_member]
    assert kinds[0] == "accept_share"
    assert set(kinds[1:]) == {"associate"}
    assert {c["share_arn"] for c in in_member} == {in_member[0]["share_arn"]}
    seen = rules_and_vpcs(member)
    assert set(seen) == set(rules_and_vpcs(aws))
    assert set(of_vpc(seen, vpc)) == PEER_DOMAINS
    assert invoke(mesh, {"action": "plan"})["changes"] == []


def test_a_worker_makes_no_share_when_none_of_the_rules_for_it_was_created(
    mesh: Mesh,
    fan_out: FanOut,
    member: CachedClients,
    aws: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fanned-out hub order creates its rules, then the share that holds them: when none
    could be created, the share would hold nothing (and name the member with nothing to read
    it again), so it is skipped and says why; the next wave makes both."""

    def refused(self: Any, *args: Any) -> str:
        raise RuntimeError("injected: no rule")

    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    shared = {"vpc_id": vpc, "account_id": MEMBER, "role_arn": ROLE, "external_id": EXTERNAL_ID}
    mesh.update(HOME_REGION, shared_vpcs=[shared])
    assert invoke(mesh, {"action": "resync"}, ShortContext())["ok"]
    with monkeypatch.context() as patch:
        patch.setattr(resolver.ResolverRegion, "create_rule", refused)
        reports = fan_out.run_workers(mesh)
    made = [c for r in reports for c in r["changes"] if c["kind"] == "create_share"]
    assert [(c["status"], c["message"]) for c in made] == [
        ("skipped", "no rule of the hub was made in this apply to share")
    ]
    assert our_shares(aws) == []
    (message,) = fan_out.receive(fan_out.reconcile_url)  # the failures ask for the next pass
    fan_out.delete(fan_out.reconcile_url, [message], set())
    assert invoke(mesh, fan_out.batch(fan_out.reconcile_url, [message]), ShortContext())["report"][
        "ok"
    ]
    assert all(r["ok"] for r in fan_out.run_workers(mesh))
    assert len(our_shares(aws)) == 1


def test_a_workers_shared_rules_that_do_not_arrive_in_time_ask_for_the_next_wave(
    mesh: Mesh,
    fan_out: FanOut,
    member: CachedClients,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The member's order accepts its invitation, then its associations wait for the shared
    rules (the emulator's arrival lag) and give up: `waiting`, with a note, not an error; the
    wave's last worker asks for the next pass, which associates them once they have arrived."""
    monkeypatch.setattr(resolver, "ARRIVAL_WAITS", (0.05,))
    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    shared = {"vpc_id": vpc, "account_id": MEMBER, "role_arn": ROLE, "external_id": EXTERNAL_ID}
    mesh.update(HOME_REGION, shared_vpcs=[shared])
    assert invoke(mesh, {"action": "resync"}, ShortContext())["ok"]
    assert all(r["ok"] for r in fan_out.run_workers(mesh))
    (message,) = fan_out.receive(fan_out.reconcile_url)
    fan_out.delete(fan_out.reconcile_url, [message], set())
    with arrival_lag(3600.0):
        second = invoke(mesh, fan_out.batch(fan_out.reconcile_url, [message]), ShortContext())
        assert second["report"]["ok"]
        reports = fan_out.run_workers(mesh)
    [worker] = [r for r in reports if r["regions"] == [f"{HOME_REGION}@{MEMBER}"]]
    assert worker["ok"]
    assert worker["errors"] == []
    statuses = [(c["kind"], c["status"]) for c in worker["changes"]]
    assert statuses == [("accept_share", "applied")] + [("associate", "waiting")] * 4
    assert len([n for n in worker["notes"] if f"{vpc} waits for" in n]) == 4
    assert any(n.endswith("pass 3 asked") for r in reports for n in r["notes"])
    (follow_up,) = fan_out.receive(fan_out.reconcile_url)
    fan_out.delete(fan_out.reconcile_url, [follow_up], set())
    third = invoke(mesh, fan_out.batch(fan_out.reconcile_url, [follow_up]), ShortContext())
    assert third["report"]["ok"]
    assert all(r["ok"] for r in fan_out.run_workers(mesh))
    assert set(of_vpc(rules_and_vpcs(member), vpc)) == PEER_DOMAINS


def test_leases_are_exclusive_until_given_back_or_expired(fan_out: FanOut) -> None:
    now = [1_000_000.0]
    table = fan_out.table()
    table.clock = lambda: now[0]
    assert table.acquire("us-east-1@111122223333", "a", 60)
    assert not table.acquire("us-east-1@111122223333", "b", 60)
    assert table.acquire("us-east-2@111122223333", "b", 60)  # another location
    table.release("us-east-1@111122223333", "b")  # not b's: nothing happens
    assert not table.acquire("us-east-1@111122223333", "b", 60)
    now[0] += 62  # a's lease expired (a died)
    assert table.acquire("us-east-1@111122223333", "b", 60)
    table.release("us-east-1@111122223333", "a")  # a comes back late: b keeps it
    assert not table.acquire("us-east-1@111122223333", "c", 60)
    table.release("us-east-1@111122223333", "b")
    assert table.acquire("us-east-1@111122223333", "c", 60)


def test_a_wave_ends_once_whatever_the_redeliveries(fan_out: FanOut) -> None:
    table = fan_out.table()
    table.start_wave("w1", ["a", "b", "c"], 1)
    assert table.finish("w1", "a", follow_up=False) is None
    assert table.finish("w1", "a", follow_up=True) is None  # a redelivered order
    assert table.finish("w1", "b", follow_up=False) is None
    assert table.finish("w1", "c", follow_up=False) == WaveEnd(1, follow_up=False)
    assert table.finish("w1", "c", follow_up=False) is None
    assert table.finish("unknown", "a", follow_up=True) is None
    table.start_wave("w2", ["a", "b"], 2)
    assert table.finish("w2", "a", follow_up=True) is None
    assert table.finish("w2", "b", follow_up=False) == WaveEnd(2, follow_up=True)


def test_orders_go_in_batches_that_sqs_takes(fan_out: FanOut) -> None:
    def order(where: str, changes: int) -> ApplyOrder:
        change = Change(ChangeKind.ASSOCIATE, "us-east-1", "x" * 200 + ".", vpc_id="vpc-1")
        return ApplyOrder("resolver-mesh", "w", 1, where, (change,) * changes, "h", "s")

    size = len(order("l", 100).to_json().encode())
    assert 20_000 < size < MAX_BATCH_BYTES // 4
    orders = [order(f"us-east-1@{n:012d}", 100) for n in range(9)]
    orders.append(order("us-west-2", 2000))  # over 256 KiB alone
    caller = Caller(RateLimiter(1000.0))
    queues = WorkQueues(FanoutSettings.from_env(), fan_out.aws("sqs", HOME_REGION), caller)
    unsent = queues.send_orders(orders)
    assert list(unsent) == ["us-west-2"]
    assert "over SQS's limit" in unsent["us-west-2"]
    per_batch = MAX_BATCH_BYTES // size
    assert caller.counts["writes"] == -(-9 // per_batch)  # batches of whole orders
    received = fan_out.receive(fan_out.apply_url)
    assert sorted(json.loads(m["Body"])["location"] for m in received) == sorted(
        o.location for o in orders[:9]
    )


def test_the_cli_writes_under_leases_and_never_fans_out(mesh: Mesh, fan_out: FanOut) -> None:
    assert fan_out.table().acquire("us-east-2", "a-worker", 600)
    held = mesh.cli("apply", "--json")
    assert held.code == 1
    report = held.json
    east_2 = {c["status"] for c in report["changes"] if c["region"] == "us-east-2"}
    assert east_2 == {"not started"}
    assert mesh.observe("us-east-2").managed() == []
    assert fan_out.receive(fan_out.apply_url) == []  # no deadline: applied here, never queued
    fan_out.table().release("us-east-2", "a-worker")
    assert mesh.cli("apply", "--json").code == 0
    assert fan_out.items() == []
    mesh.assert_converged()


def test_two_orders_of_one_location_never_write_at_once(
    mesh: Mesh, fan_out: FanOut, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two waves planned from the same state; their orders for us-east-2 run at the same time
    (as if SQS's message group did not hold the second back): the lease lets one write."""
    sqs = fan_out.aws("sqs", HOME_REGION)
    waves = []
    for _ in range(2):
        assert invoke(mesh, {"action": "resync"}, ShortContext())["ok"]
        messages = fan_out.receive(fan_out.apply_url)
        for message in messages:
            sqs.delete_message(QueueUrl=fan_out.apply_url, ReceiptHandle=message["ReceiptHandle"])
        (body,) = [m["Body"] for m in messages if json.loads(m["Body"])["location"] == "us-east-2"]
        waves.append(order_from_json(body))
    inside, go = threading.Event(), threading.Event()
    apply_location = app.Reconciler._apply_location

    def held_open(self: Any, where: str, changes: Any) -> Any:
        inside.set()
        assert go.wait(60)
        return apply_location(self, where, changes)

    monkeypatch.setattr(app.Reconciler, "_apply_location", held_open)
    mesh.activate()
    aws = app._reconciler().aws
    reports: dict[str, Any] = {}

    def worker(order: ApplyOrder) -> None:
        reports[order.wave] = Reconciler(aws, Work.of(aws)).apply_order(order)

    first = threading.Thread(target=worker, args=(waves[0],))
    first.start()
    assert inside.wait(60)
    worker(waves[1])  # while the first holds the lease
    go.set()
    first.join(60)
    second = reports[waves[1].wave]
    assert any("another reconcile holds its lease" in note for note in second.notes)
    assert {c["status"] for c in second.changes} == {"not started"}
    assert {c["status"] for c in reports[waves[0].wave].changes} == {"applied"}
    east_2 = mesh.observe("us-east-2")
    assert len(east_2.managed()) == 4  # once, not twice
    assert all(len(east_2.vpcs_of(rule["Id"])) == 1 for rule in east_2.managed())


def test_orders_without_a_work_table_go_back_unapplied(
    mesh: Mesh, fan_out: FanOut, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke(mesh, {"action": "resync"}, ShortContext())["ok"]
    messages = fan_out.receive(fan_out.apply_url)
    monkeypatch.delenv("WORK_TABLE_NAME")
    result = invoke(mesh, fan_out.batch(fan_out.apply_url, messages))
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [
        m["MessageId"] for m in messages
    ]
    assert managed(mesh) == 0


def visible_again(fan_out: FanOut, messages: list[dict[str, Any]]) -> None:
    fan_out.aws("sqs", HOME_REGION).change_message_visibility_batch(
        QueueUrl=fan_out.apply_url,
        Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for n, m in enumerate(messages)
        ],
    )


def test_a_tag_removed_after_the_fan_out_makes_the_order_stale(
    mesh: Mesh, fan_out: FanOut, aws: ClientFactory, tag_reads: FaultInjector
) -> None:
    """A VPC joins by tag; the pass that would associate it fans out; its tag goes before the
    worker runs: that order is stale (nothing applied, a pass asked for), while the order of
    another location, which no tag explains, reads no tag and is applied."""
    assert invoke(mesh, {"action": "resync"})["ok"]
    vpc = tagged_vpc(aws, HOME_REGION, "10.210.0.0/16")
    east_2 = mesh.observe("us-east-2").managed()[0]
    hub_vpc = mesh.hubs["us-east-2"].vpc_id
    resolver = aws("route53resolver", "us-east-2")
    resolver.disassociate_resolver_rule(VPCId=hub_vpc, ResolverRuleId=east_2["Id"])
    result = invoke(mesh, {"action": "resync"}, ShortContext())
    assert result["ok"], result
    queued = {(c["region"], c["kind"], c["vpc_id"]) for c in result["changes"]}
    assert queued == {(HOME_REGION, "associate", vpc), ("us-east-2", "associate", hub_vpc)}

    messages = fan_out.receive(fan_out.apply_url)
    orders = {o.location: o for o in (order_from_json(m["Body"]) for m in messages)}
    assert orders[HOME_REGION].tag_locations == (HOME_REGION,)
    assert orders["us-east-2"].tag_locations == ()
    visible_again(fan_out, messages)
    untag(aws, HOME_REGION, vpc)
    before = tag_reads.requests
    reports = {r["regions"][0]: r for r in fan_out.run_workers(mesh)}

    assert tag_reads.requests - before == 1  # the home order's, not us-east-2's
    stale = reports[HOME_REGION]
    assert any(
        "stale order (us-east-1 or the VPCs tagged at us-east-1 changed since the plan)" in n
        for n in stale["notes"]
    ), stale
    assert {c["status"] for c in stale["changes"]} == {"not started"}
    assert all(vpc not in r["vpcs"] for r in rules_and_vpcs(aws).values())
    assert {c["status"] for c in reports["us-east-2"]["changes"]} == {"applied"}
    assert mesh.observe("us-east-2").vpcs_of(east_2["Id"]) == {hub_vpc}
    (finished,) = fan_out.receive(fan_out.reconcile_url)  # the stale order asks for a pass
    follow_up = invoke(mesh, fan_out.batch(fan_out.reconcile_url, [finished]))
    assert follow_up["report"]["ok"], follow_up
    assert follow_up["report"]["changes"] == []
    assert follow_up["report"]["joined"] == []


def test_a_share_for_an_account_whose_tag_went_is_stale(
    mesh: Mesh, fan_out: FanOut, member: CachedClients, aws: ClientFactory
) -> None:
    """The hub's order shares its rules with a member account because the member tagged a
    VPC; the tag goes before the worker runs: the share is not made."""
    mesh.monkeypatch.setenv("MEMBER_ROLES", f"{ROLE}|{EXTERNAL_ID}")
    assert invoke(mesh, {"action": "resync"})["ok"]
    vpc = tagged_vpc(member, HOME_REGION, "10.211.0.0/16")
    result = invoke(mesh, {"action": "resync"}, ShortContext())
    assert result["ok"], result
    assert [(c["kind"], c.get("principals")) for c in result["changes"]] == [
        ("create_share", [MEMBER])
    ]
    (message,) = fan_out.receive(fan_out.apply_url)
    order = order_from_json(message["Body"])
    assert order.tag_locations == (f"{HOME_REGION}@{MEMBER}",)
    assert [a.account for a in order.tag_access] == [MEMBER]
    visible_again(fan_out, [message])
    untag(member, HOME_REGION, vpc)

    (report,) = fan_out.run_workers(mesh)
    assert any(f"the VPCs tagged at {HOME_REGION}@{MEMBER}" in n for n in report["notes"]), report
    assert {c["status"] for c in report["changes"]} == {"not started"}
    assert aws("ram", HOME_REGION).get_resource_shares(resourceOwner="SELF")["resourceShares"] == []
    assert len(fan_out.receive(fan_out.reconcile_url)) == 1


def test_an_order_whose_tags_cannot_be_read_again_is_stale(
    mesh: Mesh, fan_out: FanOut, aws: ClientFactory, emulator: LocalEmulator
) -> None:
    """The worker cannot read the tags the order depends on (AccessDenied): unknown is not
    "unchanged", so nothing is applied and a pass is asked for."""
    assert invoke(mesh, {"action": "resync"})["ok"]
    vpc = tagged_vpc(aws, HOME_REGION, "10.212.0.0/16")
    assert invoke(mesh, {"action": "resync"}, ShortContext())["ok"]
    with injected_faults(emulator, 1.0, kinds=("denied",), services=(), queries=(VPC_READ,)):
        (report,) = fan_out.run_workers(mesh)
    assert any(
        f"the VPCs tagged at {HOME_REGION} could not be read" in n and "UnauthorizedOperation" in n
        for n in report["notes"]
    ), report
    assert {c["status"] for c in report["changes"]} == {"not started"}
    assert all(vpc not in r["vpcs"] for r in rules_and_vpcs(aws).values())
    assert len(fan_out.receive(fan_out.reconcile_url)) == 1
