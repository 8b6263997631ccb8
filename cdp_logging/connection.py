"""A kept-alive HTTP/1.1 connection that POSTs a body and reads the answer, with little Python.

:class:`cdp_logging.transport.HTTPTransport` sends through it when no proxy applies to the
host (through ``requests`` otherwise). A batch of 20 events is sent every few hundred
microseconds in a burst, and ``requests`` spends about a millisecond of CPU on each one
(reading every environment variable twice for proxy settings, preparing, merging and hooking
the request, then ``http.client`` parsing the answer's headers with the ``email`` package),
which made the worker, not the network, the limit. Here a request is one ``sendall`` of
bytes prepared once, and the answer one ``recv`` or two; each of those lets the application's
threads run while it waits, and there are no others.

It follows what ``requests`` would do for the same URL: TLS with certificates verified
against the bundle ``requests`` uses (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, else
certifi's) and host names checked, one timeout for connecting and for each read, and the same
exception types (``requests.ConnectionError``, ``requests.Timeout`` and their kin) as the
cause of a failure.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import ssl
import struct
import sys
import time
import zlib
from collections.abc import Iterator, Mapping
from urllib.parse import SplitResult

import requests

#: The most a response head may take; the API's are a few hundred bytes.
MAX_HEAD_BYTES = 64 * 1024
#: The most of an error response's body that is kept (the transport keeps less still).
MAX_BODY_BYTES = 1024 * 1024
#: A connection idle longer than this is checked before it is used again: servers and load
#: balancers close idle connections, and a request written into a closed one is lost.
IDLE_CHECK_SECONDS = 1.0
_RECV_SIZE = 65536

logger = logging.getLogger("cdp_logging")


class ProtocolError(requests.ConnectionError):
    """The server's answer was not HTTP/1.x as expected (or the connection ended within it)."""


class Headers(Mapping[str, str]):
    """An answer's headers: names as the server wrote them, looked up whatever their case.

    Parsed on first use: the library reads none of a successful answer's headers, and
    parsing them all (as ``requests`` does, into a CaseInsensitiveDict) would cost more
    than everything else an answer takes.
    """

    __slots__ = ("_head", "_parsed")

    def __init__(self, head: str) -> None:
        #: The response head after the status line: "Name: value" lines joined by CRLF.
        self._head = head
        self._parsed: dict[str, tuple[str, str]] | None = None

    def _by_name(self) -> dict[str, tuple[str, str]]:
        parsed = self._parsed
        if parsed is None:
            parsed = {}
            for line in self._head.split("\r\n"):
                name, colon, value = line.partition(":")
                if colon:
                    name = name.strip()
                    key = name.lower()
                    value = value.strip()
                    if key in parsed:
                        value = f"{parsed[key][1]}, {value}"
                    parsed[key] = (name, value)
            self._parsed = parsed
        return parsed

    def __getitem__(self, name: str) -> str:
        return self._by_name()[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name()

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._by_name().values())

    def __len__(self) -> int:
        return len(self._by_name())

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class Answer:
    """A parsed response: status, headers and body bytes."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        """The body as text, in the charset the server named (UTF-8 if none)."""
        body = self.body
        if not body:
            return ""
        head = self.headers._head
        lowered = head.lower()
        if "content-encoding:" in lowered:  # not asked for (Accept-Encoding: identity), but read
            encoding = _field(head, lowered, "content-encoding") or ""
            if encoding.lower() in ("gzip", "deflate"):
                try:
                    body = zlib.decompress(body, 47)  # 47: a gzip or a zlib header, detected
                except zlib.error:
                    pass
        charset = "utf-8"
        if "charset=" in lowered:
            for parameter in (_field(head, lowered, "content-type") or "").split(";")[1:]:
                name, _, value = parameter.partition("=")
                if name.strip().lower() == "charset" and value.strip():
                    charset = value.strip().strip('"')
        try:
            return body.decode(charset, "replace")
        except LookupError:
            return body.decode("utf-8", "replace")


def _field(head: str, lowered: str, name: str) -> str | None:
    """The value of header ``name`` (lower case) in a response head, or None: found without
    parsing the others. ``lowered`` is ``head.lower()``, which starts with a CRLF."""
    start = lowered.find(f"\r\n{name}:")
    if start < 0:
        return None
    start += len(name) + 3
    end = lowered.find("\r\n", start)
    return head[start:end if end >= 0 else len(head)].strip()


def tls_context() -> ssl.SSLContext:
    """Certificates and host names verified, against the CA bundle ``requests`` would use."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not bundle:
        import certifi  # a dependency of requests

        bundle = certifi.where()
    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)


