"""Every AWS call goes through `Caller`: rate-limited per Region, retried with jittered backoff.

Invariants:
- At most `per_second` calls per Region start in any second (attempts and pages included); the
  limiter is shared by all threads working in that Region.
- Throttling, 5xx and connection errors are retried with full-jitter exponential backoff, at
  most `max_attempts` attempts in all. botocore's own retries are switched off (see `clients`).
  An endpoint that cannot be connected to at all (refused, unknown host) gets
  `CONNECT_ATTEMPTS` attempts, so a stopped endpoint fails fast.
- `LimitExceededException` means a quota is full: it is raised as `QuotaExceededError` at once.
  An endpoint that does not implement the operation (HTTP 501, or the HTML crash page of a local
  moto server) is raised as `UnsupportedEndpointError` at once.
- Once `stop_requested` is set (Ctrl-C in the CLI), no call starts: a call that has sent
  nothing raises `CallInterruptedError`; a retry is not made (the last failure is raised); a
  call in flight finishes. Waits (rate limit, backoff) end early.
- Every attempt is counted once: a success as a read or a write, a failure (error answer, no
  answer) as a failed read or failed write; calls that never started are not counted.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServiceErrorException",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
    }
)
TRANSIENT_ERRORS = (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
# A call refused by policy: an IAM or SCP deny (JSON services say AccessDeniedException, EC2
# UnauthorizedOperation, query services AccessDenied).
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
# A call whose credentials the Region did not accept: so AWS answers in an opt-in Region the
# account has not enabled (EC2 AuthFailure, JSON services UnrecognizedClientException, query
# services InvalidClientTokenId), as it does for credentials that are bad everywhere.
UNRECOGNISED_CODES = frozenset(
    {"AuthFailure", "UnrecognizedClientException", "InvalidClientTokenId"}
)
# Calls that change nothing; assuming a member account's role only obtains credentials.
READ_PREFIXES = ("list_", "get_", "describe_", "scan", "query", "assume_role")
CONNECT_ATTEMPTS = 2  # nothing listens there: one quick retry, then give up
# Set once the process should stop (the CLI sets it on Ctrl-C); never cleared by this module.
stop_requested = threading.Event()


class QuotaExceededError(Exception):
    """An AWS quota is full (LimitExceededException); retrying will not help."""


class CallInterruptedError(Exception):
    """A stop was requested before this call sent anything: it was not made."""


class UnsupportedEndpointError(BotoCoreError):  # type: ignore[misc]  # botocore is untyped
    """The endpoint does not implement the operation; retrying will not help."""

    fmt = "{message}"


def pause(seconds: float) -> None:
    """Sleep, but wake up at once when a stop is requested."""
    stop_requested.wait(seconds)


def _unsupported(operation: Callable[..., Any], error: ClientError) -> str | None:
    """Why `error` says the endpoint lacks the operation (HTTP 501, or the HTML page a local
    moto server's web server answers with for an operation moto does not implement), or None."""
    metadata = error.response.get("ResponseMetadata", {})
    status = metadata.get("HTTPStatusCode", 0)
    headers = metadata.get("HTTPHeaders", {})
    html = str(headers.get("content-type", "")).startswith("text/html")
    local = str(headers.get("server", "")).startswith("Werkzeug")  # never an AWS endpoint
    if status != 501 and not (status == 500 and html and local):
        return None
    meta = getattr(getattr(operation, "__self__", None), "meta", None)  # a boto3 client's
    where = f"the endpoint {meta.endpoint_url}" if meta else "the endpoint"
    service = f"{meta.service_model.service_name} " if meta else ""
    return (
        f"{where} does not implement {service}{error.operation_name}"
        f" (HTTP {status}{' with an HTML page' if html else ''});"
        " a plain moto server? use `resolver-mesh emulator`"
    )


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_denied(error: BaseException) -> bool:
    """Whether a call was refused by policy in the Region it was made in. A refused AssumeRole
    is not: that is a member account that cannot be reached, whatever the Region."""
    return (
        isinstance(error, ClientError)
        and error_code(error) in DENIED_CODES
        and error.operation_name != "AssumeRole"
    )


def is_unrecognised(error: BaseException) -> bool:
    """Whether a call's credentials were not accepted in the Region it was made in (AssumeRole
    aside): the account may not have enabled that Region (`Aws.regions_not_enabled` tells)."""
    return (
        isinstance(error, ClientError)
        and error_code(error) in UNRECOGNISED_CODES
        and error.operation_name != "AssumeRole"
    )


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


class RateLimiter:
    """Spaces calls evenly: one every 1/per_second seconds, the first one at once."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = pause,
    ) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            self._sleep(start - now)


class Caller:
    """Makes AWS calls for one Region under its rate limit, with retries, and counts them."""

    def __init__(
        self,
        limiter: RateLimiter,
        max_attempts: int = 6,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = pause,
    ) -> None:
        self.limiter = limiter
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def __call__(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        name = getattr(operation, "__name__", "call")
        kind = "reads" if name.startswith(READ_PREFIXES) else "writes"
        failure: Exception | None = None  # the last failed attempt, when retrying
        for attempt in range(1, self.max_attempts + 1):
            self.limiter.acquire()
            if stop_requested.is_set():
                raise failure or CallInterruptedError(f"{name}: not started (interrupted)")
            try:
                result = operation(**kwargs)
            except ClientError as error:
                self._count(f"failed_{kind}")
                code = error_code(error)
                if code == "LimitExceededException":
                    raise QuotaExceededError(
                        f"{name}: AWS quota reached: {error_message(error)}"
                    ) from error
                unsupported = _unsupported(operation, error)
                if unsupported:
                    raise UnsupportedEndpointError(message=unsupported) from None
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if (code not in RETRYABLE_CODES and status < 500) or attempt == self.max_attempts:
                    raise
                failure = error
            except TRANSIENT_ERRORS as error:
                self._count(f"failed_{kind}")
                unreachable = isinstance(error, EndpointConnectionError)
                if attempt == self.max_attempts or (unreachable and attempt >= CONNECT_ATTEMPTS):
                    raise
                failure = error
            else:
                self._count(kind)
                return result
            self.sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1))))
        raise AssertionError("unreachable")  # pragma: no cover

    def _count(self, kind: str) -> None:
        with self._count_lock:
            self.counts[kind] += 1

    def pages(
        self,
        operation: Callable[..., Any],
        key: str,
        cursor_param: str = "NextToken",
        cursor_key: str = "NextToken",
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Every item of a paginated list call, one rate-limited call per page."""
        for page in self.page_lists(operation, key, cursor_param, cursor_key, **kwargs):
            yield from page

    def page_lists(
        self,
        operation: Callable[..., Any],
        key: str,
        cursor_param: str = "NextToken",
        cursor_key: str = "NextToken",
        **kwargs: Any,
    ) -> Iterator[list[Any]]:
        """The items of a paginated list call, page by page, one rate-limited call each."""
        token: Any = None
        while True:
            page = self(operation, **kwargs, **({cursor_param: token} if token else {}))
            yield list(page.get(key, []))
            token = page.get(cursor_key)
            if not token:
                return


def scan_table(call: Caller, client: Any, table: str, **kwargs: Any) -> Iterator[Any]:
    """Every item of a DynamoDB table (read consistently, `kwargs` as `Scan` takes them), one
    rate-limited call per page."""
    return call.pages(
        client.scan,
        "Items",
        cursor_param="ExclusiveStartKey",
        cursor_key="LastEvaluatedKey",
        TableName=table,
        ConsistentRead=True,
        **kwargs,
    )
