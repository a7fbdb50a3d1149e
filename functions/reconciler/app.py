"""The reconciler Lambda: a thin handler around `resolver_mesh.reconcile.Reconciler`.

Events:
- a manual invoke `{"action": "plan" | "resync", "regions": [...], "force": bool}`;
- an SQS batch from the reconcile queue (forwarded CloudTrail events, hubs-table stream records,
  the schedule): coalesced into one resync over the Regions they can affect, answered with a
  partial batch response;
- any other event (the schedule, a CloudTrail event, a stream record invoked directly): scoped
  the same way; anything not understood is a full resync;
- an SQS batch from the apply queue (`APPLY_QUEUE_URL`): fanned-out apply orders, one location
  each (see `resolver_mesh.fanout`), applied in parallel across locations and in order within
  one; answered with a partial batch response and the `reports`.
A pass that cannot be applied before the invocation ends fans out (when the template set
`APPLY_QUEUE_URL`, `RECONCILE_QUEUE_URL` and `WORK_TABLE_NAME`).
Returns the report as a JSON-serialisable dict. Configuration: see `resolver_mesh.config`.
Run locally, the handler takes `context=None` (or no context at all).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from resolver_mesh.aws.queue import retry_soon
from resolver_mesh.aws.session import Aws
from resolver_mesh.aws.work import Work
from resolver_mesh.config import Settings
from resolver_mesh.fanout import (
    BadOrderError,
    FanoutSettings,
    finished_pass,
    from_queue,
    order_from_json,
)
from resolver_mesh.models import Request
from resolver_mesh.reconcile import Reconciler, per_region, tune_collector
from resolver_mesh.report import Report
from resolver_mesh.triggers import (
    BadRequestError,
    batch_from_sqs,
    departed_of,
    is_sqs_batch,
    request_from_event,
)

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "resolver-mesh"))
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ResolverMesh"),
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", "resolver-mesh"),
)
_aws: Aws | None = None
tune_collector()


def _reconciler() -> Reconciler:
    """One `Aws` per execution environment: clients and rate limits survive warm invokes."""
    global _aws
    settings = Settings.from_env()
    if _aws is None or _aws.settings != settings:
        _aws = Aws(settings)
    return Reconciler(_aws)


def _work(aws: Aws, context: Any, first_pass: int = 1) -> Work | None:
    """Fan-out and leases, when the template configured them; the deadline is the
    invocation's (none for a context without one, as in a local run)."""
    remaining: Callable[[], int] | None = getattr(context, "get_remaining_time_in_millis", None)

    def seconds_left() -> float | None:
        return remaining() / 1000 if remaining else None

    return Work.of(aws, seconds_left, first_pass)


def _bodies(records: list[dict[str, Any]]) -> list[Any]:
    """The JSON bodies of a batch's records (an unreadable one is None)."""
    bodies: list[Any] = []
    for record in records:
        try:
            bodies.append(json.loads(record.get("body") or ""))
        except ValueError:
            bodies.append(None)
    return bodies


def _record(report: Report) -> dict[str, Any]:
    """Metrics and one structured log line for a finished reconcile."""
    result = report.as_dict()
    for kind, count in report.counts.items():
        metrics.add_metric(name=f"Changes_{kind}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="Conflicts", unit=MetricUnit.Count, value=len(report.conflicts))
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=len(report.errors))
    metrics.add_metric(name="Refusals", unit=MetricUnit.Count, value=len(report.refused))
    # Regions refused by policy (an SCP) on a full resync: not errors, so no alarm.
    metrics.add_metric(
        name="DeniedRegions", unit=MetricUnit.Count, value=len(report.denied_regions)
    )
    metrics.add_metric(
        name="DurationSeconds", unit=MetricUnit.Seconds, value=report.duration_seconds
    )
    summary = {k: result[k] for k in ("ok", "trigger", "counts", "regions", "calls")}
    problems = ("errors", "conflicts", "refused", "degraded", "denied_regions")
    summary |= {k: result[k] for k in problems if result[k]}
    (logger.info if report.ok else logger.error)("reconcile finished", extra=summary)
    return result


def _event_driven(reconciler: Reconciler, request: Request) -> dict[str, Any]:
    """Reconcile; after a Resolver endpoint event, again while the endpoint is on its way
    (bounded): no event says when it becomes OPERATIONAL. So for a Route 53 Profile of ours
    on its way, after any event."""
    settings = reconciler.settings
    wait = settings.readiness_wait_seconds if request.await_endpoints else 0.0
    reports = reconciler.run_until_ready(
        request,
        wait,
        settings.readiness_poll_seconds,
        profiles_wait_seconds=settings.readiness_wait_seconds,
    )
    result = _record(reports[-1])
    result["passes"] = len(reports)
    return result


def _failed_from(
    records: list[dict[str, Any]], first: int, aws: Aws, queue: str = "RECONCILE_QUEUE_URL"
) -> list[dict[str, str]]:
    """FIFO rule: the first failed record and every one after it go back to the queue (whose
    URL the setting `queue` holds), soon."""
    failed = records[first:]
    queue_url = os.environ.get(queue)
    if queue_url and failed:
        try:
            retry_soon(
                aws.client("sqs", aws.home_region),
                aws.caller(aws.home_region, "sqs"),
                queue_url,
                [str(r["receiptHandle"]) for r in failed if r.get("receiptHandle")],
            )
        except Exception:
            logger.exception("could not shorten the visibility of the failed messages")
    return [{"itemIdentifier": str(r.get("messageId"))} for r in failed]


