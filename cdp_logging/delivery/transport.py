"""One HTTP POST of a batch: :class:`HTTPTransport`, the real
:class:`~cdp_logging.delivery.protocol.Transport` (its own kept-alive connections, or
``requests`` through a proxy), and the host a write key goes to by default.

The interface is in :mod:`cdp_logging.delivery.protocol`, the retry policy around a post in
:mod:`cdp_logging.delivery.retry`.
"""

from __future__ import annotations

import gzip as _gzip
import http.client
import logging
import threading
import time
from urllib.parse import urlsplit

import requests
import requests.adapters
import requests.auth
import requests.sessions
import requests.utils

# TransportError is imported from here too (its home before errors.py).
from ..errors import TransportError as TransportError
from ..errors import ConnectError, ConnectTimeout, ProtocolError, ReadTimeout, TLSError
from .answer import MAX_BODY_BYTES, Answer
from .connection import Connection, Timeout, causes, describe_failure, port_of
from .endpoint import check_host, check_write_key, scrubbed
from ..secret import Secret
from .pacing import NoSlot, Pacer
from ..constants import DEFAULT_HOST, EU_HOST
from .protocol import (
    key_region,
    RESPONSE_TEXT_LIMIT,
    Response,
    USER_AGENT,
    AuthorizationHeader,
    authorization,
)
from .watched import (
    Route,
    Watchdog,
    WatchedAdapter,
    proxy_for,
    requests_is_patched,
    scrubbed_error,
    warn_if_unencrypted,
)


_REGION_HOSTS = {"us": DEFAULT_HOST, "eu": EU_HOST}


def default_host(write_key: str | None) -> str:
    """The host a key goes to when none is given: its region's, else the US one.

    Example::

        >>> default_host("sk_eu_123")
        'https://cdp-eu.customer.io'
    """
    return _REGION_HOSTS[(write_key and key_region(write_key)) or "us"]


def warn_if_other_region(write_key: str, host: str) -> bool:
    """Warn (on the ``cdp_logging`` logger) when a region key is set to go to the other
    region's default host, which refuses it; True when it warned. Called once per client.

    Example::

        warn_if_other_region("pk_eu_123", "https://cdp.customer.io")   # logs a warning
    """
    region = key_region(write_key)
    del write_key  # logging runs handlers, which may record this frame
    base = host.rstrip("/")
    for other, other_host in _REGION_HOSTS.items():
        if region is not None and other != region and base == other_host:
            logging.getLogger("cdp_logging").warning(
                "cdp-logging: %s API key is being sent to the %s host %s, which refuses it: drop "
                "host (and CDP_HOST) to use the key's region, or set host=%s",
                region.upper(), other.upper(), base, _REGION_HOSTS[region])
            return True
    return False


