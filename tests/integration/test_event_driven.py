"""Event-driven runs through the handler: readiness polling and coalesced bursts from SQS FIFO."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from meshkit import HOME_REGION, Mesh

from resolver_mesh import reconcile
from resolver_mesh.local.lambda_events import sqs_event
from resolver_mesh.models import Request
from resolver_mesh.reconcile import Reconciler
from resolver_mesh.report import Report

EVENTS = Path(__file__).resolve().parents[2] / "events"
ACCOUNT = "123456789012"


def sample(name: str, region: str) -> dict[str, Any]:
    event = json.loads((EVENTS / name).read_text())
    event["detail"]["awsRegion"] = region
    event["id"] = str(uuid.uuid4())
    event["detail"]["eventID"] = str(uuid.uuid4())
    return event


class FakeClock:
    """The engine's time: it moves only when the readiness loop sleeps (or a test says a pass
    took so long), so a busy machine's slow passes cannot change how often it looks again."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """`resolver_mesh.reconcile`'s clock, and the sleep of `Reconciler.run_until_ready`."""
    fake = FakeClock()
    monkeypatch.setattr(reconcile, "time", fake)
    run_until_ready = Reconciler.run_until_ready

    def with_fake_sleep(
        self: Reconciler,
        request: Request,
        wait_seconds: float,
        poll_seconds: float,
        **waits: float,  # profiles_wait_seconds
    ) -> list[Report]:
        return run_until_ready(self, request, wait_seconds, poll_seconds, fake.sleep, **waits)

    monkeypatch.setattr(Reconciler, "run_until_ready", with_fake_sleep)
    return fake


def moto_endpoint(region: str, endpoint_id: str) -> Any:
    """The emulator's own endpoint object (the server runs in this process)."""
    from moto.route53resolver.models import route53resolver_backends

    return route53resolver_backends[ACCOUNT][region].resolver_endpoints[endpoint_id]


