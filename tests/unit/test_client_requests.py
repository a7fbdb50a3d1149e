"""The clients `Aws` makes put on the wire exactly what botocore's own clients put there.

`Aws` shares per-service parts between clients and keeps each client's User-Agent strings
(`_CachedUserAgent`): none of it may change a request. A recording HTTP server on 127.0.0.1
answers like the services (a second page for every list call, a throttling answer when told)
and keeps every request as it arrived: request line, headers in order, body. The same calls
through `Aws`'s clients and through clients botocore makes from the same session and settings
must arrive identical, except what changes on every request: the date, the signature, the
invocation id and the attempt header.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import boto3
import botocore.useragent
import pytest
from botocore.config import Config
from botocore.context import start_as_current_context
from botocore.useragent import UserAgentString, register_feature_id

from resolver_mesh.aws.calls import Caller, RateLimiter
from resolver_mesh.aws.session import Aws, _CachedUserAgent
from resolver_mesh.config import Settings
from resolver_mesh.models import AccountAccess

REGION = "us-east-2"
MEMBER = "222222222222"
CHANGING = frozenset({"x-amz-date", "authorization", "amz-sdk-invocation-id", "amz-sdk-request"})
NEXT = "page-2"  # the token of every list call's second (last) page


@dataclass(frozen=True)
class Sent:
    """A request as the server read it."""

    line: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def stable(self) -> tuple[str, tuple[tuple[str, str], ...], bytes]:
        kept = tuple((k, v) for k, v in self.headers if k.lower() not in CHANGING)
        return self.line, kept, self.body

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers if k.lower() == name.lower())


class Recorder(ThreadingHTTPServer):
    """Answers every call with an empty result (a next page first), keeps what it read."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.sent: list[Sent] = []
        self.throttle = 0  # the next N requests get a throttling answer
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def take(self) -> list[Sent]:
        with self.lock:
            taken, self.sent = self.sent, []
        return taken


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # connections are kept open, as AWS keeps them
    server: Recorder

    def answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.sent.append(Sent(self.requestline, tuple(self.headers.items()), body))
            throttled = self.server.throttle > 0
            self.server.throttle -= throttled
        last_page = NEXT.encode() in body or NEXT in self.path
        query = parse_qs(body.decode()) if body.startswith(b"Action=") else {}
        if throttled:
            status, kind = 400, "application/x-amz-json-1.1"
            payload = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
        elif query:
            status, kind, payload = 200, "text/xml", _query_answer(query["Action"][0], last_page)
        else:
            status, kind = 200, "application/x-amz-json-1.1"
            payload = "{}" if last_page else json.dumps({"NextToken": NEXT, "nextToken": NEXT})
        data = payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "recorded")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.answer()

    def do_POST(self) -> None:
        self.answer()

    def log_message(self, *args: Any) -> None:
        pass


def _query_answer(action: str, last_page: bool) -> str:
    if action == "AssumeRole":
        return (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleResult><Credentials><AccessKeyId>ASIAMEMBER</AccessKeyId>"
            "<SecretAccessKey>member-secret</SecretAccessKey><SessionToken>member-token"
            "</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>"
            "<AssumedRoleUser><Arn>arn:aws:sts::222222222222:assumed-role/member/mesh</Arn>"
            "<AssumedRoleId>AROAMEMBER:mesh</AssumedRoleId></AssumedRoleUser>"
            "</AssumeRoleResult></AssumeRoleResponse>"
        )
    if action == "GetCallerIdentity":
        return (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<GetCallerIdentityResult><Account>111111111111</Account><Arn>arn:aws:iam::"
            "111111111111:user/me</Arn><UserId>AIDAME</UserId></GetCallerIdentityResult>"
            "</GetCallerIdentityResponse>"
        )
    token = "" if last_page else f"<nextToken>{NEXT}</nextToken>"
    namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
    return (
        f'<{action}Response xmlns="{namespace}"><requestId>r</requestId>{token}</{action}Response>'
    )


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def home() -> Aws:
    session = boto3.session.Session(
        aws_access_key_id="AKIAHOME",
        aws_secret_access_key="home-secret",
        aws_session_token="home-token",
        region_name=REGION,
    )
    return Aws(Settings(home_region=REGION), session)


