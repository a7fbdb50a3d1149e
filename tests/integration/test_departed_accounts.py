"""Where a hub item stops naming another account: the hubs table's stream record (its old
image) is kept as a lead in the work table, and passes read those locations until nothing of
ours is left there. Before, nothing led back to them: a removed member hub's rules, or a spoke
of an account named nowhere else, stayed and kept forwarding to the old hub.

The handler gets the stream records that moto's DynamoDB stream holds, as the pipe queues them
(one record per message body), against the HTTP emulator.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from meshkit import HOME_REGION, HubsStream, Mesh
from test_accounts_safety import (
    MEMBER_HUB_CIDR,
    WEST_2,
    RefusedRoles,
    domains,
    pair,
    reach,
    refused_roles,
    spoke_entry,
)
from test_fanout import FanOut, fan_out, invoke
from test_profiles import MEMBER_REGION, our_profile, profile_mesh
from test_spokes_accounts import MEMBER, member, of_vpc, rules_and_vpcs

from resolver_mesh.aws.resolver import ResolverRegion
from resolver_mesh.aws.session import Aws
from resolver_mesh.aws.work import DEPARTED, DEPARTED_SECONDS
from resolver_mesh.local.topology import (
    CachedClients,
    ClientFactory,
    build_hub,
    build_spoke,
    hub_item,
)
from resolver_mesh.models import AccountAccess

# fixtures shared with other modules
__all__ = ["fan_out", "member", "pair", "profile_mesh", "refused_roles"]
STRANGER = "444444444444"  # an account whose role is gone
STRANGER_ROLE = f"arn:aws:iam::{STRANGER}:role/gone"


@pytest.fixture
def stream(pair: Mesh) -> HubsStream:
    return HubsStream(pair.aws, pair.table)


def departed(fan_out: FanOut) -> dict[str, dict[str, Any]]:
    return {
        item["id"]["S"].removeprefix(DEPARTED): item
        for item in fan_out.items()
        if item["id"]["S"].startswith(DEPARTED)
    }


def test_a_spoke_dropped_from_its_item_is_swept_though_nothing_else_names_its_account(
    pair: Mesh, member: CachedClients, fan_out: FanOut, stream: HubsStream
) -> None:
    spoke = build_spoke(member, HOME_REGION, "10.100.0.0/16", "spoke")
    pair.update(HOME_REGION, spokes=[spoke_entry(spoke, "direct")])
    first = invoke(pair, stream.batch())
    assert first["report"]["ok"], first["report"]["errors"]
    assert set(of_vpc(rules_and_vpcs(member), spoke.vpc_id)) == domains("us-east-2")
    assert departed(fan_out) == {}  # an item that names more leads nowhere new

    pair.update(HOME_REGION, spokes=None)  # no item, no setting names the member any more
    result = invoke(pair, stream.batch())
    assert result["batchItemFailures"] == []
    report = result["report"]
    assert report["ok"], report["errors"]
    where = f"{HOME_REGION}@{MEMBER}"
    assert where in report["regions"]
    assert any(where in note and "stopped naming" in note for note in report["notes"])
    assert rules_and_vpcs(member) == {}
    deleted = [c for c in report["changes"] if c["kind"] == "delete_rule"]
    assert {(c["account"], c["source"]) for c in deleted} == {(MEMBER, spoke.vpc_id)}
    [kept] = departed(fan_out).values()  # read with rules of ours in it: kept for one more
    assert kept["role_arn"]["S"] == reach()["role_arn"]

    again = pair.resync()  # read again, nothing of ours there: forgotten
    assert again["ok"], again["errors"]
    assert again["changes"] == []
    assert where in again["regions"]
    assert departed(fan_out) == {}
    last = pair.resync()
    assert where not in last["regions"]  # not read any more


def test_a_removed_member_hub_is_swept_by_the_first_pass_that_reaches_it(
    pair: Mesh,
    aws: ClientFactory,
    member: CachedClients,
    fan_out: FanOut,
    stream: HubsStream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stream's pass cannot reach the member account: the lead stays in the work table,
    and a later pass (a resync here, the schedule in a deployment) finds the removed hub's
    rules there and deletes them."""
    west = build_hub(member, WEST_2, MEMBER_HUB_CIDR)
    pair.put(hub_item(west, **reach()))
    assert invoke(pair, stream.batch())["report"]["ok"]
    assert set(of_vpc(rules_and_vpcs(member, WEST_2), west.vpc_id)) == domains(
        HOME_REGION, "us-east-2"
    )

    pair.remove(WEST_2)
    where = f"{WEST_2}@{MEMBER}"
    reachable = Aws.resolver

    def resolver(self: Aws, region: str) -> ResolverRegion:
        if region == WEST_2 and self.access is not None and self.access.account == MEMBER:
            raise ConnectionError(f"{where} cannot be reached")
        return reachable(self, region)

    monkeypatch.setattr(Aws, "resolver", resolver)
    unreached = invoke(pair, stream.batch())["report"]
    assert not unreached["ok"]
    assert any(where in json.dumps(error) for error in unreached["errors"])
    assert set(departed(fan_out)) == {where}
    assert len(rules_and_vpcs(member, WEST_2)) == 4

    monkeypatch.setattr(Aws, "resolver", reachable)
    plan = pair.plan()  # a plan reads it too
    assert {c["kind"] for c in plan["changes"] if c.get("account") == MEMBER} == {
        "disassociate",
        "delete_rule",
    }
    swept = pair.resync()
    assert swept["ok"], swept["errors"]
    assert rules_and_vpcs(member, WEST_2) == {}
    for region in (HOME_REGION, "us-east-2"):  # nothing forwards to the removed hub
        hub_vpc = pair.hubs[region].vpc_id
        assert not domains(WEST_2) & set(of_vpc(rules_and_vpcs(aws, region), hub_vpc))
    assert set(departed(fan_out)) == {where}
    empty = pair.plan()  # reads it with nothing of ours in it, and writes nothing
    assert where in empty["regions"]
    assert set(departed(fan_out)) == {where}
    assert pair.resync()["changes"] == []
    assert departed(fan_out) == {}


