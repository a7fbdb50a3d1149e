"""Hubs, spokes and shared VPCs in other accounts, and the safety rules across accounts: the
Lambda handler against the HTTP emulator, the other accounts reached by assuming their roles.

Every assertion reads the live state with plain boto3, in the account that holds it.
"""

from __future__ import annotations

import io
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from meshkit import HOME_REGION, Mesh, normalise, observe_region, targets_of
from test_spokes_accounts import (
    EXTERNAL_ID,
    MEMBER,
    PEER_DOMAINS,
    ROLE,
    member,
    of_vpc,
    rules_and_vpcs,
)

from mesh_emulator.server import LocalEmulator
from resolver_mesh.aws import resolver as resolver_module
from resolver_mesh.aws.session import Aws
from resolver_mesh.local.topology import (
    CachedClients,
    ClientFactory,
    SpokeResources,
    assumed_clients,
    build_hub,
    build_spoke,
    create_unmanaged_rule,
    hub_item,
    spoke_item,
)
from resolver_mesh.names import OWNER_TAG_KEY, share_name

__all__ = ["member"]  # the fixture, shared with test_spokes_accounts

THIRD = "333333333333"
THIRD_ROLE = f"arn:aws:iam::{THIRD}:role/resolver-mesh-member-resolver-mesh"
EAST_2, WEST_2 = "us-east-2", "us-west-2"
REGIONS = (HOME_REGION, EAST_2, WEST_2)
OUR_SHARE = share_name("resolver-mesh")
# Not the home hub's CIDR of us-west-2 (`default_cidr`): its inbound IPs must differ from it.
MEMBER_HUB_CIDR = "10.60.0.0/16"
NO_CHANGES = {"changes": [], "ok": True}


def domains(*regions: str) -> set[str]:
    return {f"{r}.{d}." for r in regions for d in ("amazonaws.com", "vpce.amazonaws.com")}


def reach(account: str = MEMBER) -> dict[str, str]:
    """The item fields that name another account and how to reach it."""
    role = ROLE if account == MEMBER else THIRD_ROLE
    return {"account_id": account, "role_arn": role, "external_id": EXTERNAL_ID}


def spoke_entry(
    spoke: SpokeResources, mode: str, account: str = MEMBER, **extra: Any
) -> dict[str, Any]:
    return spoke_item(spoke, mode, **reach(account), **extra)


def attached_ips(clients: ClientFactory, region: str, endpoint_id: str) -> set[tuple[str, int]]:
    resolver = clients("route53resolver", region)
    ips = resolver.list_resolver_endpoint_ip_addresses(ResolverEndpointId=endpoint_id)
    return {(ip["Ip"], 53) for ip in ips["IpAddresses"] if ip["Status"] == "ATTACHED"}


def snapshot(mesh: Mesh, clients: ClientFactory) -> dict[str, Any]:
    """Every rule and association of an account's Regions (ours or not), for "nothing changed"."""
    return replace(mesh, aws=clients).snapshot()


def untouched(clients: ClientFactory, rule_id: str, region: str = HOME_REGION) -> Any:
    """Everything about a rule that is not ours that a reconcile must never change."""
    resolver = clients("route53resolver", region)
    rule = resolver.get_resolver_rule(ResolverRuleId=rule_id)["ResolverRule"]
    shared = rule.get("ShareStatus") == "SHARED_WITH_ME"  # only the owner reads the tags
    tags = [] if shared else resolver.list_tags_for_resource(ResourceArn=rule["Arn"])["Tags"]
    return rule, observe_region(clients, region).vpcs_of(rule_id), tags


def mesh_account(clients: ClientFactory) -> str:
    return str(clients("sts", HOME_REGION).get_caller_identity()["Account"])


def summary(result: dict[str, Any]) -> dict[str, Any]:
    return {"changes": result["changes"], "ok": result["ok"]}


def shares(clients: ClientFactory, region: str = HOME_REGION) -> dict[str, dict[str, Any]]:
    """The account's own RAM shares by ARN, with what they share and with whom."""
    ram = clients("ram", region)
    found = {}
    for share in ram.get_resource_shares(resourceOwner="SELF")["resourceShares"]:
        entities = {
            kind: {
                a["associatedEntity"]
                for a in ram.get_resource_share_associations(
                    associationType=kind, resourceShareArns=[share["resourceShareArn"]]
                )["resourceShareAssociations"]
                if a["status"] == "ASSOCIATED"
            }
            for kind in ("RESOURCE", "PRINCIPAL")
        }
        found[share["resourceShareArn"]] = {
            "name": share["name"],
            "status": share["status"],
            "tags": share.get("tags", []),
            **entities,
        }
    return found


