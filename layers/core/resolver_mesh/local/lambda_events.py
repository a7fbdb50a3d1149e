"""What the Lambda runtime hands the handler, for running it locally: a context, SQS events."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeLambdaContext:
    """The attributes Powertools reads from a real `LambdaContext`."""

    function_name: str = "resolver-mesh-reconciler"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:resolver-mesh-reconciler"
    )
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/resolver-mesh-reconciler"
    log_stream_name: str = "2026/11/26/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def sqs_event(messages: Iterable[Mapping[str, Any]], region: str = "us-east-1") -> dict[str, Any]:
    """The event Lambda's SQS event source makes of messages from `ReceiveMessage`."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": region,
            }
            for message in messages
        ]
    }