def member_of(aws: Aws) -> Aws:
    access = AccountAccess(account_id=MEMBER, role_arn=f"arn:aws:iam::{MEMBER}:role/member")
    member = aws.member(access)
    member.session.get_credentials().get_frozen_credentials()  # assumed once, before both runs
    return member


def stock(aws: Aws, service: str) -> Any:
    """The client botocore makes for `aws`'s session and settings, without `Aws`'s sharing."""
    return aws.session.client(service, region_name=REGION, config=aws._config)


Clients = Callable[[str], Any]


def every_kind(client: Clients) -> None:
    """The mesh's reads and a write, botocore's paginators and a waiter, then reads again."""
    resolver, ec2, ram, profiles = (
        client(s) for s in ("route53resolver", "ec2", "ram", "route53profiles")
    )
    resolver.list_resolver_rules()
    resolver.list_resolver_rule_associations(
        MaxResults=100, Filters=[{"Name": "VPCId", "Values": ["vpc-1"]}]
    )
    ec2.describe_vpcs(MaxResults=1000)
    ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": ["vpc-1", "vpc-2"]}])
    ram.get_resource_share_invitations()
    profiles.list_profiles()
    client("sts").get_caller_identity()
    resolver.create_resolver_rule(
        CreatorRequestId="mesh-1",
        Name="mesh",
        RuleType="FORWARD",
        DomainName="us-east-1.amazonaws.com",
        TargetIps=[{"Ip": "10.0.0.1", "Port": 53}],
        ResolverEndpointId="rslvr-out-1",
    )
    for operation, pages in (
        (resolver.get_paginator("list_resolver_rules"), {"MaxResults": 10}),
        (ec2.get_paginator("describe_vpcs"), {}),
        (profiles.get_paginator("list_profiles"), {}),
        (ram.get_paginator("get_resource_share_invitations"), {}),
    ):
        assert len(list(operation.paginate(**pages))) == 2
    ec2.get_waiter("vpc_exists").wait(VpcIds=["vpc-1"])
    resolver.list_resolver_rules()
    ec2.describe_vpcs(MaxResults=1000)


def sent_by(recorder: Recorder, run: Callable[[Clients], None], client: Clients) -> list[Sent]:
    recorder.take()
    run(client)
    return recorder.take()


def assert_same_requests(mesh: list[Sent], botocore_own: list[Sent]) -> None:
    assert len(mesh) == len(botocore_own) > 0
    for ours, theirs in zip(mesh, botocore_own, strict=True):
        assert ours.stable() == theirs.stable()
        assert ours.header("User-Agent") == theirs.header("User-Agent")


def test_every_kind_of_call_sends_what_botocore_sends(recorder: Recorder) -> None:
    aws = home()
    member = member_of(aws)
    for account in (aws, member):
        ours = sent_by(recorder, every_kind, lambda s, a=account: a.client(s, REGION))
        theirs = sent_by(recorder, every_kind, lambda s, a=account: stock(a, s))
        assert_same_requests(ours, theirs)
    # The paginators' and the waiter's calls carry their feature ids (botocore's "m/" codes:
    # C for a paginator, B for a waiter) besides the client's.
    codes = [set(s.header("User-Agent").split(" m/")[1].split(" ")[0].split(",")) for s in ours]
    added = {frozenset(c - codes[0]) for c in codes}
    assert added == {frozenset(), frozenset("C"), frozenset("B")}


def test_a_call_retried_by_botocore_and_by_the_caller_sends_what_botocore_sends(
    recorder: Recorder,
) -> None:
    aws = home()
    aws._config = aws._config.merge(Config(retries={"total_max_attempts": 3, "mode": "standard"}))
    caller = Caller(RateLimiter(1000.0), max_attempts=3, sleep=lambda _: None)

    def retried(client: Clients) -> None:
        resolver = client("route53resolver")
        resolver.list_resolver_rules(MaxResults=1)
        recorder.throttle = 1  # botocore retries it
        resolver.list_resolver_rules(MaxResults=2)
        recorder.throttle = 3  # every attempt of botocore's: the caller tries again
        caller(resolver.list_resolver_rules, MaxResults=3)

    ours = sent_by(recorder, retried, lambda s: aws.client(s, REGION))
    theirs = sent_by(recorder, retried, lambda s: stock(aws, s))
    assert len(ours) == 1 + 2 + 4
    assert_same_requests(ours, theirs)
    attempts = [sent.header("amz-sdk-request").split("attempt=")[1][0] for sent in ours]
    assert attempts == ["1", "1", "2", "1", "2", "3", "1"]  # botocore's retries, the caller's


