"""AWS RAM sharing of Resolver rules across accounts, as `mesh_emulator.ram` emulates it.

Account A (moto's default account) owns the rules and shares them through RAM with account B,
reached by assuming a role through the emulator's STS; both talk HTTP to one module-scoped
`ThreadedMotoServer` (reset before every test). One test repeats the core flow in-process.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError

from mesh_emulator import install
from mesh_emulator.ram import arrival_lag
from mesh_emulator.server import LocalEmulator, emulator_environment
from resolver_mesh.local.topology import CachedClients, ClientFactory, HubResources, build_hub

REGION = "us-east-1"
OWNER = "123456789012"
MEMBER = "222222222222"
MEMBER_ROLE = f"arn:aws:iam::{MEMBER}:role/resolver-mesh-member-demo"
DOMAIN = "corp.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEmulator]:
    """The server, with the environment pointing boto3 at it for the whole module."""
    home = tmp_path_factory.mktemp("aws")
    with LocalEmulator() as running, pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("AWS_ENDPOINT_URL_") or name in ("AWS_PROFILE", "AWS_REGION"):
                env.delenv(name)
        env.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
        for name, value in emulator_environment(running.endpoint_url).items():
            env.setenv(name, value)
        yield running


@pytest.fixture(scope="module")
def owner(server: LocalEmulator) -> Iterator[CachedClients]:
    """Clients of account A (the default account of the dummy credentials)."""
    clients = CachedClients(boto3.session.Session(), server.endpoint_url)
    yield clients
    clients.close()


def member_clients(
    owner: ClientFactory, endpoint_url: str | None, core: Any = None
) -> CachedClients:
    """Clients of account B, with the credentials of its role assumed through STS (`core`, a
    botocore session, spares loading the service models again)."""
    credentials = owner("sts", REGION).assume_role(
        RoleArn=MEMBER_ROLE, RoleSessionName="resolver-mesh-test"
    )["Credentials"]
    core = core or botocore.session.get_session()
    core.set_credentials(
        credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
    )
    return CachedClients(
        boto3.session.Session(botocore_session=core, region_name=REGION), endpoint_url
    )


@dataclass
class World:
    """Account A with a hub (and so an OUTBOUND endpoint), account B with a VPC."""

    owner: ClientFactory
    member: ClientFactory
    hub: HubResources
    member_vpc: str

    def rule(self, domain: str = DOMAIN, name: str | None = None) -> dict[str, Any]:
        """A new FORWARD rule of A."""
        rule: dict[str, Any] = self.owner("route53resolver", REGION).create_resolver_rule(
            CreatorRequestId=f"test/{uuid.uuid4().hex}",
            Name=name or f"rule-{uuid.uuid4().hex[:8]}",
            RuleType="FORWARD",
            DomainName=domain,
            TargetIps=[{"Ip": "10.200.0.10", "Port": 53}],
            ResolverEndpointId=self.hub.outbound_endpoint_id,
        )["ResolverRule"]
        return rule

    def share(self, *rules: dict[str, Any], principals: tuple[str, ...] = (MEMBER,)) -> str:
        arn: str = self.owner("ram", REGION).create_resource_share(
            name=f"share-{uuid.uuid4().hex[:8]}",
            resourceArns=[rule["Arn"] for rule in rules],
            principals=list(principals),
        )["resourceShare"]["resourceShareArn"]
        return arn

    def invitations(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.member("ram", REGION).get_resource_share_invitations()[
            "resourceShareInvitations"
        ]
        return found

    def accept(self, share_arn: str) -> dict[str, Any]:
        (invitation,) = [i for i in self.invitations() if i["resourceShareArn"] == share_arn]
        accepted: dict[str, Any] = self.member("ram", REGION).accept_resource_share_invitation(
            resourceShareInvitationArn=invitation["resourceShareInvitationArn"]
        )["resourceShareInvitation"]
        return accepted

    def shared(self, *rules: dict[str, Any]) -> str:
        """Share `rules` with B and accept the invitation."""
        arn = self.share(*rules)
        self.accept(arn)
        return arn


def rules_of(clients: ClientFactory, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """Every rule an account lists, by id (all pages)."""
    pages = clients("route53resolver", REGION).get_paginator("list_resolver_rules")
    return {r["Id"]: r for page in pages.paginate(**kwargs) for r in page["ResolverRules"]}


def associations_of(clients: ClientFactory) -> list[dict[str, Any]]:
    pages = clients("route53resolver", REGION).get_paginator("list_resolver_rule_associations")
    return [a for page in pages.paginate() for a in page["ResolverRuleAssociations"]]


def share_associations(clients: ClientFactory, kind: str, **kwargs: Any) -> list[dict[str, Any]]:
    pages = clients("ram", REGION).get_paginator("get_resource_share_associations")
    return [
        a
        for page in pages.paginate(associationType=kind, **kwargs)
        for a in page["resourceShareAssociations"]
    ]


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def assert_unknown_to_member(world: Any, rule: dict[str, Any]) -> None:
    """The member account neither lists, gets nor can associate `rule`."""
    resolver = world.member("route53resolver", REGION)
    assert rules_of(world.member) == {}
    assert error_of(lambda: resolver.get_resolver_rule(ResolverRuleId=rule["Id"]))[0] == (
        "ResourceNotFoundException"
    )
    code, _ = error_of(
        lambda: resolver.associate_resolver_rule(
            ResolverRuleId=rule["Id"], VPCId=world.member_vpc, Name="not-yet"
        )
    )
    assert code == "ResourceNotFoundException"


@pytest.fixture(scope="module")
def member_core(server: LocalEmulator) -> Any:
    """One botocore session for B's clients: it keeps the service models loaded."""
    return botocore.session.get_session()


