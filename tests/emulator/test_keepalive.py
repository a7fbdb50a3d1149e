"""The emulator keeps HTTP/1.1 connections open between requests, as AWS endpoints do
(`mesh_emulator.keepalive`)."""

from __future__ import annotations

import http.client
import io
import json
import logging
import random
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


_BOTOCORE = (
    b"Host: 127.0.0.1:5000\r\nAccept-Encoding: identity\r\n"
    b"Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
    b"User-Agent: Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux#6.1 lang/python#3.11.7\r\n"
    b"X-Amz-Date: 20261130T120000Z\r\nX-Amz-Security-Token: FQoGZXIvYXdzEXAMPLE+/=\r\n"
    b"Authorization: " + _AUTH.encode() + b"\r\n"
    b"amz-sdk-invocation-id: 8d8f2d5e-8b6f-4f2b-9f0e-6c3b0a4f6f53\r\n"
    b"amz-sdk-request: attempt=1; max=3\r\nContent-Length: 43\r\n\r\n"
)
_PLAIN_BLOCKS = [
    _BOTOCORE,
    b"\r\n",
    b"\n",
    b"A: 1\nB:2\r\nC:\t \t3 \t\r\n\n",  # LF endings, no space, tabs, trailing blanks
    b"A: 1\r\nA: 2\r\na: 3\r\nEmpty:\r\nBlank:   \r\n\r\n",  # repeated names, empty values
    b"X!#$%&'*+-.^_`|~@[]{}<>=?/\\\",;: odd name\r\nColon: a:b::c\r\n\r\n",
    b"From: someone\r\nContent-Type: text/plain; x=y\r\n\r\n",
    b"content-type: application/json\r\nContent-Length: 0\r\n\r\n",
]
_OTHER_BLOCKS = [
    b"A: folded\r\n  on two lines\r\nB: 2\r\n\r\n",  # a continuation line
    b" A: first line continued\r\nB: 2\r\n\r\n",
    b"From nobody Mon Nov 30 2026\r\nA: 1\r\n\r\n",  # a unix-from line
    b"A: 1\r\nFrom nobody\r\nB: 2\r\n\r\n",
    b"A: 1\r\nno colon here\r\nB: 2\r\n\r\n",
    b"A: 1\r\n: no name\r\n\r\n",
    b"Name with space: 1\r\n\r\n",
    b"A: bare\rcarriage return\r\n\r\n",
    b"A: \x0bvertical tab\r\nB: \x0cform feed\r\nC: \x1cseparator\r\n\r\n",
    b"A: latin-1 \xe9\xff\x85\r\n\r\n",
    b"A: nul \x00 byte\r\n\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"content-type: MULTIPART/form-data; boundary=x\r\n\r\n",
    b"Content-Type: multipart/mixed\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    b"Content-Type: message/delivery-status\r\n\r\n",
    b"Content-Type: text/plain; multipart=no\r\n\r\n",  # left to the parser all the same
    b"content-type: application/json\r\nContent-Type: text/message-ish\r\n\r\n",
    b"A: 1\r\nB: no empty line, then the connection ends\r\n",
    b"A: 1\r\nB: cut short",
    b"",
    b"A: 1\r\n\r\r\n",
    b"".join(b"H%d: %d\r\n" % (n, n) for n in range(101)) + b"\r\n",  # too many headers
    b"Long: " + b"x" * 70_000 + b"\r\n\r\n",  # a line too long
]


def _parsed(parse_headers: Any, block: bytes, cls: Any) -> Any:
    """What `parse_headers` makes of `block` (followed by a body): the message's class, its
    state (its defects by class and text) and what it left of the stream; or the error."""
    stream = io.BytesIO(block + b"BODY")
    try:
        message = parse_headers(stream, _class=cls)
    except Exception as error:
        return type(error), str(error)
    return _state(message), stream.read()


def _state(value: Any) -> Any:
    """A message as its class and attributes (defects by class and text, the messages of a
    payload as their own state)."""
    import email.message

    if isinstance(value, list):
        return [_state(item) for item in value]
    if not isinstance(value, email.message.Message):
        return value
    state = {name: _state(item) for name, item in vars(value).items() if name != "defects"}
    return type(value), state, [(type(defect), str(defect)) for defect in value.defects]


def _random_block(r: random.Random) -> bytes:
    """Header lines made at random from pieces, plain and otherwise."""
    names = [b"Host", b"X-Amz-Date", b"content-type", b"Content-Type", b"A", b"From", b"a_b"]
    names += [b"", b"Bad name", b" A", b"\tB", b"From ", b"X\xe9"]
    values = [b"v", b"", b" ", b"\t", b"a b\t", b"message/x", b"multipart/y", b"text/plain"]
    values += [b"\xe9", b"\r", b"x\ry", b"\x0b", b"\x00", b"a:b", b"  lead", b"trail  "]
    ends = [b"\r\n", b"\r\n", b"\n", b"\r", b""]
    lines = []
    for _ in range(r.randrange(6)):
        separator = r.choice([b": ", b":", b":\t", b" : ", b""])
        lines.append(r.choice(names) + separator + r.choice(values) + r.choice(ends))
    return b"".join(lines) + r.choice([b"\r\n", b"\r\n", b"\n", b""])


