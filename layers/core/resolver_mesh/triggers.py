"""Triggers to requests: which action, in which Regions. Pure, no I/O.

Invariants:
- A trigger never carries state, only "look at these Regions again" (level-triggered).
- Anything not understood means all Regions, never none; only a malformed *manual* request,
  which a person is waiting on, is refused with an explanation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resolver_mesh.models import Request

ACTIONS = {"plan": False, "resync": True}


class BadRequestError(ValueError):
    """A manual invoke that cannot be understood; the message says which field is wrong."""


def _manual(event: Mapping[str, Any]) -> Request:
    action = event.get("action")
    if action not in ACTIONS:
        raise BadRequestError(f"'action' must be one of {sorted(ACTIONS)}, not {action!r}")
    regions = event.get("regions")
    if regions is not None and (
        not isinstance(regions, list) or not all(isinstance(r, str) and r for r in regions)
    ):
        raise BadRequestError("'regions' must be a list of Region names, e.g. [\"us-east-2\"]")
    force = event.get("force", False)
    if not isinstance(force, bool):
        raise BadRequestError("'force' must be true or false")
    return Request(
        apply=ACTIONS[action],
        regions=tuple(sorted(set(regions))) if regions is not None else None,
        force=force,
        trigger=str(event.get("trigger", "manual")),
    )


def request_from_event(event: Any) -> Request:
    """The request a Lambda event stands for."""
    if isinstance(event, Mapping) and "action" in event:
        return _manual(event)
    if isinstance(event, Mapping) and event.get("detail-type") == "Scheduled Event":
        return Request(apply=True, trigger="schedule")
    return Request(apply=True, trigger="unrecognised event: full resync")
