"""A kept-alive HTTP/1.1 connection that POSTs a body and reads the answer, with little Python.

:class:`cdp_logging.delivery.transport.HTTPTransport` sends through it when no proxy applies to the
host and ``httptools`` can be imported (through ``requests`` otherwise). A batch of 20
events is sent every few hundred microseconds in a burst, and ``requests`` spends about a
millisecond of CPU on each one, which made the worker, not the network, the limit. Here a
request is one ``send`` of bytes prepared once, and the answer one ``recv`` or two, parsed by
``httptools`` (llhttp, the parser of Node.js): strict about framing, so a malformed answer
is an error that closes the connection, never bytes left over to "answer" the next request.

Nothing a server does holds the worker past one deadline per request: connecting, sending
and the whole answer end within ``timeout`` (or ``(connect, read)``: connecting within the
first, the rest within the second). At most
:data:`~cdp_logging.delivery.answer.MAX_HEAD_BYTES` of heads (interim ``1xx`` answers
included) and :data:`~cdp_logging.delivery.answer.MAX_BODY_BYTES` of body are read: longer
heads are an error, and of a longer body the rest is left unread and the connection closed.
Redirects are answers like any other: never followed.

TLS certificates are verified against the bundle ``requests`` uses (``REQUESTS_CA_BUNDLE``,
``CURL_CA_BUNDLE``, else certifi's) and host names checked. Failures raise the library's own
:class:`~cdp_logging.errors.TransportError` subclasses (:class:`~cdp_logging.errors.ConnectError`,
:class:`~cdp_logging.errors.TLSError`, :class:`~cdp_logging.errors.ConnectTimeout`,
:class:`~cdp_logging.errors.ReadTimeout`, :class:`~cdp_logging.errors.ProtocolError`) with a
message naming the host, the port and what went wrong.
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
from collections.abc import Iterator
from urllib.parse import SplitResult

import requests

try:
    import httptools
except ImportError:  # pragma: no cover - then HTTPTransport sends through requests
    httptools = None  # type: ignore[assignment]
from ..errors import ConnectError, ConnectTimeout, ProtocolError, ReadTimeout, TLSError, TransportError
from ..secret import Secret
from .answer import Answer, AnswerReader


_RECV_SIZE = 65536


#: A request's timeout in seconds: one for the whole request, or (connect, read).
Timeout = float | tuple[float, float]


logger = logging.getLogger("cdp_logging")


def tls_context() -> ssl.SSLContext:
    """Certificates and host names verified, against the CA bundle ``requests`` would use."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not bundle:
        import certifi  # a dependency of requests

        bundle = certifi.where()
    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)


def describe_failure(error: BaseException, where: str) -> str:
    """What went wrong reaching ``where`` (``host:port``), from ``error`` and its causes:
    name resolution, a refused connection, TLS, a timeout. For errors of either path (the
    lean connection's, or those ``requests`` and urllib3 wrap around the socket's).

    Example::

        >>> describe_failure(ConnectionRefusedError(111, "Connection refused"), "127.0.0.1:9")
        'could not connect to 127.0.0.1:9: connection refused'
    """
    for cause in causes(error):
        if isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError":
            return f"could not connect to {where}: the host name could not be resolved ({_strerror(cause)})"
        if isinstance(cause, ConnectionRefusedError):
            return f"could not connect to {where}: connection refused"
        if type(cause) is OSError and str(cause).startswith("Tunnel connection failed"):
            return f"connection to {where} failed: {str(cause)[:200]}"  # a proxy's CONNECT refused
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS with {where} failed: certificate not trusted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or _strerror(cause)
            hint = " (plain HTTP server?)" if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE",
                                                         "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST") else ""
            return f"TLS handshake with {where} failed{hint}: {reason}"
    if isinstance(error, (requests.exceptions.ConnectTimeout, ConnectTimeout)):
        return f"could not connect to {where}: no connection within the timeout"
    if any(isinstance(cause, (requests.Timeout, TimeoutError, ReadTimeout))
           or type(cause).__name__ == "ReadTimeoutError" for cause in causes(error)):
        return f"no complete answer from {where} within the timeout"
    if isinstance(error, ProtocolError):
        return str(error)
    return f"connection to {where} failed: {_strerror(error)}"


def port_of(url: SplitResult) -> int:
    """The port ``url`` names, else its scheme's.

    Example::

        >>> port_of(urlsplit("https://cdp.customer.io")), port_of(urlsplit("http://proxy:3128"))
        (443, 3128)
    """
    return url.port or (443 if url.scheme == "https" else 80)


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what it wraps: causes, contexts, urllib3's ``reason`` and args."""
    seen: set[int] = set()
    pending = [error]
    while pending and len(seen) < 20:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *current.args]
        pending.extend(item for item in nested if isinstance(item, BaseException))


def _strerror(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)[:200] or type(error).__name__