@pytest.fixture
def world(server: LocalEmulator, owner: CachedClients, member_core: Any) -> Iterator[World]:
    """A clean emulator; B's role is assumed again (a reset forgets assumed roles)."""
    server.reset()
    member = member_clients(owner, server.endpoint_url, member_core)
    hub = build_hub(owner, REGION, services=())
    vpc_id = member("ec2", REGION).create_vpc(CidrBlock="10.100.0.0/16")["Vpc"]["VpcId"]
    yield World(owner, member, hub, vpc_id)
    member.close()


def test_the_member_role_is_attributed_to_the_member_account(world: World) -> None:
    assert world.owner("sts", REGION).get_caller_identity()["Account"] == OWNER
    assert world.member("sts", REGION).get_caller_identity()["Account"] == MEMBER


def test_a_pending_invitation_hides_the_rule(world: World) -> None:
    rule = world.rule()
    share_arn = world.share(rule)

    (invitation,) = world.invitations()
    assert invitation["status"] == "PENDING"
    assert invitation["resourceShareArn"] == share_arn
    assert invitation["senderAccountId"] == OWNER
    assert invitation["receiverAccountId"] == MEMBER
    assert invitation["resourceShareName"].startswith("share-")
    assert invitation["resourceShareInvitationArn"].startswith(
        f"arn:aws:ram:{REGION}:{OWNER}:resource-share-invitation/"
    )
    assert (
        world.owner("ram", REGION).get_resource_share_invitations()["resourceShareInvitations"]
        == []
    )  # invitations are the receiver's

    pending = world.member("ram", REGION).list_pending_invitation_resources(
        resourceShareInvitationArn=invitation["resourceShareInvitationArn"]
    )["resources"]
    assert [(r["arn"], r["type"]) for r in pending] == [
        (rule["Arn"], "route53resolver:ResolverRule")
    ]

    assert_unknown_to_member(world, rule)
    shared = world.member("ram", REGION).get_resource_shares(resourceOwner="OTHER-ACCOUNTS")
    assert shared["resourceShares"] == []


