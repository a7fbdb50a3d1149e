"""The loopback https endpoint (`mesh_emulator.tls`): its certificate verifies with its own CA
bundle and with no other, and it answers STS GetCallerIdentity."""

from __future__ import annotations

import socket
import ssl

import boto3
import pytest

from mesh_emulator.tls import ACCOUNT, LoopbackTls


def handshake(port: int, bundle: str) -> None:
    context = ssl.create_default_context(cafile=bundle)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with raw, context.wrap_socket(raw, server_hostname="127.0.0.1"):
        pass


def test_its_certificate_verifies_with_its_own_ca_only() -> None:
    with LoopbackTls() as tls:
        port = int(tls.endpoint_url.rsplit(":", 1)[1])
        handshake(port, str(tls.ca_bundle))
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(port, str(tls.other_bundle))


def test_it_answers_get_caller_identity_over_https() -> None:
    with LoopbackTls() as tls:
        sts = boto3.client(
            "sts",
            region_name="us-east-1",
            endpoint_url=tls.endpoint_url,
            verify=str(tls.ca_bundle),
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        assert sts.get_caller_identity()["Account"] == ACCOUNT


def test_it_answers_assume_role_and_every_api_the_mesh_reads() -> None:
    with LoopbackTls() as tls:
        settings = {
            "region_name": "us-east-1",
            "endpoint_url": tls.endpoint_url,
            "verify": str(tls.ca_bundle),
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        sts = boto3.client("sts", **settings)
        role = "arn:aws:iam::210987654321:role/resolver-mesh-member-resolver-mesh"
        assumed = sts.assume_role(RoleArn=role, RoleSessionName="tls")["Credentials"]
        assert assumed["AccessKeyId"] == "ASIATLS"
        assert boto3.client("ec2", **settings).describe_vpcs().get("Vpcs", []) == []
        assert (
            boto3.client("route53resolver", **settings)
            .list_resolver_rules()
            .get("ResolverRules", [])
            == []
        )
        ram = boto3.client("ram", **settings)
        assert ram.get_resource_share_invitations().get("resourceShareInvitations", []) == []
        profiles = boto3.client("route53profiles", **settings)
        assert profiles.list_profiles().get("ProfileSummaries", []) == []