class Connection:
    """One HTTP/1.1 connection to ``url``'s host, opened on first use and kept alive.

    Not for use by two threads at once; :class:`cdp_logging.transport.HTTPTransport` keeps
    a pool of them. Example::

        connection = Connection(urlsplit("https://cdp.customer.io"), tls=tls_context())
        answer = connection.post(b"POST /v1/batch HTTP/1.1\\r\\n...\\r\\n\\r\\n", body, timeout=10.0)
    """

    def __init__(self, url: SplitResult, *, tls: ssl.SSLContext | None) -> None:
        self.host = url.hostname or ""
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.tls = tls
        self._socket: socket.socket | None = None
        self._timeout: float | None = None
        self._buffer = b""
        self._last_used = 0.0

    def close(self) -> None:
        """Close the socket (if open); the next post opens a new one."""
        sock, self._socket = self._socket, None
        self._buffer = b""
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def post(self, head: bytes, body: bytes, *, timeout: float) -> Answer:
        """Send ``head`` (the request line and headers, ending in a blank line) and ``body``
        in one write; return the answer. Raises ``requests.RequestException`` subclasses."""
        reused = self._socket is not None
        if reused and time.monotonic() - self._last_used > IDLE_CHECK_SECONDS and self._dropped():
            self.close()
            reused = False
        request = head + body
        try:
            try:
                return self._exchange(request, timeout)
            except requests.ConnectionError as err:
                # A kept-alive connection the server closed between requests fails before
                # any answer arrives: the request was not taken, so it goes once more on a
                # new connection. A new connection failing is a real failure.
                if not reused or getattr(err, "answered", True):
                    raise
            self.close()
            return self._exchange(request, timeout)
        except BaseException:
            self.close()
            raise

    def _dropped(self) -> bool:
        """True if the idle socket became readable: the server closed it (or broke HTTP)."""
        sock = self._socket
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _connect(self, timeout: float) -> socket.socket:
        logger.debug("cdp-logging: opening a connection to %s:%d", self.host, self.port)
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except TimeoutError as err:
            raise requests.exceptions.ConnectTimeout(err) from None
        except OSError as err:
            raise requests.ConnectionError(err) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLError as err:
            sock.close()
            raise requests.exceptions.SSLError(err) from None
        except TimeoutError as err:
            sock.close()
            raise requests.exceptions.ConnectTimeout(err) from None
        except OSError as err:
            sock.close()
            raise requests.ConnectionError(err) from None
        return sock

    def _exchange(self, request: bytes, timeout: float) -> Answer:
        sock = self._socket
        if sock is None:
            sock = self._socket = self._connect(timeout)
            self._buffer = b""
            self._timeout = None
        if timeout != self._timeout:
            _set_timeout(sock, timeout)
            self._timeout = timeout
        try:
            sock.sendall(request)
        except (TimeoutError, BlockingIOError) as err:
            raise requests.exceptions.ReadTimeout(err) from None
        except ssl.SSLError as err:
            raise requests.exceptions.SSLError(err) from None
        except OSError as err:
            raise _unanswered(requests.ConnectionError(err)) from None
        try:
            answer, keep_alive = self._read_answer(sock)
        except (TimeoutError, BlockingIOError) as err:
            raise requests.exceptions.ReadTimeout(err) from None
        except ssl.SSLError as err:
            raise requests.exceptions.SSLError(err) from None
        except ProtocolError:
            raise
        except OSError as err:
            raise _unanswered(requests.ConnectionError(err), answered=bool(self._buffer)) from None
        if keep_alive:
            self._last_used = time.monotonic()
        else:
            self.close()
        logger.debug("cdp-logging: %s:%d answered %d (%d bytes sent)", self.host, self.port,
                     answer.status, len(request))
        return answer

    def _recv(self, sock: socket.socket) -> bytes:
        data = sock.recv(_RECV_SIZE)
        if not data:
            raise _unanswered(ProtocolError("the server closed the connection"),
                              answered=bool(self._buffer))
        return data

    def _read_answer(self, sock: socket.socket) -> tuple[Answer, bool]:
        """Read one response (skipping 1xx ones); say whether the connection stays open."""
        while True:
            head = self._read_until(sock, b"\r\n\r\n", "response head too large").decode("latin-1")
            line_end = head.find("\r\n")
            status_line = (head if line_end < 0 else head[:line_end]).split(" ", 2)
            try:
                version = status_line[0]
                status = int(status_line[1])
            except (IndexError, ValueError):
                raise ProtocolError(f"not an HTTP status line: {status_line[0][:100]!r}") from None
            if not version.startswith("HTTP/1."):
                raise ProtocolError(f"not an HTTP/1.x response: {version[:100]!r}")
            if not 100 <= status < 200:
                break
            # 100 Continue, 103 Early Hints: the real answer follows.
        fields = "" if line_end < 0 else head[line_end:]
        lowered = fields.lower()
        connection = _field(fields, lowered, "connection")
        if version == "HTTP/1.1":
            keep_alive = connection is None or "close" not in connection.lower()
        else:
            keep_alive = connection is not None and "keep-alive" in connection.lower()
        transfer_encoding = _field(fields, lowered, "transfer-encoding")
        length = _field(fields, lowered, "content-length")
        if status == 204 or status == 304:
            body = b""
        elif transfer_encoding is not None and "chunked" in transfer_encoding.lower():
            body = self._read_chunked(sock)
        elif length is not None:
            try:
                body = self._read_exactly(sock, int(length))
            except ValueError:
                raise ProtocolError("bad Content-Length") from None
        else:
            body = self._read_to_end(sock)
            keep_alive = False
        return Answer(status, Headers(fields), body), keep_alive

    def _read_exactly(self, sock: socket.socket, length: int) -> bytes:
        buffer = self._buffer
        while len(buffer) < length:
            buffer += self._recv(sock)
            self._buffer = buffer
        self._buffer = buffer[length:]
        return buffer[:length][:MAX_BODY_BYTES]

    def _read_until(self, sock: socket.socket, delimiter: bytes, too_long: str) -> bytes:
        """The bytes before the next ``delimiter`` (consumed with it); ``too_long`` is the
        error once more than MAX_HEAD_BYTES arrive without one."""
        buffer = self._buffer
        end = buffer.find(delimiter)
        while end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise ProtocolError(too_long)
            buffer += self._recv(sock)
            self._buffer = buffer
            end = buffer.find(delimiter)
        self._buffer = buffer[end + len(delimiter):]
        return buffer[:end]

    def _read_chunked(self, sock: socket.socket) -> bytes:
        parts: list[bytes] = []
        kept = 0
        while True:
            line = self._read_until(sock, b"\r\n", "chunk line too long")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError("bad chunk size") from None
            if size == 0:
                # Trailers, up to the blank line.
                while self._read_until(sock, b"\r\n", "chunk line too long"):
                    pass
                return b"".join(parts)
            chunk = self._read_exactly(sock, size + 2)[:size]
            if kept < MAX_BODY_BYTES:
                parts.append(chunk)
                kept += len(chunk)

    def _read_to_end(self, sock: socket.socket) -> bytes:
        parts = [self._buffer]
        kept = len(self._buffer)
        self._buffer = b""
        while True:
            data = sock.recv(_RECV_SIZE)
            if not data:
                return b"".join(parts)[:MAX_BODY_BYTES]
            if kept < MAX_BODY_BYTES:
                parts.append(data)
                kept += len(data)