def invitations(clients: ClientFactory, region: str = HOME_REGION) -> dict[str, str]:
    """The RAM invitations an account received: share ARN -> status."""
    listed = clients("ram", region).get_resource_share_invitations()["resourceShareInvitations"]
    return {i["resourceShareArn"]: i["status"] for i in listed}


@pytest.fixture
def pair(make_mesh: Callable[..., Mesh]) -> Mesh:
    """Two hubs of the home account, us-east-1 (with a workload VPC) and us-east-2: where a third
    would add nothing but time."""
    return make_mesh(regions=(HOME_REGION, EAST_2))


@pytest.fixture
def third(aws: ClientFactory, emulator: LocalEmulator) -> CachedClients:
    """Clients of a third account (333333333333), reached with a role of its own."""
    clients = assumed_clients(aws, THIRD_ROLE, EXTERNAL_ID, emulator.endpoint_url)
    assert clients("sts", HOME_REGION).get_caller_identity()["Account"] == THIRD
    return clients


# --- an account that cannot be reached: STS refuses the role, over real HTTP ----------------------


class RefusedRoles:
    """WSGI middleware in front of the emulator: `sts:AssumeRole` of a role of one of
    `accounts` is answered 403 AccessDenied, as AWS does once the role's trust policy no longer
    lets the reconciler in. `refused` counts the calls refused."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.accounts: frozenset[str] = frozenset()
        self.refused = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        form = urllib.parse.parse_qs(body.decode(errors="replace"))
        role = form.get("RoleArn", [""])[0]
        account = (role.split(":") + [""] * 5)[4]  # arn:aws:iam::<account>:role/<name>
        if form.get("Action") == ["AssumeRole"] and account in self.accounts:
            self.refused += 1
            payload = (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                "<Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized"
                f" to perform: sts:AssumeRole on resource: {role}</Message></Error>"
                "<RequestId>refused</RequestId></ErrorResponse>"
            ).encode()
            start_response(
                "403 Forbidden",
                [("Content-Type", "text/xml"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        return self.app(environ, start_response)


@pytest.fixture
def refused_roles(emulator: LocalEmulator) -> Iterator[RefusedRoles]:
    with emulator.wrapped(RefusedRoles) as refusing:
        yield refusing


# --- 1. a hub in another account ----------------------------------------------------------------


def test_a_hub_in_the_member_account_gets_its_rules_there_and_is_forwarded_to(
    pair: Mesh, aws: ClientFactory, member: CachedClients
) -> None:
    west = build_hub(member, WEST_2, MEMBER_HUB_CIDR)
    pair.put(hub_item(west, **reach()))
    result = pair.resync()
    assert result["ok"], result["errors"]
    assert f"{WEST_2}@{MEMBER}" in result["regions"]

    # Its rules: in the member account, through its outbound endpoint, on its VPC only.
    in_member = rules_and_vpcs(member, WEST_2)
    assert set(of_vpc(in_member, west.vpc_id)) == domains(HOME_REGION, EAST_2)
    for rule in in_member.values():
        assert rule["OwnerId"] == MEMBER
        assert rule["ResolverEndpointId"] == west.outbound_endpoint_id
        assert rule["vpcs"] == {west.vpc_id}
        target = normalise(rule["DomainName"]).split(".")[0]
        assert targets_of(rule) == pair.inbound_ips(target)
    assert rules_and_vpcs(aws, WEST_2) == {}  # nothing in the home account's us-west-2
    assert rules_and_vpcs(member, HOME_REGION) == rules_and_vpcs(member, EAST_2) == {}

    # The other Regions forward us-west-2's names to its inbound IPs in the member account.
    west_ips = attached_ips(member, WEST_2, west.inbound_endpoint_id)
    assert len(west_ips) == 2
    for region in (HOME_REGION, EAST_2):
        hub_rules = of_vpc(rules_and_vpcs(aws, region), pair.hubs[region].vpc_id)
        assert set(hub_rules) == domains(*(r for r in REGIONS if r != region))
        assert all(targets_of(hub_rules[d]) == west_ips for d in domains(WEST_2))
        assert all(r["OwnerId"] != MEMBER for r in hub_rules.values())

    again = pair.resync()
    assert summary(again) == NO_CHANGES
    assert set(again["counts"].values()) == {0}
    assert summary(pair.plan()) == NO_CHANGES

    # The other way round: the member's hub shares its rules with a VPC of the home account.
    home_vpc = aws("ec2", WEST_2).create_vpc(CidrBlock="10.210.0.0/16")["Vpc"]["VpcId"]
    pair.update(WEST_2, shared_vpcs=[{"vpc_id": home_vpc}])
    shared = pair.resync()
    assert shared["ok"], shared["errors"]
    [share] = shares(member, WEST_2).values()
    assert share["name"] == OUR_SHARE
    assert share["PRINCIPAL"] == {mesh_account(aws)}
    received = rules_and_vpcs(aws, WEST_2)
    assert set(received) == set(in_member)
    assert set(of_vpc(received, home_vpc)) == domains(HOME_REGION, EAST_2)
    assert summary(pair.plan()) == NO_CHANGES


def test_moving_a_hub_into_the_member_account_is_guarded_then_retargets_in_place(
    mesh: Mesh, aws: ClientFactory, member: CachedClients
) -> None:
    assert mesh.resync()["ok"]
    assert len(rules_and_vpcs(aws, WEST_2)) == 4
    east_ids = {r["Id"] for r in rules_and_vpcs(aws, HOME_REGION).values()}

    west = build_hub(member, WEST_2, MEMBER_HUB_CIDR)
    mesh.put(hub_item(west, **reach()))
    before = (snapshot(mesh, aws), snapshot(mesh, member))
    # 4 rules deleted in us-west-2 and 4 retargeted elsewhere, of 12: more than half.
    refused = mesh.resync()
    assert refused["refused"], refused
    assert (snapshot(mesh, aws), snapshot(mesh, member)) == before

    moved = mesh.resync(force=True)
    assert moved["ok"], moved["errors"]
    assert rules_and_vpcs(aws, WEST_2) == {}  # the old hub's rules are gone with it
    in_member = rules_and_vpcs(member, WEST_2)
    assert set(of_vpc(in_member, west.vpc_id)) == domains(HOME_REGION, EAST_2)
    west_ips = attached_ips(member, WEST_2, west.inbound_endpoint_id)
    east = of_vpc(rules_and_vpcs(aws, HOME_REGION), mesh.hubs[HOME_REGION].vpc_id)
    assert {r["Id"] for r in east.values()} == east_ids  # retargeted in place, not re-created
    assert all(targets_of(east[d]) == west_ips for d in domains(WEST_2))
    assert summary(mesh.plan()) == NO_CHANGES


# --- 2. a central spoke in another account --------------------------------------------------------


def test_a_central_member_spoke_forwards_its_parent_domain_to_its_hub(
    pair: Mesh, aws: ClientFactory, member: CachedClients
) -> None:
    spoke = build_spoke(member, HOME_REGION, "10.100.0.0/16", "central")
    build_spoke(member, HOME_REGION, "10.104.0.0/16", "bystander")  # another VPC of the member
    pair.update(HOME_REGION, spokes=[spoke_entry(spoke, "central", parent_domain="AmazonAWS.com")])
    result = pair.resync()
    assert result["ok"], result["errors"]

    seen = observe_region(member, HOME_REGION)
    [rule] = seen.rules
    assert normalise(rule["DomainName"]) == "amazonaws.com."
    assert rule["OwnerId"] == MEMBER
    assert rule["ResolverEndpointId"] == spoke.outbound_endpoint_id
    assert targets_of(rule) == pair.inbound_ips(HOME_REGION)  # its own Region's hub
    assert [a["VPCId"] for a in seen.associations] == [spoke.vpc_id]  # not the bystander
    assert observe_region(member, EAST_2).rules == ()

    home = rules_and_vpcs(aws)
    assert set(of_vpc(home, pair.hubs[HOME_REGION].vpc_id)) == domains(EAST_2)
    assert "amazonaws.com." not in {normalise(r["DomainName"]) for r in home.values()}
    assert summary(pair.resync()) == NO_CHANGES

    # A new inbound IP of the hub is written into the spoke's rule in place, in the member.
    hub = pair.hubs[HOME_REGION]
    aws("route53resolver", HOME_REGION).associate_resolver_endpoint_ip_address(
        ResolverEndpointId=hub.inbound_endpoint_id,
        IpAddress={"SubnetId": hub.subnet_ids[0], "Ip": "10.0.0.99"},
    )
    followed = pair.resync()
    assert followed["ok"], followed["errors"]
    [after] = observe_region(member, HOME_REGION).rules
    assert after["Id"] == rule["Id"]
    assert targets_of(after) == pair.inbound_ips(HOME_REGION) >= {("10.0.0.99", 53)}
    assert summary(pair.plan()) == NO_CHANGES


# --- 3. safety across accounts --------------------------------------------------------------------


def test_removing_member_spokes_in_bulk_is_refused_unless_forced(
    pair: Mesh, aws: ClientFactory, member: CachedClients
) -> None:
    east_1a, east_1b, east_2 = (
        build_spoke(member, region, f"10.{100 + 4 * n}.0.0/16", f"spoke-{n}")
        for n, region in enumerate((HOME_REGION, HOME_REGION, EAST_2))
    )
    pair.update(HOME_REGION, spokes=[spoke_entry(s, "direct") for s in (east_1a, east_1b)])
    pair.update(EAST_2, spokes=[spoke_entry(east_2, "direct")])
    assert pair.resync()["ok"]
    assert set(of_vpc(rules_and_vpcs(member), east_1b.vpc_id)) == domains(EAST_2)
    assert set(of_vpc(rules_and_vpcs(member, EAST_2), east_2.vpc_id)) == domains(HOME_REGION)
    pair.monkeypatch.setenv("MIN_RULES_FOR_GUARD", "5")
    pair.monkeypatch.setenv("MAX_CHANGE_FRACTION", "0.4")

    # One spoke of three goes: 2 of the 10 managed rules, under the guard's 40%.
    pair.update(HOME_REGION, spokes=[spoke_entry(east_1a, "direct")])
    one = pair.resync()
    assert one["ok"], one
    assert one["counts"]["delete_rule"] == 2
    assert of_vpc(rules_and_vpcs(member), east_1b.vpc_id) == {}

    # The other two: 4 of 8, all of them in the member account.
    before = (snapshot(pair, aws), snapshot(pair, member))
    pair.update(HOME_REGION, spokes=[spoke_entry(east_1a, "direct", enabled=False)])
    pair.update(EAST_2, spokes=[spoke_entry(east_2, "direct", enabled=False)])
    refused = pair.resync()
    assert not refused["ok"]
    assert not refused["applied"]
    assert len(refused["refused"]) == 1
    assert "delete 4 " in refused["refused"][0]
    assert (snapshot(pair, aws), snapshot(pair, member)) == before
    assert pair.plan()["refused"] == refused["refused"]

    forced = pair.resync(force=True)
    assert forced["ok"], forced["errors"]
    assert forced["forced_past"] == refused["refused"]
    assert forced["counts"]["delete_rule"] == 4
    assert rules_and_vpcs(member) == rules_and_vpcs(member, EAST_2) == {}
    assert snapshot(pair, aws) == before[0]  # the hubs' rules did not move
    assert summary(pair.plan()) == NO_CHANGES


def test_rules_of_others_in_the_member_account_are_never_touched(
    pair: Mesh, member: CachedClients
) -> None:
    spoke = build_spoke(member, HOME_REGION, "10.100.0.0/16", "spoke")
    other = build_spoke(member, HOME_REGION, "10.104.0.0/16", "someone-else")

    def by_hand(domain: str, ip: str, vpc_id: str | None = None) -> str:
        endpoint = other.outbound_endpoint_id
        return create_unmanaged_rule(member, HOME_REGION, domain, endpoint, ip, vpc_id, "theirs")

    elsewhere = by_hand("us-east-2.amazonaws.com", "10.9.9.9", other.vpc_id)
    on_spoke = by_hand("us-east-2.vpce.amazonaws.com", "10.9.9.10", spoke.vpc_id)
    idle = by_hand("us-east-2.amazonaws.com", "10.9.9.11")
    theirs = (elsewhere, on_spoke, idle)
    before = [untouched(member, rule_id) for rule_id in theirs]

    pair.update(HOME_REGION, spokes=[spoke_entry(spoke, "direct")])
    result = pair.resync()
    assert not result["ok"]
    assert [(c["domain"], c["vpc_id"], c["their_rule_id"]) for c in result["conflicts"]] == [
        ("us-east-2.vpce.amazonaws.com.", spoke.vpc_id, on_spoke)
    ]
    assert f"{HOME_REGION}@{MEMBER}" in result["conflicts"][0]["message"]
    assert [untouched(member, rule_id) for rule_id in theirs] == before
    ours = of_vpc(rules_and_vpcs(member), spoke.vpc_id)
    assert set(ours) == {"us-east-2.amazonaws.com."}  # the other domain stays with theirs
    assert all(r["ResolverEndpointId"] == spoke.outbound_endpoint_id for r in ours.values())

    # Adoption never takes over a spoke's domain; a forced removal deletes only ours.
    pair.monkeypatch.setenv("ADOPT_UNMANAGED", "true")
    adopting = pair.resync()
    assert [c["their_rule_id"] for c in adopting["conflicts"]] == [on_spoke]
    assert adopting["counts"]["adopt_rule"] == 0
    pair.update(HOME_REGION, spokes=[spoke_entry(spoke, "direct", enabled=False)])
    assert pair.resync(force=True)["errors"] == []
    assert rules_and_vpcs(member) == {}
    assert [untouched(member, rule_id) for rule_id in theirs] == before


def test_a_conflict_in_the_member_account_is_reported_at_its_location(
    pair: Mesh, member: CachedClients
) -> None:
    """Reports name locations `region@account`; a conflict's structured fields must too, or a
    consumer of `conflicts` looks for the rule in the home account's Region."""
    spoke = build_spoke(member, HOME_REGION, "10.100.0.0/16", "spoke")
    theirs = create_unmanaged_rule(
        member,
        HOME_REGION,
        "us-east-2.amazonaws.com",
        spoke.outbound_endpoint_id,
        "10.9.9.9",
        vpc_id=spoke.vpc_id,
    )
    pair.update(HOME_REGION, spokes=[spoke_entry(spoke, "direct")])
    [conflict] = pair.plan()["conflicts"]
    assert conflict["their_rule_id"] == theirs
    where = (conflict["region"], conflict.get("account"))
    assert where in ((f"{HOME_REGION}@{MEMBER}", None), (HOME_REGION, MEMBER)), conflict


