"""Every AWS call goes through `Caller`: rate-limited per Region, retried with jittered backoff.

Invariants:
- At most `per_second` calls per Region start in any second (attempts and pages included); the
  limiter is shared by all threads working in that Region.
- Throttling, 5xx and connection errors are retried with full-jitter exponential backoff, at
  most `max_attempts` attempts in all. botocore's own retries are switched off (see `clients`).
- `LimitExceededException` means a quota is full: it is raised as `QuotaExceededError` at once.
- Every attempt is counted as a read or a write, for reports and benchmarks.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import (
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
# Calls that change nothing; assuming a member account's role only obtains credentials.
READ_PREFIXES = ("list_", "get_", "describe_", "scan", "query", "assume_role")


class QuotaExceededError(Exception):
    """An AWS quota is full (LimitExceededException); retrying will not help."""


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


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


class RateLimiter:
    """Spaces calls evenly: one every 1/per_second seconds, the first one at once."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
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
        sleep: Callable[[float], None] = time.sleep,
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
        for attempt in range(1, self.max_attempts + 1):
            self.limiter.acquire()
            with self._count_lock:
                self.counts[kind] += 1
            try:
                return operation(**kwargs)
            except ClientError as error:
                code = error_code(error)
                if code == "LimitExceededException":
                    raise QuotaExceededError(
                        f"{name}: AWS quota reached: {error_message(error)}"
                    ) from error
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if (code not in RETRYABLE_CODES and status < 500) or attempt == self.max_attempts:
                    raise
            except TRANSIENT_ERRORS:
                if attempt == self.max_attempts:
                    raise
            self.sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1))))
        raise AssertionError("unreachable")  # pragma: no cover

    def pages(
        self,
        operation: Callable[..., Any],
        key: str,
        cursor_param: str = "NextToken",
        cursor_key: str = "NextToken",
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Every item of a paginated list call, one rate-limited call per page."""
        token: Any = None
        while True:
            page = self(operation, **kwargs, **({cursor_param: token} if token else {}))
            yield from page.get(key, [])
            token = page.get(cursor_key)
            if not token:
                return