class Connection:
    """One HTTP/1.1 connection to ``url``'s host, opened on first use and kept alive.

    Not for use by two threads at once; :class:`cdp_logging.delivery.transport.HTTPTransport` keeps
    a pool of them. Example::

        connection = Connection(urlsplit("https://cdp.customer.io"), tls=tls_context())
        answer = connection.post(Secret(b"POST /v1/batch HTTP/1.1\\r\\n...\\r\\n\\r\\n" + body), timeout=10.0)
    """

    def __init__(self, url: SplitResult, *, tls: ssl.SSLContext | None) -> None:
        self.host = url.hostname or ""
        self.port = port_of(url)
        self.where = f"{self.host}:{self.port}"
        self.tls = tls
        self._socket: socket.socket | None = None
        #: The receive timeout set on the plain socket in the kernel (-1: none yet).
        self._receive_bound = -1.0
        #: Polls the idle socket for a close or stray bytes (cheaper than select.select).
        self._poller: select.poll | None = None

    def __repr__(self) -> str:
        return f"Connection({self.where}, open={self._socket is not None})"

    def close(self) -> None:
        """Close the socket (if open); the next post opens a new one."""
        sock, self._socket = self._socket, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def post(self, request: Secret[bytes], *, timeout: Timeout, limit: float | None = None) -> Answer:
        """Send ``request.value`` (the request head and body) and return the answer, all
        within ``timeout`` (seconds, or ``(connect, read)``) and within ``limit`` seconds
        if given. Raises :class:`~cdp_logging.errors.TransportError` subclasses; after any
        error the connection is closed, never reused."""
        started = time.monotonic()
        if isinstance(timeout, tuple):
            connect_timeout, read_timeout = timeout
        else:
            connect_timeout = read_timeout = timeout
        # A float covers the whole request; a pair gives connecting and the rest each their own.
        overall = started + (limit if limit is not None else float("inf"))
        reused = self._socket is not None
        # Checked before every reuse: servers and load balancers close idle connections (a
        # request written into a closed one is lost), and bytes the server sent after its
        # answer must not pass for the next one.
        if reused and self._dropped():
            self.close()
            reused = False
        try:
            try:
                return self._exchange(request, started, connect_timeout, read_timeout,
                                      overall, isinstance(timeout, tuple))
            except (ConnectError, ProtocolError) as err:
                # A kept-alive connection the server closed between requests fails before
                # any answer arrives: the request was not taken, so it goes once more on a
                # new connection, within the same deadline. A new connection failing is a
                # real failure.
                if not reused or getattr(err, "answered", True):
                    raise
            self.close()
            return self._exchange(request, started, connect_timeout, read_timeout,
                                  overall, isinstance(timeout, tuple))
        except BaseException:
            self.close()
            raise

    def _dropped(self) -> bool:
        """True if the idle socket became readable: the server closed it (or broke HTTP)."""
        sock = self._socket
        if sock is None:
            return True
        try:
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return True
            poller = self._poller
            if poller is None:
                if not hasattr(select, "poll"):  # Windows
                    return bool(select.select([sock], [], [], 0)[0])
                poller = self._poller = select.poll()
                poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def _connect(self, deadline: float) -> socket.socket:
        logger.debug("cdp-logging: opening a connection to %s", self.where)
        where = self.where
        try:
            sock = socket.create_connection((self.host, self.port), timeout=_left(deadline, True))
        except TimeoutError as err:
            raise ConnectTimeout(f"could not connect to {where}: no connection within the timeout") from err
        except OSError as err:
            raise ConnectError(describe_failure(err, where)) from err
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock.settimeout(_left(deadline, True))  # the handshake, within the same deadline
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLError as err:
            sock.close()
            raise TLSError(describe_failure(err, where)) from err
        except TimeoutError as err:
            sock.close()
            raise ConnectTimeout(f"TLS handshake with {where} not done within the timeout") from err
        except OSError as err:
            sock.close()
            raise ConnectError(f"TLS handshake with {where} failed: {_strerror(err)}") from err
        return sock

    def _exchange(self, request: Secret[bytes], started: float, connect_timeout: float,
                  read_timeout: float, overall: float, split: bool) -> Answer:
        sock = self._socket
        if sock is None:
            sock = self._socket = self._connect(min(started + connect_timeout, overall))
            self._receive_bound = -1.0
            self._poller = None
            deadline = min((time.monotonic() if split else started) + read_timeout, overall)
        else:
            deadline = min(started + read_timeout, overall)
        kernel = _KERNEL_TIMEOUTS and not isinstance(sock, ssl.SSLSocket)
        where = self.where
        try:
            _send(sock, request, deadline, kernel)
        except (TimeoutError, BlockingIOError, _Expired) as err:
            raise ReadTimeout(f"could not send to {where} within the timeout") from err
        except ssl.SSLError as err:
            raise TLSError(describe_failure(err, where)) from err
        except OSError as err:
            raise _unanswered(ConnectError(
                f"connection to {where} lost while sending: {_strerror(err)}")) from err
        reader = AnswerReader()
        try:
            keep = self._read_answer(sock, reader, deadline, kernel)
        except (TimeoutError, BlockingIOError, _Expired) as err:
            raise _sent(ReadTimeout(f"no complete answer from {where} within the timeout")) from err
        except ssl.SSLError as err:
            raise _sent(TLSError(describe_failure(err, where))) from err
        except ProtocolError as err:
            raise _sent(_unanswered(ProtocolError(f"bad answer from {where}: {err}"),
                                    answered=getattr(err, "answered", True))) from None
        except OSError as err:
            raise _sent(_unanswered(ConnectError(
                f"connection to {where} lost while reading the answer: {_strerror(err)}"),
                answered=bool(reader.head_bytes or reader.headers_done))) from err
        if not keep:
            self.close()
        logger.debug("cdp-logging: %s answered %d", where, reader.status)
        return reader.answer()

    def _read_answer(self, sock: socket.socket, reader: AnswerReader, deadline: float, kernel: bool) -> bool:
        """Read until the answer is complete (or its kept body full); say whether the
        connection may carry another request."""
        while not reader.complete:
            left = _left(deadline)
            if not kernel:
                sock.settimeout(left)
            elif abs(self._receive_bound - left) > _TIMEOUT_SLACK:
                # Set again only when the bound in place is off by more than the slack: a
                # setsockopt for every answer would cost the worker more than parsing it.
                _set_kernel_timeout(sock, socket.SO_RCVTIMEO, left)
                self._receive_bound = left
            data = sock.recv(_RECV_SIZE)
            if not data:
                if reader.headers_done and reader.eof_framed:
                    return False  # a body that ends with the connection
                raise _unanswered(ProtocolError(
                    "the server closed the connection " + ("mid-answer" if reader.head_bytes else "without answering")),
                    answered=bool(reader.head_bytes or reader.headers_done))
            reader.feed(data)  # its ProtocolError means bytes were answered: no second try
            if reader.truncated:
                return False  # the rest of a long body is not read: the connection goes
        return reader.keep_alive and not reader.extra