def test_a_lead_is_forgotten_only_once_nothing_of_ours_is_left_there(
    pair: Mesh, member: CachedClients, fan_out: FanOut, stream: HubsStream
) -> None:
    """Spokes of the member in both Regions: one goes while the guard refuses every deletion,
    so its location (still swept: the other spoke names the account) keeps what is there, and
    its lead with it; then the other spoke goes too, and nothing but the first lead leads back
    to the first spoke's rules. Both locations are swept."""
    west = build_spoke(member, "us-east-2", "10.104.0.0/16", "spoke-2")
    home = build_spoke(member, HOME_REGION, "10.100.0.0/16", "spoke-1")
    pair.update(HOME_REGION, spokes=[spoke_entry(home, "direct")])
    pair.update("us-east-2", spokes=[spoke_entry(west, "direct")])
    assert invoke(pair, stream.batch())["report"]["ok"]
    assert len(rules_and_vpcs(member)) == len(rules_and_vpcs(member, "us-east-2")) == 2

    pair.update(HOME_REGION, spokes=None)
    pair.monkeypatch.setenv("MAX_CHANGE_FRACTION", "0")  # any deletion is refused
    pair.monkeypatch.setenv("MIN_RULES_FOR_GUARD", "0")
    refused = invoke(pair, stream.batch())["report"]
    assert refused["refused"], refused
    first = f"{HOME_REGION}@{MEMBER}"
    assert first in refused["regions"]
    assert set(departed(fan_out)) == {first}
    assert len(rules_and_vpcs(member)) == 2

    pair.monkeypatch.delenv("MAX_CHANGE_FRACTION")
    pair.monkeypatch.delenv("MIN_RULES_FOR_GUARD")
    pair.update("us-east-2", spokes=None)  # the member is named nowhere any more
    result = invoke(pair, stream.batch())["report"]
    assert result["ok"], result["errors"]
    assert rules_and_vpcs(member) == rules_and_vpcs(member, "us-east-2") == {}
    assert set(departed(fan_out)) == {first, f"us-east-2@{MEMBER}"}
    assert pair.resync()["changes"] == []
    assert departed(fan_out) == {}


