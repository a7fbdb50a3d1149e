"""moto's dispatch answers as before without repeating its lookups (`mesh_emulator.dispatch`)."""

from __future__ import annotations

import inspect
import os
import threading
import time
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
    no account holds: the same account as moto's scan, which runs once per known key."""
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
    assert scans.count("testing") == 3  # unknown keys are scanned for each time, as before
    iam.delete_access_key(UserName="u", AccessKeyId=user_key)
    assert accounts(user_key) == scan(user_key)
    assert scans.count(user_key) == 2  # no longer where it was found: scanned again
    assert iam_models.get_account_id_from is not scan  # the emulator answers through one


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
