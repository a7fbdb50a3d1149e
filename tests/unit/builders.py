"""Builders shared by the unit tests: hub items, the endpoints their Regions would show, and
the states that hold exactly the desired rules, as a finished reconcile leaves them.

Test modules import them (`from .builders import ...`); conftest.py also offers them as the
`world` and `converged` fixtures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from resolver_mesh.desired import Desired, HubSet, Joined, desired_rules
from resolver_mesh.models import (
    ObservedAssociation,
    ObservedEndpoint,
    ObservedRule,
    Plan,
    RegionState,
)
from resolver_mesh.names import creator_request_ids
from resolver_mesh.plan import make_plan
from resolver_mesh.profiles import ProfilePlan, plan_profiles, with_profile_changes

DROP = object()
HOME = "123456789012"  # the reconciler's own account in these tests


def ids(region: str) -> SimpleNamespace:
    """Well-formed, deterministic ids and IPs of one Region's hub."""
    digest = hashlib.sha256(region.encode()).hexdigest()
    octet = int(digest[:2], 16) % 250 + 1
    return SimpleNamespace(
        vpc=f"vpc-{digest[:17]}",
        inbound=f"rslvr-in-{digest[17:34]}",
        outbound=f"rslvr-out-{digest[34:51]}",
        ips=(f"10.{octet}.0.10", f"10.{octet}.1.10"),
    )


def hub_item(region: str, /, **fields: Any) -> dict[str, Any]:
    """A valid hub item; `field=DROP` removes a field, any other value sets it."""
    hub = ids(region)
    item: dict[str, Any] = {
        "region": region,
        "vpc_id": hub.vpc,
        "inbound_endpoint_id": hub.inbound,
        "outbound_endpoint_id": hub.outbound,
    }
    item.update(fields)
    return {k: v for k, v in item.items() if v is not DROP}


def hub_endpoints(
    region: str,
    *,
    inbound_ips: tuple[str, ...] | None = None,
    inbound_status: str = "OPERATIONAL",
    outbound_status: str = "OPERATIONAL",
) -> tuple[ObservedEndpoint, ...]:
    hub = ids(region)
    return (
        ObservedEndpoint(
            hub.inbound,
            "INBOUND",
            inbound_status,
            hub.vpc,
            hub.ips if inbound_ips is None else inbound_ips,
        ),
        ObservedEndpoint(hub.outbound, "OUTBOUND", outbound_status, hub.vpc),
    )


def region_state(region: str, **fields: Any) -> RegionState:
    """A readable Region whose hub endpoints are healthy unless `endpoints=` says otherwise."""
    fields.setdefault("endpoints", hub_endpoints(region))
    return RegionState(region, **fields)


def converged(
    mesh_id: str, desired: Desired, states: Mapping[str, RegionState]
) -> dict[str, RegionState]:
    """`states` (by location) with exactly the desired rules, each associated with its VPCs."""
    out = {}
    for where, state in states.items():
        rules, associations = [], []
        region = where.replace("@", "-")
        for n, want in enumerate(r for r in desired.rules if r.location == where):
            assert want.targets is not None, "a converged state needs targets"
            rule = ObservedRule(
                id=f"rslvr-rr-{region}-{n:04d}",
                domain=want.domain,
                rule_type="FORWARD",
                name=want.name,
                status="COMPLETE",
                endpoint_id=want.endpoint_id,
                targets=want.targets,
                creator_request_id=creator_request_ids(
                    mesh_id, want.region, want.domain, want.target_region, want.source
                )[0],
                arn=f"arn:aws:route53resolver:{region}:{want.account or HOME}:resolver-rule/{n}",
            )
            rules.append(rule)
            associations += [
                ObservedAssociation(f"rslvr-rrassoc-{rule.id}-{vpc}", rule.id, vpc, "COMPLETE")
                for vpc in sorted(want.vpc_ids)
            ]
        out[where] = replace(state, rules=tuple(rules), associations=tuple(associations))
    return out


def plan_as_reconcile(
    mesh_id: str, hub_set: HubSet, states: dict[str, RegionState], joined: Joined | None = None
) -> tuple[Plan, ProfilePlan]:
    """Plan as a reconcile does (every location in scope, `rules` by default): the desired
    rules, the Profiles, the rules' plan, the Profile changes merged into it; `joined`: the
    VPCs that joined by tag (None: none looked for)."""
    desired = desired_rules(mesh_id, hub_set, states, joined, HOME)
    profiles = plan_profiles(mesh_id, hub_set, desired, states, set(states), "rules", joined)
    plan = make_plan(
        mesh_id,
        profiles.desired,
        states,
        set(states),
        home_account=HOME,
        also_shared=profiles.also_shared,
        profile_serving=profiles.serving,
    )
    return with_profile_changes(plan, profiles), profiles
