"""The reconcile queue adapter: hand failed messages back soon.

Invariant: every message of the FIFO queue is in one group, so a failed message holds back all
the others until it is visible again; failed messages are made visible again after seconds, not
after the queue's visibility timeout (which must exceed the function's timeout).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from resolver_mesh.aws.calls import Caller

RETRY_AFTER_SECONDS = 15


def retry_soon(client: Any, caller: Caller, queue_url: str, receipt_handles: Iterable[str]) -> None:
    for receipt_handle in receipt_handles:
        caller(
            client.change_message_visibility,
            QueueUrl=queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=RETRY_AFTER_SECONDS,
        )
