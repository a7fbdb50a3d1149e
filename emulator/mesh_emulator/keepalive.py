"""HTTP/1.1 keep-alive for the emulator, as AWS endpoints keep connections open.

werkzeug's development server (which moto's server runs) answers every request with
`Connection: close`: it cannot tell where a request body ends, so it reads whatever follows a
response and closes. A client of the emulator therefore opened a new connection for every
call, which AWS does not make it do: an SDK client keeps its connections open in its pool, one
socket (file descriptor) each, until they are reused. What that costs a process with many
clients (Lambda allows 1,024 file descriptors) could not be seen here.

`KeepAliveRequestHandler` answers a request whose body has a `Content-Length` (every AWS SDK
call) on the same connection and leaves it open: it reads exactly that body before the
application runs, so the next request on the connection starts where this one ends, and sends
the response with its length. Anything else (a chunked body, `Expect: 100-continue`, HEAD,
HTTP/1.0, `Connection: close`) goes to werkzeug's own handling, which closes the connection as
before. An application that fails answers 500 and closes the connection. The access-log
line of a request is not made when the `werkzeug` logger would drop it.

`KeepAliveMotoServer` is moto's `ThreadedMotoServer` with that handler; `stop()` also closes
the connections still open, so that a stopped emulator answers nothing.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

_log = logging.getLogger("werkzeug")
_HOP_BY_HOP = frozenset({"connection", "content-length", "keep-alive", "transfer-encoding"})
_ERROR = b"Internal Server Error"


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, keeping HTTP/1.1 connections open between requests whose body
    length is known (see the module's docstring)."""

    def _keeps_alive(self) -> bool:
        headers = self.headers
        return (
            self.request_version == "HTTP/1.1"
            and not self.close_connection
            and "Transfer-Encoding" not in headers
            and "Expect" not in headers
            and self.command != "HEAD"
            and (headers.get("Content-Length") or "0").isdigit()
        )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """werkzeug's access-log line, not even formatted (the path decoded, the date written)
        when the `werkzeug` logger has a level that drops it, as `LocalEmulator` sets by
        default; without a level, werkzeug sets INFO and logs, as before."""
        if _log.level != logging.NOTSET and not _log.isEnabledFor(logging.INFO):
            return
        super().log_request(code, size)

    def setup(self) -> None:
        super().setup()
        # A response goes out as headers, then body: without this, the body waits for the
        # client's delayed ACK of the headers (Nagle's algorithm), about 40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        opened = getattr(self.server, "opened", None)
        if opened is not None:
            opened.add(self.connection)

    def finish(self) -> None:
        opened = getattr(self.server, "opened", None)
        if opened is not None:
            opened.discard(self.connection)
        super().finish()

    def run_wsgi(self) -> None:
        if not self._keeps_alive():
            super().run_wsgi()  # werkzeug's: `Connection: close`
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or "0"))
        self.environ = environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(body)
        answer: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            answer[:] = [status, headers]
            return chunks.append

        chunks: list[bytes] = []
        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception:
            _log.exception("Error on request %s", self.requestline)
            answer.clear()
        if not answer:  # failed, or never started its response
            self.close_connection = True
            answer[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
            chunks = [_ERROR]
        status, headers = answer
        code, _, reason = status.partition(" ")
        payload = b"".join(chunks)
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()


class _OpenConnections:
    """The sockets a server's handlers hold open, and how many it accepted (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.accepted = 0

    def add(self, connection: socket.socket) -> None:
        with self._lock:
            self._sockets.add(connection)
            self.accepted += 1

    def discard(self, connection: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(connection)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sockets)

    def close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for connection in sockets:
            with contextlib.suppress(OSError):  # closed by the client meanwhile
                connection.shutdown(socket.SHUT_RDWR)  # its handler's read ends: it finishes


class KeepAliveMotoServer(ThreadedMotoServer):
    """moto's threaded server whose connections stay open between requests (see the
    module's docstring); `stop()` closes them."""

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        server: Any = make_server(
            self._ip_address, self._port, app, True, request_handler=KeepAliveRequestHandler
        )
        server.opened = _OpenConnections()
        self._server = server
        self._server_ready_event.set()
        server.serve_forever()

    def stop(self) -> None:
        super().stop()
        opened = getattr(self._server, "opened", None)
        if opened is not None:
            opened.close_all()
