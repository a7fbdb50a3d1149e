"""moto's dispatch answers as before without repeating its lookups (`mesh_emulator.dispatch`)."""

from __future__ import annotations

import inspect
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from resolver_mesh.local.topology import ClientFactory

REGION = "us-east-1"


def test_dispatch_finds_the_same_actions_as_moto() -> None:
    """`_FunctionNames` answers `in` as `inspect.getmembers(cls, inspect.isfunction)` does, for
    every name of the response classes of the services the mesh uses."""
    from moto.ec2.responses import EC2Response
    from moto.ram.responses import ResourceAccessManagerResponse
    from moto.route53resolver.responses import Route53ResolverResponse
    from moto.sts.responses import TokenResponse

    from mesh_emulator import install
    from mesh_emulator.dispatch import _FunctionNames
    from mesh_emulator.route53profiles import Route53ProfilesResponse

    install()
    for owner in (
        EC2Response,
        ResourceAccessManagerResponse,
        Route53ResolverResponse,
        Route53ProfilesResponse,
        TokenResponse,
    ):
        moto_names = {name for name, _ in inspect.getmembers(owner, inspect.isfunction)}
        names = _FunctionNames(owner)
        candidates = set(dir(owner)) | {"list_resolver_rules", "no_such_action", "", "__init__"}
        for name in candidates:
            assert (name in names) == (name in moto_names), (owner.__name__, name)
        assert 3 not in names