def test_threads_sharing_a_client_each_send_their_own_call_s_user_agent(
    recorder: Recorder,
) -> None:
    """Features are read from each thread's own call: a paginating thread's strings never
    reach a plain caller's request, nor the other way round, whichever builds first."""
    aws = home()
    resolver = aws.client("route53resolver", REGION)
    botocore_own = stock(aws, "route53resolver")
    botocore_own.list_resolver_rules()
    list(botocore_own.get_paginator("list_resolver_rules").paginate())
    plain, paginated = (sent.header("User-Agent") for sent in recorder.take()[:2])
    assert plain != paginated
    threads = 8
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        start.wait()
        for _ in range(5):
            if index % 2:
                list(resolver.get_paginator("list_resolver_rules").paginate(MaxResults=10 + index))
            else:
                resolver.list_resolver_rules(MaxResults=10 + index)

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    sent = recorder.take()
    assert len(sent) == 5 * (threads // 2) * (1 + 2)
    for request in sent:
        index = json.loads(request.body)["MaxResults"]
        expected = paginated if index % 2 else plain
        assert request.header("User-Agent") == expected


def test_the_user_agent_is_built_once_per_client_and_features(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[int] = []
    build = UserAgentString.to_string

    def counted(creator: Any) -> str:
        builds.append(id(creator))
        return build(creator)

    monkeypatch.setattr(botocore.useragent.UserAgentString, "to_string", counted)
    aws = home()
    resolver, ec2 = aws.client("route53resolver", REGION), aws.client("ec2", REGION)
    botocore_own = stock(aws, "ec2")
    builds.clear()  # botocore also builds one while it makes a client
    calls = 10
    for _ in range(calls):
        resolver.list_resolver_rules()
        ec2.describe_vpcs()
    assert sorted(builds) == sorted(id(c._user_agent_creator) for c in (resolver, ec2))
    for _ in range(3):
        assert len(list(resolver.get_paginator("list_resolver_rules").paginate())) == 2
    assert len(builds) == 3  # the paginator's feature: one more string, for its client
    builds.clear()
    for _ in range(calls):
        botocore_own.describe_vpcs()
    assert len(builds) == 2 * calls  # botocore's own client: twice per call


@pytest.mark.parametrize("seed", range(4))
def test_any_features_give_botocore_s_string(seed: int) -> None:
    """Feature ids registered in any order and number, within and beyond `KEPT` orders."""
    session = boto3.session.Session(
        aws_access_key_id="a", aws_secret_access_key="b", region_name=REGION
    )
    config = Config(
        user_agent_extra="extra/1", user_agent_appid="mesh#1", retries={"mode": "adaptive"}
    )
    client = session.client("ec2", config=config)
    _CachedUserAgent.adopt(client)
    creator = client._user_agent_creator
    assert isinstance(creator, _CachedUserAgent)
    names = sorted(botocore.useragent._USERAGENT_FEATURE_MAPPINGS)
    chance = random.Random(seed)
    tried = set()
    for size in itertools.chain(range(len(names) + 1), [chance.randint(0, 8) for _ in range(80)]):
        features = chance.sample(names, size)
        with start_as_current_context():
            for name in features:
                register_feature_id(name)
            built = creator.to_string()
            assert built == UserAgentString.to_string(creator)  # botocore's own, uncached
            assert creator.to_string() == built
        tried.add(built)
    assert len(tried) > _CachedUserAgent.KEPT
    assert len(creator._built) == _CachedUserAgent.KEPT
    assert creator.to_string() == UserAgentString.to_string(creator)  # outside any context
    other = creator.with_client_config(Config(user_agent_extra="other/2"))
    assert other.to_string().endswith(" other/2")  # a copy keeps strings of its own
    assert not creator.to_string().endswith(" other/2")


def test_only_botocore_s_own_builder_is_adopted() -> None:
    session = boto3.session.Session(
        aws_access_key_id="a", aws_secret_access_key="b", region_name=REGION
    )

    class Other(UserAgentString):  # type: ignore[misc]
        pass

    client = session.client("ec2")
    other = Other.from_environment()
    client._user_agent_creator = other
    _CachedUserAgent.adopt(client)
    assert type(client._user_agent_creator) is Other