class HTTPTransport:
    """The real transport: Bearer auth for a region API key (``pk_eu_...``), Basic otherwise,
    gzip, a timeout, and a kept-alive connection.

    Requests go through :class:`cdp_logging.delivery.connection.Connection`, a lean HTTP/1.1 client
    that sends a batch in a fraction of the CPU time ``requests`` takes. When a proxy
    applies to the host (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, minus
    ``NO_PROXY``, read when the first batch is sent), when the host URL carries a user name
    or a query, when ``httptools`` cannot be imported, or while ``requests`` is patched
    (``responses``, ``requests-mock`` in a test suite), they go through a
    ``requests.Session`` instead. TLS certificates are always verified; redirects are never
    followed (a 3xx answer is a refusal); no compressed answer is asked for. ``timeout`` is
    seconds for the whole request, or ``(connect, read)``. The write key is kept out of
    ``repr``, and of every attribute and local in the clear.

    Example::

        transport = HTTPTransport("https://cdp.customer.io", write_key, timeout=10.0)
        response = transport.post("/v1/batch", b'{"batch":[]}')
    """

    def __init__(
        self, host: str, write_key: str | Secret[str], *, timeout: Timeout = 10.0, gzip: bool = False
    ) -> None:
        self._write_key: Secret[str] = Secret.of(write_key)
        del write_key  # before anything can raise: a recorded traceback shows this frame's locals
        if self._write_key.value:
            check_write_key(self._write_key.value)  # a CR/LF would inject headers or requests
        self.host = check_host(host)
        self.timeout = timeout
        self.gzip = gzip
        warn_if_unencrypted(self.host)
        self._session: requests.Session | None = None
        #: How requests go: None until the first one; then a Route, or False for requests.
        self._route: Route | bool | None = None
        #: Connections not in use; a thread takes one (or opens one) for each request.
        self._idle: list[Connection] = []
        #: Ends a request through requests at its deadline (made with the session).
        self._watchdog: Watchdog | None = None
        #: Requests through requests go one at a time (the watchdog watches one).
        self._requests_lock = threading.Lock()
        #: When set (by the client), every request takes a slot from it: concurrent
        #: requests stay within the rate limit and slow down together after a failure.
        self.pacer: Pacer | None = None

    def __repr__(self) -> str:
        return f"HTTPTransport(host={self.host!r}, gzip={self.gzip}, timeout={self.timeout})"

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        adapter = WatchedAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.auth = AuthorizationHeader(Secret(authorization(self._write_key.value)))
        # No compressed answers: nothing is inflated that a server chose to make large.
        session.headers.update({"Content-Type": "application/json", "User-Agent": USER_AGENT,
                                "Accept-Encoding": "identity"})
        session.trust_env = True
        return session

    def post(self, path: str, body: bytes, *, timeout: float | None = None) -> Response:
        """POST ``body``; ``timeout`` (seconds) shortens this request's timeout, never lengthens it."""
        headers = None
        if self.gzip:
            body = _gzip.compress(body, compresslevel=6)
            headers = {"Content-Encoding": "gzip"}
        pacer = self.pacer
        if pacer is None:
            return self._post_once(path, body, headers, timeout)
        started = time.monotonic()
        try:
            with pacer.slot(None if timeout is None else started + timeout) as answered:
                left = None if timeout is None else max(0.001, timeout - (time.monotonic() - started))
                response = self._post_once(path, body, headers, left)
                answered.append(response)
                return response
        except NoSlot:
            raise TransportError("no request was started: the client's closing deadline came first") from None

    def _post_once(self, path: str, body: bytes, headers: dict[str, str] | None,
                   timeout: float | None) -> Response:
        route = self._route
        if route is None:
            route = self._route = Route.for_host(self.host, self._write_key)
        if route and not requests_is_patched():
            return self._post_direct(route, path, body, timeout)  # type: ignore[arg-type]
        with self._requests_lock:
            return self._post_requests(path, body, headers, timeout)

    def _post_requests(self, path: str, body: bytes, headers: dict[str, str] | None,
                       limit: float | None) -> Response:
        """Through ``requests`` (a proxy, or no httptools): redirects not followed, at most
        MAX_BODY_BYTES of the answer read, as the lean connection does."""
        timeout = self.timeout
        longest = sum(timeout) if isinstance(timeout, tuple) else timeout
        if limit is not None:
            timeout = (min(timeout[0], limit), min(timeout[1], limit)) if isinstance(timeout, tuple) \
                else min(timeout, limit)
            longest = min(longest, limit)
        session = self._session
        if session is None:
            session = self._session = self._new_session()
        watchdog = self._watchdog
        if watchdog is None:
            watchdog = self._watchdog = Watchdog()
        # requests bounds each read, not the whole answer: the watchdog ends what runs longer.
        watchdog.arm(time.monotonic() + longest)
        try:
            reply = session.post(self.host + path, data=body, headers=headers, timeout=timeout,
                                 allow_redirects=False, stream=True)
            if reply.raw is None:  # a test library's fake answer
                data = reply.content or b""
            else:
                try:
                    data = reply.raw.read(MAX_BODY_BYTES + 1, decode_content=False) or b""
                except BaseException:
                    reply.close()
                    raise
                if len(data) > MAX_BODY_BYTES:
                    data = data[:MAX_BODY_BYTES]
                    reply.close()  # the rest is not read: the connection goes
                else:
                    reply.raw.release_conn()  # read to its end: the connection serves the next
            if watchdog.fired:  # what was read before the socket was shut is not the answer
                raise TimeoutError("the request's deadline passed")
            answer = Answer(reply.status_code, reply.headers, data)
            return Response(answer.status, self._quoted(answer), answer.headers)
        except Exception as err:  # whatever requests raises, the batch is retried and reported
            url = urlsplit(self.host)
            where = f"{url.hostname}:{port_of(url)}"
            if isinstance(err, requests.exceptions.ProxyError):
                # The proxy failed, not the API host: say which, or the wrong one is looked into.
                where = f"the proxy {proxy_for(session, self.host)} (on the way to {where})"
            # Sent in full, the answer lost: a read timeout, or the server hanging up on it.
            sent = isinstance(err, requests.exceptions.ReadTimeout) or any(
                isinstance(cause, http.client.RemoteDisconnected) for cause in causes(err))
            if watchdog.fired:
                said = f"no complete answer from {where} within the timeout"
                raise TransportError(f"Timeout: {said}", ReadTimeout(said, scrubbed_error(err)), sent=sent) from None
            said = scrubbed(describe_failure(err, where), self._write_key.value)
            raise TransportError(f"{type(err).__name__}: {said}", _own_error(scrubbed_error(err), said),
                                 sent=sent) from None
        finally:
            watchdog.disarm()

    def _post_direct(self, route: Route, path: str, body: bytes, limit: float | None) -> Response:
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = Connection(route.url, tls=route.tls())
        try:
            answer = connection.post(route.request(path, body, gzip=self.gzip), timeout=self.timeout, limit=limit)
            return Response(answer.status, self._quoted(answer), answer.headers)
        except TransportError as err:  # the connection's own, named in the message
            raise TransportError(f"{type(err).__name__}: {err}", err, sent=err.sent) from None
        finally:
            self._idle.append(connection)

    def _quoted(self, answer: Answer) -> str:
        """The start of the answer's text, kept for an error report: without the key (an error
        page may echo the request's headers), scrubbed before it is cut so no part shows."""
        if not answer.body:
            return ""
        if answer.status < 300:  # an accepted batch's answer is quoted nowhere
            return answer.text[:RESPONSE_TEXT_LIMIT]
        return scrubbed(answer.text, self._write_key.value)[:RESPONSE_TEXT_LIMIT]

    def reset(self) -> None:
        """Forget pooled connections (after fork they belong to the parent)."""
        self._session = None
        self._watchdog = None  # its thread stayed in the parent
        self._requests_lock = threading.Lock()
        if self.pacer is not None:
            self.pacer.reset()
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()  # the child's copy of the socket only: the parent's stays open

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.stop()
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _own_error(err: BaseException, said: str) -> BaseException:
    """The library's own error (:mod:`cdp_logging.errors`) for what ``requests`` raised, saying
    ``said``, with ``err`` as its cause: a DeliveryError's ``cause`` is of the same classes
    whichever way the batch went. ``err`` itself when it is not a connection failure."""
    kind: type[TransportError]
    if isinstance(err, requests.exceptions.ConnectTimeout):  # before ConnectionError: it is one
        kind = ConnectTimeout
    elif isinstance(err, (requests.Timeout, TimeoutError)):
        kind = ReadTimeout
    elif isinstance(err, requests.exceptions.SSLError):  # before ConnectionError: it is one
        kind = TLSError
    elif isinstance(err, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        kind = ProtocolError
    elif isinstance(err, requests.ConnectionError):  # a proxy's failure (ProxyError) included
        kind = ConnectError
    else:
        return err
    own = kind(said, err)
    own.__cause__ = err
    return own
