"""The apply's side of receivers that follow a hub's share change in the same apply: the
handoffs between location workers, and whether another pass is needed. Pure: no AWS."""

from __future__ import annotations

import threading
import time

from resolver_mesh import reconcile
from resolver_mesh.models import Change, ChangeKind, Plan
from resolver_mesh.reconcile import _followed_whole, _Handoffs, _sharing_goes_on

HUB, MEMBER = "us-east-1", "us-east-1@222222222222"


def follow_plan() -> Plan:
    """The hub makes its share (its rule exists); a member follows it."""
    changes = (
        Change(ChangeKind.CREATE_SHARE, "us-east-1", "", name="share"),
        Change(ChangeKind.ACCEPT_SHARE, "us-east-1", "", account="222222222222", follows=HUB),
        Change(
            ChangeKind.ASSOCIATE,
            "us-east-1",
            "us-west-2.amazonaws.com.",
            vpc_id="vpc-1",
            account="222222222222",
            follows=HUB,
        ),
    )
    return Plan(changes=changes, followed=(HUB,))


def test_a_follower_waits_for_the_hubs_share_then_for_each_rule_it_adds() -> None:
    handoffs = _Handoffs(follow_plan())
    assert HUB in handoffs
    assert MEMBER not in handoffs
    got: list[reconcile._Handoff] = []
    follower = threading.Thread(target=lambda: got.append(handoffs.wait(HUB)))
    follower.start()
    time.sleep(0.05)
    assert not got  # still waiting for the share
    handoffs.give(HUB, "arn:share")
    follower.join(5)
    [handoff] = got
    assert (handoff.made, handoff.share_arn) == (True, "arn:share")
    assert handoffs.share_arn(HUB) == "arn:share"

    rules: list[str | None] = []
    domain = "us-west-2.amazonaws.com."
    follower = threading.Thread(target=lambda: rules.append(handoffs.rule(HUB, domain)))
    follower.start()
    time.sleep(0.05)
    assert not rules  # still waiting for the rule
    handoffs.add(HUB, domain, "rslvr-rr-1")
    follower.join(5)
    assert rules == ["rslvr-rr-1"]
    handoffs.end(HUB)  # the hub's end changes nothing given
    assert handoffs.wait(HUB).made
    assert handoffs.rule(HUB, domain) == "rslvr-rr-1"
    assert handoffs.rule(HUB, "eu-west-1.amazonaws.com.") is None  # ended: at once


def test_a_hub_that_ends_without_its_share_lets_its_followers_go() -> None:
    handoffs = _Handoffs(follow_plan())
    assert handoffs.share_arn(HUB) == ""
    waiting: list[str | None] = []
    follower = threading.Thread(
        target=lambda: waiting.append(handoffs.rule(HUB, "us-west-2.amazonaws.com."))
    )
    follower.start()
    handoffs.end(HUB)
    follower.join(5)
    assert waiting == [None]
    handoff = handoffs.wait(HUB)
    assert not handoff.made
    assert handoff.created == {}


def test_a_location_no_follower_waits_on_answers_at_once() -> None:
    """An order's worker has no hub to wait for: not made, without waiting."""
    handoffs = _Handoffs(Plan())
    started = time.monotonic()
    assert not handoffs.wait(HUB).made
    assert time.monotonic() - started < reconcile.FOLLOW_WAIT_SECONDS / 10


def results(*statuses: str) -> list[dict[str, object]]:
    plan = follow_plan()
    applied = ["applied", *statuses]
    return [c.as_dict() | {"status": s} for c, s in zip(plan.changes, applied, strict=True)]


def test_a_share_followed_whole_asks_for_no_other_pass() -> None:
    plan = follow_plan()
    for accepted in ("applied", "no invitation"):
        done = results(accepted, "applied")
        assert _followed_whole(plan, done) == {HUB}
        assert not _sharing_goes_on(done, {"us-east-1"}, _followed_whole(plan, done))
    # the hub's rule creations too: they joined the share the members followed
    created = Change(ChangeKind.CREATE_RULE, "us-east-1", "us-west-2.amazonaws.com.")
    done = [created.as_dict() | {"status": "applied"}, *results("applied", "applied")]
    assert not _sharing_goes_on(done, {"us-east-1"}, _followed_whole(plan, done))
    assert _sharing_goes_on(done, {"us-east-1"}, frozenset())  # not followed: it is shared next


def test_a_follower_that_did_not_finish_asks_for_the_next_pass() -> None:
    plan = follow_plan()
    for accepted, associated in (("applied", "waiting"), ("failed", "skipped")):
        done = results(accepted, associated)
        assert _followed_whole(plan, done) == frozenset()
        assert _sharing_goes_on(done, {"us-east-1"}, _followed_whole(plan, done))


def test_a_share_not_followed_whole_asks_for_the_next_pass() -> None:
    plan = Plan(changes=follow_plan().changes)  # `followed` empty: something was left out
    done = results("applied", "applied")
    assert _followed_whole(plan, done) == frozenset()
    assert _sharing_goes_on(done, {"us-east-1"}, frozenset())
