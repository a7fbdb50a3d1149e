"""Which rules adoption may take over, and how an adopted rule counts as ours."""

from __future__ import annotations

from dataclasses import replace

import pytest

from resolver_mesh.desired import adoptable
from resolver_mesh.models import ObservedRule, Target
from resolver_mesh.plan import rule_target

HAND_MADE = ObservedRule(
    id="rslvr-rr-hand",
    domain="us-east-2.amazonaws.com.",
    rule_type="FORWARD",
    name="hand-made",
    status="COMPLETE",
    endpoint_id="rslvr-out-0000000000000000a",
    targets=frozenset({Target("10.9.9.9")}),
    creator_request_id="console-2024",
)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, True),
        ({"rule_type": "SYSTEM"}, False),
        ({"status": "UPDATING"}, False),
        ({"share_status": "SHARED_WITH_ME"}, False),
        ({"owner_tag": "other-mesh"}, False),
        ({"owner_tag": "resolver-mesh"}, False),  # already ours: not adopted twice
        ({"creator_request_id": "resolver-mesh/other/us-east-2/abc"}, False),
    ],
)
def test_adoptable(change: dict[str, str], expected: bool) -> None:
    assert adoptable(replace(HAND_MADE, **change)) is expected


def test_an_adopted_rule_is_ours_by_its_tags_only_for_its_mesh() -> None:
    adopted = replace(HAND_MADE, owner_tag="resolver-mesh", target_tag="us-east-2")
    assert rule_target(adopted, "resolver-mesh") == "us-east-2"
    assert rule_target(adopted, "other") is None
    assert rule_target(replace(adopted, target_tag=None), "resolver-mesh") is None
    assert rule_target(HAND_MADE, "resolver-mesh") is None


def test_a_kept_rule_keeps_its_targets_but_follows_the_regions_vpcs() -> None:
    from resolver_mesh.desired import Desired
    from resolver_mesh.models import ChangeKind, ObservedAssociation, RegionState
    from resolver_mesh.names import creator_request_ids
    from resolver_mesh.plan import make_plan

    marker = creator_request_ids(
        "resolver-mesh", "us-east-1", "us-west-2.amazonaws.com", "us-west-2"
    )
    kept = replace(
        HAND_MADE,
        id="rslvr-rr-kept",
        domain="us-west-2.amazonaws.com.",
        creator_request_id=marker[0],
    )
    state = RegionState(
        "us-east-1",
        rules=(kept,),
        associations=(
            ObservedAssociation("a1", kept.id, "vpc-hub", "COMPLETE"),
            ObservedAssociation("a2", kept.id, "vpc-gone", "COMPLETE"),
        ),
    )
    desired = Desired(
        rules=(),
        protected_targets=frozenset({"us-west-2"}),
        source_vpcs={("us-east-1", ""): frozenset({"vpc-hub", "vpc-new"})},
    )
    plan = make_plan("resolver-mesh", desired, {"us-east-1": state}, {"us-east-1"})
    assert [(c.kind, c.rule_id, c.vpc_id) for c in plan.changes] == [
        (ChangeKind.ASSOCIATE, kept.id, "vpc-new"),
        (ChangeKind.DISASSOCIATE, kept.id, "vpc-gone"),
    ]
    assert not any(c.kind in (ChangeKind.DELETE_RULE, ChangeKind.UPDATE_RULE) for c in plan.changes)
