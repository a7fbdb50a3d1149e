"""The emulator keeps HTTP/1.1 connections open between requests, as AWS endpoints do
(`mesh_emulator.keepalive`)."""

from __future__ import annotations

import http.client
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from mesh_emulator.server import HOST, LocalEmulator

REGION = "us-east-1"
_AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/route53resolver/aws4_request,"
    " SignedHeaders=host, Signature=0"
)


def _resolver_headers(target: str) -> dict[str, str]:
    return {
        "X-Amz-Target": f"Route53Resolver.{target}",
        "Content-Type": "application/x-amz-json-1.1",
        "Authorization": _AUTH,
    }


@pytest.fixture
def server() -> Iterator[LocalEmulator]:
    """An emulator of its own: the tests stop it, or count its connections."""
    with LocalEmulator() as emulator:
        yield emulator


def _connection(emulator: LocalEmulator) -> http.client.HTTPConnection:
    port = int(emulator.endpoint_url.rsplit(":", 1)[1])
    return http.client.HTTPConnection(HOST, port, timeout=10)


def test_an_sdk_client_makes_its_calls_on_one_connection(server: LocalEmulator) -> None:
    import boto3

    client = boto3.client(
        "route53resolver",
        region_name=REGION,
        endpoint_url=server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    opened: list[Any] = []
    client.meta.events.register("before-send", lambda **kwargs: opened.append(1))
    for _ in range(5):
        assert client.list_resolver_rules()["ResolverRules"] == []
    assert len(opened) == 5
    assert server.open_connections() == 1
    assert server.wsgi_server().opened.accepted == 1  # one socket for five calls


def test_requests_with_bodies_follow_each_other_on_one_connection(server: LocalEmulator) -> None:
    """Each body is read to its end: the next request starts where it stops."""
    connection = _connection(server)
    bodies = [
        json.dumps({"MaxResults": 5, "Filters": [{"Name": "Name", "Values": ["x" * size]}]})
        for size in (1, 300, 70_000)  # the last one larger than a socket read
    ]
    for body in bodies:
        connection.request(
            "POST", "/", body=body.encode(), headers=_resolver_headers("ListResolverRules")
        )
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Connection") is None
        assert json.loads(response.read())["ResolverRules"] == []
    assert server.open_connections() == 1
    connection.close()


def test_an_error_answer_keeps_the_connection_usable(server: LocalEmulator) -> None:
    connection = _connection(server)
    connection.request(
        "POST",
        "/",
        body=json.dumps({"ResolverRuleId": "rslvr-rr-missing"}).encode(),
        headers=_resolver_headers("GetResolverRule"),
    )
    missing = connection.getresponse()
    assert missing.status == 400
    assert "ResourceNotFoundException" in missing.read().decode()
    connection.request("POST", "/", body=b"{}", headers=_resolver_headers("ListResolverRules"))
    assert connection.getresponse().status == 200
    connection.close()


@pytest.mark.parametrize(
    ("version", "headers"),
    [
        pytest.param("HTTP/1.0", {}, id="http-1.0"),
        pytest.param("HTTP/1.1", {"Connection": "close"}, id="connection-close"),
    ],
)
def test_other_requests_are_answered_and_their_connection_closed(
    server: LocalEmulator, version: str, headers: dict[str, str]
) -> None:
    port = int(server.endpoint_url.rsplit(":", 1)[1])
    body = b"{}"
    head = {**_resolver_headers("ListResolverRules"), **headers, "Content-Length": "2"}
    request = (
        f"POST / {version}\r\nHost: {HOST}:{port}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in head.items())
        + "\r\n"
    ).encode() + body
    with socket.create_connection((HOST, port), timeout=10) as raw:
        raw.sendall(request)
        answer = b""
        while chunk := raw.recv(65536):  # the server closes: the loop ends
            answer += chunk
    assert answer.split(b"\r\n", 1)[0].endswith(b"200 OK")
    assert b'"ResolverRules": []' in answer


def test_a_chunked_request_is_answered_by_werkzeug_and_closed(server: LocalEmulator) -> None:
    connection = _connection(server)
    connection.request(
        "POST",
        "/",
        body=iter([b"{", b"}"]),
        headers={**_resolver_headers("ListResolverRules"), "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Connection") == "close"
    assert json.loads(response.read())["ResolverRules"] == []


def test_a_failing_application_answers_500_and_closes(server: LocalEmulator) -> None:
    def failing(environ: dict[str, Any], start_response: Any) -> Any:
        raise RuntimeError("broken on purpose")

    with server.wrapped(lambda app: failing):
        connection = _connection(server)
        connection.request("POST", "/", body=b"{}", headers=_resolver_headers("ListResolverRules"))
        response = connection.getresponse()
        assert response.status == 500
        assert response.getheader("Connection") == "close"
        response.read()


def test_a_stopped_emulator_closes_the_connections_it_kept() -> None:
    emulator = LocalEmulator().start()
    connection = _connection(emulator)
    connection.request("POST", "/", body=b"{}", headers=_resolver_headers("ListResolverRules"))
    connection.getresponse().read()
    assert emulator.open_connections() == 1
    server = emulator.wsgi_server()
    emulator.stop()
    assert len(server.opened) == 0
    connection.sock.settimeout(10)
    assert connection.sock.recv(1) == b""  # closed by the server: no answer comes on it
    connection.close()


@pytest.mark.parametrize(("level", "logged"), [(logging.WARNING, False), (logging.INFO, True)])
def test_the_access_log_line_is_made_only_when_it_is_logged(
    server: LocalEmulator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    level: int,
    logged: bool,
) -> None:
    """At WARNING (`LocalEmulator`'s default) the line is neither logged nor made (its path
    is not decoded); at INFO it is werkzeug's own line."""
    from werkzeug import serving

    decoded: list[str] = []
    uri_to_iri = serving.uri_to_iri
    monkeypatch.setattr(serving, "uri_to_iri", lambda uri: decoded.append(uri) or uri_to_iri(uri))
    logger = logging.getLogger("werkzeug")
    monkeypatch.setattr(logger, "level", level)
    connection = _connection(server)
    with caplog.at_level(level, logger="werkzeug"):
        connection.request("POST", "/", body=b"{}", headers=_resolver_headers("ListResolverRules"))
        assert connection.getresponse().read()
    connection.close()
    lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert bool(decoded) is logged
    assert bool(lines) is logged
    if logged:
        assert '"POST / HTTP/1.1" 200' in lines[0]
