"""The pure part of fan-out: when to fan out, orders as messages, digests of what was planned
from."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from resolver_mesh.desired import Joined, JoinedVpc, TaggedVpcs
from resolver_mesh.fanout import (
    SAFETY_SECONDS,
    ApplyOrder,
    BadOrderError,
    FanoutSettings,
    TagBasis,
    apply_seconds,
    digest,
    finished_event,
    finished_pass,
    from_queue,
    must_fan_out,
    order_from_json,
    state_digest,
)
from resolver_mesh.models import (
    AccountAccess,
    Change,
    ChangeKind,
    ObservedAssociation,
    ObservedRule,
    ObservedShare,
    RegionState,
    Target,
)

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/resolver-mesh-member-mesh"


def rule(rule_id: str, *ips: str) -> ObservedRule:
    return ObservedRule(
        id=rule_id,
        domain="us-east-2.amazonaws.com.",
        rule_type="FORWARD",
        name="n",
        status="COMPLETE",
        endpoint_id="rslvr-out-1",
        targets=frozenset(Target(ip) for ip in ips),
        creator_request_id="resolver-mesh/mesh/us-east-2/x",
    )


CHANGES = (
    Change(
        ChangeKind.CREATE_RULE,
        "us-east-1",
        "us-east-2.amazonaws.com.",
        name="mesh-us-east-2",
        endpoint_id="rslvr-out-1",
        targets=(Target("10.0.0.1"), Target("fd00::1", 5353)),
        target_region="us-east-2",
        reason="new hub",
    ),
    Change(ChangeKind.ASSOCIATE, "us-east-1", "us-east-2.amazonaws.com.", vpc_id="vpc-1", name="a"),
    Change(
        ChangeKind.SHARE,
        "us-east-1",
        "",
        share_arn="arn:aws:ram:us-east-1:123456789012:resource-share/s",
        resources=("arn:r1", "arn:r2"),
        principals=(ACCOUNT,),
    ),
    Change(
        ChangeKind.DISASSOCIATE,
        "us-east-1",
        "x.example.",
        rule_id="rslvr-rr-1",
        vpc_id="vpc-2",
        account=ACCOUNT,
        owner="123456789012",
        source="vpc-9",
    ),
)


def test_an_order_survives_its_message_exactly() -> None:
    order = ApplyOrder(
        mesh_id="mesh",
        wave="w-1",
        pass_number=2,
        location=f"us-east-1@{ACCOUNT}",
        changes=CHANGES,
        hubs_digest="h",
        state_digest="s",
        access=AccountAccess(account_id=ACCOUNT, role_arn=ROLE, external_id="ext-id-1"),
        sharing_regions=("us-east-1", "us-west-2"),
    )
    body = order.to_json()
    assert json.loads(body)["kind"] == "resolver-mesh/apply"
    assert order_from_json(body) == order
    home = replace(order, access=None, location="us-east-1")
    assert order_from_json(home.to_json()) == home
    other = AccountAccess(account_id="4" * 12, role_arn=ROLE.replace(ACCOUNT, "4" * 12))
    tag_locations = ("us-east-1", f"us-east-1@{'4' * 12}")
    tagged = replace(order, tag_locations=tag_locations, tag_access=(other,))
    assert order_from_json(tagged.to_json()) == tagged


def test_an_order_of_before_tags_reads_as_depending_on_none() -> None:
    order = ApplyOrder("mesh", "w", 1, "us-east-1", CHANGES, "h", "s")
    data = json.loads(order.to_json())
    del data["tag_locations"], data["tag_access"]
    assert order_from_json(json.dumps(data)) == order


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("not json", "not JSON"),
        ('{"kind": "something else"}', "not an apply order"),
        ('{"kind": "resolver-mesh/apply", "mesh_id": "m"}', "KeyError"),
        (
            '{"kind": "resolver-mesh/apply", "mesh_id": "m", "wave": "w", "pass": 1,'
            ' "location": "us-east-1", "hubs_digest": "h", "state_digest": "s",'
            ' "changes": [{"kind": "associate", "region": "us-east-1", "domain": "d",'
            ' "colour": "red"}]}',
            "unknown field(s) colour",
        ),
        (
            '{"kind": "resolver-mesh/apply", "mesh_id": "m", "wave": "w", "pass": 1,'
            ' "location": "us-east-1", "hubs_digest": "h", "state_digest": "s",'
            ' "changes": [{"kind": "explode", "region": "us-east-1", "domain": "d"}]}',
            "ValueError",
        ),
    ],
)
def test_a_bad_order_says_what_is_wrong(body: str, why: str) -> None:
    with pytest.raises(BadOrderError, match=re.escape(why)):
        order_from_json(body)


def test_state_digest_ignores_listing_order_and_sees_every_change() -> None:
    rules = (rule("r1", "10.0.0.1", "10.0.0.2"), rule("r2", "10.0.0.3"))
    associations = (
        ObservedAssociation("a1", "r1", "vpc-1", "COMPLETE"),
        ObservedAssociation("a2", "r2", "vpc-1", "COMPLETE"),
    )
    state = RegionState("us-east-1", rules=rules, associations=associations)
    same = RegionState(
        "us-east-1", rules=rules[::-1], associations=associations[::-1], endpoints=()
    )
    assert state_digest(state, CHANGES[:2]) == state_digest(same, CHANGES[:2])
    for changed in (
        replace(state, rules=(rule("r1", "10.0.0.1"), rules[1])),  # a target less
        replace(state, associations=associations[:1]),  # an association gone
        replace(state, associations=(replace(associations[0], status="CREATING"),)),
        replace(state, rules=(*rules, rule("r3"))),  # a rule more
    ):
        assert state_digest(changed, CHANGES[:2]) != state_digest(state, CHANGES[:2])


def test_state_digest_covers_shares_only_when_the_changes_touch_them() -> None:
    state = RegionState("us-east-1")
    shared = replace(state, shares=(ObservedShare("arn:s", "n", frozenset({"arn:r"})),))
    rule_changes, share_changes = CHANGES[:2], CHANGES[2:3]
    assert state_digest(state, rule_changes) == state_digest(shared, rule_changes)
    assert state_digest(state, share_changes) != state_digest(shared, share_changes)


def test_digest_of_items_ignores_set_order() -> None:
    one = [{"region": "us-east-1", "vpc_ids": {"vpc-1", "vpc-2", "vpc-3"}}]
    two = [{"region": "us-east-1", "vpc_ids": {"vpc-3", "vpc-1", "vpc-2"}}]
    assert digest(one) == digest(two)
    assert digest(one) != digest([{"region": "us-east-1", "vpc_ids": {"vpc-1"}}])


def test_apply_seconds_is_the_busiest_location_or_the_share_per_worker() -> None:
    assert apply_seconds({}, 5, 10) == 0
    assert apply_seconds({"a": 50, "b": 10}, 5, 10) == 10  # the busiest: 50 calls at 5/s
    assert apply_seconds({f"l{n}": 10 for n in range(100)}, 5, 10) == 20  # 1000 / 5 / 10


@pytest.mark.parametrize(
    ("estimate", "left", "fans_out"),
    [
        (10.0, None, False),  # no deadline: the CLI never fans out
        (10.0, 10.0 + SAFETY_SECONDS, False),  # exactly fits
        (10.5, 10.0 + SAFETY_SECONDS, True),
        (0.5, 20.0, True),  # less than the safety margin left
        (200.0, 300.0, False),
    ],
)
def test_must_fan_out_at_the_boundary(estimate: float, left: float | None, fans_out: bool) -> None:
    assert must_fan_out(estimate, left) is fans_out


def test_settings_enable_fan_out_only_with_all_three() -> None:
    full = {"APPLY_QUEUE_URL": "a", "RECONCILE_QUEUE_URL": "r", "WORK_TABLE_NAME": "w"}
    assert FanoutSettings.from_env(full).enabled
    for missing in full:
        assert not FanoutSettings.from_env({k: v for k, v in full.items() if k != missing}).enabled


def test_finished_events_carry_their_pass() -> None:
    messages = [finished_event("mesh", "w1", 1), {"detail-type": "Scheduled Event"}, None]
    assert finished_pass(messages) == 1
    assert finished_pass([*messages, finished_event("mesh", "w2", 2)]) == 2
    assert finished_pass([{"detail-type": "Scheduled Event", "detail": {}}]) == 0


def test_records_are_told_apart_by_their_queue() -> None:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/mesh-apply.fifo"
    record = {"eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:mesh-apply.fifo"}
    assert from_queue(record, url)
    assert not from_queue(record, url.replace("mesh-apply", "mesh-reconcile"))
    assert not from_queue(record, url.replace("123456789012", "210987654321"))
    assert not from_queue(record, "")
    assert not from_queue({}, url)


# --- tags in an order's digest ----------------------------------------------------------------

HOME, MEMBER, OTHER = "123456789012", "111111111111", "222222222222"
E1 = "us-east-1"
AT_MEMBER, AT_OTHER = f"{E1}@{MEMBER}", f"{E1}@{OTHER}"
RULE_ARNS = ("arn:aws:route53resolver:us-east-1:123456789012:resolver-rule/rslvr-rr-1",)


def basis() -> TagBasis:
    """Home VPC vpc-t and MEMBER's vpc-m joined the us-east-1 hub by tag; the items name the
    hub VPC vpc-hub at home and OTHER's vpc-o (a listed shared VPC)."""
    reads = {
        E1: TaggedVpcs(owned=frozenset({"vpc-t"})),
        AT_MEMBER: TaggedVpcs(owned=frozenset({"vpc-m"})),
        AT_OTHER: TaggedVpcs(),
    }
    joined = Joined(vpcs=(JoinedVpc(E1, "", "vpc-t", False), JoinedVpc(E1, MEMBER, "vpc-m", True)))
    listed = {E1: frozenset({"vpc-hub"}), AT_OTHER: frozenset({"vpc-o"})}
    return TagBasis(reads, joined, listed, HOME)


