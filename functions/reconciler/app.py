"""The reconciler Lambda: a thin handler around `resolver_mesh.reconcile.Reconciler`.

Events: a manual invoke `{"action": "plan" | "resync", "regions": [...], "force": bool}`, the
scheduled EventBridge event (a full resync), anything else (a full resync). Returns the report
as a JSON-serialisable dict. Configuration: see `resolver_mesh.config`.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from resolver_mesh.aws.session import Aws
from resolver_mesh.config import Settings
from resolver_mesh.reconcile import Reconciler
from resolver_mesh.triggers import BadRequestError, request_from_event

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "resolver-mesh"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "ResolverMesh"))
_aws: Aws | None = None


def _reconciler() -> Reconciler:
    """One `Aws` per execution environment: clients and rate limits survive warm invokes."""
    global _aws
    settings = Settings.from_env()
    if _aws is None or _aws.settings != settings:
        _aws = Aws(settings)
    return Reconciler(_aws)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    try:
        request = request_from_event(event)
    except BadRequestError as error:
        logger.warning("bad request", extra={"error": str(error)})
        metrics.add_metric(name="BadRequests", unit=MetricUnit.Count, value=1)
        return {"ok": False, "errors": [{"kind": "request", "message": str(error)}]}
    logger.append_keys(trigger=request.trigger, action="resync" if request.apply else "plan")
    report = _reconciler().run(request)
    result = report.as_dict()
    for kind, count in report.counts.items():
        metrics.add_metric(name=f"Changes_{kind}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="Conflicts", unit=MetricUnit.Count, value=len(report.conflicts))
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=len(report.errors))
    metrics.add_metric(name="Refusals", unit=MetricUnit.Count, value=len(report.refused))
    metrics.add_metric(
        name="DurationSeconds", unit=MetricUnit.Seconds, value=report.duration_seconds
    )
    summary = {k: result[k] for k in ("ok", "counts", "regions", "calls", "duration_seconds")}
    summary |= {k: result[k] for k in ("errors", "conflicts", "refused", "degraded") if result[k]}
    (logger.info if report.ok else logger.error)("reconcile finished", extra=summary)
    return result
