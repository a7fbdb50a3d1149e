"""Member accounts' sessions: what they share with the home session and what stays their own.
No AWS call is made: member credentials are only fetched when first used."""

from __future__ import annotations

import boto3

from resolver_mesh.aws.session import STS_CALLS_PER_SECOND, Aws
from resolver_mesh.config import Settings
from resolver_mesh.models import AccountAccess

MEMBERS = ("222222222222", "333333333333")


def home() -> Aws:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return Aws(Settings(home_region="us-east-1", calls_per_second=5.0), session)


def access(account: str) -> AccountAccess:
    role = f"arn:aws:iam::{account}:role/resolver-mesh-member-resolver-mesh"
    return AccountAccess(account_id=account, role_arn=role)


def test_member_sessions_share_the_home_data_loader_and_keep_their_own_credentials() -> None:
    aws = home()
    loader = aws.session._session.get_component("data_loader")
    members = [aws.member(access(account)) for account in MEMBERS]
    for member in members:
        core = member.session._session
        assert core.get_component("data_loader") is loader
        assert core.get_credentials() is not aws.session._session.get_credentials()
    first, second = (m.session._session.get_credentials() for m in members)
    assert first is not second
    assert type(first).__name__ == "DeferredRefreshableCredentials"


def test_sts_has_its_own_budget_faster_than_the_resolver_one() -> None:
    aws = home()
    sts, resolver = aws.caller("us-east-1", "sts"), aws.caller("us-east-1")
    assert sts is not resolver
    assert sts.limiter._interval == 1.0 / STS_CALLS_PER_SECOND
    assert resolver.limiter._interval == 1.0 / 5.0
    assert STS_CALLS_PER_SECOND > 5.0


def test_clients_of_every_account_share_one_class_per_service() -> None:
    aws = home()
    members = [aws.member(access(account)) for account in MEMBERS]
    for service in ("route53resolver", "ec2", "ram"):
        clients = [
            a.client(service, r) for a in (aws, *members) for r in ("us-east-1", "eu-west-1")
        ]
        assert len({type(client) for client in clients}) == 1
        assert len({id(client) for client in clients}) == len(clients)
    # each client still signs as its own account and Region
    first, second = (m.client("ec2", "eu-west-1") for m in members)
    assert first._request_signer._credentials is not second._request_signer._credentials
    assert first.meta.region_name == "eu-west-1"


def test_clients_made_outside_the_mesh_keep_their_own_class() -> None:
    home()  # the shared classes are in place
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    assert type(session.client("ec2")) is not type(session.client("ec2"))
