"""`Caller`: what it retries, what it gives up on at once, how it stops, and how it counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from resolver_mesh.aws.calls import (
    CONNECT_ATTEMPTS,
    Caller,
    CallInterruptedError,
    RateLimiter,
    UnsupportedEndpointError,
    stop_requested,
)


@pytest.fixture(autouse=True)
def _no_stop_left() -> Iterator[None]:
    stop_requested.clear()
    yield
    stop_requested.clear()


class Operation:
    """A fake boto3 client method: raises the given errors in turn, then returns {}."""

    def __init__(self, name: str, *errors: Exception) -> None:
        self.__name__ = name
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {}


def caller(max_attempts: int = 6) -> Caller:
    return Caller(RateLimiter(1000.0, sleep=lambda s: None), max_attempts, sleep=lambda s: None)


def client_error(status: int, code: str, headers: dict[str, str] | None = None) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
    }
    return ClientError(response, "UpdateResolverRule")  # type: ignore[arg-type]


def test_successes_and_failed_attempts_are_counted_apart() -> None:
    call = caller()
    call(Operation("update_resolver_rule", client_error(500, "InternalServiceErrorException")))
    call(Operation("list_resolver_rules", ReadTimeoutError(endpoint_url="http://x")))
    with pytest.raises(ClientError):
        call(Operation("create_resolver_rule", client_error(400, "AccessDeniedException")))
    assert call.counts == {"writes": 1, "failed_writes": 2, "reads": 1, "failed_reads": 1}


def test_a_stop_request_starts_no_call() -> None:
    stop_requested.set()
    operation = Operation("create_resolver_rule")
    call = caller()
    with pytest.raises(CallInterruptedError, match="create_resolver_rule: not started"):
        call(operation)
    assert operation.calls == 0
    assert sum(call.counts.values()) == 0


def test_a_stop_request_during_backoff_gives_up_with_the_failure() -> None:
    failure = client_error(503, "ServiceUnavailable")
    operation = Operation("create_resolver_rule", failure)
    call = Caller(RateLimiter(1000.0), sleep=lambda seconds: stop_requested.set())
    with pytest.raises(ClientError) as raised:
        call(operation)
    assert raised.value is failure
    assert operation.calls == 1


def test_a_refused_connection_is_tried_connect_attempts_times() -> None:
    refused = [EndpointConnectionError(endpoint_url="http://127.0.0.1:1") for _ in range(6)]
    operation = Operation("scan", *refused)
    with pytest.raises(EndpointConnectionError):
        caller()(operation)
    assert operation.calls == CONNECT_ATTEMPTS
    one = Operation("scan", *refused)
    with pytest.raises(EndpointConnectionError):
        caller(max_attempts=1)(one)
    assert one.calls == 1


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (501, {}),
        (500, {"content-type": "text/html; charset=utf-8", "server": "Werkzeug/3.1.9"}),
    ],
)
def test_an_endpoint_without_the_operation_is_not_retried(
    status: int, headers: dict[str, str]
) -> None:
    operation = Operation("update_resolver_rule", client_error(status, str(status), headers))
    with pytest.raises(
        UnsupportedEndpointError, match=r"^the endpoint does not implement UpdateResolverRule "
    ):
        caller()(operation)
    assert operation.calls == 1


def test_an_html_500_from_elsewhere_is_retried() -> None:
    html = {"content-type": "text/html"}  # e.g. a proxy in front of AWS: may pass
    operation = Operation("update_resolver_rule", client_error(500, "500", html))
    caller()(operation)
    assert operation.calls == 2
