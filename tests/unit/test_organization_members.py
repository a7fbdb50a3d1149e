"""Member accounts from AWS Organizations: the `MEMBER_OUS` setting, the member role it leads
to, and the Organizations adapter against in-process moto (nested OUs, suspended accounts,
pages, a parent that does not exist)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from resolver_mesh.aws.calls import Caller, RateLimiter
from resolver_mesh.aws.organizations import (
    PAGE_SIZE,
    Organization,
    UnknownAccountStateError,
    UnknownRootError,
)
from resolver_mesh.aws.session import ORGANIZATIONS_CALLS_PER_SECOND, Aws
from resolver_mesh.cli import _settings, build_parser
from resolver_mesh.config import ConfigError, Settings

OU = "ou-wx90-abcd0123"
ROOT = "r-ab12"


def test_member_ous_are_ou_and_root_ids_in_their_order() -> None:
    settings = Settings.from_env({"MEMBER_OUS": f" {OU} ,{ROOT},,ou-0000-11112222 "})
    assert settings.member_ous == (OU, ROOT, "ou-0000-11112222")
    assert Settings.from_env({}).member_ous == ()
    assert Settings.from_env({}).member_external_id is None


@pytest.mark.parametrize(
    "value",
    ["123456789012", "ou-ab12", "OU-AB12-CDEF3456", "r-", "o-ab12cdef34", "ou-ab12-cdef3456/x"],
)
def test_a_malformed_member_ou_is_an_error_naming_the_setting_and_the_value(value: str) -> None:
    with pytest.raises(ConfigError, match="MEMBER_OUS") as raised:
        Settings.from_env({"MEMBER_OUS": f"{OU},{value}"})
    assert repr(value) in str(raised.value)
    assert repr(OU) not in str(raised.value)


def test_a_malformed_member_external_id_is_an_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="MEMBER_EXTERNAL_ID"):
        Settings.from_env({"MEMBER_EXTERNAL_ID": "a"})
    assert Settings.from_env({"MEMBER_EXTERNAL_ID": " ext:id-1 "}).member_external_id == "ext:id-1"


def test_the_member_ous_flag_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBER_OUS", OU)
    args = build_parser().parse_args(["plan", "--member-ous", f"{ROOT}, ou-0000-11112222"])
    assert _settings(args).member_ous == (ROOT, "ou-0000-11112222")
    assert _settings(build_parser().parse_args(["plan"])).member_ous == (OU,)
    assert _settings(build_parser().parse_args(["plan", "--member-ous", ""])).member_ous == ()
    with pytest.raises(ConfigError, match="MEMBER_OUS"):
        _settings(build_parser().parse_args(["plan", "--member-ous", "ou-x"]))


@pytest.mark.parametrize(
    ("home", "partition"),
    [("us-east-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")],
)
def test_members_of_the_ous_are_reached_through_the_member_role_of_the_partition(
    home: str, partition: str
) -> None:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=home
    )
    aws = Aws(Settings(home_region=home, mesh_id="blue", member_external_id="ext-1"), session)
    access = aws.member_access("222222222222")
    assert access.account == "222222222222"
    assert access.role_arn == f"arn:{partition}:iam::222222222222:role/resolver-mesh-member-blue"
    assert access.external_id == "ext-1"
    plain = Aws(Settings(home_region=home), session).member_access("333333333333")
    assert plain.external_id is None


def test_organizations_has_its_own_budget() -> None:
    aws = Aws(
        Settings(home_region="us-east-1"),
        boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ),
    )
    budget = aws.caller("us-east-1", "organizations")
    assert budget is not aws.caller("us-east-1")
    assert budget.limiter._interval == 1.0 / ORGANIZATIONS_CALLS_PER_SECOND


# --- the adapter against in-process moto ----------------------------------------------------


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.client]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("organizations", region_name="us-east-1")
        client.create_organization(FeatureSet="ALL")
        yield client


def counted(client: boto3.client) -> tuple[Organization, Caller]:
    caller = Caller(RateLimiter(1e6), max_attempts=1)
    return Organization(client, caller), caller


def new_ou(client: boto3.client, parent: str, name: str) -> str:
    made = client.create_organizational_unit(ParentId=parent, Name=name)
    return str(made["OrganizationalUnit"]["Id"])


def new_accounts(client: boto3.client, parent: str, count: int, name: str) -> list[str]:
    root = client.list_roots()["Roots"][0]["Id"]
    made = []
    for n in range(count):
        status = client.create_account(Email=f"{name}{n}@example.com", AccountName=f"{name}{n}")
        account = str(status["CreateAccountStatus"]["AccountId"])
        client.move_account(AccountId=account, SourceParentId=root, DestinationParentId=parent)
        made.append(account)
    return made


def test_accounts_of_nested_ous_are_found_and_suspended_ones_left_out(
    org: boto3.client,
) -> None:
    root = org.list_roots()["Roots"][0]["Id"]
    workloads = new_ou(org, root, "workloads")
    prod = new_ou(org, workloads, "prod")
    deep = new_ou(org, prod, "deep")
    sandbox = new_ou(org, root, "sandbox")
    top = new_accounts(org, workloads, 3, "top")
    nested = new_accounts(org, prod, 25, "prod") + new_accounts(org, deep, 2, "deep")
    elsewhere = new_accounts(org, sandbox, 2, "sandbox")
    org.close_account(AccountId=nested[0])  # SUSPENDED from then on

    organization, caller = counted(org)
    found = organization.active_accounts([workloads])
    assert found == set(top + nested[1:])
    assert nested[0] not in found
    assert not found & set(elsewhere)
    # Per OU: its account pages and its child-OU pages, at least one each; nothing per account.
    pages = sum(max(1, math.ceil(n / PAGE_SIZE)) for n in (3, 25, 2)) + 3
    assert caller.counts["reads"] <= pages

    organization, caller = counted(org)
    assert organization.active_accounts([prod, sandbox, deep]) == set(nested[1:] + elsewhere)
    every = counted(org)
    all_accounts = every[0].active_accounts([root, sandbox])  # a root: the whole organisation
    assert all_accounts >= set(top + nested[1:] + elsewhere)
    assert nested[0] not in all_accounts
    total = len(org.list_accounts()["Accounts"])
    assert every[1].counts["reads"] <= math.ceil(total / PAGE_SIZE) + 1


def test_a_parent_that_does_not_exist_raises_instead_of_finding_nobody(
    org: boto3.client,
) -> None:
    root = org.list_roots()["Roots"][0]["Id"]
    real = new_ou(org, root, "real")
    new_accounts(org, real, 2, "real")
    organization, _ = counted(org)
    with pytest.raises(ClientError, match="ParentNotFoundException"):
        organization.active_accounts([real, "ou-zzzz-99999999"])


# --- what an account's answer says of its membership ----------------------------------------


def listed_as(*accounts: dict[str, str | None]) -> Organization:
    """An adapter whose `ListAccounts` answers `accounts`, one page."""

    def list_accounts(**_: object) -> dict[str, object]:
        return {"Accounts": list(accounts)}

    def list_roots(**_: object) -> dict[str, object]:
        return {"Roots": [{"Id": ROOT}]}

    calls = {"list_accounts": staticmethod(list_accounts), "list_roots": staticmethod(list_roots)}
    client = type("Client", (), calls)()
    return Organization(client, Caller(RateLimiter(1e6), max_attempts=1))


def test_membership_is_read_from_state_and_from_status_only_where_state_is_missing() -> None:
    found = listed_as(
        {"Id": "111111111111", "State": "ACTIVE"},  # as AWS answers since 2026-09-09
        {"Id": "222222222222", "Status": "ACTIVE"},  # as it answered before State
        {"Id": "333333333333", "State": "ACTIVE", "Status": "ACTIVE"},
        {"Id": "444444444444", "State": "PENDING_CLOSURE", "Status": "ACTIVE"},  # State wins
        {"Id": "555555555555", "State": "PENDING_ACTIVATION"},
        {"Id": "666666666666", "State": "SUSPENDED"},
        {"Id": "777777777777", "State": "CLOSED"},
    ).active_accounts([ROOT])
    assert found == {"111111111111", "222222222222", "333333333333"}


@pytest.mark.parametrize("answer", [{}, {"State": ""}, {"Status": None}])
def test_an_account_listed_without_its_state_raises_instead_of_leaving(
    answer: dict[str, str | None],
) -> None:
    organization = listed_as({"Id": "111111111111", "State": "ACTIVE"}, {"Id": "2" * 12, **answer})
    with pytest.raises(UnknownAccountStateError, match="'222222222222' is listed without"):
        organization.active_accounts([ROOT])


def test_a_mesh_id_too_long_for_the_member_role_is_an_error_with_member_ous_only() -> None:
    longest = "m" * (64 - len("resolver-mesh-member-"))
    assert Settings.from_env({"MEMBER_OUS": OU, "MESH_ID": longest}).member_role_name == (
        f"resolver-mesh-member-{longest}"
    )
    with pytest.raises(ConfigError, match="longer than the 64 characters IAM allows") as raised:
        Settings.from_env({"MEMBER_OUS": OU, "MESH_ID": longest + "m"})
    assert "MESH_ID" in str(raised.value)
    assert f"at most {len(longest)} characters" in str(raised.value)
    assert Settings.from_env({"MESH_ID": longest + "m"}).mesh_id == longest + "m"  # no OUs


def test_a_root_that_is_not_the_organisations_raises_instead_of_finding_everyone(
    org: boto3.client,
) -> None:
    root = org.list_roots()["Roots"][0]["Id"]
    organization, caller = counted(org)
    with pytest.raises(
        UnknownRootError, match=f"r-zz99 is not the root of this organisation \\({root}\\)"
    ):
        organization.active_accounts(["r-zz99"])
    assert caller.counts["reads"] == 1  # ListRoots, and no ListAccounts


def test_each_page_of_accounts_is_handed_on_as_soon_as_it_is_read(org: boto3.client) -> None:
    """What `found` gets: every page's ACTIVE accounts, each before the next page is asked
    for (the reconciler starts reading them meanwhile); together, exactly the members."""
    root = org.list_roots()["Roots"][0]["Id"]
    big = new_ou(org, root, "big")
    nested = new_ou(org, big, "nested")
    accounts = new_accounts(org, big, 2 * PAGE_SIZE + 5, "big")
    inner = new_accounts(org, nested, 3, "inner")
    org.close_account(AccountId=accounts[0])
    for parents in ([big], [root]):
        organization, caller = counted(org)
        handed: list[tuple[int, frozenset[str]]] = []
        found = organization.active_accounts(
            parents,
            lambda page, handed=handed, caller=caller: handed.append(
                (caller.counts["reads"], page)
            ),
        )
        assert found >= set(accounts[1:] + inner)
        assert frozenset().union(*(page for _, page in handed)) == found
        assert all(0 < len(page) <= PAGE_SIZE for _, page in handed)
        reads = [read for read, _ in handed]
        assert reads == sorted(set(reads))  # one page, one handing on, at once
        assert reads[0] == 1 + (parents == [root])  # ListRoots first for a root
        assert len(handed) >= 3


def test_pages_handed_on_before_a_failure_come_with_the_failure() -> None:
    """A later page that fails raises: what was handed on must be dropped with it (the
    reconciler plans nothing)."""

    def list_accounts_for_parent(**kwargs: object) -> dict[str, object]:
        if kwargs.get("NextToken"):
            raise ClientError({"Error": {"Code": "TooManyRequestsException"}}, "ListAccounts")
        return {"Accounts": [{"Id": "111111111111", "State": "ACTIVE"}], "NextToken": "2"}

    client = type(
        "Client", (), {"list_accounts_for_parent": staticmethod(list_accounts_for_parent)}
    )()
    handed: list[frozenset[str]] = []
    organization = Organization(client, Caller(RateLimiter(1e6), max_attempts=1))
    with pytest.raises(ClientError, match="TooManyRequests"):
        organization.active_accounts([OU], handed.append)
    assert handed == [frozenset({"111111111111"})]