def test_moto_s_package_is_not_listed_for_every_request(
    aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import backends

    listed: list[str] = []
    listdir = os.listdir

    def counted(path: Any = ".") -> list[str]:
        listed.append(str(path))
        return listdir(path)

    monkeypatch.setattr(os, "listdir", counted)
    for _ in range(3):
        aws("route53resolver", REGION).list_resolver_rules()
    assert not [path for path in listed if path.rstrip("/").endswith("moto")]
    assert "route53resolver" in backends.list_of_moto_modules()
    assert "ec2" in backends.list_of_moto_modules()


def test_a_model_asked_for_by_many_threads_at_once_is_made_once() -> None:
    from mesh_emulator.dispatch import _made_once

    made: list[str] = []
    barrier = threading.Barrier(20)

    def make(name: str) -> object:
        made.append(name)
        time.sleep(0.05)  # long enough for every thread to ask meanwhile
        return object()

    once = _made_once(make)
    answers: list[object] = []

    def ask() -> None:
        barrier.wait()
        answers.append(once("ram"))

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == ["ram"]
    assert len({id(answer) for answer in answers}) == 1
    assert once("ec2") is not answers[0]
    assert made == ["ram", "ec2"]


def test_moto_asks_for_service_models_and_routers_made_once() -> None:
    from moto.core import responses, routing, utils

    from mesh_emulator import install

    install()
    assert responses.get_service_model is utils.get_service_model is routing.get_service_model
    assert responses.get_service_router is routing.get_service_router
    model = utils.get_service_model("route53resolver")
    assert model.service_name == "route53resolver"
    assert utils.get_service_model("route53resolver") is model
    assert routing.get_service_router("ram") is routing.get_service_router("ram")


def _assumed_key(aws: ClientFactory, account: str) -> str:
    role = f"arn:aws:iam::{account}:role/dispatch-test"
    credentials = aws("sts", REGION).assume_role(RoleArn=role, RoleSessionName="dispatch-test")
    return str(credentials["Credentials"]["AccessKeyId"])


def test_the_account_of_a_key_is_moto_s_answer_found_once(aws: ClientFactory) -> None:
    """Keys of assumed roles in several accounts, an IAM user's key (then deleted), and keys
    no account holds: the same account as moto's scan, which runs once per key."""
    from moto.iam import models as iam_models

    from mesh_emulator import dispatch, install

    install()
    scans: list[str] = []
    accounts = dispatch._AccountsOfKeys(lambda key: scans.append(key) or scan(key))
    scan = dispatch._moto["get_account_id_from"]
    keys = {account: _assumed_key(aws, account) for account in ("111111111111", "222222222222")}
    iam = aws("iam", REGION)
    iam.create_user(UserName="u")
    user_key = iam.create_access_key(UserName="u")["AccessKey"]["AccessKeyId"]
    home = aws("sts", REGION).get_caller_identity()["Account"]
    asked = [*keys.values(), user_key, "testing", "AKIANOSUCHKEY0000000"]
    for _ in range(3):
        for key in asked:
            assert accounts(key) == scan(key), key
    assert [accounts(key) for key in keys.values()] == list(keys)
    assert accounts(user_key) == home
    assert scans.count(keys["111111111111"]) == 1
    assert scans.count(user_key) == 1
    assert scans.count("testing") == 1  # found nowhere, and no key made since (see below)
    iam.delete_access_key(UserName="u", AccessKeyId=user_key)
    assert accounts(user_key) == scan(user_key)
    assert scans.count(user_key) == 2  # no longer where it was found: scanned again
    assert iam_models.get_account_id_from is not scan  # the emulator answers through one


def test_a_key_gone_during_its_scan_is_not_remembered_as_found_nowhere() -> None:
    """The scan named an account that no longer holds the key (deleted meanwhile): that
    answer is moto's for this request, and the next one scans again."""
    from mesh_emulator import dispatch, install

    install()
    scans: list[str] = []
    accounts = dispatch._AccountsOfKeys(lambda key: scans.append(key) or "999999999999")
    assert [accounts("AKIAGONEDURINGSCAN01") for _ in range(2)] == ["999999999999"] * 2
    assert len(scans) == 2


def test_a_key_found_nowhere_is_scanned_for_again_once_a_key_is_made(
    aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator's own lookup (the one moto calls): a key no account holds is scanned for
    once, then answered as moto answered it, until moto makes an access key, by any means
    (an IAM user's key, an assumed role's); a key made later with that very id is found in
    its account."""
    from moto.iam import models as iam_models

    from mesh_emulator import install

    install()
    accounts = iam_models.get_account_id_from
    scan = accounts._scan
    scans: list[str] = []  # for `later` (the server's threads ask for their requests' keys)
    later = "AKIAMADELATER0000001"
    monkeypatch.setattr(
        accounts, "_scan", lambda key: (key == later and scans.append(key)) or scan(key)
    )
    for _ in range(3):
        assert accounts(later) == scan(later) == iam_models.DEFAULT_ACCOUNT_ID
    assert scans == [later]
    _assumed_key(aws, "444444444444")  # moto makes a key: `later` may now be held
    assert accounts(later) == iam_models.DEFAULT_ACCOUNT_ID
    assert scans == [later, later]
    iam = aws("iam", REGION)
    iam.create_user(UserName="u")
    monkeypatch.setattr(
        iam_models, "generate_access_key_id_from_account_id", lambda *_, **__: later
    )
    made = iam.create_access_key(UserName="u")["AccessKey"]["AccessKeyId"]
    assert made == later
    home = aws("sts", REGION).get_caller_identity()["Account"]
    assert accounts(later) == scan(later) == home
    assert scans == [later, later, later]


def test_the_backends_of_an_existing_account_are_moto_s_without_its_lock(
    aws: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`BackendDict[account]`: the same backends as moto's for an account that has them, read
    without moto's backend lock; an account without them is made by moto, under its lock,
    once."""
    from moto.core import base_backend
    from moto.route53resolver.models import route53resolver_backends

    from mesh_emulator import dispatch, install

    install()
    taken: list[int] = []
    lock = base_backend.backend_lock

    class CountingLock:
        def __enter__(self) -> None:
            taken.append(1)
            lock.__enter__()

        def __exit__(self, *exc: object) -> None:
            lock.__exit__(*exc)

    monkeypatch.setattr(base_backend, "backend_lock", CountingLock())
    new = "555555555555"
    assert new not in dict.keys(route53resolver_backends)
    made = route53resolver_backends[new]
    assert taken
    assert new in dict.keys(route53resolver_backends)
    taken.clear()
    moto_getitem = dispatch._moto["BackendDict.__getitem__"]
    for _ in range(3):
        assert route53resolver_backends[new] is made
    assert not taken
    assert moto_getitem(route53resolver_backends, new) is made
    assert taken  # moto's own lookup takes it, even for an account that has its backends
    # A reset empties the list of dicts to clear (and, in it, rebuilt backends may fill a dict
    # again): such a dict goes to moto, which enters it in the list, or no reset clears it.
    cleared = base_backend.BackendDict._instances
    left = [d for d in cleared if d is not route53resolver_backends]
    monkeypatch.setattr(base_backend.BackendDict, "_instances", left)
    taken.clear()
    assert route53resolver_backends[new] is made
    assert taken
    assert any(d is route53resolver_backends for d in base_backend.BackendDict._instances)
    assert base_backend.BackendDict.__getitem__ is not moto_getitem


def test_a_reset_forgets_where_keys_were(aws: ClientFactory, emulator: Any) -> None:
    from moto.iam import models as iam_models

    from mesh_emulator import dispatch, install

    install()
    key = _assumed_key(aws, "333333333333")
    assert iam_models.get_account_id_from(key) == "333333333333"
    emulator.reset()
    assert iam_models.get_account_id_from(key) == dispatch._moto["get_account_id_from"](key)
    assert "333333333333" not in dict.keys(iam_models.iam_backends)  # nothing was made


def test_the_backend_of_a_host_is_moto_s_answer_matched_once() -> None:
    """Every service's host, hosts no pattern matches and none: moto's answers; a host is
    matched against the patterns once, until an extension adds a pattern."""
    import re

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from mesh_emulator import dispatch, install

    install()
    dispatcher = DomainDispatcherApplication(create_backend_app)
    lookup = dispatch._moto["get_backend_for_host"]
    matched: list[str | None] = []
    backends = dispatch._BackendsOfHosts(
        lambda owner, host: matched.append(host) or lookup(owner, host)
    )
    hosts: list[str | None] = [
        f"{name}.{region}.amazonaws.com"
        for name, _ in dispatcher.backend_url_patterns
        for region in ("us-east-1", "eu-west-2")
    ]
    hosts += ["ec2", "moto_api", "localhost", "example.com", "nothing.amazonaws.com", None]
    for _ in range(2):
        for host in hosts:
            assert backends(dispatcher, host) == lookup(dispatcher, host), host
    assert matched.count("route53resolver.us-east-1.amazonaws.com") == 1
    assert matched.count("example.com") == 2  # no backend: matched each time, as before
    patterns = dispatcher.backend_url_patterns
    added = ("claimed", re.compile(r"https?://route53resolver\.eu-west-2\.amazonaws\.com"))
    patterns.insert(0, added)
    try:
        assert backends(dispatcher, "route53resolver.eu-west-2.amazonaws.com") == "claimed"
        assert backends(dispatcher, "route53resolver.us-east-1.amazonaws.com") == "route53resolver"
    finally:
        patterns.remove(added)
    assert backends(dispatcher, "route53resolver.eu-west-2.amazonaws.com") == "route53resolver"


def test_many_threads_each_get_the_account_of_their_key(aws: ClientFactory) -> None:
    """Over HTTP, from 16 threads at once: every assumed-role key of 8 accounts answers its
    own account (GetCallerIdentity, which the account of the key decides), the first time
    and after."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    accounts = [f"{444444444400 + index:012d}" for index in range(8)]
    sts = aws("sts", REGION)
    clients = {}
    for account in accounts:
        role = f"arn:aws:iam::{account}:role/dispatch-test"
        credentials = sts.assume_role(RoleArn=role, RoleSessionName="dispatch-test")
        session = boto3.session.Session(
            aws_access_key_id=credentials["Credentials"]["AccessKeyId"],
            aws_secret_access_key=credentials["Credentials"]["SecretAccessKey"],
            aws_session_token=credentials["Credentials"]["SessionToken"],
        )
        clients[account] = session.client("sts", region_name=REGION)

    def identity(account: str) -> tuple[str, str]:
        return account, clients[account].get_caller_identity()["Account"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(identity, accounts * 6))
    assert len(answers) == 48
    assert all(asked == answered for asked, answered in answers)


class _OtherChoice:
    """A generator whose `choice` is its own: its strings are moto's to make."""

    def choice(self, seq: Any) -> Any:
        return seq[0]


def test_random_strings_are_moto_s_from_the_same_draws() -> None:
    """`_random_strings` makes the strings moto's `get_random_string` makes from the same
    state of the generator (every length, pool and case, among other draws), and leaves the
    generator in the same state; a generator with a `choice` of its own gets moto's."""
    from moto.moto_api._internal.moto_random import MotoRandom

    from mesh_emulator import dispatch, install

    install()
    moto_s = dispatch._moto["get_random_string"]
    ours = dispatch._random_strings(moto_s)
    assert MotoRandom.get_random_string.__name__ == "get_random_string"
    assert MotoRandom.get_random_string is not moto_s
    theirs_generator, our_generator = MotoRandom(20261130), MotoRandom(20261130)
    for index in range(3_000):
        arguments = (index % 70, index % 3 != 0, index % 5 == 0)
        theirs = moto_s(theirs_generator, *arguments)
        assert ours(our_generator, *arguments) == theirs, arguments
        assert our_generator.get_random_string(*arguments) == moto_s(theirs_generator, *arguments)
        assert our_generator.uuid4() == theirs_generator.uuid4()  # the same state after
        assert our_generator.get_random_hex() == theirs_generator.get_random_hex()
    assert ours(our_generator, length=52) == moto_s(theirs_generator, length=52)
    assert ours(our_generator) == moto_s(theirs_generator)  # moto's defaults

    class Subclass(_OtherChoice, MotoRandom):
        pass

    assert ours(Subclass(1), 8) == "a" * 8
    own = MotoRandom(1)
    own.choice = lambda seq: seq[-1]  # type: ignore[method-assign]
    assert ours(own, 4) == "9999"


@pytest.fixture
def unseeded() -> Iterator[None]:
    """After the test, moto's generator seeded from the system again, as it starts."""
    from moto.moto_api._internal import mock_random

    yield
    mock_random.seed()


def _ids(aws: ClientFactory, emulator: Any) -> list[str]:
    """After seeding moto's generator: request ids (header and body) and resource ids."""
    import urllib.request

    with urllib.request.urlopen(  # the emulator's own http://127.0.0.1:PORT
        urllib.request.Request(f"{emulator.endpoint_url}/moto-api/seed?a=42", method="POST")
    ) as response:
        response.read()
    ids: list[str] = []

    def keep(http_response: Any, **_: Any) -> None:
        ids.append(http_response.headers["x-amzn-requestid"])
        ids.extend(re.findall(r"<RequestId>([^<]*)</RequestId>", http_response.text))

    ec2, sts, rules = aws("ec2", REGION), aws("sts", REGION), aws("route53resolver", REGION)
    for client in (ec2, sts, rules):
        client.meta.events.register("after-call", keep)
    try:
        ids.append(ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"])
        ids.append(ec2.create_security_group(GroupName="g", Description="d")["GroupId"])
        ids.extend(vpc["VpcId"] for vpc in ec2.describe_vpcs()["Vpcs"])
        sts.get_caller_identity()  # its body's RequestId too
        rules.list_resolver_rules()
    finally:
        for client in (ec2, sts, rules):
            client.meta.events.unregister("after-call", keep)
    return ids


@pytest.mark.usefixtures("unseeded")
def test_a_seeded_emulator_answers_moto_s_ids(
    aws: ClientFactory, emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeded (`/moto-api/seed`), the emulator answers the same request ids and resource ids
    as with moto's `get_random_string`; request ids are 52 letters and digits, each its own."""
    from moto.moto_api._internal.moto_random import MotoRandom

    from mesh_emulator import dispatch, install

    install()
    ours = _ids(aws, emulator)
    emulator.reset()
    monkeypatch.setattr(MotoRandom, "get_random_string", dispatch._moto["get_random_string"])
    theirs = _ids(aws, emulator)
    assert ours == theirs
    request_ids = [one for one in ours if not one.startswith(("vpc-", "sg-"))]
    assert len(request_ids) == 6  # 5 headers, STS's body
    assert all(re.fullmatch(r"[A-Za-z0-9]{52}", one) for one in request_ids)
    assert len(set(request_ids)) == 5  # a body's id is its header's
    assert len(ours) == 10  # and 4 resources (the default VPC's)


def test_request_ids_are_each_their_own(aws: ClientFactory) -> None:
    from mesh_emulator import install

    install()
    seen = {
        aws("route53resolver", REGION).list_resolver_rules()["ResponseMetadata"]["RequestId"]
        for _ in range(50)
    }
    assert len(seen) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9]{52}", one) for one in seen)


@pytest.mark.usefixtures("unseeded")
def test_request_ids_go_into_bodies_as_moto_puts_them() -> None:
    """moto's `re.sub` of a request id into a body's `<RequestId>`: the same body, for bodies
    with none, one or several (on one line or more), JSON, bytes and None (moto's `sub`
    raises, as before); other patterns and arguments are `re.sub`'s. Through
    `_enrich_response`, seeded: the same headers and body as with `re` itself."""
    import re as re_module

    from moto.core import responses
    from moto.core.responses import BaseResponse
    from moto.moto_api._internal import mock_random

    from mesh_emulator import dispatch, install

    install()
    install()
    standing = responses.re
    assert isinstance(standing, dispatch._Re)
    assert standing.module is re_module
    assert dispatch._moto["re"] is re_module
    assert standing.compile is re_module.compile
    pattern = dispatch._REQUEST_ID_IN_BODY
    bodies: list[Any] = [
        "",
        '{"ResolverRules": []}',
        "<requestId>request-id</requestId>",
        "<A><RequestId>old</RequestId></A>",
        "<RequestId></RequestId>\n<RequestId>a</RequestId><RequestId>b</RequestId>",
        "<RequestId>no end",
        "<RequestId>x</RequestId>" * 3 + "\n" + "<RequestId>y\n</RequestId>",
        "<requestid>x</requestid>",
        b"<RequestId>bytes</RequestId>",
        b"no id",
        None,
        '{"a": "<RequestId>"}',
    ]
    arguments: list[tuple[Any, ...]] = [(pattern, "R" * 52), (pattern, r"\g<0>!")]
    arguments += [(pattern, "R", 1), (pattern, "R", 0, re_module.IGNORECASE)]
    arguments += [(re_module.compile(pattern), "R"), ("Id", "X"), (r"(?<=<requestId>)\w+", "Y")]

    def answer(sub: Any, *args: Any) -> Any:
        try:
            return sub(args[0], args[1], body, *args[2:])
        except Exception as error:
            return type(error), str(error)

    for body in bodies:
        for args in arguments:
            assert answer(standing.sub, *args) == answer(re_module.sub, *args), (body, args)

    def enriched(body: Any) -> Any:
        mock_random.seed(7)
        return BaseResponse._enrich_response({"status": 200}, body)

    ours = [enriched(body) for body in bodies]
    responses.re = re_module  # type: ignore[attr-defined]
    try:
        theirs = [enriched(body) for body in bodies]
    finally:
        responses.re = standing  # type: ignore[attr-defined]
    assert ours == theirs
    assert ours[3][1] == f"<A><RequestId>{ours[3][0]['x-amzn-requestid']}</RequestId></A>"
    assert ours[3][0]["status"] == "200"
