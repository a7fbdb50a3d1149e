"""An in-process AWS emulator (moto's ThreadedMotoServer, whose connections stay open between
requests as AWS's do: `mesh_emulator.keepalive`) bound to 127.0.0.1.

`LocalEmulator` installs the emulator's extensions (`mesh_emulator.install`), then serves every
AWS API on one loopback port (port 0 picks a free one). Point boto3 at it with
`emulator_environment(url)`. The server shares the process with its callers, so its state is
global to the process: call `reset()` between tests (it also frees the memory moto would keep,
see `drop_moto_backends`).
"""

from __future__ import annotations

import logging
import socket
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self, TypeVar

from mesh_emulator import install

HOST = "127.0.0.1"
Middleware = TypeVar("Middleware")
LOCAL_EXTRAS_MISSING = "the local emulator needs the 'local' extras: pip install -e '.[local]'"


class LocalExtrasMissingError(RuntimeError):
    """moto's server cannot be imported; the message says what to install."""


def require_local_extras() -> None:
    """Raise `LocalExtrasMissingError` unless moto's server (the `local` extras) imports."""
    try:
        import moto.server  # noqa: F401
    except ImportError as error:
        raise LocalExtrasMissingError(LOCAL_EXTRAS_MISSING) from error


def emulator_environment(endpoint_url: str) -> dict[str, str]:
    """Environment variables that make boto3 talk to the emulator with dummy credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }


def shell_exports(endpoint_url: str) -> str:
    """A shell line that points the AWS CLI, boto3 and `resolver-mesh` at the emulator."""
    environment = {**emulator_environment(endpoint_url), "AWS_REGION": "us-east-1"}
    return "export " + " ".join(f"{name}={value}" for name, value in environment.items())


def _check_free(port: int) -> None:
    """Raise OSError when `port` on 127.0.0.1 is taken (the server would wait forever)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        probe.bind((HOST, port))


def drop_moto_backends() -> None:
    """Drop every moto backend (all services, accounts and Regions), and moto's caches of them.

    moto's own reset rebuilds each backend before dropping it (EC2's default VPCs and AMIs cost
    about a second per Region), and two moto 5.2.5 caches keep dropped backends alive for the
    rest of the process: `AccountSpecificBackend._generate_regions` (an `lru_cache` keyed by up
    to 128 per-account backend dicts, with every Region's backend in them) and
    `Subnet._base_avail_ip_iterator` (an unbounded cache keyed by every subnet ever made, each
    holding its EC2 backend). A pytest session that reset between tests grew by about 17 MiB
    per test. Call it only between tests: a request in flight would meet an empty backend.
    """
    from moto.core.base_backend import AccountSpecificBackend, BackendDict, backend_lock
    from moto.ec2.models.subnets import Subnet

    with backend_lock:
        for service in BackendDict._instances:  # type: ignore[misc]
            service.clear()
        AccountSpecificBackend._generate_regions.cache_clear()
        Subnet._base_avail_ip_iterator.cache_clear()


class LocalEmulator:
    """moto server on 127.0.0.1; use as a context manager or call `start()` and `stop()`."""

    def __init__(self, port: int = 0, *, quiet: bool = True) -> None:
        self._port = port
        self._quiet = quiet
        self._server: Any = None
        self._url: str | None = None

    def start(self) -> Self:
        """Start the server (idempotent) and return self."""
        if self._server is None:
            require_local_extras()
            if self._port:
                _check_free(self._port)
            install()
            werkzeug_log = logging.getLogger("werkzeug")
            if self._quiet and werkzeug_log.level == logging.NOTSET:
                werkzeug_log.setLevel(logging.WARNING)  # one access-log line per request otherwise
            from mesh_emulator.keepalive import KeepAliveMotoServer

            server = KeepAliveMotoServer(ip_address=HOST, port=self._port, verbose=False)
            server.start()
            _, port = server.get_host_and_port()
            self._server = server
            self._url = f"http://{HOST}:{port}"
        return self

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:PORT` of the running server."""
        if self._url is None:
            raise RuntimeError("LocalEmulator is not started")
        return self._url

    def open_connections(self) -> int:
        """The client connections the server holds open now (kept alive between requests)."""
        return len(self.wsgi_server().opened)

    def wsgi_server(self) -> Any:
        """The running werkzeug server; its `app` may be wrapped (see `wrapped`)."""
        if self._server is None or self._server._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server._server

    @contextmanager
    def wrapped(self, wrap: Callable[[Any], Middleware]) -> Iterator[Middleware]:
        """For the block, the server runs `wrap(app)`: a WSGI middleware (faults, latency,
        refusals) around the app it runs now, which comes back after the block."""
        server = self.wsgi_server()
        app = server.app
        server.app = middleware = wrap(app)
        try:
            yield middleware
        finally:
            server.app = app

    def reset(self) -> None:
        """Forget every resource in every service, account and Region, and free its memory.

        After it, no moto backend of before the reset is reachable (see `drop_moto_backends`).
        """
        url = f"{self.endpoint_url}/moto-api/reset"  # always our own http://127.0.0.1:PORT
        drop_moto_backends()
        request = urllib.request.Request(url, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()

    def stop(self) -> None:
        """Stop the server and close its socket (idempotent)."""
        server, self._server, self._url = self._server, None, None
        if server is not None:
            server.stop()
            if server._server is not None:
                server._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
