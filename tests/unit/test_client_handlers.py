"""Clients made by `Aws` share one copy of their session's event handlers and keep their own
additions (`_SharedHandlers`): every event finds exactly the handlers, in the order, that
botocore's own per-client copy finds. No AWS call is made."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable
from typing import Any

import boto3
import botocore.hooks
import pytest

from resolver_mesh.aws.session import Aws, _SessionHandlers, _SharedHandlers
from resolver_mesh.config import Settings
from resolver_mesh.models import AccountAccess

MEMBER = "222222222222"
SERVICES = ("ec2", "ram", "route53resolver", "route53profiles", "sts", "dynamodb")


def session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


def handlers_of(client: Any) -> Any:
    return client.meta.events._emitter._handlers


def kind(handler: Any) -> Any:
    """A handler, with those botocore makes for each client (bound to its signer, retry
    handler, user agent) named by what they are rather than by which object they are."""
    if hasattr(handler, "__self__") and hasattr(handler, "__func__"):
        return handler.__func__
    if type(handler).__module__.startswith("botocore.") and not callable(
        getattr(handler, "__wrapped__", None)
    ):
        return type(handler)
    return handler


def paths(node: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterable[tuple[str, ...]]:
    yield prefix
    for part, child in node["children"].items():
        yield from paths(child, (*prefix, part))


def events_of(client: Any, plain_handlers: Any) -> list[str]:
    """Every event name the trie could answer differently: each registered path (wildcards
    taken literally and as a concrete name), and every root kind for every operation."""
    service = client.meta.service_model.service_id.hyphenize()
    operations = client.meta.service_model.operation_names
    names = {".".join(p) for p in paths(plain_handlers._root) if p}
    names |= {
        ".".join("Anything" if part == "*" else part for part in name.split(".")) for name in names
    }
    for root in plain_handlers._root["children"]:
        names |= {root, f"{root}.{service}"} | {f"{root}.{service}.{op}" for op in operations}
    return sorted(names)


@pytest.mark.parametrize("service", SERVICES)
def test_every_event_finds_the_handlers_a_plain_copy_finds(service: str) -> None:
    aws = Aws(Settings(home_region="us-east-1"), session())
    role = f"arn:aws:iam::{MEMBER}:role/resolver-mesh-member-resolver-mesh"
    for owner in (aws, aws.member(AccountAccess(account_id=MEMBER, role_arn=role))):
        shared = owner.client(service, "eu-west-1")
        # botocore's own copy, for a client made the same way
        plain = owner.session.client(service, region_name="eu-west-1", config=owner._config)
        assert isinstance(handlers_of(shared), _SharedHandlers)
        assert not isinstance(handlers_of(plain), _SharedHandlers)  # a full copy of its own
        assert handlers_of(plain)._root is not handlers_of(shared)._base
        names = events_of(plain, handlers_of(plain))
        assert len(names) > 100
        for name in names:
            found = [kind(h) for h in handlers_of(shared).prefix_search(name)]
            assert found == [kind(h) for h in handlers_of(plain).prefix_search(name)], name


def test_clients_of_a_session_share_one_copy_taken_again_when_the_session_changes() -> None:
    aws = Aws(Settings(home_region="us-east-1"), session())
    first = aws.client("ec2", "us-east-1")
    second = aws.client("route53resolver", "eu-west-1")
    assert handlers_of(first)._base is handlers_of(second)._base
    seen: list[str] = []

    def added(**kwargs: Any) -> None:
        seen.append("added")

    aws.session.events.register("before-call.ec2", added)  # the session changes
    third = aws.client("ec2", "eu-west-1")
    assert handlers_of(third)._base is not handlers_of(first)._base
    assert added in list(handlers_of(third).prefix_search("before-call.ec2.DescribeVpcs"))
    # a client made before has what a copy taken then would have: not the new handler
    assert added not in list(handlers_of(first).prefix_search("before-call.ec2.DescribeVpcs"))


def test_a_member_session_lends_its_handlers_and_copies_them_before_a_change() -> None:
    aws = Aws(Settings(home_region="us-east-1"), session())
    role = f"arn:aws:iam::{MEMBER}:role/resolver-mesh-member-resolver-mesh"
    member = aws.member(AccountAccess(account_id=MEMBER, role_arn=role))
    lent = member.session._session._events._emitter._handlers
    assert isinstance(lent, _SessionHandlers)
    first = member.client("ec2", "us-east-1")
    second = member.client("ram", "eu-west-1")
    assert handlers_of(first)._base is handlers_of(second)._base is lent._root  # no copy
    before = list(handlers_of(first).prefix_search("before-call.ec2.DescribeVpcs"))

    def added(**kwargs: Any) -> None: ...

    member.session.events.register("before-call.ec2", added)  # the session changes
    assert lent._root is not handlers_of(first)._base  # it took a copy of its own first
    assert list(handlers_of(first).prefix_search("before-call.ec2.DescribeVpcs")) == before
    third = member.client("ec2", "eu-west-1")
    assert added in handlers_of(third).prefix_search("before-call.ec2.DescribeVpcs")
    member.session.events.unregister("before-call.ec2", added)
    assert added in handlers_of(third).prefix_search("before-call.ec2.DescribeVpcs")
    assert added not in member.session._session._events._emitter._handlers.prefix_search(
        "before-call.ec2.DescribeVpcs"
    )


def test_a_client_s_own_handlers_stay_its_own() -> None:
    aws = Aws(Settings(home_region="us-east-1"), session())
    one, other = aws.client("ec2", "us-east-1"), aws.client("ec2", "eu-west-1")

    def mine(**kwargs: Any) -> None: ...

    one.meta.events.register_first("before-call.ec2.DescribeVpcs", mine)
    assert next(iter(handlers_of(one).prefix_search("before-call.ec2.DescribeVpcs"))) is mine
    assert mine not in list(handlers_of(other).prefix_search("before-call.ec2.DescribeVpcs"))
    one.meta.events.unregister("before-call.ec2.DescribeVpcs", mine)
    assert mine not in list(handlers_of(one).prefix_search("before-call.ec2.DescribeVpcs"))
    assert handlers_of(other)._base is not None  # the shared copy was not changed


def test_clients_made_outside_aws_copy_the_handlers_as_botocore_does() -> None:
    Aws(Settings(home_region="us-east-1"), session()).client("ec2", "us-east-1")
    assert type(handlers_of(session().client("ec2", region_name="us-east-1"))) is (
        botocore.hooks._PrefixTrie
    )


KEYS = ("a", "a.b", "a.b.c", "a.*.c", "a.*", "x.b.c", "a.b.*", "*.b")
SEARCHES = ("a", "a.b", "a.b.c", "a.z.c", "a.b.z", "x.b.c", "q.b", "a.b.c.d")


def test_additions_and_removals_search_as_in_a_copy() -> None:
    """Any sequence of additions (every section) and removals, on the base then on the
    client, searches like botocore's copy of the base with the same additions and removals."""
    randomly = random.Random(11)
    for _ in range(200):
        base = botocore.hooks._PrefixTrie()
        for index in range(randomly.randrange(0, 12)):
            base.append_item(randomly.choice(KEYS), f"base{index}", randomly.randrange(3))
        plain = copy.copy(base)  # botocore's copy
        shared = _SharedHandlers(base._recursive_copy(base._root))
        added: list[tuple[str, str]] = []
        for index in range(randomly.randrange(1, 10)):
            if added and randomly.random() < 0.3:
                key, value = added.pop(randomly.randrange(len(added)))
                for trie in (plain, shared):
                    trie.remove_item(key, value)
            else:
                key, section = randomly.choice(KEYS), randomly.randrange(3)
                added.append((key, f"own{index}"))
                for trie in (plain, shared):
                    trie.append_item(key, f"own{index}", section)
            for search in SEARCHES:
                assert list(shared.prefix_search(search)) == list(plain.prefix_search(search))
        again = copy.copy(shared)
        for search in SEARCHES:
            assert list(again.prefix_search(search)) == list(plain.prefix_search(search))