class _Expired(Exception):
    """The request's deadline passed between two socket calls."""


def _left(deadline: float, connecting: bool = False) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        if connecting:
            raise TimeoutError("deadline passed")
        raise _Expired
    return left


def _send(sock: socket.socket, request: Secret[bytes], deadline: float, kernel: bool) -> None:
    """Send all of the request, each send bounded by the time left (``sendall`` would
    give a slowly reading server the whole timeout for every part it takes)."""
    sent = 0
    if kernel:
        # Most requests fit the socket's send buffer at once: tried without waiting, they
        # need no timeout set. MSG_DONTWAIT is not for TLS sockets.
        try:
            sent = sock.send(request.value, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        if sent == len(request.value):
            return
    view = memoryview(request.value)[sent:]
    while view:
        left = _left(deadline)
        if kernel:
            _set_kernel_timeout(sock, socket.SO_SNDTIMEO, left)
        else:
            sock.settimeout(left)
        view = view[sock.send(view):]


#: How far a kernel receive timeout already set may be from the time left before it is set
#: again: the most a request may end past its deadline on that account.
_TIMEOUT_SLACK = 0.01


#: Where the kernel enforces send and receive timeouts on a blocking socket (SO_RCVTIMEO
#: and SO_SNDTIMEO taking a struct timeval).
_KERNEL_TIMEOUTS = sys.platform.startswith(("linux", "darwin", "freebsd"))


def _set_kernel_timeout(sock: socket.socket, option: int, timeout: float) -> None:
    """Bound the next blocking send or receive on a plain TCP ``sock`` by ``timeout``.

    Python's own socket timeout polls before every send and receive: two system calls, and
    two releases of the GIL, each of which the worker must win back from the application's
    threads (up to 5 ms apiece while they are busy). The kernel bounds a blocking call
    instead, with one cheap setsockopt. TLS sockets keep Python's timeout: there the ssl
    module would retry a timed-out read for ever.
    """
    if sock.gettimeout() is not None:
        sock.settimeout(None)
    seconds = int(timeout)
    sock.setsockopt(socket.SOL_SOCKET, option,
                    struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000) or (0 if seconds else 1)))


def _unanswered(error: TransportError, *, answered: bool = False) -> TransportError:
    """Mark whether any byte of an answer had arrived when ``error`` happened (a request no
    byte of whose answer came may go once more on a new connection)."""
    # An attribute of this module's own making, read back by Connection.post only.
    error.answered = answered  # type: ignore[attr-defined]
    return error


def _sent(error: TransportError) -> TransportError:
    """Mark ``error`` as happening after the whole request was sent: the server may have
    acted on it, and only its answer was lost (:attr:`TransportError.sent`)."""
    error.sent = True
    return error
