"""The local collector's HTTP server: one thread per connection, at most ``max_connections`` of
them; each request whole within ``idle_timeout`` seconds; the key, path and length checked
before a byte of the body is read, and bodies over the API's limits never read into memory."""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from .wire import MAX_DISCARD_BYTES, WireResponse, closing_error, error_response, header_value, logger


#: A refused body up to this long is read and thrown away and the connection kept; a longer
#: one (up to MAX_DISCARD_BYTES) is thrown away too, then the connection closed.
_KEEP_ALIVE_DISCARD_BYTES = 1024 * 1024


class Answering(Protocol):
    """What the server asks of the collector it serves (:class:`~cdp_logging.testing.receiving.Receiver`)."""

    idle_timeout: float
    max_connections: int

    def _refuse_unread(self, method: str, target: str, headers: dict[str, str],
                       length: int) -> WireResponse | None: ...

    def _answer(self, method: str, target: str, headers: dict[str, str], body: bytes,
                client_address: tuple[str, int], framing_error: WireResponse | None) -> WireResponse | None: ...


class CollectorServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many clients (one per worker process) may connect at once when a test starts.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], collector: Answering) -> None:
        self.collector = collector
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        #: Whether the last connection was refused for the cap (warned once a spell).
        self._said_full = False
        super().__init__(address, _CollectorRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up with socket.getfqdn, which may query DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            full = len(self._connections) >= self.collector.max_connections
            if not full:
                self._connections.add(request)
            said, self._said_full = self._said_full, full
        if full:
            # Each connection holds a thread: past the cap a new one is answered 503 and closed.
            # Said once while the cap holds, not once per connection refused.
            logger.log(logging.DEBUG if said else logging.WARNING,
                       "%d connections open (max_connections): refusing new ones (%s)",
                       self.collector.max_connections, client_address)
            busy = error_response(503, f"the collector has {self.collector.max_connections} connections open; "
                               "try again")
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                             b"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%b"
                             % (len(busy.body), busy.body))
            socketserver.TCPServer.shutdown_request(self, request)
            return
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
    server: CollectorServer

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def setup(self) -> None:
        super().setup()
        # Every read waits at most this long, and a whole request (from the end of the previous
        # answer) must arrive within it: an idle, stalled or trickling client lets its thread go.
        self.connection.settimeout(self.server.collector.idle_timeout)
        self.deadline = time.monotonic() + self.server.collector.idle_timeout
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self))

    def handle_one_request(self) -> None:
        self.deadline = time.monotonic() + self.server.collector.idle_timeout
        super().handle_one_request()

    def _handle(self) -> None:
        headers = dict(self.headers.items())
        length, framing_error = self._framing(headers)
        # The key, the path and the length, before a byte of the body is read.
        unread = None if framing_error else self.server.collector._refuse_unread(
            self.command, self.path, headers, length)
        body = b""
        if unread is not None:
            # The body is read and thrown away after the answer; a large one ends the connection.
            framing_error = unread._replace(close=length > _KEEP_ALIVE_DISCARD_BYTES)
        elif framing_error is None:
            read = self._read_body(length)
            if read is None:
                return
            body = read
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
            return
        if unread is not None and length and not self._discard(length):
            self.close_connection = True

    def _discard(self, length: int) -> bool:
        """Read and throw away (a chunk at a time, within the request's deadline) up to
        ``length`` bytes of a body refused unread; True when all of it was. Closed with them
        unread, the connection would be reset, and a client still sending would see that
        instead of the answer."""
        left = length
        with contextlib.suppress(OSError, ValueError):
            while left > 0 and length - left < MAX_DISCARD_BYTES:
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        return left == 0

    def _framing(self, headers: dict[str, str]) -> tuple[int, WireResponse | None]:
        """The body's length, or an answer closing the connection when it cannot be known."""
        # Without a length the end of the body is unknown, so these answers also end the connection.
        if header_value(headers, "Transfer-Encoding", ""):
            return 0, closing_error(411, "send a Content-Length; chunked bodies are refused")
        length_text = header_value(headers, "Content-Length", "")
        if not length_text:
            if self.command == "POST":
                return 0, closing_error(411, "a POST needs a Content-Length")
            return 0, None
        if not length_text.isdigit():
            return 0, closing_error(400, f"bad Content-Length {length_text!r}")
        return int(length_text), None

    def _read_body(self, length: int) -> bytes | None:
        """Read exactly ``length`` bytes (known to be within the API's limit), or None when the
        client went away or stalled mid-body."""
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            logger.debug("client on port %s stalled mid-body; connection closed", self.client_address[1])
            body = b""
        if len(body) < length:
            self.close_connection = True
            return None
        return body

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The collector logs each request itself, with what it accepted."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s: " + format, self.address_string(), *args)


class _DeadlineReader(socket.SocketIO):
    """The connection's reads, each bounded by the time left to the request's deadline: a
    client sending a byte just within every idle timeout still ends within one."""

    def __init__(self, sock: socket.socket, handler: _CollectorRequestHandler) -> None:
        super().__init__(sock, "rb")
        self._connection = sock
        self._handler = handler

    def readinto(self, buffer: Any) -> int | None:
        left = self._handler.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took longer than the collector's idle_timeout")
        self._connection.settimeout(min(left, self._handler.server.collector.idle_timeout))
        return super().readinto(buffer)