def test_an_unreachable_member_account_changes_nothing_there_and_home_converges(
    pair: Mesh, aws: ClientFactory, member: CachedClients, refused_roles: RefusedRoles
) -> None:
    west = build_hub(member, WEST_2, MEMBER_HUB_CIDR)
    pair.put(hub_item(west, **reach()))
    spoke = build_spoke(member, HOME_REGION, "10.100.0.0/16", "spoke")
    pair.update(HOME_REGION, spokes=[spoke_entry(spoke, "central")])
    assert pair.resync()["ok"]
    in_member = snapshot(pair, member)
    assert len(rules_and_vpcs(member)) == 4
    home_before = rules_and_vpcs(aws)

    # The role no longer lets the reconciler in (a cold start: no credentials cached), while
    # the spoke is withdrawn and a workload VPC joins the home hub.
    refused_roles.accounts = frozenset({MEMBER})
    pair.monkeypatch.setattr("app._aws", None)  # the Lambda module, as meshkit imports it
    workload = aws("ec2", HOME_REGION).create_vpc(CidrBlock="10.3.0.0/16")["Vpc"]["VpcId"]
    vpc_ids = [*pair.items[HOME_REGION]["vpc_ids"], workload]
    pair.update(HOME_REGION, vpc_ids=vpc_ids, spokes=[spoke_entry(spoke, "central", enabled=False)])
    result = pair.resync()

    assert refused_roles.refused > 0  # the real AssumeRole was made, and refused
    assert not result["ok"]
    unreadable = {e["region"] for e in result["errors"] if e["kind"] == "region"}
    assert {f"{HOME_REGION}@{MEMBER}", f"{WEST_2}@{MEMBER}"} <= unreadable
    assert all(where.endswith(f"@{MEMBER}") for where in unreadable), result["errors"]
    assert all("AccessDenied" in e["message"] for e in result["errors"]), result["errors"]
    # One error per location whose rules it holds; not one more per swept Region (tags only).
    assert {e["kind"] for e in result["errors"]} == {"region"}
    assert [c for c in result["changes"] if c.get("account")] == []
    assert snapshot(pair, member) == in_member
    assert any(f"hub {WEST_2}" in d for d in result["degraded"]), result["degraded"]

    # At home: the new VPC got every rule of us-east-1, the rules to the unreadable hub kept.
    home = rules_and_vpcs(aws)
    assert set(home) == set(home_before)
    assert set(of_vpc(home, workload)) == PEER_DOMAINS
    assert {i: targets_of(r) for i, r in home.items()} == {
        i: targets_of(r) for i, r in home_before.items()
    }
    west_ips = attached_ips(member, WEST_2, west.inbound_endpoint_id)
    east_2 = of_vpc(rules_and_vpcs(aws, EAST_2), pair.hubs[EAST_2].vpc_id)
    assert all(targets_of(east_2[d]) == west_ips for d in domains(WEST_2))
    assert pair.plan()["changes"] == []

    # Let in again, in the same warm environment: the withdrawn spoke's rules go.
    refused_roles.accounts = frozenset()
    back = pair.resync()
    assert back["ok"], back["errors"]
    assert rules_and_vpcs(member) == {}
    assert summary(pair.plan()) == NO_CHANGES


