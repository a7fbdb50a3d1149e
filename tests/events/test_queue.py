"""The reconcile queue as template.yaml defines it, created in moto with its own properties.

- one FIFO message group keeps every trigger in order;
- content-based deduplication drops an identical body sent twice (a retried delivery);
- a message that fails three receives goes to the FIFO dead-letter queue, and the messages
  behind it then flow again.
"""

from __future__ import annotations

import json
from typing import Any

from eventkit import HOME, create_queue_from_template, drain, queue_arn, sample, values

from resolver_mesh.local.topology import ClientFactory


def _queues(aws: ClientFactory) -> tuple[Any, str, str]:
    sqs = aws("sqs", HOME)
    known = values(HOME)
    dlq = create_queue_from_template(sqs, "ReconcileDeadLetterQueue", known)
    known["ReconcileDeadLetterQueue.Arn"] = queue_arn(sqs, dlq)
    queue = create_queue_from_template(sqs, "ReconcileQueue", known)
    return sqs, queue, dlq


def test_queues_are_fifo_with_the_templates_names(aws: ClientFactory) -> None:
    sqs, queue, dlq = _queues(aws)
    assert queue.endswith("/resolver-mesh-reconcile.fifo")
    assert dlq.endswith("/resolver-mesh-reconcile-dlq.fifo")
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true"
    assert attrs["ContentBasedDeduplication"] == "true"
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == queue_arn(sqs, dlq)
    assert int(redrive["maxReceiveCount"]) == 3


def test_one_group_keeps_order_and_identical_bodies_are_deduplicated(aws: ClientFactory) -> None:
    sqs, queue, _ = _queues(aws)
    bodies = [
        json.dumps(sample("cloudtrail-CreateVpcEndpoint.json")),
        json.dumps(sample("dynamodb-stream-insert.json")),
        json.dumps(sample("scheduled.json")),
    ]
    for body in [*bodies, bodies[0]]:  # the first one delivered twice
        sqs.send_message(QueueUrl=queue, MessageBody=body, MessageGroupId="reconcile")
    assert [m["Body"] for m in drain(sqs, queue)] == bodies


def test_a_poison_message_reaches_the_dead_letter_queue_after_three_receives(
    aws: ClientFactory,
) -> None:
    sqs, queue, dlq = _queues(aws)
    poison, healthy = '{"poison": true}', json.dumps(sample("scheduled.json"))
    for body in (poison, healthy):
        sqs.send_message(QueueUrl=queue, MessageBody=body, MessageGroupId="reconcile")
    receives = []
    for _ in range(5):
        messages = sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=1, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            break
        (message,) = messages
        receives.append((message["Body"], message["Attributes"]["ApproximateReceiveCount"]))
        if message["Body"] == poison:
            # What a reported batch item failure amounts to: visible again (here at once).
            sqs.change_message_visibility(
                QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    assert receives == [(poison, "1"), (poison, "2"), (poison, "3"), (healthy, "1")]
    assert [m["Body"] for m in drain(sqs, dlq)] == [poison]