def associate(vpc: str, account: str = "") -> Change:
    return Change(ChangeKind.ASSOCIATE, E1, "d.", rule_id="r", vpc_id=vpc, account=account)


def disassociate(vpc: str, account: str = "") -> Change:
    return Change(ChangeKind.DISASSOCIATE, E1, "d.", rule_id="r", vpc_id=vpc, account=account)


def share(kind: ChangeKind, *principals: str) -> Change:
    return Change(kind, E1, "", share_arn="arn:s", resources=RULE_ARNS, principals=principals)


@pytest.mark.parametrize(
    ("where", "changes", "depends_on"),
    [
        pytest.param(E1, [associate("vpc-t")], (E1,), id="a-home-vpc-that-joined"),
        pytest.param(E1, [associate("vpc-hub")], (), id="a-listed-vpc"),
        pytest.param(AT_MEMBER, [associate("vpc-m", MEMBER)], (AT_MEMBER,), id="a-member-vpc"),
        pytest.param(
            AT_MEMBER,
            [Change(ChangeKind.ACCEPT_SHARE, E1, "", share_arn="arn:s", account=MEMBER)],
            (AT_MEMBER,),
            id="accepting-for-a-vpc-that-joined",
        ),
        pytest.param(
            AT_OTHER,
            [Change(ChangeKind.ACCEPT_SHARE, E1, "", share_arn="arn:s", account=OTHER)],
            (),
            id="accepting-for-a-listed-vpc",
        ),
        pytest.param(E1, [share(ChangeKind.CREATE_SHARE, MEMBER)], (AT_MEMBER,), id="share-made"),
        pytest.param(E1, [share(ChangeKind.SHARE, OTHER, MEMBER)], (AT_MEMBER,), id="extended"),
        pytest.param(E1, [share(ChangeKind.SHARE, OTHER)], (), id="shared-for-a-listed-vpc"),
        pytest.param(E1, [share(ChangeKind.UNSHARE, OTHER)], (AT_OTHER,), id="withdrawn"),
        pytest.param(
            E1,
            [share(ChangeKind.DELETE_SHARE, OTHER, MEMBER, "333333333333")],
            (AT_MEMBER, AT_OTHER),  # 3333... was not read: nothing of the plan came from it
            id="share-deleted",
        ),
        pytest.param(E1, [disassociate("vpc-gone")], (E1,), id="a-vpc-that-left-by-tag"),
        pytest.param(E1, [disassociate("vpc-hub")], (), id="a-listed-vpc-let-go"),
        pytest.param(E1, CHANGES[:1], (), id="rule-changes"),
    ],
)
def test_an_order_depends_on_the_tags_that_explain_its_changes(
    where: str, changes: list[Change], depends_on: tuple[str, ...]
) -> None:
    assert basis().locations(where, changes) == depends_on