def test_a_share_not_tagged_as_ours_is_left_alone_when_ours_is_withdrawn(
    pair: Mesh, aws: ClientFactory, member: CachedClients, third: CachedClients
) -> None:
    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    assert pair.resync()["ok"]
    rule_arn = next(iter(rules_and_vpcs(aws).values()))["Arn"]
    ram = aws("ram", HOME_REGION)
    # By hand, before the mesh shares anything: one of our rules under our share's very name,
    # and a share tagged by another mesh.
    by_hand = ram.create_resource_share(
        name=OUR_SHARE, resourceArns=[rule_arn], principals=[THIRD], allowExternalPrincipals=True
    )["resourceShare"]["resourceShareArn"]
    other_mesh = ram.create_resource_share(
        name=share_name("other-mesh"),
        principals=[THIRD],
        tags=[{"key": OWNER_TAG_KEY, "value": "other-mesh"}],
    )["resourceShare"]["resourceShareArn"]
    theirs = shares(aws)
    assert set(theirs) == {by_hand, other_mesh}

    pair.update(HOME_REGION, shared_vpcs=[{"vpc_id": vpc, **reach()}])
    shared = pair.resync()
    assert shared["ok"], shared["errors"]
    [ours] = set(shares(aws)) - set(theirs)
    assert shares(aws)[ours]["PRINCIPAL"] == {MEMBER}
    assert set(of_vpc(rules_and_vpcs(member), vpc)) == domains(EAST_2)
    assert {arn: s for arn, s in shares(aws).items() if arn in theirs} == theirs

    pair.update(HOME_REGION, shared_vpcs=None)
    withdrawn = pair.resync()
    assert withdrawn["ok"], withdrawn["errors"]
    assert [c["share_arn"] for c in withdrawn["changes"] if "share" in c["kind"]] == [ours]
    after = shares(aws)
    assert after.pop(ours)["status"] == "DELETED"
    assert after == theirs
    assert invitations(third) == {by_hand: "PENDING", other_mesh: "PENDING"}
    assert rules_and_vpcs(member) == {}
    assert summary(pair.plan()) == NO_CHANGES


