"""The local collector's HTTP server: one thread per connection, idle connections closed, bodies
read within bounds."""

from __future__ import annotations


import contextlib
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


from .wire import _MAX_READ_BYTES, _Response, _closing_error, _header, logger


class Answering(Protocol):
    """What the server asks of the collector it serves (:class:`~cdp_logging.testing.receiving.Receiver`)."""

    idle_timeout: float

    def _answer(self, method: str, target: str, headers: dict[str, str], body: bytes,
                client_address: tuple[str, int], framing_error: _Response | None) -> _Response | None: ...


class _CollectorServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many clients (one per worker process) may connect at once when a test starts.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], collector: Answering) -> None:
        self.collector = collector
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _CollectorRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up with socket.getfqdn, which may query DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End the keep-alive connections, whose threads would otherwise go on answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # The client may have closed it already.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; this collector speaks only through its logger.
        logger.exception("error while answering %s", client_address)


class _CollectorRequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, so a client's session sends all its batches on one.
    protocol_version = "HTTP/1.1"
    server_version = "cdp-logging-collector"
    sys_version = ""
    # Headers and body go out as two writes; without TCP_NODELAY the second can wait ~40 ms for
    # the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _CollectorServer

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def setup(self) -> None:
        super().setup()
        # Every read waits at most this long: an idle or stalled client lets its thread go.
        self.connection.settimeout(self.server.collector.idle_timeout)

    def _handle(self) -> None:
        headers = dict(self.headers.items())
        body, framing_error = self._read_body(headers)
        if body is None:
            return
        response = self.server.collector._answer(
            self.command,
            self.path,
            headers,
            body,
            (str(self.client_address[0]), int(self.client_address[1])),
            framing_error,
        )
        if response is None:
            self.close_connection = True
            return
        self.send_response_only(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        if response.close:
            self.send_header("Connection", "close")
        try:
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # A client that timed out has gone; what it sent was still received and kept.
            logger.debug("client on port %s left before its answer", self.client_address[1])
            self.close_connection = True

    def _read_body(self, headers: dict[str, str]) -> tuple[bytes | None, _Response | None]:
        """Read exactly Content-Length bytes: (body, None), (b"", an error answer), or (None, None)
        when the client went away mid-body."""
        # Without a length the end of the body is unknown, so these answers also end the connection.
        if _header(headers, "Transfer-Encoding", ""):
            return b"", _closing_error(411, "send a Content-Length; chunked bodies are refused")
        length_text = _header(headers, "Content-Length", "")
        if not length_text:
            if self.command == "POST":
                return b"", _closing_error(411, "a POST needs a Content-Length")
            return b"", None
        length = int(length_text) if length_text.isdigit() else -1
        if length < 0:
            return b"", _closing_error(400, f"bad Content-Length {length_text!r}")
        if length > _MAX_READ_BYTES:
            return b"", _closing_error(413, f"a {length} byte body is far over any limit")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            logger.debug("client on port %s stalled mid-body; connection closed", self.client_address[1])
            body = b""
        if len(body) < length:
            self.close_connection = True
            return None, None
        return body, None

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The collector logs each request itself, with what it accepted."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s: " + format, self.address_string(), *args)