def test_an_accepted_invitation_shows_the_rule_as_shared_with_me(world: World) -> None:
    rule, private = world.rule(), world.rule("private.example.com")
    share_arn = world.share(rule)

    accepted = world.accept(share_arn)
    assert accepted["status"] == "ACCEPTED"
    assert [i["status"] for i in world.invitations()] == ["ACCEPTED"]

    seen = rules_of(world.member)
    assert list(seen) == [rule["Id"]]
    assert seen[rule["Id"]]["ShareStatus"] == "SHARED_WITH_ME"
    assert seen[rule["Id"]]["OwnerId"] == OWNER
    assert seen[rule["Id"]]["CreatorRequestId"] == rule["CreatorRequestId"]
    assert seen[rule["Id"]]["Arn"] == rule["Arn"]
    got = world.member("route53resolver", REGION).get_resolver_rule(ResolverRuleId=rule["Id"])
    assert got["ResolverRule"] == seen[rule["Id"]]

    own = rules_of(world.owner)
    assert own[rule["Id"]]["ShareStatus"] == "SHARED_BY_ME"
    assert own[rule["Id"]]["CreatorRequestId"] == rule["CreatorRequestId"]
    assert own[private["Id"]]["ShareStatus"] == "NOT_SHARED"

    ram = world.member("ram", REGION)
    (share,) = ram.get_resource_shares(resourceOwner="OTHER-ACCOUNTS")["resourceShares"]
    assert (share["resourceShareArn"], share["owningAccountId"]) == (share_arn, OWNER)
    (resource,) = ram.list_resources(resourceOwner="OTHER-ACCOUNTS")["resources"]
    assert resource["arn"] == rule["Arn"]
    assert resource["type"] == "route53resolver:ResolverRule"
    code, _ = error_of(
        lambda: ram.accept_resource_share_invitation(
            resourceShareInvitationArn=accepted["resourceShareInvitationArn"]
        )
    )
    assert code == "ResourceShareInvitationAlreadyAcceptedException"


def test_the_member_associates_a_shared_rule_with_its_own_vpc(world: World) -> None:
    rule = world.rule()
    world.shared(rule)
    resolver = world.member("route53resolver", REGION)

    association = resolver.associate_resolver_rule(
        ResolverRuleId=rule["Id"], VPCId=world.member_vpc, Name="member-association"
    )["ResolverRuleAssociation"]
    assert association["Status"] == "COMPLETE"
    assert [(a["ResolverRuleId"], a["VPCId"]) for a in associations_of(world.member)] == [
        (rule["Id"], world.member_vpc)
    ]
    assert associations_of(world.owner) == []  # the association is B's

    resolver.disassociate_resolver_rule(ResolverRuleId=rule["Id"], VPCId=world.member_vpc)
    assert associations_of(world.member) == []


def test_with_an_arrival_lag_an_accepted_shares_rules_arrive_only_after_it(world: World) -> None:
    """AWS makes an accepted share's resources available asynchronously: with the knob on, the
    rule stays unknown to the member for the lag after its acceptance, then arrives."""
    rule, later = world.rule(), world.rule("later.example.com")
    resolver = world.member("route53resolver", REGION)
    with arrival_lag(3.0):  # long enough for the calls below on a busy machine
        share_arn = world.share(rule)
        accepted = world.accept(share_arn)
        assert accepted["status"] == "ACCEPTED"
        assert_unknown_to_member(world, rule)
        time.sleep(3.1)  # the lag has passed (whatever the machine's load: time only grows)
        assert list(rules_of(world.member)) == [rule["Id"]]
        resolver.associate_resolver_rule(
            ResolverRuleId=rule["Id"], VPCId=world.member_vpc, Name="on-time"
        )
        # a resource added to a share accepted long ago arrives at once, as on AWS
        world.owner("ram", REGION).associate_resource_share(
            resourceShareArn=share_arn, resourceArns=[later["Arn"]]
        )
        assert set(rules_of(world.member)) == {rule["Id"], later["Id"]}
    assert [(a["ResolverRuleId"], a["VPCId"]) for a in associations_of(world.member)] == [
        (rule["Id"], world.member_vpc)
    ]


def test_without_an_arrival_lag_an_accepted_shares_rules_are_there_at_once(world: World) -> None:
    rule = world.rule()
    with arrival_lag(3600.0):
        pass  # the knob is off again after its block
    world.shared(rule)
    assert list(rules_of(world.member)) == [rule["Id"]]


