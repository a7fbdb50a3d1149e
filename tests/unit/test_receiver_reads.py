"""What a receiving location reads once the pass's first reads are in (`Offers`): pending RAM
invitations only where a share of ours names the location's account and holds something it
does not see, or where the share's owner holds duplicates (an accepted share shows all it
holds); Profiles only in a Region where a Profile of ours was found where it is owned, or a
share of ours holds more than rules. A converged receiver of rules reads neither (two calls
fewer per receiving location in every no-op)."""

from __future__ import annotations

from dataclasses import replace

from resolver_mesh.models import (
    ObservedProfile,
    ObservedRule,
    ObservedShare,
    ProfileState,
    RegionState,
)
from resolver_mesh.reconcile import Offers

HOME = "111111111111"
MEMBER = "222222222222"
OTHER = "333333333333"
REGION = "us-east-1"
RECEIVER = f"{REGION}@{MEMBER}"
RULES = [f"arn:aws:route53resolver:{REGION}:{HOME}:resolver-rule/rslvr-rr-{n}" for n in range(3)]
PROFILE = f"arn:aws:route53profiles:{REGION}:{HOME}:profile/rp-1"


def rule(arn: str) -> ObservedRule:
    return ObservedRule(
        id=arn.rsplit("/", 1)[1],
        domain="us-west-2.amazonaws.com",
        rule_type="FORWARD",
        name="mesh",
        status="COMPLETE",
        endpoint_id=None,
        targets=frozenset(),
        creator_request_id="resolver-mesh/x",
        owner_id=HOME,
        share_status="SHARED_WITH_ME",
        arn=arn,
    )


def share(n: int, resources: list[str], principals: tuple[str, ...] = (MEMBER,)) -> ObservedShare:
    return ObservedShare(
        arn=f"arn:aws:ram:{REGION}:{HOME}:resource-share/{n}",
        name="resolver-mesh",
        resources=frozenset(resources),
        principals=frozenset(principals),
    )


def hub(*shares: ObservedShare, region: str = REGION, error: str | None = None) -> RegionState:
    return RegionState(region, shares=shares, error=error)


def receiver(seen: list[str], **fields: object) -> RegionState:
    return RegionState(REGION, account=MEMBER, rules=tuple(rule(a) for a in seen), **fields)  # type: ignore[arg-type]


def invitations_to_read(
    states: dict[str, RegionState], receivers: list[str], home: str
) -> list[str]:
    offers = Offers.of(states, home)
    return [w for w in receivers if w in states and offers.needs_invitations(states[w])]


def to_read(hub_state: RegionState, receiving: RegionState, home: str = HOME) -> list[str]:
    states = {REGION: hub_state, RECEIVER: receiving}
    return invitations_to_read(states, [RECEIVER], home)


def test_a_receiver_that_sees_every_rule_of_our_share_reads_no_invitation() -> None:
    assert to_read(hub(share(1, RULES)), receiver(RULES)) == []


def test_a_rule_of_our_share_not_seen_yet_makes_the_receiver_read_its_invitations() -> None:
    assert to_read(hub(share(1, RULES)), receiver(RULES[:2])) == [RECEIVER]
    assert to_read(hub(share(1, RULES)), receiver([])) == [RECEIVER]


def test_a_share_that_does_not_name_the_account_is_not_a_reason() -> None:
    assert to_read(hub(share(1, RULES, principals=(OTHER,))), receiver([])) == []


def test_shares_of_another_region_are_not_a_reason() -> None:
    elsewhere = hub(share(1, RULES), region="us-west-2")
    states = {"us-west-2": elsewhere, RECEIVER: receiver([])}
    assert invitations_to_read(states, [RECEIVER], HOME) == []


def test_duplicate_shares_of_ours_make_every_named_receiver_read() -> None:
    """An accepted duplicate shows the rules while the keeper's invitation is pending: the
    receiver must accept the keeper before the duplicate goes."""
    assert to_read(hub(share(1, RULES), share(2, RULES)), receiver(RULES)) == [RECEIVER]