def stranger_share(third: CachedClients, to: str, marker: str | None = None) -> tuple[str, str]:
    """A rule of the third account for us-east-2.amazonaws.com, shared with `to` under our
    share's name: (rule id, share ARN). `marker`: a CreatorRequestId that forges ours."""
    stranger = build_spoke(third, HOME_REGION, "10.150.0.0/16", "stranger")
    rule = third("route53resolver", HOME_REGION).create_resolver_rule(
        CreatorRequestId=marker or "stranger-rule",
        Name="stranger",
        RuleType="FORWARD",
        DomainName="us-east-2.amazonaws.com",
        TargetIps=[{"Ip": "10.150.0.53", "Port": 53}],
        ResolverEndpointId=stranger.outbound_endpoint_id,
    )["ResolverRule"]
    share = third("ram", HOME_REGION).create_resource_share(
        name=OUR_SHARE, resourceArns=[rule["Arn"]], principals=[to], allowExternalPrincipals=True
    )["resourceShare"]["resourceShareArn"]
    return str(rule["Id"]), str(share)


def test_a_stranger_invitation_under_our_share_name_is_not_accepted(
    pair: Mesh, aws: ClientFactory, member: CachedClients, third: CachedClients
) -> None:
    _, stranger = stranger_share(third, MEMBER)
    assert invitations(member) == {stranger: "PENDING"}
    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    pair.update(HOME_REGION, shared_vpcs=[{"vpc_id": vpc, **reach()}])
    result = pair.resync()
    assert result["ok"], result["errors"]

    [ours] = shares(aws)
    assert invitations(member) == {ours: "ACCEPTED", stranger: "PENDING"}
    accepted = [c for c in result["changes"] if c["kind"] == "accept_share"]
    assert [c["status"] for c in accepted] == ["applied"]
    seen = rules_and_vpcs(member)
    assert {r["OwnerId"] for r in seen.values()} == {mesh_account(aws)}
    assert set(of_vpc(seen, vpc)) == domains(EAST_2)
    assert summary(pair.plan()) == NO_CHANGES