def test_the_member_cannot_change_or_delete_a_shared_rule(world: World) -> None:
    rule = world.rule()
    world.shared(rule)
    resolver = world.member("route53resolver", REGION)

    code, _ = error_of(
        lambda: resolver.update_resolver_rule(ResolverRuleId=rule["Id"], Config={"Name": "mine"})
    )
    assert code == "AccessDeniedException"
    code, _ = error_of(lambda: resolver.delete_resolver_rule(ResolverRuleId=rule["Id"]))
    assert code == "AccessDeniedException"
    assert rules_of(world.owner)[rule["Id"]]["Name"] == rule["Name"]
    assert rule["Id"] in rules_of(world.member)


def test_a_second_rule_for_the_same_domain_in_a_member_vpc_is_rejected(world: World) -> None:
    first, second = world.rule(), world.rule(f"{DOMAIN}.")
    world.shared(first, second)
    resolver = world.member("route53resolver", REGION)
    resolver.associate_resolver_rule(ResolverRuleId=first["Id"], VPCId=world.member_vpc, Name="a")

    code, message = error_of(
        lambda: resolver.associate_resolver_rule(
            ResolverRuleId=second["Id"], VPCId=world.member_vpc, Name="b"
        )
    )
    assert code == "InvalidRequestException"
    assert "RSLVR-00802" in message
    assert first["Id"] in message

    # ...and the member's own rule for that domain conflicts with the shared one too.
    member_hub = build_hub(world.member, REGION, services=())
    own = world.member("route53resolver", REGION).create_resolver_rule(
        CreatorRequestId=f"test/{uuid.uuid4().hex}",
        Name="member-own",
        RuleType="FORWARD",
        DomainName=DOMAIN,
        TargetIps=[{"Ip": "10.201.0.10", "Port": 53}],
        ResolverEndpointId=member_hub.outbound_endpoint_id,
    )["ResolverRule"]
    assert own["ShareStatus"] == "NOT_SHARED"
    code, message = error_of(
        lambda: resolver.associate_resolver_rule(
            ResolverRuleId=own["Id"], VPCId=world.member_vpc, Name="c"
        )
    )
    assert "RSLVR-00802" in message


def _remove_principal(world: World, share_arn: str, rule: dict[str, Any]) -> None:
    world.owner("ram", REGION).disassociate_resource_share(
        resourceShareArn=share_arn, principals=[MEMBER]
    )


def _remove_resource(world: World, share_arn: str, rule: dict[str, Any]) -> None:
    world.owner("ram", REGION).disassociate_resource_share(
        resourceShareArn=share_arn, resourceArns=[rule["Arn"]]
    )


def _delete_share(world: World, share_arn: str, rule: dict[str, Any]) -> None:
    world.owner("ram", REGION).delete_resource_share(resourceShareArn=share_arn)


def _delete_rule(world: World, share_arn: str, rule: dict[str, Any]) -> None:
    # The owner's delete is not blocked by associations in other accounts.
    world.owner("route53resolver", REGION).delete_resolver_rule(ResolverRuleId=rule["Id"])


def _member_leaves(world: World, share_arn: str, rule: dict[str, Any]) -> None:
    world.member("ram", REGION).disassociate_resource_share(
        resourceShareArn=share_arn, principals=[MEMBER]
    )


@pytest.mark.parametrize(
    "unshare",
    [_remove_principal, _remove_resource, _delete_share, _delete_rule, _member_leaves],
    ids=["principal-removed", "resource-removed", "share-deleted", "rule-deleted", "member-left"],
)
def test_a_rule_no_longer_shared_disappears_with_the_member_associations(
    world: World, unshare: Callable[[World, str, dict[str, Any]], None]
) -> None:
    rule, kept = world.rule(), world.rule("kept.example.com")
    share_arn = world.shared(rule)
    world.shared(kept)
    resolver = world.member("route53resolver", REGION)
    for shared in (rule, kept):
        resolver.associate_resolver_rule(
            ResolverRuleId=shared["Id"], VPCId=world.member_vpc, Name=shared["Name"]
        )

    unshare(world, share_arn, rule)

    assert list(rules_of(world.member)) == [kept["Id"]]
    assert [a["ResolverRuleId"] for a in associations_of(world.member)] == [kept["Id"]]
    assert error_of(lambda: resolver.get_resolver_rule(ResolverRuleId=rule["Id"]))[0] == (
        "ResourceNotFoundException"
    )
    if unshare is not _remove_resource and unshare is not _delete_rule:
        assert share_arn not in {i["resourceShareArn"] for i in world.invitations()}
    owner_view = rules_of(world.owner)
    if unshare is not _delete_rule:
        assert owner_view[rule["Id"]]["ShareStatus"] == "NOT_SHARED"
    assert owner_view[kept["Id"]]["ShareStatus"] == "SHARED_BY_ME"