def test_a_new_inbound_ip_reaches_the_rules_once_the_endpoint_is_operational(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    assert mesh.resync()["ok"]
    hub = mesh.hubs["us-east-2"]
    resolver = mesh.aws("route53resolver", "us-east-2")
    resolver.associate_resolver_endpoint_ip_address(
        ResolverEndpointId=hub.inbound_endpoint_id,
        IpAddress={"SubnetId": hub.subnet_ids[0], "Ip": "10.4.0.77"},
    )
    endpoint = moto_endpoint("us-east-2", hub.inbound_endpoint_id)
    endpoint.status = "UPDATING"  # AWS says nothing when it turns OPERATIONAL again
    monkeypatch.setenv("READINESS_WAIT_SECONDS", "10")
    monkeypatch.setenv("READINESS_POLL_SECONDS", "0.2")
    mesh.activate = lambda: None  # keep the readiness settings set above
    for name, value in mesh.env().items():
        monkeypatch.setenv(name, value)
    original_run = Reconciler.run
    passes: list[dict[str, Any]] = []

    def run_then_become_operational(self: Reconciler, request: Request) -> Report:
        report = original_run(self, request)
        passes.append(report.as_dict())
        endpoint.status = "OPERATIONAL"  # AWS finishes between two looks
        return report

    monkeypatch.setattr(Reconciler, "run", run_then_become_operational)
    event = sample("cloudtrail-AssociateResolverEndpointIpAddress.json", "us-east-2")
    result = mesh.invoke(event)
    assert passes[0]["pending"] == ["us-east-2"]
    assert passes[0]["counts"]["update_rule"] == 0  # not while UPDATING
    assert result["passes"] == 2  # looked again while the endpoint was UPDATING
    assert clock.now == 0.2  # one poll later
    assert result["pending"] == []
    assert result["counts"]["update_rule"] == 4  # us-east-2's two domains in two Regions
    for found in mesh.assert_converged().values():
        if found["DomainName"].startswith("us-east-2."):
            assert "10.4.0.77" in {t["Ip"] for t in found["TargetIps"]}


def test_a_pending_endpoint_is_looked_at_again_only_for_a_bounded_time(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    assert mesh.resync()["ok"]
    hub = mesh.hubs["us-west-2"]
    moto_endpoint("us-west-2", hub.inbound_endpoint_id).status = "CREATING"
    for name, value in mesh.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("READINESS_WAIT_SECONDS", "1.0")
    monkeypatch.setenv("READINESS_POLL_SECONDS", "0.25")
    mesh.activate = lambda: None
    run = Reconciler.run

    def run_taking_a_quarter_second(self: Reconciler, request: Request) -> Report:
        report = run(self, request)
        clock.sleep(0.25)
        return report

    monkeypatch.setattr(Reconciler, "run", run_taking_a_quarter_second)
    result = mesh.invoke(sample("cloudtrail-CreateResolverEndpoint.json", "us-west-2"))
    # passes end at 0.25 and 0.75 s; a third starts at 1.0 s, the deadline, and none after
    assert result["passes"] == 3
    assert clock.now == 1.25
    assert result["pending"] == ["us-west-2"]
    assert result["counts"]["delete_rule"] == 0  # its rules are kept, never emptied
    assert result["counts"]["update_rule"] == 0


def fifo_queue(mesh: Mesh) -> str:
    sqs = mesh.aws("sqs", HOME_REGION)
    return str(
        sqs.create_queue(
            QueueName="reconcile.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        )["QueueUrl"]
    )


def drain(mesh: Mesh, queue_url: str) -> list[dict[str, Any]]:
    """Feed the queue to the handler the way Lambda's SQS event source does, batch by batch."""
    sqs = mesh.aws("sqs", HOME_REGION)
    results = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return results
        event = sqs_event(messages)
        result = mesh.invoke(event)
        results.append(result)
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def test_a_burst_of_fifty_events_is_coalesced_into_a_handful_of_passes(mesh: Mesh) -> None:
    """An IaC run creates 50 endpoints and drifts rules: 50 messages, 5 passes, converged."""
    queue_url = fifo_queue(mesh)
    sqs = mesh.aws("sqs", HOME_REGION)
    kinds = ["cloudtrail-CreateVpcEndpoint.json", "cloudtrail-CreateResolverRule.json"]
    regions = sorted(mesh.hubs)
    for i in range(50):
        event = sample(kinds[i % 2], regions[i % len(regions)])
        sqs.send_message(
            QueueUrl=queue_url, MessageBody=json.dumps(event), MessageGroupId="reconcile"
        )
    results = drain(mesh, queue_url)
    assert len(results) == 5  # 50 events, batches of 10, one pass each
    assert all(r["batchItemFailures"] == [] for r in results)
    reports = [r["report"] for r in results]
    assert reports[0]["counts"]["create_rule"] == 12
    assert all(r["calls"]["writes"] == 0 for r in reports[1:])  # the rest found nothing to do
    mesh.assert_converged()


def test_failed_calls_in_a_batch_cause_no_pass_and_poison_is_reported(mesh: Mesh) -> None:
    failed = json.loads((EVENTS / "cloudtrail-failed-call.json").read_text())
    only_failed = {
        "Records": [
            {"messageId": "a", "eventSource": "aws:sqs", "body": json.dumps(failed)},
            {"messageId": "b", "eventSource": "aws:sqs", "body": json.dumps(copy.deepcopy(failed))},
        ]
    }
    result = mesh.invoke(only_failed)
    assert result == {"batchItemFailures": []}
    assert mesh.observe("us-east-1").managed() == []  # nothing ran

    poisoned = {
        "Records": [
            {"messageId": "good", "eventSource": "aws:sqs", "body": json.dumps(failed)},
            {"messageId": "bad", "eventSource": "aws:sqs", "body": "{not json"},
        ]
    }
    result = mesh.invoke(poisoned)
    assert result["batchItemFailures"] == [{"itemIdentifier": "bad"}]
    assert result["report"]["regions"]  # the unreadable message still meant a full resync
    mesh.assert_converged()


def test_the_sample_batch_and_direct_events_reconcile(mesh: Mesh) -> None:
    batch = json.loads((EVENTS / "sqs-batch.json").read_text())
    result = mesh.invoke(batch)
    assert result["batchItemFailures"] == []
    assert result["report"]["counts"]["create_rule"] == 12
    mesh.assert_converged()
    drift = mesh.invoke(sample("cloudtrail-CreateResolverRule.json", "us-east-2"))
    assert drift["regions"] == ["us-east-2"]  # drift is scoped to its Region
    assert drift["calls"]["writes"] == 0


def test_failed_messages_go_back_to_the_fifo_queue_soon_and_in_order(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = mesh.aws("sqs", HOME_REGION)
    queue_url = sqs.create_queue(
        QueueName="slow.fifo",
        Attributes={
            "FifoQueue": "true",
            "ContentBasedDeduplication": "true",
            "VisibilityTimeout": "1800",  # as deployed: longer than the function may run
        },
    )["QueueUrl"]
    schedule = (EVENTS / "scheduled.json").read_text()
    for body in ("{not json", schedule):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageGroupId="reconcile")
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 2
    monkeypatch.setattr("resolver_mesh.aws.queue.RETRY_AFTER_SECONDS", 0)
    monkeypatch.setenv("RECONCILE_QUEUE_URL", queue_url)
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "eventSource": "aws:sqs",
            }
            for m in received
        ]
    }
    result = mesh.invoke(event)
    # The poison came first: it and everything after it are failed items (FIFO order) ...
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [
        m["MessageId"] for m in received
    ]
    assert result["report"]["counts"]["create_rule"] == 12  # ... and the pass still ran
    # ... and they are visible again at once, not after 30 minutes.
    again = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert len(again) == 2


