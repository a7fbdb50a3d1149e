"""How an apply moves sharing along: the hub's share takes the hub rules created before it in
the same location, and only a step that leaves something to do asks for another pass."""

from __future__ import annotations

from dataclasses import replace

import pytest

from resolver_mesh.models import Change, ChangeKind
from resolver_mesh.reconcile import (
    _leads_to_sharing,
    _makes_way_for_nothing,
    _sharing_goes_on,
    _with_hub_rules_made,
)

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
    change = _with_hub_rules_made(share_change(kind), [NEW, KNOWN])
    assert change.resources == (NEW, KNOWN)  # sorted, once each
    assert change.principals == ("444455556666",)


@pytest.mark.parametrize(
    "kind", [ChangeKind.UNSHARE, ChangeKind.DELETE_SHARE, ChangeKind.ACCEPT_SHARE]
)
def test_other_share_changes_are_left_as_planned(kind: ChangeKind) -> None:
    planned = share_change(kind)
    assert _with_hub_rules_made(planned, [NEW]) is planned


def test_nothing_created_leaves_the_share_as_planned() -> None:
    planned = share_change(ChangeKind.CREATE_SHARE)
    assert _with_hub_rules_made(planned, []) is planned


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
        ({**applied(ChangeKind.ASSOCIATE, owner="111122223333"), "status": "waiting"}, True),
    ],
)
def test_which_applied_changes_ask_for_another_pass(
    result: dict[str, str], next_pass: bool
) -> None:
    assert _leads_to_sharing(result, {"us-east-1"}) is next_pass


INVITATION = "arn:aws:ram:us-east-1:111122223333:resource-share-invitation/i"


@pytest.mark.parametrize(
    ("associations", "next_pass"),
    [
        ([], True),  # nothing associated with it: the next pass sees the rules and does
        (["applied", "applied"], False),  # accepted and associated in one pass
        (["applied", "waiting"], True),  # one rule did not arrive in time
        (["failed"], True),  # reported; the next pass plans it again from what it reads
        (["skipped"], True),
    ],
)
def test_an_acceptance_asks_for_another_pass_only_when_its_rules_were_not_put_on_vpcs(
    associations: list[str], next_pass: bool
) -> None:
    accept = applied(ChangeKind.ACCEPT_SHARE, share_arn=INVITATION)
    results = [accept] + [
        {**applied(ChangeKind.ASSOCIATE, owner="111122223333", share_arn=INVITATION), "status": s}
        for s in associations
    ]
    assert _sharing_goes_on(results, {"us-east-1"}) is next_pass


def test_an_association_with_another_invitation_does_not_settle_this_acceptance() -> None:
    accept = applied(ChangeKind.ACCEPT_SHARE, share_arn=INVITATION)
    other = applied(ChangeKind.ASSOCIATE, owner="111122223333", share_arn=INVITATION + "2")
    assert _sharing_goes_on([accept, other], {"us-east-1"})
    assert not _sharing_goes_on([other], {"us-east-1"})


def _make_way(share_arn: str | None) -> tuple[Change, Change]:
    """A disassociation of a rule of ours that frees a VPC for the association after it."""
    free = Change(
        ChangeKind.DISASSOCIATE, "us-east-1", "b.example.com.", rule_id="rslvr-rr-old", vpc_id="v"
    )
    take = Change(
        ChangeKind.ASSOCIATE,
        "us-east-1",
        "b.example.com.",
        rule_id="rslvr-rr-new",
        vpc_id="v",
        share_arn=share_arn,
    )
    return free, take


def test_a_vpc_keeps_its_rule_when_the_share_of_the_rule_taking_its_place_was_not_accepted() -> (
    None
):
    free, take = _make_way("arn:invitation")
    assert _makes_way_for_nothing(free, take, {}, accepted=set())
    assert not _makes_way_for_nothing(free, take, {}, accepted={"arn:invitation"})
    visible_rule = _make_way(None)  # a rule already visible: nothing to wait for
    assert not _makes_way_for_nothing(*visible_rule, {}, accepted=set())
    created_later = replace(take, rule_id=None, share_arn=None)  # a rule created in this run
    assert _makes_way_for_nothing(free, created_later, {})
    assert not _makes_way_for_nothing(free, created_later, {("", take.domain): "rslvr-rr-new"})