def test_share_associations_list_resources_and_principals(world: World) -> None:
    first, second = world.rule(), world.rule("second.example.com")
    ram = world.owner("ram", REGION)
    share_arn = world.share(first)

    added = ram.associate_resource_share(
        resourceShareArn=share_arn, resourceArns=[second["Arn"]], principals=["333333333333"]
    )["resourceShareAssociations"]
    assert sorted((a["associationType"], a["associatedEntity"], a["status"]) for a in added) == [
        ("PRINCIPAL", "333333333333", "ASSOCIATING"),
        ("RESOURCE", second["Arn"], "ASSOCIATING"),
    ]

    resources = share_associations(world.owner, "RESOURCE", resourceShareArns=[share_arn])
    assert sorted(a["associatedEntity"] for a in resources) == sorted([first["Arn"], second["Arn"]])
    assert {(a["status"], a["external"], a["resourceShareArn"]) for a in resources} == {
        ("ASSOCIATED", False, share_arn)
    }
    principals = share_associations(world.owner, "PRINCIPAL", resourceShareArns=[share_arn])
    assert sorted(a["associatedEntity"] for a in principals) == [MEMBER, "333333333333"]
    assert {(a["status"], a["external"]) for a in principals} == {("ASSOCIATED", True)}
    one_page = ram.get_resource_share_associations(associationType="RESOURCE", maxResults=1)
    assert len(one_page["resourceShareAssociations"]) == 1
    assert one_page["nextToken"]
    assert share_associations(world.owner, "RESOURCE", resourceArn=second["Arn"]) == [
        a for a in resources if a["associatedEntity"] == second["Arn"]
    ]
    assert share_associations(world.member, "RESOURCE") == []  # B owns no share

    ram.disassociate_resource_share(resourceShareArn=share_arn, resourceArns=[first["Arn"]])
    resources = share_associations(world.owner, "RESOURCE", resourceShareArns=[share_arn])
    assert [a["associatedEntity"] for a in resources] == [second["Arn"]]

    ram.delete_resource_share(resourceShareArn=share_arn)
    (share,) = ram.get_resource_shares(resourceOwner="SELF")["resourceShares"]
    assert share["status"] == "DELETED"
    assert {a["status"] for a in share_associations(world.owner, "PRINCIPAL")} == {"DISASSOCIATED"}
    assert share_associations(world.owner, "RESOURCE", associationStatus="ASSOCIATED") == []
    code, _ = error_of(
        lambda: ram.associate_resource_share(resourceShareArn=share_arn, principals=[MEMBER])
    )
    assert code == "InvalidStateTransitionException"