#: Where the kernel enforces send and receive timeouts on a blocking socket (SO_RCVTIMEO
#: and SO_SNDTIMEO taking a struct timeval).
_KERNEL_TIMEOUTS = sys.platform.startswith(("linux", "darwin", "freebsd"))


def _set_timeout(sock: socket.socket, timeout: float) -> None:
    """Bound each send and receive on ``sock`` by ``timeout`` seconds.

    Python's own socket timeout polls before every send and receive: two system calls, and
    two releases of the GIL, each of which the worker must win back from the application's
    threads (up to 5 ms apiece while they are busy). On a plain TCP socket the kernel can
    bound a blocking call instead, halving both. TLS sockets keep Python's timeout: there
    the ssl module would retry a timed-out read for ever.
    """
    if _KERNEL_TIMEOUTS and not isinstance(sock, ssl.SSLSocket):
        seconds = int(timeout)
        timeval = struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000) or (0 if seconds else 1))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        except OSError:
            pass
        else:
            sock.settimeout(None)
            return
    sock.settimeout(timeout)


def _unanswered(error: requests.RequestException, *, answered: bool = False) -> requests.RequestException:
    """Mark whether any byte of an answer had arrived when ``error`` happened."""
    error.answered = answered  # type: ignore[attr-defined]
    return error