def test_a_lead_noted_again_after_a_pass_read_it_is_not_forgotten_by_that_pass(
    fan_out: FanOut,
) -> None:
    table = fan_out.table()
    where = f"us-east-2@{MEMBER}"
    table.note_departed({where: AccountAccess(account_id=MEMBER, role_arn=reach()["role_arn"])})
    [read] = table.departed().values()
    table.note_departed({where: read.access})  # the item stopped naming it once more
    assert not table.forget_departed(where, read.noted)
    [again] = table.departed().values()
    assert again.access == read.access
    assert again.noted != read.noted
    assert table.forget_departed(where, again.noted)
    assert table.departed() == {}


def test_a_departed_location_that_cannot_be_read_is_an_error_until_it_expires(
    mesh: Mesh, aws: ClientFactory, fan_out: FanOut, refused_roles: RefusedRoles
) -> None:
    """A lead whose account no longer lets the reconciler in is an error naming it in every
    pass, and is kept; once it expires (`DEPARTED_SECONDS`), it is no longer read. It holds
    nothing back: the hub item of its Region is removed, and the home account's rules there
    go (the lead, not they, brings the passes back)."""
    assert mesh.resync()["ok"]
    assert len(rules_and_vpcs(aws, WEST_2)) == 4
    refused_roles.accounts = frozenset({STRANGER})
    table = fan_out.table()
    where = f"{WEST_2}@{STRANGER}"
    access = AccountAccess(account_id=STRANGER, role_arn=STRANGER_ROLE)
    nowhere = f"xx-nowhere-1@{STRANGER}"  # not a Region the account knows: never read
    table.note_departed({where: access, nowhere: access})
    mesh.remove(WEST_2)
    for _ in range(2):
        result = mesh.resync(force=True)
        assert not result["ok"]
        [error] = result["errors"]
        assert (error["kind"], error["region"]) == ("region", where)
        assert "AccessDenied" in error["message"]
        assert nowhere not in result["regions"]
        assert any(n.startswith("not read where") and nowhere in n for n in result["notes"])
        assert set(departed(fan_out)) == {where, nowhere}
        assert rules_and_vpcs(aws, WEST_2) == {}

    table.clock = lambda: time.time() - DEPARTED_SECONDS - 60  # noted a month ago
    table.note_departed({where: access, nowhere: access})
    result = mesh.resync()
    assert result["ok"], result["errors"]
    assert where not in result["regions"]
    assert not any(note.startswith("not read where") for note in result["notes"])


def test_a_removed_member_hubs_profile_goes_with_its_rules(
    profile_mesh: Mesh, member: CachedClients, fan_out: FanOut
) -> None:
    """A hub of a member account that delivered through its Route 53 Profile: once its item is
    gone, the lead brings the passes to its location, where its Profile goes as well as its
    rules, and the lead is forgotten only then. Without a lead, both stayed."""
    stream = HubsStream(profile_mesh.aws, profile_mesh.table)
    first = invoke(profile_mesh, stream.batch())["report"]
    assert first["ok"], first["errors"]
    assert profile_mesh.resync()["ok"]
    assert our_profile(member, MEMBER_REGION)["vpcs"]

    profile_mesh.remove(MEMBER_REGION)
    where = f"{MEMBER_REGION}@{MEMBER}"
    removed = invoke(profile_mesh, stream.batch())["report"]
    assert removed["ok"], removed["errors"]
    assert where in removed["regions"]
    for _ in range(3):  # the passes it takes (Profile first, then the rules)
        if not departed(fan_out):
            break
        assert profile_mesh.resync()["ok"]
    assert departed(fan_out) == {}
    profiles = member("route53profiles", MEMBER_REGION)
    assert profiles.list_profile_associations()["ProfileAssociations"] == []
    assert profiles.list_profiles()["ProfileSummaries"] == []
    assert rules_and_vpcs(member, MEMBER_REGION) == {}