def test_a_share_keeps_its_tags_and_tag_filters_select_shares(world: World) -> None:
    ram = world.owner("ram", REGION)
    rule = world.rule()

    def create(name: str, tags: list[dict[str, str]]) -> str:
        arn: str = ram.create_resource_share(
            name=name, resourceArns=[rule["Arn"]], principals=[MEMBER], tags=tags
        )["resourceShare"]["resourceShareArn"]
        return arn

    mesh = create("mesh", [{"key": "resolver-mesh:owner", "value": "demo"}])
    other = create("other", [{"key": "resolver-mesh:owner", "value": "other"}])
    create("untagged", [])

    def names(*tag_filters: dict[str, Any]) -> list[str]:
        pages = ram.get_paginator("get_resource_shares").paginate(
            resourceOwner="SELF", tagFilters=list(tag_filters), PaginationConfig={"PageSize": 1}
        )
        return sorted(share["name"] for page in pages for share in page["resourceShares"])

    (described,) = ram.get_resource_shares(resourceOwner="SELF", resourceShareArns=[mesh])[
        "resourceShares"
    ]
    assert described["tags"] == [{"key": "resolver-mesh:owner", "value": "demo"}]
    assert names() == ["mesh", "other", "untagged"]
    assert names({"tagKey": "resolver-mesh:owner", "tagValues": ["demo"]}) == ["mesh"]
    assert names({"tagKey": "resolver-mesh:owner"}) == ["mesh", "other"]
    assert names(
        {"tagKey": "resolver-mesh:owner", "tagValues": ["demo"]},
        {"tagKey": "resolver-mesh:owner", "tagValues": ["other"]},
    ) == ["mesh", "other"]  # several filters match as OR
    assert names({"tagKey": "team", "tagValues": ["demo"]}) == []
    by_name = ram.get_resource_shares(resourceOwner="SELF", name="other")["resourceShares"]
    assert [s["resourceShareArn"] for s in by_name] == [other]


def test_a_share_can_only_hold_rules_of_its_owner(world: World) -> None:
    rule = world.rule()
    world.shared(rule)
    code, _ = error_of(
        lambda: world.member("ram", REGION).create_resource_share(
            name="not-mine", resourceArns=[rule["Arn"]], principals=[OWNER]
        )
    )
    assert code == "UnknownResourceException"


def test_member_listing_pages_and_filters_own_and_shared_rules(world: World) -> None:
    shared = [world.rule(f"d{i}.example.com", name=f"shared-{i}") for i in range(3)]
    world.shared(*shared)
    member_hub = build_hub(world.member, REGION, services=())
    own = world.member("route53resolver", REGION).create_resolver_rule(
        CreatorRequestId=f"test/{uuid.uuid4().hex}",
        Name="member-own",
        RuleType="FORWARD",
        DomainName="own.example.com",
        TargetIps=[{"Ip": "10.201.0.10", "Port": 53}],
        ResolverEndpointId=member_hub.outbound_endpoint_id,
    )["ResolverRule"]

    seen = rules_of(world.member, PaginationConfig={"PageSize": 1})
    assert sorted(seen) == sorted([own["Id"], *(r["Id"] for r in shared)])
    assert seen[own["Id"]]["ShareStatus"] == "NOT_SHARED"
    filtered = rules_of(
        world.member, Filters=[{"Name": "DomainName", "Values": ["d1.example.com."]}]
    )
    assert list(filtered) == [shared[1]["Id"]]
    filtered = rules_of(
        world.member,
        Filters=[{"Name": "ResolverEndpointId", "Values": [world.hub.outbound_endpoint_id]}],
    )
    assert sorted(filtered) == sorted(r["Id"] for r in shared)


def test_the_extensions_also_work_in_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from moto import mock_aws

    install()
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)
    for name, value in emulator_environment("unused").items():
        if name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)
    with mock_aws():
        owner = CachedClients(boto3.session.Session())
        member = member_clients(owner, None)
        hub = build_hub(owner, REGION, services=())
        vpc_id = member("ec2", REGION).create_vpc(CidrBlock="10.100.0.0/16")["Vpc"]["VpcId"]
        world = World(owner, member, hub, vpc_id)
        rule = world.rule()
        world.shared(rule)
        assert rules_of(member)[rule["Id"]]["ShareStatus"] == "SHARED_WITH_ME"
        member("route53resolver", REGION).associate_resolver_rule(
            ResolverRuleId=rule["Id"], VPCId=vpc_id, Name="in-process"
        )
        world.owner("ram", REGION).delete_resource_share(
            resourceShareArn=world.invitations()[0]["resourceShareArn"]
        )
        assert associations_of(member) == []