def test_an_untagged_share_of_the_home_account_is_not_accepted_in_the_member(
    pair: Mesh, aws: ClientFactory, member: CachedClients
) -> None:
    """A share is ours only by its owner tag: an invitation to a share made by hand in the hub's
    account, under our share's name, is not the mesh's to accept."""
    assert pair.resync()["ok"]
    by_hand = aws("ram", HOME_REGION).create_resource_share(
        name=OUR_SHARE, principals=[MEMBER], allowExternalPrincipals=True
    )["resourceShare"]["resourceShareArn"]
    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    pair.update(HOME_REGION, shared_vpcs=[{"vpc_id": vpc, **reach()}])
    assert pair.resync()["ok"]
    assert set(of_vpc(rules_and_vpcs(member), vpc)) == domains(EAST_2)
    assert invitations(member)[by_hand] == "PENDING"


def test_a_stranger_rule_that_forges_our_marker_is_neither_used_nor_touched(
    pair: Mesh, aws: ClientFactory, member: CachedClients, third: CachedClients
) -> None:
    """The member's administrator accepted a third account's share by hand and uses its rule in
    a VPC of their own; its CreatorRequestId looks like ours. In the member, only the rules of
    the hub's account are the mesh's to associate or disassociate."""
    forged = "resolver-mesh/resolver-mesh/us-east-2/forged"
    stranger_rule, stranger = stranger_share(third, MEMBER, marker=forged)
    ram = member("ram", HOME_REGION)
    [invitation] = ram.get_resource_share_invitations()["resourceShareInvitations"]
    ram.accept_resource_share_invitation(
        resourceShareInvitationArn=invitation["resourceShareInvitationArn"]
    )
    own_vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.220.0.0/16")["Vpc"]["VpcId"]
    member("route53resolver", HOME_REGION).associate_resolver_rule(
        ResolverRuleId=stranger_rule, VPCId=own_vpc, Name="by-hand"
    )
    before = untouched(member, stranger_rule)

    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    pair.update(HOME_REGION, shared_vpcs=[{"vpc_id": vpc, **reach()}])
    result = pair.resync()
    assert invitations(member)[stranger] == "ACCEPTED"
    stranger_changes = [c for c in result["changes"] if c.get("rule_id") == stranger_rule]
    assert stranger_changes == [], "the mesh changed the associations of a stranger's rule"
    assert untouched(member, stranger_rule) == before
    used = of_vpc(rules_and_vpcs(member), vpc)
    assert set(used) == domains(EAST_2)
    assert {r["OwnerId"] for r in used.values()} == {mesh_account(aws)}
    assert result["ok"], result["errors"]


