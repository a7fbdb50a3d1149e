"""While `Aws` makes sessions and clients, botocore's checks of each handler and its aliasing of
event names take a quicker way (`_accepts_kwargs`, one cache of aliased names) with the same
answers as botocore's own. No AWS call is made."""

from __future__ import annotations

import copy
import functools
import inspect
from typing import Any

import boto3
import botocore.handlers
import botocore.hooks
import pytest

from resolver_mesh.aws.session import _SHARED_CLIENT_PARTS, Aws, _accepts_kwargs
from resolver_mesh.config import Settings
from resolver_mesh.models import AccountAccess


def with_kwargs(a: Any, **kwargs: Any) -> None: ...


def without_kwargs(a: Any, *args: Any) -> None: ...


def keyword_only(*, a: Any) -> None: ...


class Handlers:
    def method(self, **kwargs: Any) -> None: ...

    def strict_method(self, a: Any) -> None: ...

    @classmethod
    def class_method(cls, **kwargs: Any) -> None: ...

    @staticmethod
    def static(a: Any) -> None: ...

    def __call__(self, **kwargs: Any) -> None: ...

    partial_method = functools.partialmethod(strict_method, 1)


def signed(**kwargs: Any) -> None: ...


signed.__signature__ = inspect.Signature()  # type: ignore[attr-defined]  # says: no **kwargs


@functools.wraps(without_kwargs)
def wrapped(**kwargs: Any) -> None: ...


QUICK = [
    with_kwargs,
    without_kwargs,
    keyword_only,
    lambda **kwargs: None,
    lambda a: None,
    Handlers().method,
    Handlers().strict_method,
    Handlers.class_method,
    Handlers.static,
    Handlers.strict_method,
]
INSPECTED = [
    functools.partial(with_kwargs, 1),
    Handlers(),
    Handlers().partial_method,
    signed,
    wrapped,
    print,
    dict.get,
]


@pytest.mark.parametrize("handler", QUICK)
def test_a_plain_function_or_method_is_checked_from_its_code_as_inspect_finds(handler: Any) -> None:
    assert _accepts_kwargs(handler) is bool(inspect.getfullargspec(handler)[2])


@pytest.mark.parametrize("handler", INSPECTED)
def test_any_other_callable_goes_to_botocore_s_own_check(handler: Any) -> None:
    assert _accepts_kwargs(handler) is None


def test_botocore_s_builtin_handlers_get_botocore_s_answer_mostly_the_quick_way() -> None:
    quick = 0
    for _, handler, *_ in botocore.handlers.BUILTIN_HANDLERS:
        answer = _accepts_kwargs(handler)
        if answer is not None:
            quick += 1
            assert answer is bool(inspect.getfullargspec(handler)[2]), handler
    assert quick >= 0.8 * len(botocore.handlers.BUILTIN_HANDLERS)


def home() -> Aws:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return Aws(Settings(home_region="us-east-1"), session)


def member_session(aws: Aws | None = None) -> Any:
    role = "arn:aws:iam::222222222222:role/member"
    access = AccountAccess(account_id="222222222222", role_arn=role)
    return (aws or home()).member(access).session


@pytest.mark.parametrize("handler", [without_kwargs, Handlers().strict_method, signed])
def test_a_handler_without_kwargs_is_refused_as_botocore_refuses_it(handler: Any) -> None:
    plain = botocore.hooks.HierarchicalEmitter()
    with pytest.raises(ValueError, match="must accept keyword arguments") as botocore_s:
        plain.register("before-call", handler)
    with _SHARED_CLIENT_PARTS.active(), pytest.raises(ValueError, match="keyword") as ours:
        member_session().events.register("before-call", handler)
    assert str(ours.value) == str(botocore_s.value)


def test_a_member_session_registers_botocore_s_handlers_without_inspecting_plain_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inspected: list[Any] = []
    inspect_handler = botocore.hooks.accepts_kwargs

    def counted(func: Any) -> Any:
        inspected.append(func)
        return inspect_handler(func)

    aws = home()
    monkeypatch.setattr(botocore.hooks, "accepts_kwargs", counted)
    session = member_session(aws)
    handlers = [h for _, h, *_ in botocore.handlers.BUILTIN_HANDLERS]
    assert inspected
    assert all(_accepts_kwargs(h) is None for h in inspected)
    assert len(inspected) == sum(_accepts_kwargs(h) is None for h in handlers)
    client = session.client("route53resolver", region_name="us-east-1")
    assert client.meta.events  # made outside `Aws`: botocore's own checks again
    assert len(inspected) > sum(_accepts_kwargs(h) is None for h in handlers)


def every_event_name() -> list[str]:
    """Event names with every alias's old part in every position botocore looks for it."""
    names = []
    for old in botocore.hooks.EVENT_ALIASES:
        names += [
            f"before-call.{old}.ListResolverRules",
            f"before-call.{old}",
            f"{old}.after-call",
            f"before-call.x{old}.Op",
            f"provide-client-params.{old}.DescribeVpcs",
        ]
    return [*names, "before-call.route53resolver.ListResolverRules", "needs-retry.ec2"]


def test_emitters_made_while_active_share_aliased_names_equal_to_botocore_s() -> None:
    plain = botocore.hooks.EventAliaser(botocore.hooks.HierarchicalEmitter())
    with _SHARED_CLIENT_PARTS.active():
        first = botocore.hooks.EventAliaser(botocore.hooks.HierarchicalEmitter())
        copied = copy.copy(first)
        own = botocore.hooks.EventAliaser(botocore.hooks.HierarchicalEmitter(), {"a": "b"})
    assert first._alias_name_cache is copied._alias_name_cache
    assert own._alias_name_cache is not first._alias_name_cache
    assert plain._alias_name_cache is not first._alias_name_cache
    for name in every_event_name():
        assert first._alias_event_name(name) == plain._alias_event_name(name), name
        assert copied._alias_event_name(name) == plain._alias_event_name(name), name
    assert own._alias_event_name("before-call.a.Op") == "before-call.b.Op"
    assert "before-call.a.Op" not in first._alias_name_cache