def test_replay_shows_the_scoped_plan_of_an_event_and_applies_it_on_request(mesh: Mesh) -> None:
    drift = mesh.cli("replay", str(EVENTS / "cloudtrail-CreateResolverRule.json"), "--json")
    assert drift.code == 0, drift.err
    plan = drift.json
    region = json.loads((EVENTS / "cloudtrail-CreateResolverRule.json").read_text())["detail"][
        "awsRegion"
    ]
    assert plan["regions"] == [region]  # drift: that Region only
    assert plan["applied"] is False
    assert plan["calls"]["writes"] == 0
    assert plan["counts"]["create_rule"] == 4  # what a resync of that Region would create

    failed = mesh.cli("replay", str(EVENTS / "cloudtrail-failed-call.json"))
    assert failed.code == 0
    assert "nothing to reconcile" in failed.out

    batch = mesh.cli("replay", str(EVENTS / "sqs-batch.json"), "--apply", "--json")
    assert batch.code == 0, batch.out
    assert batch.json["counts"]["create_rule"] == 12
    mesh.assert_converged()

    missing = mesh.cli("replay", "no-such-file.json")
    assert missing.code == 2
    assert "no-such-file.json" in missing.err


def test_a_scheduled_pass_does_not_wait_for_a_pending_endpoint(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mesh.resync()["ok"]
    moto_endpoint("us-west-2", mesh.hubs["us-west-2"].inbound_endpoint_id).status = "CREATING"
    for name, value in mesh.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("READINESS_WAIT_SECONDS", "30")
    monkeypatch.setenv("READINESS_POLL_SECONDS", "0.1")
    mesh.activate = lambda: None
    result = mesh.invoke(json.loads((EVENTS / "scheduled.json").read_text()))
    assert result["passes"] == 1  # the next schedule looks again; no event to wait for
    assert result["pending"] == ["us-west-2"]
