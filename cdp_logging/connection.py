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
import time
import zlib
from typing import Mapping
from urllib.parse import SplitResult

import requests
from requests.structures import CaseInsensitiveDict

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


class Answer:
    """A parsed response: status, headers (case-insensitive) and body bytes."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        """The body as text, in the charset the server named (UTF-8 if none)."""
        body = self.body
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        if encoding in ("gzip", "deflate"):
            try:
                body = zlib.decompress(body, 47)  # 47: gzip or zlib header, detected
            except zlib.error:
                pass
        charset = "utf-8"
        for parameter in self.headers.get("Content-Type", "").split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            return body.decode(charset, "replace")
        except LookupError:
            return body.decode("utf-8", "replace")


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
        try:
            readable, _, _ = select.select([self._socket], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _connect(self, timeout: float) -> socket.socket:
        logger.debug("cdp-logging: opening a connection to %s:%d", self.host, self.port)
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except socket.timeout as err:
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
        except socket.timeout as err:
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
        sock.settimeout(timeout)
        try:
            sock.sendall(request)
        except socket.timeout as err:
            raise requests.exceptions.ReadTimeout(err) from None
        except ssl.SSLError as err:
            raise requests.exceptions.SSLError(err) from None
        except OSError as err:
            raise _unanswered(requests.ConnectionError(err)) from None
        try:
            answer, keep_alive = self._read_answer(sock)
        except socket.timeout as err:
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
            buffer = self._buffer
            end = buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError("response head too large")
                buffer += self._recv(sock)
                self._buffer = buffer
                end = buffer.find(b"\r\n\r\n")
            head = buffer[:end].decode("latin-1")
            self._buffer = buffer[end + 4:]
            lines = head.split("\r\n")
            try:
                version, status_text = lines[0].split(" ", 2)[:2]
                status = int(status_text)
            except ValueError:
                raise ProtocolError(f"not an HTTP status line: {lines[0][:100]!r}") from None
            if not version.startswith("HTTP/1."):
                raise ProtocolError(f"not an HTTP/1.x response: {lines[0][:100]!r}")
            headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
            for line in lines[1:]:
                name, colon, value = line.partition(":")
                if colon:
                    name = name.strip()
                    value = value.strip()
                    headers[name] = f"{headers[name]}, {value}" if name in headers else value
            if 100 <= status < 200:
                continue  # 100 Continue, 103 Early Hints: the real answer follows
            break
        connection = headers.get("Connection", "").lower()
        keep_alive = ("close" not in connection if version == "HTTP/1.1"
                      else "keep-alive" in connection)
        if status in (204, 304):
            body = b""
        elif "chunked" in headers.get("Transfer-Encoding", "").lower():
            body = self._read_chunked(sock)
        elif "Content-Length" in headers:
            try:
                length = int(headers["Content-Length"])
            except ValueError:
                raise ProtocolError("bad Content-Length") from None
            body = self._read_exactly(sock, length)
        else:
            body = self._read_to_end(sock)
            keep_alive = False
        return Answer(status, headers, body), keep_alive

    def _read_exactly(self, sock: socket.socket, length: int) -> bytes:
        buffer = self._buffer
        while len(buffer) < length:
            buffer += self._recv(sock)
            self._buffer = buffer
        self._buffer = buffer[length:]
        return buffer[:length][:MAX_BODY_BYTES]

    def _read_line(self, sock: socket.socket) -> bytes:
        buffer = self._buffer
        end = buffer.find(b"\r\n")
        while end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("chunk line too long")
            buffer += self._recv(sock)
            self._buffer = buffer
            end = buffer.find(b"\r\n")
        self._buffer = buffer[end + 2:]
        return buffer[:end]

    def _read_chunked(self, sock: socket.socket) -> bytes:
        parts = []
        kept = 0
        while True:
            line = self._read_line(sock)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError("bad chunk size") from None
            if size == 0:
                while self._read_line(sock):  # trailers, up to the blank line
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


def _unanswered(error: requests.RequestException, *, answered: bool = False) -> requests.RequestException:
    """Mark whether any byte of an answer had arrived when ``error`` happened."""
    error.answered = answered  # type: ignore[attr-defined]
    return error
