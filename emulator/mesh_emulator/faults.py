"""Fault injection for the local emulator: AWS misbehaving over real HTTP, at a chosen rate.

`FaultInjector` wraps the moto server's WSGI app. For requests to the chosen services it
answers, with probability `rate` each, one of:
- `throttle`: HTTP 400 `ThrottlingException` (nothing done);
- `error`: HTTP 500 `InternalServiceErrorException` (nothing done);
- `lost`: the request IS carried out, then HTTP 500 is returned (the reply was lost);
- `slow`: the reply is delayed by `delay` seconds (longer than the client's timeout).
Decisions come from a seeded generator, so a run can be repeated; `injected` counts them.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from mesh_emulator.server import LocalEmulator

KINDS = ("throttle", "error", "lost", "slow")
_ERRORS = {
    "throttle": ("400 Bad Request", "ThrottlingException", "Rate exceeded"),
    "error": ("500 Internal Server Error", "InternalServiceErrorException", "injected failure"),
    "lost": ("500 Internal Server Error", "InternalServiceErrorException", "reply lost"),
}

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
    ) -> None:
        self.app = app
        self.rate = rate
        self.kinds = tuple(kinds)
        self.services = tuple(services)
        self.delay = delay
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def _choose(self, environ: dict[str, Any]) -> str | None:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not any(target.startswith(service) for service in self.services):
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
        status, code, message = _ERRORS[kind]
        payload = json.dumps({"__type": code, "message": message}).encode()
        start_response(
            status,
            [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(payload)))],
        )
        return [payload]


@contextmanager
def injected_faults(
    emulator: LocalEmulator, rate: float, **options: Any
) -> Iterator[FaultInjector]:
    """Inject faults into `emulator` for the duration of the block."""
    with emulator.wrapped(lambda app: FaultInjector(app, rate, **options)) as injector:
        yield injector
