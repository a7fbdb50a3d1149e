"""The fan-out adapters: per-location leases and waves in the work table, apply orders on the
apply queue, the pass after a wave on the reconcile queue.

Invariants:
- A lease (`lease#<location>`) is taken with a conditional write that succeeds only when no
  unexpired lease exists, and given back only by its holder; a holder that dies loses it when
  it expires (`expires_at`, epoch seconds, also the table's TTL attribute).
- A wave (`wave#<id>`) holds the set of its locations still to finish; a location finishes
  once (a conditional update), however often its order is delivered, so exactly one worker
  sees the wave complete.
- Apply orders go to a FIFO queue in one message group per location: SQS never hands out an
  order of a location while another of the same location is in flight.
- A departed location (`departed#<location>`) is one a hub item stopped naming, with the role
  to reach it: passes read it until they find nothing of ours there, or at most
  `DEPARTED_SECONDS` (a role that no longer works is an error in every pass till then).
- These calls have a budget of their own (`WORK_CALLS_PER_SECOND`): DynamoDB on demand and
  SQS take thousands of requests per second, far above Route 53 Resolver's 5.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from resolver_mesh.aws.calls import Caller, RateLimiter, error_code, scan_table
from resolver_mesh.aws.session import Aws
from resolver_mesh.fanout import ApplyOrder, FanoutSettings, finished_event
from resolver_mesh.models import AccountAccess

WORK_CALLS_PER_SECOND = 500.0
SEND_BATCH = 10  # SendMessageBatch takes at most 10 messages
# SQS's limit for one message and for the sum of a batch's messages (SendMessageBatch, API
# reference): 256 KiB. A location's order is far smaller (a few KiB at 300 accounts).
MAX_BATCH_BYTES = 262_144
# Without a deadline (the CLI), a lease lasts as long as the longest Lambda invocation.
LEASE_SECONDS_WITHOUT_DEADLINE = 900.0
LEASE_MARGIN_SECONDS = 10.0
# A wave's item outlives any retry of its orders (the apply queue keeps messages a day).
WAVE_SECONDS = 86_400
CONDITION_FAILED = "ConditionalCheckFailedException"
DEPARTED = "departed#"
DEPARTED_SECONDS = 30 * 86_400
ACCESS_FIELDS = ("account_id", "role_arn", "external_id")


@dataclass(frozen=True)
class DepartedLocation:
    """A location a hub item stopped naming: how to reach it, and which noting of it was read
    (`noted`: a forget only removes that one)."""

    access: AccountAccess
    noted: str


@dataclass(frozen=True)
class WaveEnd:
    """A wave whose last location just finished: its pass, and whether a location asked for
    another pass (something applied leads to sharing, something failed or was stale)."""

    pass_number: int
    follow_up: bool


class WorkTable:
    """Leases and waves (key `id`)."""

    def __init__(
        self, name: str, client: Any, caller: Caller, clock: Callable[[], float] = time.time
    ) -> None:
        self.name = name
        self.client = client
        self.call = caller
        self.clock = clock

    def acquire(self, where: str, holder: str, seconds: float) -> bool:
        """Take the lease of a location for `seconds`; False while another holds it."""
        now = self.clock()
        try:
            self.call(
                self.client.put_item,
                TableName=self.name,
                Item={
                    "id": {"S": f"lease#{where}"},
                    "holder": {"S": holder},
                    "expires_at": {"N": str(int(now + seconds) + 1)},
                },
                ConditionExpression="attribute_not_exists(id) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except ClientError as error:
            if error_code(error) == CONDITION_FAILED:
                return False
            raise
        return True

    def release(self, where: str, holder: str) -> None:
        """Give a lease back, if it is still ours (it may have expired and been taken)."""
        try:
            self.call(
                self.client.delete_item,
                TableName=self.name,
                Key={"id": {"S": f"lease#{where}"}},
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": {"S": holder}},
            )
        except ClientError as error:
            if error_code(error) != CONDITION_FAILED:
                raise

    def start_wave(self, wave: str, locations: Iterable[str], pass_number: int) -> None:
        self.call(
            self.client.put_item,
            TableName=self.name,
            Item={
                "id": {"S": f"wave#{wave}"},
                "pending": {"SS": sorted(set(locations))},
                "pass": {"N": str(pass_number)},
                "follow_ups": {"N": "0"},
                "expires_at": {"N": str(int(self.clock()) + WAVE_SECONDS)},
            },
            ConditionExpression="attribute_not_exists(id)",
        )

    def finish(self, wave: str, where: str, follow_up: bool) -> WaveEnd | None:
        """Mark a location of a wave finished; the wave's end when it was the last one, None
        otherwise (also when this location had already finished, or the wave is unknown)."""
        try:
            answer = self.call(
                self.client.update_item,
                TableName=self.name,
                Key={"id": {"S": f"wave#{wave}"}},
                UpdateExpression="DELETE pending :where ADD follow_ups :asked",
                ConditionExpression="contains(pending, :location)",
                ExpressionAttributeValues={
                    ":where": {"SS": [where]},
                    ":location": {"S": where},
                    ":asked": {"N": "1" if follow_up else "0"},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error_code(error) == CONDITION_FAILED:
                return None
            raise
        item = answer.get("Attributes", {})
        if item.get("pending", {}).get("SS"):
            return None
        return WaveEnd(int(item["pass"]["N"]), int(item["follow_ups"]["N"]) > 0)

    def note_departed(self, departed: Mapping[str, AccountAccess]) -> None:
        """Keep locations that a hub item stopped naming (again: the time limit starts over,
        and a pass that read the lead before cannot forget it)."""
        expires = str(int(self.clock()) + DEPARTED_SECONDS)
        for where, access in sorted(departed.items()):
            fields = {k: {"S": v} for k in ACCESS_FIELDS if (v := getattr(access, k))}
            self.call(
                self.client.put_item,
                TableName=self.name,
                Item={
                    "id": {"S": DEPARTED + where},
                    "noted": {"S": uuid.uuid4().hex},
                    "expires_at": {"N": expires},
                    **fields,
                },
            )

    def departed(self) -> dict[str, DepartedLocation]:
        """The departed locations kept and not expired (TTL deletes expired items late)."""
        items = scan_table(
            self.call,
            self.client,
            self.name,
            FilterExpression="begins_with(#id, :departed) AND expires_at > :now",
            ExpressionAttributeNames={"#id": "id"},
            ExpressionAttributeValues={
                ":departed": {"S": DEPARTED},
                ":now": {"N": str(int(self.clock()))},
            },
        )
        return {
            item["id"]["S"].removeprefix(DEPARTED): DepartedLocation(
                AccountAccess(**{k: item[k]["S"] for k in ACCESS_FIELDS if k in item}),
                item.get("noted", {}).get("S", ""),
            )
            for item in items
        }

    def forget_departed(self, where: str, noted: str) -> bool:
        """Forget a departed location, unless it was noted again since it was read as `noted`
        (then False)."""
        try:
            self.call(
                self.client.delete_item,
                TableName=self.name,
                Key={"id": {"S": DEPARTED + where}},
                ConditionExpression="noted = :noted",
                ExpressionAttributeValues={":noted": {"S": noted}},
            )
        except ClientError as error:
            if error_code(error) == CONDITION_FAILED:
                return False
            raise
        return True


class WorkQueues:
    """The apply queue (orders) and the reconcile queue (the pass after a wave)."""

    def __init__(self, settings: FanoutSettings, client: Any, caller: Caller) -> None:
        self.settings = settings
        self.client = client
        self.call = caller

    def send_orders(self, orders: list[ApplyOrder]) -> dict[str, str]:
        """Queue the orders, one message group per location; the locations whose order could
        not be queued, with why."""
        failed: dict[str, str] = {}
        for batch, bodies in _batches(orders, failed):
            entries = [
                {
                    "Id": str(n),
                    "MessageBody": body,
                    "MessageGroupId": order.location,
                    "MessageDeduplicationId": _dedup_id(order.wave, order.location),
                }
                for n, (order, body) in enumerate(zip(batch, bodies, strict=True))
            ]
            try:
                answer = self.call(
                    self.client.send_message_batch,
                    QueueUrl=self.settings.apply_queue_url,
                    Entries=entries,
                )
            except Exception as error:
                failed |= {o.location: f"{type(error).__name__}: {error}" for o in batch}
                continue
            for entry in answer.get("Failed", []):
                order = batch[int(entry["Id"])]
                failed[order.location] = f"{entry.get('Code')}: {entry.get('Message', '')}"
        return failed

    def follow_up(self, mesh_id: str, wave: str, pass_number: int) -> None:
        """Ask for the pass after a wave (deduplicated per wave)."""
        self.call(
            self.client.send_message,
            QueueUrl=self.settings.reconcile_queue_url,
            MessageBody=json.dumps(finished_event(mesh_id, wave, pass_number), sort_keys=True),
            MessageGroupId="reconcile",
            MessageDeduplicationId=_dedup_id(wave, "finished"),
        )


@dataclass
class Work:
    """What a reconcile needs to fan out and to lease locations: the adapters, the time left
    in the invocation (None: no deadline) and the pass the invocation starts at."""

    settings: FanoutSettings
    table: WorkTable
    queues: WorkQueues
    seconds_left: Callable[[], float | None]
    first_pass: int = 1

    @classmethod
    def of(
        cls,
        aws: Aws,
        seconds_left: Callable[[], float | None] = lambda: None,
        first_pass: int = 1,
        settings: FanoutSettings | None = None,
    ) -> Work | None:
        """The work of `aws`'s deployment (`settings`, by default from the environment); None
        without a work table (no leases, no fan-out)."""
        settings = settings or FanoutSettings.from_env()
        if not settings.work_table:
            return None
        caller = Caller(RateLimiter(WORK_CALLS_PER_SECOND), aws.settings.max_attempts)
        home = aws.home_region
        return cls(
            settings,
            WorkTable(settings.work_table, aws.client("dynamodb", home), caller),
            WorkQueues(settings, aws.client("sqs", home), caller),
            seconds_left,
            first_pass,
        )

    def lease_seconds(self) -> float:
        left = self.seconds_left()
        return (LEASE_SECONDS_WITHOUT_DEADLINE if left is None else left) + LEASE_MARGIN_SECONDS


def _batches(
    orders: list[ApplyOrder], too_large: dict[str, str]
) -> Iterator[tuple[list[ApplyOrder], list[str]]]:
    """The orders in batches SQS takes (at most `SEND_BATCH` messages, `MAX_BATCH_BYTES` in
    all), with their bodies; an order too large for any batch goes to `too_large`."""
    batch: list[ApplyOrder] = []
    bodies: list[str] = []
    size = 0
    for order in orders:
        body = order.to_json()
        length = len(body.encode())
        if length > MAX_BATCH_BYTES:
            too_large[order.location] = f"its order is {length} bytes, over SQS's limit"
            continue
        if batch and (len(batch) == SEND_BATCH or size + length > MAX_BATCH_BYTES):
            yield batch, bodies
            batch, bodies, size = [], [], 0
        batch.append(order)
        bodies.append(body)
        size += length
    if batch:
        yield batch, bodies


def _dedup_id(wave: str, what: str) -> str:
    return hashlib.sha256(f"{wave}/{what}".encode()).hexdigest()[:64]
