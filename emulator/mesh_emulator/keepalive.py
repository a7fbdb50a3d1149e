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

A request's headers are parsed by `http.client.parse_headers` (`http.server` calls it), which
reads the header lines, then has the `email` package's parser make them a message, one
Python call after another for every line. The handler's message class is `RequestHeaders`
(`http.client.HTTPMessage`, nothing added), which `install_header_speedups` (called when a
`KeepAliveMotoServer` starts) makes `parse_headers` answer without the parser when every
line is a plain field (`Name: value`, in printable ASCII and tabs, ended by CRLF or LF, the
block ended by an empty line) and no `Content-Type` names a `message` or `multipart` type
(for which the parser goes on into the body): the message the parser makes of such lines,
each field split as its `compat32` policy splits it (`header_source_parse`), and an empty
payload. Any other block (continuation lines, other bytes, a line without a field's name, a
block the connection cut short) goes to the parser as before, its lines read once (the same
limits and errors); so does every other caller of `parse_headers` (an HTTP client reading a
response). `tests/emulator/test_keepalive.py` compares the two, message for message.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import re
import socket
import threading
from collections.abc import Callable
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
_NAME, _VALUE = rb"[\x21-\x39\x3b-\x7e]+", rb"[\t\x20-\x7e]*"  # printable ASCII (and tabs)
_PLAIN = re.compile(rb"(?:%s:%s\r?\n)*\r?\n" % (_NAME, _VALUE))  # fields, then an empty line
_FIELD = re.compile(r"(%s):[\t ]*(%s)\r?\n" % (_NAME.decode(), _VALUE.decode()))  # noqa: UP031
_BODY_TYPE = re.compile("message|multipart", re.IGNORECASE)  # the parser reads the body
_lock = threading.Lock()
_installed = False
_stdlib: dict[str, Any] = {}  # the standard library's functions, replaced (for the tests)


class RequestHeaders(http.client.HTTPMessage):
    """The headers of a request to the emulator: an `http.client.HTTPMessage`, which
    `parse_headers` may make without the `email` parser (see the module's docstring)."""


def _fast_parse_headers(
    parse_headers: Callable[..., http.client.HTTPMessage],
) -> Callable[..., http.client.HTTPMessage]:
    """`http.client.parse_headers`, making a `RequestHeaders` of plain fields itself; any
    other class or header block is `parse_headers`'s (see the module's docstring)."""
    read_headers = http.client._read_headers  # type: ignore[attr-defined]

    def parse(fp: Any, _class: Any = http.client.HTTPMessage) -> http.client.HTTPMessage:
        if _class is not RequestHeaders:
            return parse_headers(fp, _class=_class)
        block = b"".join(read_headers(fp))
        if _PLAIN.fullmatch(block) is None:
            return parse_headers(io.BytesIO(block), _class=_class)
        # (name, value): the value without the spaces and tabs after the colon, nor the EOL
        fields: list[tuple[str, str]] = _FIELD.findall(block.decode("ascii"))
        for name, value in fields:
            if len(name) == 12 and name.lower() == "content-type" and _BODY_TYPE.search(value):
                return parse_headers(io.BytesIO(block), _class=_class)
        message = RequestHeaders()
        message._headers = fields  # type: ignore[attr-defined]
        message.set_payload("")
        return message

    return parse


def install_header_speedups() -> None:
    """Make `http.client.parse_headers` answer `RequestHeaders` without the email parser
    when it may, once; later calls (from any thread) do nothing."""
    global _installed
    with _lock:
        if _installed:
            return
        _stdlib["parse_headers"] = http.client.parse_headers
        http.client.parse_headers = _fast_parse_headers(http.client.parse_headers)  # type: ignore[assignment]
        _installed = True


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, keeping HTTP/1.1 connections open between requests whose body
    length is known (see the module's docstring)."""

    MessageClass = RequestHeaders

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
        install_header_speedups()
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
