"""The Route 53 Profiles emulator (`mesh_emulator.route53profiles`).

Most tests run in-process under `mock_aws` (account A is moto's default account; account B is
reached by assuming a role through moto's STS); the last ones go through the session's
`ThreadedMotoServer` on 127.0.0.1 (the `aws` fixture of tests/conftest.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from mesh_emulator import install, route53profiles
from mesh_emulator.route53profiles import SETTINGS, rule_for
from resolver_mesh.local.topology import ClientFactory

REGION = "us-east-1"
OWNER = "123456789012"
MEMBER = "222222222222"
Clients = Callable[[str], Any]


@pytest.fixture
def aws_in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Clients]:
    """moto in-process with the Profiles emulator (and the RAM one); yields clients of A."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    install()
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


def member(clients: Clients) -> Clients:
    """Clients of account B (credentials of a role assumed in B)."""
    credentials = clients("sts").assume_role(
        RoleArn=f"arn:aws:iam::{MEMBER}:role/member", RoleSessionName="test"
    )["Credentials"]
    return lambda service: boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def error_of(call: Callable[[], Any]) -> dict[str, Any]:
    with pytest.raises(ClientError) as raised:
        call()
    error: dict[str, Any] = raised.value.response["Error"]
    return error


def new_vpc(clients: Clients) -> str:
    vpc_id: str = clients("ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    return vpc_id


def new_rule(clients: Clients, domain: str, name: str = "rule") -> dict[str, Any]:
    rule: dict[str, Any] = clients("route53resolver").create_resolver_rule(
        CreatorRequestId=f"{name}-{domain}", Name=name, RuleType="SYSTEM", DomainName=domain
    )["ResolverRule"]
    return rule


def new_profile(clients: Clients, name: str = "mesh") -> dict[str, Any]:
    profile: dict[str, Any] = clients("route53profiles").create_profile(
        Name=name, ClientToken=f"token-{name}"
    )["Profile"]
    return profile


def share_with_member(clients: Clients, profile: dict[str, Any], accepted: bool = True) -> None:
    """Share the Profile with account B through RAM; B accepts the invitation (unless not
    `accepted`: then the share is made only, once)."""
    ram = clients("ram")
    shares = ram.get_resource_shares(resourceOwner="SELF", name="profiles")["resourceShares"]
    share_arn = (
        shares[0]["resourceShareArn"]
        if shares
        else ram.create_resource_share(
            name="profiles", resourceArns=[profile["Arn"]], principals=[MEMBER]
        )["resourceShare"]["resourceShareArn"]
    )
    if not accepted:
        return
    b = member(clients)
    invitation = b("ram").get_resource_share_invitations(resourceShareArns=[share_arn])[
        "resourceShareInvitations"
    ][0]
    b("ram").accept_resource_share_invitation(
        resourceShareInvitationArn=invitation["resourceShareInvitationArn"]
    )


# --- Profiles ----------------------------------------------------------------------------------


def test_create_profile_gives_ids_and_arns_of_aws_form_and_is_idempotent(
    aws_in_process: Clients,
) -> None:
    profiles = aws_in_process("route53profiles")
    profile = profiles.create_profile(Name="mesh hub", ClientToken="t-1")["Profile"]

    assert re.fullmatch(r"rp-[0-9a-f]{17}", profile["Id"])
    assert profile["Arn"] == f"arn:aws:route53profiles:{REGION}:{OWNER}:profile/{profile['Id']}"
    assert (profile["Status"], profile["ShareStatus"], profile["OwnerId"]) == (
        "COMPLETE",
        "NOT_SHARED",
        OWNER,
    )
    again = profiles.create_profile(Name="mesh hub", ClientToken="t-1")["Profile"]
    assert again["Id"] == profile["Id"]
    assert [p["Id"] for p in profiles.list_profiles()["ProfileSummaries"]] == [profile["Id"]]
    assert profiles.get_profile(ProfileId=profile["Id"])["Profile"]["Name"] == "mesh hub"


def test_a_client_token_reused_with_another_name_is_refused(aws_in_process: Clients) -> None:
    profiles = aws_in_process("route53profiles")
    profiles.create_profile(Name="one", ClientToken="t-1")

    error = error_of(lambda: profiles.create_profile(Name="two", ClientToken="t-1"))

    assert error["Code"] == "InvalidParameterException"
    assert "t-1" in error["Message"]


@pytest.mark.parametrize("name", ["12345", "has.dot", "x" * 65])
def test_bad_names_are_validation_errors_naming_the_field(
    aws_in_process: Clients, name: str
) -> None:
    profiles = aws_in_process("route53profiles")

    error = error_of(lambda: profiles.create_profile(Name=name, ClientToken="t"))

    assert error["Code"] == "ValidationException"
    assert "'name'" in error["Message"]
    assert profiles.list_profiles()["ProfileSummaries"] == []


def test_profiles_are_per_account_and_region(aws_in_process: Clients) -> None:
    profile = new_profile(aws_in_process)
    west = boto3.client("route53profiles", region_name="us-west-2")

    assert error_of(lambda: west.get_profile(ProfileId=profile["Id"]))["Code"] == (
        "ResourceNotFoundException"
    )
    assert member(aws_in_process)("route53profiles").list_profiles()["ProfileSummaries"] == []


def test_list_profiles_pages_with_next_token(aws_in_process: Clients) -> None:
    profiles = aws_in_process("route53profiles")
    created = {new_profile(aws_in_process, f"p{i}")["Id"] for i in range(5)}

    seen, token, pages = [], None, 0
    while True:
        page = profiles.list_profiles(MaxResults=2, **({"NextToken": token} if token else {}))
        seen += [p["Id"] for p in page["ProfileSummaries"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break

    assert (sorted(seen), pages) == (sorted(created), 3)
    bad = error_of(lambda: profiles.list_profiles(NextToken="not-a-token"))
    assert bad["Code"] == "InvalidNextTokenException"


def test_max_results_outside_1_to_100_is_a_validation_error() -> None:
    with pytest.raises(route53profiles.ProfilesError) as raised:
        route53profiles._page([1, 2], None, 101)
    assert raised.value.code == "ValidationException"


def test_tags_of_profiles_and_associations(aws_in_process: Clients) -> None:
    profiles = aws_in_process("route53profiles")
    arn = profiles.create_profile(Name="p", ClientToken="t", Tags=[{"Key": "a", "Value": "1"}])[
        "Profile"
    ]["Arn"]

    profiles.tag_resource(ResourceArn=arn, Tags={"b": "2"})
    profiles.untag_resource(ResourceArn=arn, TagKeys=["a"])

    assert profiles.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"b": "2"}
    unknown = arn.replace("profile/rp-", "profile/rp-0")
    assert error_of(lambda: profiles.list_tags_for_resource(ResourceArn=unknown))["Code"] == (
        "ResourceNotFoundException"
    )
    profile_id = arn.rsplit("/", 1)[1]
    association = profiles.associate_profile(
        Name="a",
        ProfileId=profile_id,
        ResourceId=new_vpc(aws_in_process),
        Tags=[{"Key": "k", "Value": "v"}],
    )["ProfileAssociation"]
    association_arn = (
        f"arn:aws:route53profiles:{REGION}:{OWNER}:profile-association/{association['Id']}"
    )
    assert profiles.list_tags_for_resource(ResourceArn=association_arn)["Tags"] == {"k": "v"}


# --- Profile to VPC ----------------------------------------------------------------------------


def test_one_profile_per_vpc(aws_in_process: Clients) -> None:
    profiles = aws_in_process("route53profiles")
    first, second = new_profile(aws_in_process, "first"), new_profile(aws_in_process, "second")
    vpc_id = new_vpc(aws_in_process)
    association = profiles.associate_profile(Name="a", ProfileId=first["Id"], ResourceId=vpc_id)[
        "ProfileAssociation"
    ]

    error = error_of(
        lambda: profiles.associate_profile(Name="b", ProfileId=second["Id"], ResourceId=vpc_id)
    )

    assert re.fullmatch(r"rpassoc-[0-9a-f]{17}", association["Id"])
    assert error["Code"] == "ResourceExistsException"
    assert vpc_id in error["Message"]
    listed = profiles.list_profile_associations(ResourceId=vpc_id)["ProfileAssociations"]
    assert [a["ProfileId"] for a in listed] == [first["Id"]]


def test_associate_profile_needs_an_existing_vpc_and_profile(aws_in_process: Clients) -> None:
    profiles = aws_in_process("route53profiles")
    profile = new_profile(aws_in_process)
    vpc_id = new_vpc(aws_in_process)

    no_vpc = error_of(
        lambda: profiles.associate_profile(
            Name="a", ProfileId=profile["Id"], ResourceId="vpc-0123456789abcdef0"
        )
    )
    no_profile = error_of(
        lambda: profiles.associate_profile(Name="a", ProfileId="rp-0", ResourceId=vpc_id)
    )

    assert (no_vpc["Code"], no_profile["Code"]) == ("ResourceNotFoundException",) * 2
    assert "vpc-0123456789abcdef0" in no_vpc["Message"]


def test_associations_are_creating_then_complete_and_deleting_then_gone(
    aws_in_process: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SETTINGS, "pending_reads", 1)
    profiles = aws_in_process("route53profiles")
    profile = new_profile(aws_in_process)
    vpc_id = new_vpc(aws_in_process)

    created = profiles.associate_profile(Name="a", ProfileId=profile["Id"], ResourceId=vpc_id)[
        "ProfileAssociation"
    ]

    def status() -> str:
        found: str = profiles.get_profile_association(ProfileAssociationId=created["Id"])[
            "ProfileAssociation"
        ]["Status"]
        return found

    assert [created["Status"], status(), status()] == ["CREATING", "CREATING", "COMPLETE"]
    deleting = profiles.disassociate_profile(ProfileId=profile["Id"], ResourceId=vpc_id)
    assert deleting["ProfileAssociation"]["Status"] == "DELETING"
    assert status() == "DELETING"
    assert error_of(status)["Code"] == "ResourceNotFoundException"


def test_delete_profile_fails_while_a_vpc_is_associated(aws_in_process: Clients) -> None:
    profiles = aws_in_process("route53profiles")
    profile = new_profile(aws_in_process)
    vpc_id = new_vpc(aws_in_process)
    profiles.associate_profile(Name="a", ProfileId=profile["Id"], ResourceId=vpc_id)

    error = error_of(lambda: profiles.delete_profile(ProfileId=profile["Id"]))
    profiles.disassociate_profile(ProfileId=profile["Id"], ResourceId=vpc_id)
    profiles.list_profile_associations()  # a read: the disassociation completes
    deleted = profiles.delete_profile(ProfileId=profile["Id"])["Profile"]

    assert error["Code"] == "ConflictException"
    assert vpc_id in error["Message"]
    assert deleted["Status"] == "DELETED"
    assert error_of(lambda: profiles.get_profile(ProfileId=profile["Id"]))["Code"] == (
        "ResourceNotFoundException"
    )


# --- resources in a Profile --------------------------------------------------------------------


def test_resolver_rules_in_a_profile(aws_in_process: Clients) -> None:
    profiles = aws_in_process("route53profiles")
    profile = new_profile(aws_in_process)
    rule = new_rule(aws_in_process, "corp.example.com")

    added = profiles.associate_resource_to_profile(
        Name="corp", ProfileId=profile["Id"], ResourceArn=rule["Arn"]
    )["ProfileResourceAssociation"]
    listed = profiles.list_profile_resource_associations(ProfileId=profile["Id"])
    updated = profiles.update_profile_resource_association(
        ProfileResourceAssociationId=added["Id"], Name="renamed"
    )["ProfileResourceAssociation"]
    got = profiles.get_profile_resource_association(ProfileResourceAssociationId=added["Id"])
    removed = profiles.disassociate_resource_from_profile(
        ProfileId=profile["Id"], ResourceArn=rule["Arn"]
    )["ProfileResourceAssociation"]

    assert re.fullmatch(r"rpr-[0-9a-f]{17}", added["Id"])
    assert (added["Status"], added["ResourceType"]) == ("CREATING", "SYSTEM")
    assert [r["Status"] for r in listed["ProfileResourceAssociations"]] == ["COMPLETE"]
    assert updated["Status"] == "UPDATING"
    assert (
        got["ProfileResourceAssociation"]["Name"],
        got["ProfileResourceAssociation"]["Status"],
    ) == (
        "renamed",
        "COMPLETE",
    )
    assert removed["Status"] == "DELETING"
    assert (
        profiles.list_profile_resource_associations(ProfileId=profile["Id"])[
            "ProfileResourceAssociations"
        ]
        == []
    )


def test_a_profile_holds_only_existing_rules_of_its_region_once_per_domain(
    aws_in_process: Clients,
) -> None:
    profiles = aws_in_process("route53profiles")
    profile_id = new_profile(aws_in_process)["Id"]
    rule = new_rule(aws_in_process, "corp.example.com", "one")
    same_domain = new_rule(aws_in_process, "corp.example.com.", "two")
    profiles.associate_resource_to_profile(Name="r", ProfileId=profile_id, ResourceArn=rule["Arn"])

    def add(arn: str) -> dict[str, Any]:
        return error_of(
            lambda: profiles.associate_resource_to_profile(
                Name="r", ProfileId=profile_id, ResourceArn=arn
            )
        )

    other_region = rule["Arn"].replace(REGION, "eu-west-1")
    assert add(rule["Arn"])["Code"] == "ConflictException"
    assert add(same_domain["Arn"])["Code"] == "ConflictException"
    assert add(rule["Arn"][:-3] + "000")["Code"] == "ResourceNotFoundException"
    assert add(other_region)["Code"] == "ResourceNotFoundException"
    assert add("arn:aws:route53:::hostedzone/Z123")["Code"] == "InvalidParameterException"
    assert (
        len(
            profiles.list_profile_resource_associations(ProfileId=profile_id)[
                "ProfileResourceAssociations"
            ]
        )
        == 1
    )


# --- RAM ---------------------------------------------------------------------------------------


def test_a_profile_shared_through_ram_is_associable_in_the_other_account(
    aws_in_process: Clients,
) -> None:
    profile = new_profile(aws_in_process)
    b = member(aws_in_process)
    share_with_member(aws_in_process, profile, accepted=False)
    assert b("route53profiles").list_profiles()["ProfileSummaries"] == []  # not accepted yet
    share_with_member(aws_in_process, profile)
    b_profiles = b("route53profiles")
    b_vpc = new_vpc(b)

    listed = b_profiles.list_profiles()["ProfileSummaries"]
    association = b_profiles.associate_profile(Name="b", ProfileId=profile["Id"], ResourceId=b_vpc)[
        "ProfileAssociation"
    ]
    owner_view = aws_in_process("route53profiles").get_profile(ProfileId=profile["Id"])

    assert [(p["Id"], p["ShareStatus"]) for p in listed] == [(profile["Id"], "SHARED_WITH_ME")]
    assert association["OwnerId"] == MEMBER
    assert owner_view["Profile"]["ShareStatus"] == "SHARED_BY_ME"
    assert error_of(lambda: b_profiles.delete_profile(ProfileId=profile["Id"]))["Code"] == (
        "AccessDeniedException"
    )
    blocked = error_of(
        lambda: aws_in_process("route53profiles").delete_profile(ProfileId=profile["Id"])
    )
    assert blocked["Code"] == "ConflictException"
    assert b_vpc in blocked["Message"]


@pytest.mark.parametrize(("pending_reads", "conflicts"), [(0, 0), (1, 1)])
def test_delete_profile_moves_on_a_disassociation_in_another_account_no_one_reads(
    aws_in_process: Clients, monkeypatch: pytest.MonkeyPatch, pending_reads: int, conflicts: int
) -> None:
    """AWS finishes a disassociation by itself: the owner's DeleteProfile looks at the
    Profile's associations in every account as a read there would, so a VPC of another
    account that let go of it stops blocking it though that account reads nothing more."""
    profile = new_profile(aws_in_process)
    b = member(aws_in_process)
    share_with_member(aws_in_process, profile)
    b_vpc = new_vpc(b)
    b("route53profiles").associate_profile(Name="b", ProfileId=profile["Id"], ResourceId=b_vpc)
    b("route53profiles").list_profile_associations()  # COMPLETE
    monkeypatch.setattr(SETTINGS, "pending_reads", pending_reads)
    b("route53profiles").disassociate_profile(ProfileId=profile["Id"], ResourceId=b_vpc)
    owner = aws_in_process("route53profiles")

    refused = []
    for _ in range(conflicts):
        refused.append(error_of(lambda: owner.delete_profile(ProfileId=profile["Id"]))["Code"])
    deleted = owner.delete_profile(ProfileId=profile["Id"])["Profile"]

    assert refused == ["ConflictException"] * conflicts
    assert deleted["Status"] == "DELETED"
    assert b("route53profiles").list_profile_associations()["ProfileAssociations"] == []


# --- quotas ------------------------------------------------------------------------------------


def test_the_sixth_profile_of_an_account_is_refused(aws_in_process: Clients) -> None:
    profiles = [new_profile(aws_in_process, f"p{n}") for n in range(5)]
    error = error_of(lambda: new_profile(aws_in_process, "p5"))
    assert error["Code"] == "LimitExceededException"
    assert "quota is 5" in error["Message"]
    listed = aws_in_process("route53profiles").list_profiles()["ProfileSummaries"]
    assert sorted(p["Id"] for p in listed) == sorted(p["Id"] for p in profiles)
    assert new_profile(aws_in_process, "p0")["Id"] == profiles[0]["Id"]  # a retry still answers
    assert new_profile(member(aws_in_process), "p5")  # the quota is the account's own


def test_vpcs_of_every_account_count_against_a_profiles_vpc_quota(
    aws_in_process: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quota lowered to 2: one VPC of the owner, one of the account it is shared with."""
    monkeypatch.setattr(SETTINGS, "max_vpcs_per_profile", 2)
    profile = new_profile(aws_in_process)
    profiles = aws_in_process("route53profiles")
    profiles.associate_profile(
        Name="a", ProfileId=profile["Id"], ResourceId=new_vpc(aws_in_process)
    )
    b = member(aws_in_process)
    share_arn = aws_in_process("ram").create_resource_share(
        name="profiles", resourceArns=[profile["Arn"]], principals=[MEMBER]
    )["resourceShare"]["resourceShareArn"]
    invitation = b("ram").get_resource_share_invitations(resourceShareArns=[share_arn])[
        "resourceShareInvitations"
    ][0]
    b("ram").accept_resource_share_invitation(
        resourceShareInvitationArn=invitation["resourceShareInvitationArn"]
    )
    b("route53profiles").associate_profile(Name="b", ProfileId=profile["Id"], ResourceId=new_vpc(b))
    third = new_vpc(aws_in_process)

    error = error_of(
        lambda: profiles.associate_profile(Name="c", ProfileId=profile["Id"], ResourceId=third)
    )

    assert error["Code"] == "LimitExceededException"
    assert profiles.list_profile_associations(ResourceId=third)["ProfileAssociations"] == []


def test_a_profile_takes_rules_up_to_its_quota(
    aws_in_process: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SETTINGS, "max_rules_per_profile", 1)
    profiles = aws_in_process("route53profiles")
    profile_id = new_profile(aws_in_process)["Id"]
    first, second = (new_rule(aws_in_process, f"{n}.example.com") for n in ("one", "two"))
    profiles.associate_resource_to_profile(
        Name="one", ProfileId=profile_id, ResourceArn=first["Arn"]
    )

    error = error_of(
        lambda: profiles.associate_resource_to_profile(
            Name="two", ProfileId=profile_id, ResourceArn=second["Arn"]
        )
    )

    assert error["Code"] == "LimitExceededException"
    held = profiles.list_profile_resource_associations(ProfileId=profile_id)
    assert [r["ResourceArn"] for r in held["ProfileResourceAssociations"]] == [first["Arn"]]


# --- a rule associated directly and a rule of the Profile --------------------------------------


def test_a_direct_rule_and_a_profile_rule_for_one_domain_coexist_and_the_direct_one_answers(
    aws_in_process: Clients,
) -> None:
    profiles = aws_in_process("route53profiles")
    resolver = aws_in_process("route53resolver")
    vpc_id = new_vpc(aws_in_process)
    profile_id = new_profile(aws_in_process)["Id"]
    in_profile = new_rule(aws_in_process, "corp.example.com", "profile")
    profile_only = new_rule(aws_in_process, "example.com", "parent")
    direct = new_rule(aws_in_process, "corp.example.com", "direct")
    for rule in (in_profile, profile_only):
        profiles.associate_resource_to_profile(
            Name=rule["Name"], ProfileId=profile_id, ResourceArn=rule["Arn"]
        )
    profiles.associate_profile(Name="a", ProfileId=profile_id, ResourceId=vpc_id)
    profiles.list_profile_associations()  # a read: the associations complete

    assert rule_for(OWNER, REGION, vpc_id, "host.corp.example.com") == in_profile["Id"]
    associated = resolver.associate_resolver_rule(
        ResolverRuleId=direct["Id"], VPCId=vpc_id, Name="direct"
    )["ResolverRuleAssociation"]

    assert associated["Status"] != "OVERRIDDEN"
    assert rule_for(OWNER, REGION, vpc_id, "host.corp.example.com") == direct["Id"]
    assert rule_for(OWNER, REGION, vpc_id, "www.example.com") == profile_only["Id"]
    assert rule_for(OWNER, REGION, vpc_id, "example.org") is None
    assert [
        r["Status"]
        for r in profiles.list_profile_resource_associations(ProfileId=profile_id)[
            "ProfileResourceAssociations"
        ]
    ] == ["COMPLETE", "COMPLETE"]


# --- through the HTTP server -------------------------------------------------------------------


def test_the_server_on_127_0_0_1_serves_route53profiles(aws: ClientFactory) -> None:
    """The emulator the suite serves (`LocalEmulator`, `mesh_emulator.install`) has Profiles."""
    profiles = aws("route53profiles", REGION)
    assert profiles.meta.endpoint_url.startswith("http://127.0.0.1:")
    profile = profiles.create_profile(Name="served", ClientToken="t")["Profile"]
    vpc_id = aws("ec2", REGION).create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    rule = aws("route53resolver", REGION).create_resolver_rule(
        CreatorRequestId="r", Name="r", RuleType="SYSTEM", DomainName="corp.example.com"
    )["ResolverRule"]

    profiles.associate_profile(Name="a", ProfileId=profile["Id"], ResourceId=vpc_id)
    profiles.associate_resource_to_profile(
        Name="r", ProfileId=profile["Id"], ResourceArn=rule["Arn"]
    )
    second = error_of(
        lambda: profiles.associate_profile(
            Name="b",
            ProfileId=new_profile(lambda s: aws(s, REGION), "other")["Id"],
            ResourceId=vpc_id,
        )
    )
    removed = profiles.disassociate_resource_from_profile(
        ProfileId=profile["Id"], ResourceArn=rule["Arn"]
    )

    assert second["Code"] == "ResourceExistsException"
    assert [a["Status"] for a in profiles.list_profile_associations()["ProfileAssociations"]] == [
        "COMPLETE"
    ]
    assert removed["ProfileResourceAssociation"]["ResourceArn"] == rule["Arn"]
    assert profiles.list_tags_for_resource(ResourceArn=profile["Arn"])["Tags"] == {}