def organisation_member(world: World, enable_sharing: bool) -> CachedClients:
    """A's organisation (RAM sharing with it enabled, or not) and the clients of an account
    created in it (a botocore session of their own: B keeps its credentials)."""
    organizations = world.owner("organizations", REGION)
    organizations.create_organization(FeatureSet="ALL")
    account = organizations.create_account(Email="m@example.com", AccountName="member")[
        "CreateAccountStatus"
    ]["AccountId"]
    if enable_sharing:
        assert world.owner("ram", REGION).enable_sharing_with_aws_organization()["returnValue"]
    credentials = world.owner("sts", REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/resolver-mesh-member-demo",
        RoleSessionName="resolver-mesh-test",
    )["Credentials"]
    core = botocore.session.get_session()
    core.set_credentials(
        credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
    )
    return CachedClients(boto3.session.Session(botocore_session=core, region_name=REGION), None)


def test_an_organisation_that_shares_without_invitations_makes_rules_available_at_once(
    world: World,
) -> None:
    inside = organisation_member(world, enable_sharing=True)
    account = inside("sts", REGION).get_caller_identity()["Account"]
    rule = world.rule()
    share_arn = world.share(rule, principals=(account, MEMBER))

    # in the organisation: no invitation, the rule is there at once and can be associated
    invitations = inside("ram", REGION).get_resource_share_invitations()
    assert invitations["resourceShareInvitations"] == []
    (seen,) = rules_of(inside).values()
    assert (seen["Id"], seen["ShareStatus"]) == (rule["Id"], "SHARED_WITH_ME")
    vpc = inside("ec2", REGION).create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    inside("route53resolver", REGION).associate_resolver_rule(ResolverRuleId=rule["Id"], VPCId=vpc)
    # outside it (B): an invitation, and nothing until it is accepted
    assert [i["resourceShareArn"] for i in world.invitations()] == [share_arn]
    assert rule["Id"] not in rules_of(world.member)
    # the principal leaves the share: the rule and its association go, as for any principal
    world.owner("ram", REGION).disassociate_resource_share(
        resourceShareArn=share_arn, principals=[account]
    )
    assert rules_of(inside) == {}
    assert associations_of(inside) == []


def test_without_sharing_enabled_an_account_of_the_organisation_is_invited(world: World) -> None:
    inside = organisation_member(world, enable_sharing=False)
    account = inside("sts", REGION).get_caller_identity()["Account"]
    share_arn = world.share(world.rule(), principals=(account,))
    invitations = inside("ram", REGION).get_resource_share_invitations()
    assert [i["resourceShareArn"] for i in invitations["resourceShareInvitations"]] == [share_arn]
    assert rules_of(inside) == {}


def test_only_the_management_account_enables_sharing_with_the_organisation(world: World) -> None:
    code, _ = error_of(lambda: world.member("ram", REGION).enable_sharing_with_aws_organization())
    assert code == "OperationNotPermittedException"


@pytest.mark.parametrize("run", ["first", "after a reset"])
def test_only_the_ram_backends_of_accounts_that_made_a_share_are_looked_in(
    world: World, run: str
) -> None:
    """Reads that look for other accounts' shares (a member's ListResolverRules among them)
    look in the RAM backends of the accounts that made a share in the Region, whatever the
    number of accounts with a RAM backend there: all those with shares, and no other, in the
    order of moto's backends; an account that shared before a reset is not looked in after
    it (its backend is new) until it shares again."""
    from moto.ram.models import ram_backends

    from mesh_emulator.ram import _ram_backends_in

    def with_shares() -> set[str]:
        return {
            account
            for account, per_region in dict.items(ram_backends)
            if (backend := dict.get(per_region, REGION)) is not None and backend.resource_shares
        }

    world.shared(world.rule())  # B accepts: B has a RAM backend there, without shares
    assert REGION in dict.keys(dict.get(ram_backends, MEMBER, {}))
    looked = {account for account, _ in _ram_backends_in(REGION)}
    assert with_shares() == {OWNER} <= looked
    assert MEMBER not in looked
    assert [r["ShareStatus"] for r in rules_of(world.member).values()] == ["SHARED_WITH_ME"]
    world.member("ram", REGION).create_resource_share(name="of-b", principals=[OWNER])
    looked_in = [account for account, _ in _ram_backends_in(REGION)]
    assert with_shares() == {OWNER, MEMBER} <= set(looked_in)
    assert looked_in == [a for a in dict.keys(ram_backends) if a in looked_in]
