"""How an apply moves sharing along: the hub's share takes the hub rules created before it in
the same location, and only a step that leaves something to do asks for another pass."""

from __future__ import annotations

import pytest

from resolver_mesh.models import Change, ChangeKind
from resolver_mesh.reconcile import _leads_to_sharing, _with_created_hub_rules

KNOWN = "arn:aws:route53resolver:us-east-1:111122223333:resolver-rule/rslvr-rr-old"
NEW = "arn:aws:route53resolver:us-east-1:111122223333:resolver-rule/rslvr-rr-new"


def share_change(kind: ChangeKind) -> Change:
    return Change(
        kind,
        "us-east-1",
        "",
        name="resolver-mesh-m",
        share_arn="arn:aws:ram:us-east-1:111122223333:resource-share/s",
        resources=(KNOWN,),
        principals=("444455556666",),
    )


@pytest.mark.parametrize("kind", [ChangeKind.CREATE_SHARE, ChangeKind.SHARE])
def test_the_hub_share_made_or_extended_takes_the_rules_created_before_it(
    kind: ChangeKind,
) -> None:
    change = _with_created_hub_rules(share_change(kind), [NEW, KNOWN])
    assert change.resources == (NEW, KNOWN)  # sorted, once each
    assert change.principals == ("444455556666",)


@pytest.mark.parametrize(
    "kind", [ChangeKind.UNSHARE, ChangeKind.DELETE_SHARE, ChangeKind.ACCEPT_SHARE]
)
def test_other_share_changes_are_left_as_planned(kind: ChangeKind) -> None:
    planned = share_change(kind)
    assert _with_created_hub_rules(planned, [NEW]) is planned


def test_nothing_created_leaves_the_share_as_planned() -> None:
    planned = share_change(ChangeKind.CREATE_SHARE)
    assert _with_created_hub_rules(planned, []) is planned


def applied(kind: ChangeKind, **fields: str) -> dict[str, str]:
    return {"kind": kind.value, "status": "applied", "region": "us-east-1", **fields}


@pytest.mark.parametrize(
    ("result", "next_pass"),
    [
        (applied(ChangeKind.CREATE_SHARE), True),  # the receivers can associate
        (applied(ChangeKind.ACCEPT_SHARE, owner="111122223333"), True),
        (applied(ChangeKind.CREATE_RULE), True),  # a hub rule where the hub shares
        (applied(ChangeKind.CREATE_RULE, source="us-east-2"), False),  # a spoke's rule
        (applied(ChangeKind.ASSOCIATE, owner="111122223333"), False),  # sharing done
        (applied(ChangeKind.DISASSOCIATE, owner="111122223333"), True),  # the hub may let go
        (applied(ChangeKind.ASSOCIATE), False),  # a rule of this account's own
        ({**applied(ChangeKind.CREATE_SHARE), "status": "failed"}, False),
    ],
)
def test_which_applied_changes_ask_for_another_pass(
    result: dict[str, str], next_pass: bool
) -> None:
    assert _leads_to_sharing(result, {"us-east-1"}) is next_pass