def test_a_profile_our_share_holds_must_be_seen_too() -> None:
    seen = ProfileState((ObservedProfile(id="rp-1", arn=PROFILE, name="resolver-mesh"),))
    with_profile = hub(share(1, [*RULES, PROFILE]))
    assert to_read(with_profile, receiver(RULES)) == [RECEIVER]
    assert to_read(with_profile, receiver(RULES, profiles=seen)) == []


def test_unread_locations_are_left_alone() -> None:
    """An unread receiver is an error already; an unread owner's shares are unknown, and no
    invitation to an unknown share is ever accepted."""
    assert to_read(hub(share(1, RULES)), receiver([], error="AccessDenied")) == []
    assert to_read(hub(share(1, RULES), error="throttled"), receiver([])) == []
    assert invitations_to_read({REGION: hub(share(1, RULES))}, [RECEIVER], HOME) == []


def test_the_home_account_as_receiver_is_matched_by_its_id() -> None:
    """A hub in a member account shares with the reconciler's own account (location "")."""
    owner = RegionState(REGION, account=OTHER, shares=(share(1, RULES, principals=(HOME,)),))
    home = RegionState(REGION, rules=tuple(rule(a) for a in RULES))
    states = {f"{REGION}@{OTHER}": owner, REGION: home}
    assert invitations_to_read(states, [REGION], HOME) == []
    missing = {**states, REGION: RegionState(REGION)}
    assert invitations_to_read(missing, [REGION], HOME) == [REGION]
    # its id unknown: every share of ours in the Region counts
    assert invitations_to_read(states, [REGION], "") == []
    assert invitations_to_read(missing, [REGION], "") == [REGION]
    other = {
        **states,
        f"{REGION}@{OTHER}": RegionState(
            REGION, account=OTHER, shares=(share(2, [PROFILE], (OTHER,)),)
        ),
    }
    assert invitations_to_read(other, [REGION], "") == [REGION]
    assert invitations_to_read(other, [REGION], HOME) == []


def profiles_wanted(*states: RegionState) -> bool:
    offers = Offers.of({s.location: s for s in states}, HOME)
    return offers.needs_profiles(next(s for s in states if s.account == MEMBER))


def test_a_receiver_reads_profiles_only_where_a_profile_of_ours_lives_or_is_shared() -> None:
    ours = ObservedProfile(id="rp-1", arn=PROFILE, name="resolver-mesh", ours=True)
    owned = RegionState(REGION, profiles=ProfileState((ours,)))
    assert profiles_wanted(owned, receiver(RULES))
    assert not profiles_wanted(hub(share(1, RULES)), receiver(RULES))
    assert profiles_wanted(hub(share(1, [*RULES, PROFILE])), receiver(RULES))
    # a Profile not ours, or one only seen through a share, is no reason
    theirs = RegionState(REGION, profiles=ProfileState((replace(ours, ours=False),)))
    assert not profiles_wanted(theirs, receiver(RULES))
    seen_shared = replace(ours, share_status="SHARED_WITH_ME")
    elsewhere = RegionState(REGION, account=OTHER, profiles=ProfileState((seen_shared,)))
    assert not profiles_wanted(elsewhere, receiver(RULES))
    # another Region's Profile is no reason; an unread owner's is unknown
    assert not profiles_wanted(replace(owned, region="us-west-2"), receiver(RULES))
    assert not profiles_wanted(replace(owned, error="throttled"), receiver(RULES))


def test_a_receiver_already_read_for_profiles_is_not_read_again() -> None:
    ours = ObservedProfile(id="rp-1", arn=PROFILE, name="resolver-mesh", ours=True)
    owned = RegionState(REGION, profiles=ProfileState((ours,)))
    assert not profiles_wanted(owned, receiver(RULES, profiles=ProfileState()))
    assert not profiles_wanted(owned, receiver(RULES, profiles_unread="AccessDenied"))
    assert not profiles_wanted(owned, receiver(RULES, error="AccessDenied"))