def test_headers_are_the_email_parser_s_own() -> None:
    """`parse_headers` makes of any header block the message the email parser makes (the same
    fields, payload, defects, class), leaves the stream where it does, or raises what it
    raises: botocore's, odd and malformed ones, and 20,000 made at random. The plain ones
    are made without the parser; every other class is the parser's."""
    from mesh_emulator import keepalive
    from mesh_emulator.keepalive import RequestHeaders, _fast_parse_headers

    stdlib = keepalive._stdlib.get("parse_headers", http.client.parse_headers)
    asked: list[Any] = []

    def counted(fp: Any, _class: Any = http.client.HTTPMessage) -> Any:
        asked.append(_class)
        return stdlib(fp, _class=_class)

    parse = _fast_parse_headers(counted)
    for block in _PLAIN_BLOCKS:
        theirs = _parsed(stdlib, block, RequestHeaders)
        assert _parsed(parse, block, RequestHeaders) == theirs, block
        assert theirs[0][0] is RequestHeaders
    assert asked == []  # every plain block made without the parser
    for block in _OTHER_BLOCKS:
        assert _parsed(parse, block, RequestHeaders) == _parsed(stdlib, block, RequestHeaders)
    assert len(asked) == len(_OTHER_BLOCKS) - 2  # the last two raised while being read
    assert _parsed(parse, _BOTOCORE, http.client.HTTPMessage) == _parsed(
        stdlib, _BOTOCORE, http.client.HTTPMessage
    )
    assert asked[-1] is http.client.HTTPMessage
    r = random.Random(20261130)
    made = 0
    for _ in range(20_000):
        block = _random_block(r)
        before = len(asked)
        assert _parsed(parse, block, RequestHeaders) == _parsed(stdlib, block, RequestHeaders)
        made += len(asked) == before
    assert made > 2_000  # plain blocks among them, made without the parser


def test_the_header_parser_is_installed_once() -> None:
    """`install_header_speedups` from many threads at once wraps the standard library's
    `parse_headers` once; a started emulator has installed it."""
    import threading

    from mesh_emulator import keepalive

    threads = [threading.Thread(target=keepalive.install_header_speedups) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keepalive.install_header_speedups()
    stdlib = keepalive._stdlib["parse_headers"]
    assert stdlib.__module__ == "http.client"
    assert http.client.parse_headers is not stdlib
    assert http.client.parse_headers.__module__ == "mesh_emulator.keepalive"
    assert keepalive.KeepAliveRequestHandler.MessageClass is keepalive.RequestHeaders


def _environ_of(emulator: LocalEmulator, request: bytes) -> tuple[dict[str, Any], bytes]:
    """The WSGI environ a raw request makes (its headers' part), and the answer's status
    line and body."""
    seen: list[dict[str, Any]] = []

    def wrap(app: Any) -> Any:
        def keep(environ: dict[str, Any], start_response: Any) -> Any:
            seen.append(
                {
                    key: value
                    for key, value in environ.items()
                    if key.startswith(("HTTP_", "CONTENT_", "REQUEST_", "SERVER_PROTOCOL"))
                    or key in ("PATH_INFO", "QUERY_STRING", "moto.preserved_header_names")
                }
            )
            return app(environ, start_response)

        return keep

    port = int(emulator.endpoint_url.rsplit(":", 1)[1])
    with emulator.wrapped(wrap), socket.create_connection((HOST, port), timeout=10) as raw:
        raw.sendall(request)
        raw.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return seen[0], head.split(b"\r\n", 1)[0] + b"\n" + body


def test_a_request_s_environ_is_the_one_the_email_parser_makes(
    server: LocalEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over a socket, requests whose headers are plain, repeated, underscored (which moto
    keeps), folded or not ASCII make the same WSGI environ and answer with the header parser
    as with the email parser."""
    from mesh_emulator import keepalive

    port = int(server.endpoint_url.rsplit(":", 1)[1])
    body = b"{}"
    fields = "".join(
        f"{name}: {value}\r\n" for name, value in _resolver_headers("ListResolverRules").items()
    )
    requests = [
        fields,
        fields + "X-Twice: 1\r\nX-Twice: 2\r\nX-Meta_Under: u\r\nX-Empty:\r\n",
        fields + "X-Folded: a\r\n\tb\r\n",
        fields + "X-Latin: caf\xe9\r\n",
    ]
    raw = [
        (f"POST / HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Length: 2\r\n" + head + "\r\n").encode(
            "latin-1"
        )
        + body
        for head in requests
    ]
    ours = [_environ_of(server, request) for request in raw]
    monkeypatch.setattr(http.client, "parse_headers", keepalive._stdlib["parse_headers"])
    theirs = [_environ_of(server, request) for request in raw]
    assert ours == theirs
    assert ours[1][0]["HTTP_X_TWICE"] == "1,2"
    assert ours[2][0]["HTTP_X_FOLDED"] == "a\tb"
    assert all(b'"ResolverRules": []' in answer for _, answer in ours)