class CountedReads(dict[str, TaggedVpcs]):
    """Tag reads that count how often they are gone through."""

    walks = 0

    def items(self):  # type: ignore[no-untyped-def,override]
        CountedReads.walks += 1
        return super().items()


def test_the_tag_reads_are_gone_through_once_for_every_location_of_a_pass() -> None:
    """A fanned-out pass asks `locations` for each of its locations: the reads and the VPCs
    that joined are worked out once, not per location (the square of the locations)."""
    members = [f"{n:012d}" for n in range(1, 201)]
    reads = CountedReads({f"{E1}@{m}": TaggedVpcs(owned=frozenset({f"vpc-{m}"})) for m in members})
    joined = Joined(vpcs=tuple(JoinedVpc(E1, m, f"vpc-{m}", True) for m in members))
    tags = TagBasis(reads, joined, {}, HOME)
    CountedReads.walks = 0
    for m in members:
        assert tags.locations(f"{E1}@{m}", [associate(f"vpc-{m}", m)]) == (f"{E1}@{m}",)
    assert tags.locations(E1, [share(ChangeKind.SHARE, *members)]) == tuple(sorted(reads))
    assert CountedReads.walks == 1


def test_only_successful_tag_reads_are_depended_on() -> None:
    unread = TaggedVpcs(error="AccessDenied")
    tags = TagBasis({E1: unread, AT_OTHER: unread}, Joined(), {}, HOME)
    assert tags.locations(E1, [disassociate("vpc-gone"), share(ChangeKind.UNSHARE, OTHER)]) == ()