def _apply_batch(aws: Aws, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Apply orders: locations in parallel, each location's orders in queue order. A record
    that is not an order, or whose order crashed, fails with every record after it."""
    records = list(event["Records"])
    metrics.add_metric(name="ApplyOrders", unit=MetricUnit.Count, value=len(records))
    if _work(aws, context) is None:  # no leases, no waves: nothing may be applied
        logger.error("apply orders need WORK_TABLE_NAME; the batch goes back to the queue")
        return {"batchItemFailures": _failed_from(records, 0, aws, "APPLY_QUEUE_URL")}
    by_location: dict[str, list[tuple[int, Any]]] = {}
    failed: set[int] = set()
    guard = threading.Lock()
    for index, record in enumerate(records):
        try:
            order = order_from_json(str(record.get("body") or ""))
        except BadOrderError as error:
            logger.error("not an apply order", extra={"error": str(error), "index": index})
            failed.add(index)
            continue
        by_location.setdefault(order.location, []).append((index, order))

    def apply(where: str) -> list[dict[str, Any]]:
        done: list[dict[str, Any]] = []
        orders = by_location[where]
        for position, (_, order) in enumerate(orders):
            try:
                report = Reconciler(aws, _work(aws, context)).apply_order(order)
            except Exception:
                logger.exception("apply order failed", extra={"location": where})
                with guard:  # FIFO: this location's later orders wait for this one
                    failed.update(index for index, _ in orders[position:])
                break
            done.append(_record(report))
        return done

    reports = per_region(apply, by_location)
    first = min(failed, default=len(records))
    return {
        "batchItemFailures": _failed_from(records, first, aws, "APPLY_QUEUE_URL"),
        "reports": [report for where in sorted(reports) for report in reports[where]],
    }


def _keep_departed(reconciler: Reconciler, event: Any) -> None:
    """The locations that the hub items of the event's stream records stopped naming, kept in
    the work table before the pass: passes read them until nothing of ours is left there."""
    departed = departed_of(event)
    if not departed:
        return
    if reconciler.work is None:
        logger.warning(
            "hub items stopped naming these locations; without WORK_TABLE_NAME they are read"
            " only while rules of ours lead there",
            extra={"locations": sorted(departed)},
        )
        return
    reconciler.work.table.note_departed(departed)
    logger.info("kept where hub items stopped naming", extra={"locations": sorted(departed)})


def _sqs_batch(reconciler: Reconciler, event: dict[str, Any], known: Any) -> dict[str, Any]:
    """One pass for the whole batch; poison and crashes are reported as failed items."""
    records = list(event["Records"])
    try:
        _keep_departed(reconciler, event)
    except Exception:
        logger.exception("cannot keep the departed locations; the batch goes back to the queue")
        return {"batchItemFailures": _failed_from(records, 0, reconciler.aws)}
    batch = batch_from_sqs(event, known)
    metrics.add_metric(name="Messages", unit=MetricUnit.Count, value=len(records))
    ids = [str(r.get("messageId")) for r in records]
    first_poison = min((ids.index(p) for p in batch.poison), default=len(records))
    if batch.request is None:
        logger.info("nothing to reconcile", extra={"messages": len(records)})
        return {"batchItemFailures": _failed_from(records, first_poison, reconciler.aws)}
    logger.append_keys(trigger=batch.request.trigger)
    try:
        result = _event_driven(reconciler, batch.request)
    except Exception:
        logger.exception("reconcile failed; the batch goes back to the queue")
        return {"batchItemFailures": _failed_from(records, 0, reconciler.aws)}
    failures = _failed_from(records, first_poison, reconciler.aws)
    return {"batchItemFailures": failures, "report": result}


def lambda_handler(event: Any, context: LambdaContext | None = None) -> dict[str, Any]:
    """The function's entry point; without a context (run locally) it makes one up."""
    result: dict[str, Any] = _handle(event, context or _local_context())
    return result


def _local_context() -> Any:
    """The fields Powertools reads from a Lambda context, for a run outside Lambda."""
    return SimpleNamespace(
        function_name="resolver-mesh-local",
        memory_limit_in_mb=0,
        invoked_function_arn="local",
        aws_request_id=str(uuid.uuid4()),
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def _handle(event: Any, context: LambdaContext) -> dict[str, Any]:
    reconciler = _reconciler()
    aws = reconciler.aws
    apply_queue = FanoutSettings.from_env().apply_queue_url
    if is_sqs_batch(event) and from_queue(event["Records"][0], apply_queue):
        return _apply_batch(aws, event, context)
    known = aws.known_regions()
    if is_sqs_batch(event):
        after = finished_pass(_bodies(list(event["Records"])))  # the pass after a wave
        reconciler.work = _work(aws, context, first_pass=after + 1)
        return _sqs_batch(reconciler, event, known)
    reconciler.work = _work(aws, context)
    try:
        request = request_from_event(event, known)
    except BadRequestError as error:
        logger.warning("bad request", extra={"error": str(error)})
        metrics.add_metric(name="BadRequests", unit=MetricUnit.Count, value=1)
        return {"ok": False, "errors": [{"kind": "request", "message": str(error)}]}
    if request is None:
        metrics.add_metric(name="Ignored", unit=MetricUnit.Count, value=1)
        return {"ok": True, "ignored": True, "counts": {}, "changes": [], "errors": []}
    logger.append_keys(trigger=request.trigger, action="resync" if request.apply else "plan")
    if isinstance(event, dict) and "action" in event:  # a person is waiting: one pass
        return _record(reconciler.run(request))
    _keep_departed(reconciler, event)  # a failure fails the invocation: its source retries
    return _event_driven(reconciler, request)