def test_rules_of_an_account_no_item_names_any_more_are_removed_when_it_is_listed(
    pair: Mesh, member: CachedClients
) -> None:
    """The last entry naming an account goes: with the account in MEMBER_ROLES it is still
    swept, and what the entry left there is removed."""
    pair.monkeypatch.setenv("MEMBER_ROLES", f"{ROLE}|{EXTERNAL_ID}")
    spoke = build_spoke(member, HOME_REGION, "10.100.0.0/16", "spoke")
    pair.update(HOME_REGION, spokes=[spoke_entry(spoke, "direct")])
    assert pair.resync()["ok"]
    assert len(rules_and_vpcs(member)) == 2

    pair.update(HOME_REGION, spokes=None)  # as a spoke of the home account is removed
    result = pair.resync()
    assert result["ok"], result["errors"]
    assert f"{HOME_REGION}@{MEMBER}" in result["regions"]
    assert rules_and_vpcs(member) == {}
    deleted = [c for c in result["changes"] if c["kind"] == "delete_rule"]
    assert {(c["account"], c["source"]) for c in deleted} == {(MEMBER, spoke.vpc_id)}


def test_a_member_spoke_in_a_removed_hubs_region_is_swept_once_its_location_is_read(
    mesh: Mesh, member: CachedClients, aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub item of us-west-2 goes in a pass that cannot read the member's location there.
    No item leads there any more: only our rules do. So the home account's rules of ours there
    stay (they forward to hubs that stay), and the next pass comes back to the Region and
    removes the member's spoke rules with them."""
    mesh.monkeypatch.setenv("MEMBER_ROLES", f"{ROLE}|{EXTERNAL_ID}")
    spoke = build_spoke(member, WEST_2, "10.100.0.0/16", "spoke")
    mesh.update(WEST_2, spokes=[spoke_entry(spoke, "direct")])
    assert mesh.resync()["ok"]
    assert set(of_vpc(rules_and_vpcs(member, WEST_2), spoke.vpc_id)) == domains(HOME_REGION, EAST_2)
    home_there = rules_and_vpcs(aws, WEST_2)
    assert len(home_there) == 4

    mesh.remove(WEST_2)
    unreachable = f"{WEST_2}@{MEMBER}"
    reachable = Aws.resolver

    def resolver(self: Aws, region: str) -> resolver_module.ResolverRegion:
        if region == WEST_2 and self.access is not None and self.access.account == MEMBER:
            raise ConnectionError(f"{unreachable} cannot be reached")
        return reachable(self, region)

    monkeypatch.setattr(Aws, "resolver", resolver)
    first = mesh.resync()
    assert not first["ok"]
    assert any(unreachable in str(error) for error in first["errors"])
    assert set(rules_and_vpcs(aws, WEST_2)) == set(home_there)  # kept
    kept = [n for n in first["notes"] if n.startswith(f"{WEST_2}: kept") and unreachable in n]
    assert len(kept) == 4
    for region in (HOME_REGION, EAST_2):  # nothing forwards to the removed hub any more
        assert not domains(WEST_2) & set(
            of_vpc(rules_and_vpcs(aws, region), mesh.hubs[region].vpc_id)
        )

    monkeypatch.setattr(Aws, "resolver", reachable)
    second = mesh.resync()
    assert second["ok"], second["errors"]
    assert unreachable in second["regions"]
    assert rules_and_vpcs(member, WEST_2) == {}
    assert rules_and_vpcs(aws, WEST_2) == {}
    again = mesh.resync()
    assert again["ok"]
    assert again["changes"] == []
    assert unreachable not in again["regions"]  # nothing of ours leads there any more


# --- 4. another account on each side, at once -----------------------------------------------------


def test_a_member_shared_vpc_and_a_third_account_spoke_converge_together(
    mesh: Mesh, aws: ClientFactory, member: CachedClients, third: CachedClients
) -> None:
    vpc = member("ec2", HOME_REGION).create_vpc(CidrBlock="10.200.0.0/16")["Vpc"]["VpcId"]
    spoke = build_spoke(third, HOME_REGION, "10.100.0.0/16", "third-spoke")
    mesh.update(
        HOME_REGION,
        shared_vpcs=[{"vpc_id": vpc, **reach(MEMBER)}],
        spokes=[spoke_entry(spoke, "direct", THIRD)],
    )
    result = mesh.resync()
    assert result["ok"], result["errors"]
    assert {f"{HOME_REGION}@{MEMBER}", f"{HOME_REGION}@{THIRD}"} <= set(result["regions"])

    hub_rules = of_vpc(rules_and_vpcs(aws), mesh.hubs[HOME_REGION].vpc_id)
    seen = rules_and_vpcs(member)
    assert set(seen) == {r["Id"] for r in hub_rules.values()}
    assert all(r["ShareStatus"] == "SHARED_WITH_ME" for r in seen.values())
    assert set(of_vpc(seen, vpc)) == PEER_DOMAINS

    in_third = rules_and_vpcs(third)
    spoke_rules = of_vpc(in_third, spoke.vpc_id)
    assert set(spoke_rules) == PEER_DOMAINS
    for domain, rule in spoke_rules.items():
        assert rule["OwnerId"] == THIRD
        assert rule["ResolverEndpointId"] == spoke.outbound_endpoint_id
        assert rule["vpcs"] == {spoke.vpc_id}
        assert targets_of(rule) == targets_of(hub_rules[domain])  # the peer hubs' inbound IPs
    assert set(in_third) == {r["Id"] for r in spoke_rules.values()}
    assert shares(third) == {}  # nothing is shared from the spoke's account
    assert invitations(third) == {}  # nor with it

    assert summary(mesh.plan()) == NO_CHANGES
    assert summary(mesh.resync()) == NO_CHANGES
