"""Fault injection for the local emulator: AWS misbehaving over real HTTP, at a chosen rate.

`FaultInjector` wraps the moto server's WSGI app. For requests to the chosen services it
answers, with probability `rate` each, one of:
- `throttle`: HTTP 400 `ThrottlingException` (nothing done);
- `error`: HTTP 500 `InternalServiceErrorException` (nothing done);
- `lost`: the request IS carried out, then HTTP 500 is returned (the reply was lost);
- `slow`: the reply is delayed by `delay` seconds (longer than the client's timeout);
- `denied` (only when asked for): HTTP 403, refused by policy (nothing done).
Query-protocol services (EC2) are chosen by fragments of their form body (`queries`:
`Action=DescribeVpcs`, an URL-encoded filter) and answered in their XML error shape with their
codes (`RequestLimitExceeded`, `InternalError`, `UnauthorizedOperation`). `regions` limits the
faults to requests signed for those Regions.
Decisions come from a seeded generator, so a run can be repeated; `injected` counts them.
"""

from __future__ import annotations

import io
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote_plus

from mesh_emulator.server import LocalEmulator

KINDS = ("throttle", "error", "lost", "slow")
_ERRORS = {
    "throttle": ("400 Bad Request", "ThrottlingException", "Rate exceeded"),
    "error": ("500 Internal Server Error", "InternalServiceErrorException", "injected failure"),
    "lost": ("500 Internal Server Error", "InternalServiceErrorException", "reply lost"),
    "denied": ("403 Forbidden", "AccessDeniedException", "injected: not authorized"),
}
_QUERY_ERRORS = {
    "throttle": ("503 Service Unavailable", "RequestLimitExceeded", "Request limit exceeded."),
    "error": ("500 Internal Server Error", "InternalError", "injected failure"),
    "lost": ("500 Internal Server Error", "InternalError", "reply lost"),
    "denied": ("403 Forbidden", "UnauthorizedOperation", "injected: not authorized"),
}
_SIGNED_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")

StartResponse = Callable[..., Any]


class FaultInjector:
    """A WSGI middleware that injects faults into the calls of some services."""

    def __init__(
        self,
        app: Any,
        rate: float,
        kinds: Iterable[str] = KINDS,
        services: Iterable[str] = ("Route53Resolver",),
        seed: int = 0,
        delay: float = 1.5,
        queries: Iterable[str] = (),
        regions: Iterable[str] | None = None,
    ) -> None:
        self.app = app
        self.queries = tuple(queries)
        self.regions = None if regions is None else frozenset(regions)
        self.rate = rate
        self.kinds = tuple(kinds)
        self.services = tuple(services)
        self.delay = delay
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def _chosen(self, environ: dict[str, Any]) -> bool:
        """Whether the request is one of those faults are injected into (Region, service or
        query); a query's body is read, then put back for the app."""
        if self.regions is not None:
            signed = _SIGNED_REGION.search(str(environ.get("HTTP_AUTHORIZATION", "")))
            if not signed or signed.group(1) not in self.regions:
                return False
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if target:
            return any(target.startswith(service) for service in self.services)
        if not self.queries:
            return False
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        form = unquote_plus(body.decode(errors="replace"))
        return any(query in form for query in self.queries)

    def _choose(self, environ: dict[str, Any]) -> str | None:
        if not self._chosen(environ):
            return None
        with self._lock:
            self.requests += 1
            if self._random.random() >= self.rate:
                return None
            kind = self._random.choice(self.kinds)
            self.injected[kind] += 1
            return kind

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        kind = self._choose(environ)
        if kind is None:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        if kind == "slow":
            time.sleep(self.delay)
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        if kind == "lost":
            body = b"".join(self.app(environ, lambda *args, **kwargs: None))
            del body  # carried out; the reply never reaches the client
        if environ.get("HTTP_X_AMZ_TARGET"):
            status, code, message = _ERRORS[kind]
            payload = json.dumps({"__type": code, "message": message}).encode()
            content_type = "application/x-amz-json-1.1"
        else:
            status, code, message = _QUERY_ERRORS[kind]
            payload = (
                f"<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error><Code>{code}"
                f"</Code><Message>{message}</Message></Error></Errors>"
                "<RequestID>injected</RequestID></Response>"
            ).encode()
            content_type = "text/xml"
        start_response(
            status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
        )
        return [payload]


@contextmanager
def injected_faults(
    emulator: LocalEmulator, rate: float, **options: Any
) -> Iterator[FaultInjector]:
    """Inject faults into `emulator` for the duration of the block."""
    with emulator.wrapped(lambda app: FaultInjector(app, rate, **options)) as injector:
        yield injector