def test_the_home_account_as_a_principal_is_the_home_location() -> None:
    """A hub of a member account shares with the home account, whose VPC joined by tag."""
    joined = Joined(vpcs=(JoinedVpc(E1, "", "vpc-t", True),))
    tags = TagBasis({E1: TaggedVpcs(owned=frozenset({"vpc-t"}))}, joined, {}, HOME)
    assert tags.locations(AT_MEMBER, [share(ChangeKind.CREATE_SHARE, HOME)]) == (E1,)


def test_state_digest_covers_the_tag_reads_it_is_given() -> None:
    state = RegionState(E1)
    changes = [associate("vpc-t")]
    read = {E1: TaggedVpcs(owned=frozenset({"vpc-t", "vpc-u"}))}
    assert state_digest(state, changes, {}) == state_digest(state, changes)
    assert state_digest(state, changes, read) != state_digest(state, changes)
    same = {E1: TaggedVpcs(owned=frozenset({"vpc-u", "vpc-t"}))}
    assert state_digest(state, changes, read) == state_digest(state, changes, same)
    for changed in (
        TaggedVpcs(owned=frozenset({"vpc-u"})),  # the tag removed from vpc-t
        TaggedVpcs(owned=frozenset({"vpc-t", "vpc-u"}), foreign={"vpc-x": OTHER}),
        TaggedVpcs(error="Throttling"),
    ):
        assert state_digest(state, changes, {E1: changed}) != state_digest(state, changes, read)
