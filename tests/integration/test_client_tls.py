"""The clients `Aws` makes verify TLS with one context per CA bundle, loaded once per process
(`_SharedClientParts.share_tls`), against a real TLS server on 127.0.0.1.

botocore gives every client a TLS context of its own and loads the CA bundle into it on every
new connection: about 680 KiB and 17 ms of CPU each for certifi's bundle, for every (account,
service, Region) client of an organisation. The server here answers STS GetCallerIdentity, so
that a call goes through botocore's whole https path: signing, urllib3, the handshake, parsing.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from mesh_emulator.tls import ACCOUNT, LoopbackTls
from resolver_mesh.aws.session import Aws
from resolver_mesh.config import Settings


@pytest.fixture
def tls_server() -> Iterator[tuple[str, Path, Path]]:
    """An https STS on 127.0.0.1 with a CA of its own: (endpoint url, that CA's bundle, another
    CA's bundle)."""
    with LoopbackTls() as tls:
        yield tls.endpoint_url, tls.ca_bundle, tls.other_bundle


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every CA bundle loaded into a TLS context in this process, in order."""
    loaded: list[str] = []
    load = ssl.SSLContext.load_verify_locations

    def counted(context: ssl.SSLContext, cafile: Any = None, *args: Any, **kwargs: Any) -> None:
        loaded.append(str(cafile))
        load(context, cafile, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    return loaded


def aws_for(endpoint: str, bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Aws:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return Aws(Settings(home_region="us-east-1"), session)


def context_of(client: Any) -> ssl.SSLContext:
    context: ssl.SSLContext = client._endpoint.http_session._manager.connection_pool_kw[
        "ssl_context"
    ]
    return context


def test_clients_verify_with_one_context_loaded_once(
    tls_server: tuple[str, Path, Path], loads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, bundle, _ = tls_server
    aws = aws_for(endpoint, bundle, monkeypatch)
    clients = [aws.client("sts", region) for region in ("us-east-1", "eu-west-1", "ap-south-1")]
    for client in clients:  # a new connection each: botocore would load the bundle six times
        assert client.get_caller_identity()["Account"] == ACCOUNT
        assert client.get_caller_identity()["Account"] == ACCOUNT
    assert loads == [str(bundle)]
    assert len({id(context_of(client)) for client in clients}) == 1
    stats = context_of(clients[0]).cert_store_stats()
    assert stats["x509_ca"] == 1  # the bundle's one CA, not certifi's nor the system's
    assert context_of(clients[0]).verify_mode == ssl.CERT_REQUIRED


def test_a_certificate_of_another_ca_is_still_refused(
    tls_server: tuple[str, Path, Path], loads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, _, other = tls_server
    aws = aws_for(endpoint, other, monkeypatch)
    client = aws.client("sts", "us-east-1")
    with pytest.raises(botocore.exceptions.SSLError):
        client.get_caller_identity()
    assert loads == [str(other)]


def test_clients_made_elsewhere_keep_botocore_s_own_context(
    tls_server: tuple[str, Path, Path], loads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, bundle, _ = tls_server
    aws = aws_for(endpoint, bundle, monkeypatch)
    ours = aws.client("sts", "us-east-1")
    plain = aws.session.client("sts", region_name="us-east-1")
    assert context_of(plain) is not context_of(ours)
    assert plain.get_caller_identity()["Account"] == ACCOUNT
    assert plain.get_caller_identity()["Account"] == ACCOUNT
    assert loads == [str(bundle)] * 3  # ours once; the plain client's on each connection
