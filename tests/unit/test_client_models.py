"""Clients made by `Aws` share one botocore service model per service (memory per location);
clients made elsewhere in the process keep their own. No AWS call is made."""

from __future__ import annotations

import boto3

from resolver_mesh.aws.session import Aws
from resolver_mesh.config import Settings
from resolver_mesh.models import AccountAccess

MEMBER = "222222222222"


def session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


def test_clients_of_every_region_and_account_share_their_services_model() -> None:
    aws = Aws(Settings(home_region="us-east-1"), session())
    role = f"arn:aws:iam::{MEMBER}:role/resolver-mesh-member-resolver-mesh"
    member = aws.member(AccountAccess(account_id=MEMBER, role_arn=role))
    clients = [aws.client("ec2", "us-east-1"), aws.client("ec2", "eu-west-1")]
    clients.append(member.client("ec2", "us-west-2"))
    models = {id(client.meta.service_model) for client in clients}
    assert len(models) == 1
    assert {client.meta.region_name for client in clients} == {
        "us-east-1",
        "eu-west-1",
        "us-west-2",
    }
    resolver = aws.client("route53resolver", "us-east-1").meta.service_model
    assert resolver.service_name == "route53resolver"
    assert resolver is not clients[0].meta.service_model


def test_clients_made_outside_aws_keep_a_model_of_their_own() -> None:
    aws = Aws(Settings(home_region="us-east-1"), session())
    ours = aws.client("ec2", "us-east-1").meta.service_model
    plain = session().client("ec2", region_name="us-east-1").meta.service_model
    assert plain is not ours
    assert plain.service_name == ours.service_name == "ec2"


def test_clients_of_a_service_share_one_endpoint_provider_and_resolve_their_own_region() -> None:
    aws = Aws(Settings(home_region="us-east-1"), session())
    role = f"arn:aws:iam::{MEMBER}:role/resolver-mesh-member-resolver-mesh"
    member = aws.member(AccountAccess(account_id=MEMBER, role_arn=role))
    clients = [
        aws.client("route53resolver", "us-east-1"),
        member.client("route53resolver", "eu-west-1"),
    ]
    providers = {id(client._ruleset_resolver._provider) for client in clients}
    assert len(providers) == 1
    ec2 = aws.client("ec2", "us-east-1")._ruleset_resolver._provider
    assert id(ec2) not in providers
    plain = session().client("route53resolver", region_name="eu-west-1")
    assert id(plain._ruleset_resolver._provider) not in providers
    resolved = [
        client._ruleset_resolver.construct_endpoint(
            operation_model=client.meta.service_model.operation_model("ListResolverRules"),
            call_args={},
            request_context={},
        ).url
        for client in clients
    ]
    plain_url = plain._ruleset_resolver.construct_endpoint(
        operation_model=plain.meta.service_model.operation_model("ListResolverRules"),
        call_args={},
        request_context={},
    ).url
    assert resolved[1] == plain_url
    assert resolved[0] != resolved[1]
