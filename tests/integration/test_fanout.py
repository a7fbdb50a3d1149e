"""Fan-out through the handler against the HTTP emulator: a pass too large for the time left
goes to the apply queue, one order per location; workers apply them under leases; stale
orders are not applied; the mass-change guard still decides before anything is queued.

The queues and the work table are made as template.yaml makes them; "too large" is made by
a Lambda context with little time left, not by a large mesh.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from meshkit import HOME_REGION, Mesh, app

from resolver_mesh.aws.calls import Caller, RateLimiter
from resolver_mesh.aws.work import WorkTable
from resolver_mesh.fanout import SAFETY_SECONDS
from resolver_mesh.local.lambda_events import FakeLambdaContext, sqs_event
from resolver_mesh.local.topology import ClientFactory

WORK_TABLE = "resolver-mesh-work"


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
    aws("dynamodb", HOME_REGION).create_table(
        TableName=WORK_TABLE,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
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
