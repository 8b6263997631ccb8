"""One HTTP POST of a batch, and the retry policy around it.

:class:`Transport` is the small interface the client talks to; :class:`HTTPTransport` is the
real one (its own kept-alive connections, or ``requests`` through a proxy), and
``cdp_logging.testing`` has one that keeps what it is given. :func:`send_with_retries`
decides what is worth retrying and how long to wait.
"""

from __future__ import annotations

import base64
import email.utils
import gzip as _gzip
import inspect
import ipaddress
import logging
import random
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from collections.abc import Callable, Mapping
from urllib.parse import SplitResult, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import requests.auth
import requests.sessions
import requests.utils

from .._version import __version__
from .connection import (
    MAX_BODY_BYTES, Answer, Connection, Secret, Timeout, causes, describe_failure, httptools, port_of,
    tls_context,
)
from ..constants import DEFAULT_HOST, EU_HOST

logger = logging.getLogger("cdp_logging")

USER_AGENT = f"cdp-logging/{__version__}"
#: How much of an error response's text is kept in a DeliveryError.
RESPONSE_TEXT_LIMIT = 300
#: Statuses worth retrying besides 5xx; 501 and 505 will not change on a retry.
_RETRY_STATUSES = frozenset({408, 429})
_NEVER_RETRY_5XX = frozenset({501, 505})
#: Statuses whose Retry-After header is honoured.
_RETRY_AFTER_STATUSES = frozenset({429, 503})


#: API keys that name their region ("pk_eu_..."): sent as a Bearer token, as the official
#: client sends them; any other write key goes as Basic auth, the key as user name.
_REGION_KEY = re.compile(r"(?:pk|sk)_(us|eu)_")
_REGION_HOSTS = {"us": DEFAULT_HOST, "eu": EU_HOST}


def key_region(write_key: str) -> str | None:
    """"us" or "eu" for a region API key (``pk_us_``, ``sk_us_``, ``pk_eu_``, ``sk_eu_``), else None.

    Example::

        >>> key_region("pk_eu_123"), key_region("legacy-write-key")
        ('eu', None)
    """
    found = _REGION_KEY.match(write_key)
    return None if found is None else found.group(1)


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
                "cdp-logging: %s API key is being sent to the %s host %s",
                region.upper(), other.upper(), base)
            return True
    return False


def authorization(write_key: str) -> str:
    """The Authorization header's value: Bearer for a region API key, else Basic with the
    key as user name and an empty password.

    Example::

        >>> authorization("pk_us_1")
        'Bearer pk_us_1'
    """
    if key_region(write_key) is not None:
        # As Basic's credentials are: a character latin-1 lacks must not stop every request.
        return "Bearer " + write_key.encode("latin-1", "replace").decode("latin-1")
    return "Basic " + base64.b64encode(f"{write_key}:".encode("latin-1", "replace")).decode("ascii")


class _Authorization(requests.auth.AuthBase):
    """Sets the header :func:`authorization` gives. Set as the session's ``auth``, so requests
    never swaps in Basic auth from a matching ``.netrc`` entry."""

    def __init__(self, value: Secret[str]) -> None:
        self._value = value  # a Secret: no attribute holds the header in the clear

    def __repr__(self) -> str:
        return "<_Authorization>"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._value.value
        return request


@dataclass(frozen=True)
class Response:
    """What a transport got back: the status, headers and (decoded) text."""

    status: int
    text: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


class TransportError(Exception):
    """No usable HTTP response: the connection failed or timed out, the answer broke HTTP,
    or a transport raised something else. ``cause`` holds why."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class Transport(Protocol):
    """Sends one request body; returns the response or raises :class:`TransportError`.

    Anything else a ``post`` raises (or returns instead of a :class:`Response`) is taken as a
    failed attempt too: retried, and reported when the batch is given up, never lost.

    A transport whose ``post`` also takes a ``timeout`` keyword lets a closing client cut a
    request to the time left before its close deadline; one without it is given none.

    Example (a transport that accepts everything)::

        class Accepting:
            def post(self, path: str, body: bytes) -> Response:
                return Response(200)
            def close(self) -> None:
                pass
    """

    def post(self, path: str, body: bytes) -> Response:
        """POST ``body`` (JSON, uncompressed) to ``path`` under the host."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


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
        self.host = host.rstrip("/")
        self.timeout = timeout
        self.gzip = gzip
        _warn_if_unencrypted(self.host)
        self._session: requests.Session | None = None
        #: How requests go: None until the first one; then a _Route, or False for requests.
        self._route: _Route | bool | None = None
        #: Connections not in use; a thread takes one (or opens one) for each request.
        self._idle: list[Connection] = []
        #: Ends a request through requests at its deadline (made with the session).
        self._watchdog: _Watchdog | None = None

    def __repr__(self) -> str:
        return f"HTTPTransport(host={self.host!r}, gzip={self.gzip}, timeout={self.timeout})"

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        adapter = _WatchedAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.auth = _Authorization(Secret(authorization(self._write_key.value)))
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
        route = self._route
        if route is None:
            route = self._route = _Route.for_host(self.host, self._write_key)
        if route and not _requests_is_patched():
            return self._post_direct(route, path, body, timeout)  # type: ignore[arg-type]
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
            watchdog = self._watchdog = _Watchdog()
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
            return Response(answer.status, answer.text[:RESPONSE_TEXT_LIMIT], answer.headers)
        except Exception as err:  # whatever requests raises, the batch is retried and reported
            url = urlsplit(self.host)
            where = f"{url.hostname}:{port_of(url)}"
            if isinstance(err, requests.exceptions.ProxyError):
                # The proxy failed, not the API host: say which, or the wrong one is looked into.
                where = f"the proxy {_proxy_for(session, self.host)} (on the way to {where})"
            if watchdog.fired:
                raise TransportError(f"Timeout: no complete answer from {where} within the timeout",
                                     _scrubbed(err)) from None
            raise TransportError(f"{type(err).__name__}: {describe_failure(err, where)}", _scrubbed(err)) from None
        finally:
            watchdog.disarm()

    def _post_direct(self, route: _Route, path: str, body: bytes, limit: float | None) -> Response:
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = Connection(route.url, tls=route.tls())
        try:
            answer = connection.post(route.request(path, body, gzip=self.gzip), timeout=self.timeout, limit=limit)
            return Response(answer.status, answer.text[:RESPONSE_TEXT_LIMIT], answer.headers)
        except requests.RequestException as err:
            raise TransportError(f"{type(err).__name__}: {err}", err) from None
        finally:
            self._idle.append(connection)

    def reset(self) -> None:
        """Forget pooled connections (after fork they belong to the parent)."""
        self._session = None
        self._watchdog = None  # its thread stayed in the parent
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


def _proxy_for(session: requests.Session, url: str) -> str:
    """``host:port`` of the proxy ``session`` sends requests for ``url`` through."""
    proxies = session.merge_environment_settings(url, {}, None, None, None)["proxies"]
    proxy = requests.utils.select_proxy(url, proxies)
    if not proxy:
        return "(unknown)"
    parts = urlsplit(requests.utils.prepend_scheme_if_needed(proxy, "http"))
    return f"{parts.hostname}:{port_of(parts)}"


class _Watchdog:
    """Shuts the socket of a request through ``requests`` still running at its deadline.

    ``requests`` (urllib3, http.client) bounds each socket operation by its timeout, so a
    server sending a byte at a time holds a request for ever. One thread per transport,
    started on first use and asleep between requests, ends the request instead: the
    connection in use (registered by :class:`_WatchedHTTPConnection` as it sends) is shut
    down, its blocked read fails, and the request raises.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._deadline: float | None = None
        self._connection: object | None = None
        self._stopped = False
        self._thread: threading.Thread | None = None
        #: Set when the watchdog ended the current request.
        self.fired = False

    def arm(self, deadline: float) -> None:
        """Watch the request the calling thread starts now."""
        _watching.dog = self
        with self._condition:
            self._deadline = deadline
            self._connection = None
            self.fired = False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cdp-logging-watchdog", daemon=True)
                self._thread.start()
            self._condition.notify()

    def using(self, connection: object) -> None:
        with self._condition:
            self._connection = connection

    def disarm(self) -> None:
        _watching.dog = None
        with self._condition:
            self._deadline = None
            self._connection = None

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify()

    def _run(self) -> None:
        with self._condition:
            while not self._stopped:
                deadline = self._deadline
                if deadline is None:
                    self._condition.wait()
                    continue
                left = deadline - time.monotonic()
                if left > 0:
                    self._condition.wait(left)
                    continue
                self._deadline = None
                self.fired = True
                sock = getattr(self._connection, "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass


#: The watchdog of the request the current thread is making through requests, if any.
_watching = threading.local()


def _register(connection: object) -> None:
    watchdog: _Watchdog | None = getattr(_watching, "dog", None)
    if watchdog is not None:
        watchdog.using(connection)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    """urllib3's connection, made known to the watchdog as it connects and sends."""

    def connect(self) -> None:
        _register(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, urllib3.connection.HTTPSConnection):
    """urllib3's TLS connection, made known to the watchdog as it connects and sends: the
    methods above come first, and call on to the TLS connection's."""


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, its connections (direct or through an HTTP proxy) watched."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.PoolManager:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # SOCKS managers keep their own pools
            manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        return manager


class _Route:
    """Where direct requests go and the bytes their heads share, worked out once; the
    heads, which carry the key, held as :class:`~cdp_logging.delivery.connection.Secret`."""

    def __init__(self, url: SplitResult, write_key: Secret) -> None:
        self.url = url
        self._tls: ssl.SSLContext | None = None
        self._heads: dict[tuple[str, bool], Secret[bytes]] = {}
        self._common = Secret(
            f"Host: {url.netloc}\r\n"
            f"User-Agent: {USER_AGENT}\r\n"
            "Accept: */*\r\n"
            "Accept-Encoding: identity\r\n"
            "Connection: keep-alive\r\n"
            "Content-Type: application/json\r\n"
            f"Authorization: {authorization(write_key.value)}\r\n"
        )

    @classmethod
    def for_host(cls, host: str, write_key: Secret[str]) -> _Route | bool:
        """A route for direct requests to ``host``, or False where requests must go (a
        proxy, a URL the lean client does not handle, or no httptools to parse answers)."""
        url = urlsplit(host)
        if (httptools is None or url.scheme not in ("http", "https") or not url.hostname
                or url.username is not None
                or url.query or url.fragment):
            return False
        try:
            url.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            return False
        proxies = requests.utils.get_environ_proxies(host)
        if requests.utils.select_proxy(host, proxies):
            return False
        return cls(url, write_key)

    def tls(self) -> ssl.SSLContext | None:
        """The TLS context for https (made once: loading the CA bundle takes milliseconds)."""
        if self.url.scheme != "https":
            return None
        if self._tls is None:
            self._tls = tls_context()
        return self._tls

    def request(self, path: str, body: bytes, *, gzip: bool) -> Secret[bytes]:
        """The bytes of a POST of ``body`` to ``path``: head and body."""
        start = self._heads.get((path, gzip))
        if start is None:
            start = self._heads[(path, gzip)] = Secret(
                (f"POST {self.url.path.rstrip('/') + path} HTTP/1.1\r\n{self._common.value}"
                 + ("Content-Encoding: gzip\r\n" if gzip else "")).encode("latin-1"))
        return Secret(b"%bContent-Length: %d\r\n\r\n%b" % (start.value, len(body), body))


#: requests' own sending methods, to tell when a test library has replaced them.
_ADAPTER_SEND = requests.adapters.HTTPAdapter.send
_SESSION_SEND = requests.sessions.Session.send
_GET_ADAPTER = requests.sessions.Session.get_adapter


def _requests_is_patched() -> bool:
    """True while ``responses``, ``requests-mock`` or a mock.patch replaces how requests
    sends: an application's tests that intercept HTTP that way keep intercepting ours."""
    adapter_send = requests.adapters.HTTPAdapter.send
    session_send = requests.sessions.Session.send
    get_adapter = requests.sessions.Session.get_adapter
    if adapter_send is _ADAPTER_SEND and session_send is _SESSION_SEND and get_adapter is _GET_ADAPTER:
        return False
    # Replaced since import, or before it (then by something outside requests).
    return not (getattr(adapter_send, "__module__", None) == "requests.adapters"
                and getattr(session_send, "__module__", None) == "requests.sessions"
                and getattr(get_adapter, "__module__", None) == "requests.sessions")


def _scrubbed(err: BaseException) -> BaseException:
    """``err`` without what could show the key: ``requests`` keeps the prepared request
    (its Authorization header) on the exception, and the frames of its tracebacks (and of
    those it wraps) hold the headers in their locals."""
    for error in list(causes(err)):
        if isinstance(error, requests.RequestException):
            error.request = None
            error.response = None
        if isinstance(error, UnicodeError) and hasattr(error, "object"):
            error.object = type(error.object)()  # the text that would not encode may be the key
        error.__traceback__ = None
    err.__context__ = None
    return err


def _warn_if_unencrypted(host: str) -> None:
    """Warn once per transport when the key would cross a network in the clear."""
    url = urlsplit(host)
    if url.scheme != "http":
        return
    name = url.hostname or ""
    try:
        loopback = ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = name == "localhost" or name.endswith(".localhost")
    if not loopback:
        logger.warning(
            "cdp-logging: host %s is plain http://, not on this machine: the write key and the "
            "events travel unencrypted; use https://", f"{url.scheme}://{url.netloc}",
        )


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried: exponential backoff with jitter, capped.

    The wait before retry ``n`` is drawn between half and all of
    ``min(max_backoff, initial_backoff * 2 ** (n - 1))``: 0.25-0.5 s, 0.5-1 s, 1-2 s, ... with
    the defaults, so clients that failed together do not retry together. ``max_retries``
    retries follow the first attempt; no retry starts once it would end more than
    ``max_retry_time`` seconds after the first attempt began, so one batch takes at most
    ``max_retry_time`` plus one request timeout. A server's ``Retry-After`` (429 and 503)
    replaces the computed wait, capped at ``max_retry_after``.

    Example::

        RetryPolicy(max_retries=3, max_retry_time=20.0)
    """

    max_retries: int = 5
    max_retry_time: float = 60.0
    initial_backoff: float = 0.5
    max_backoff: float = 10.0
    max_retry_after: float = 30.0

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1-based), before any Retry-After."""
        ceiling = min(self.max_backoff, self.initial_backoff * (2 ** (retry - 1)))
        return random.uniform(ceiling / 2, ceiling)


def is_retryable(status: int) -> bool:
    """408, 429 and 5xx other than 501 and 505 are worth another attempt."""
    return status in _RETRY_STATUSES or (500 <= status <= 599 and status not in _NEVER_RETRY_5XX)


def retry_after_seconds(response: Response, now: float | None = None) -> float | None:
    """The server's ``Retry-After`` (seconds or an HTTP date) for 429 and 503, else None."""
    if response.status not in _RETRY_AFTER_STATUSES:
        return None
    value = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None  # nan fails the test too
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class Outcome:
    """The end of :func:`send_with_retries`: a response (maybe an error one), or an error."""

    response: Response | None
    attempts: int
    error: TransportError | None = None
    gave_up: str | None = None

    @property
    def ok(self) -> bool:
        """True for any 2xx."""
        return self.response is not None and 200 <= self.response.status < 300


#: Why a batch was given up when the client's closing deadline left no time for a retry.
GAVE_UP_CLOSING = "gave up: the client is closing"


def send_with_retries(
    transport: Transport,
    path: str,
    body: bytes,
    policy: RetryPolicy,
    *,
    interrupt: threading.Event,
    deadline: Callable[[], float | None],
    on_retry: Callable[[], object] | None = None,
) -> Outcome:
    """POST ``body``, retrying what is worth retrying within ``policy``.

    ``interrupt`` cuts the current wait short (it is cleared when it does); ``deadline()``
    gives the monotonic time by which the client must stop (while closing), or None: no
    attempt starts after it, no wait runs past it, and a transport that takes a ``timeout``
    gets only the time left. The same body is sent each time, so retries carry the same
    messageIds. ``on_retry()`` is called as each retry starts.
    """
    started = time.monotonic()
    attempts = 0
    response: Response | None = None
    error: TransportError | None = None
    while True:
        stop_by = deadline()
        if stop_by is not None and time.monotonic() >= stop_by:
            return Outcome(response, attempts, error, gave_up=GAVE_UP_CLOSING)
        if attempts and on_retry is not None:
            on_retry()
        attempts += 1
        error = None
        response = None
        try:
            response = _post(transport, path, body, stop_by)
            if not isinstance(response, Response):
                raise TypeError(f"{type(transport).__name__}.post returned {type(response).__name__}, not a Response")
        except TransportError as err:
            error = err
        except Exception as err:  # a transport's own fault is retried and reported, never lost
            response = None
            error = TransportError(f"the transport raised {_named(err)}", err)
        if response is not None and not is_retryable(response.status):
            return Outcome(response, attempts)
        if attempts > policy.max_retries:
            return Outcome(response, attempts, error, gave_up=f"retries exhausted (max_retries={policy.max_retries})")
        wait = policy.backoff(attempts)
        if response is not None:
            hinted = retry_after_seconds(response)
            if hinted is not None:
                wait = min(hinted, policy.max_retry_after)
        now = time.monotonic()
        if now + wait - started > policy.max_retry_time:
            return Outcome(
                response, attempts, error,
                gave_up=f"gave up: retrying would exceed max_retry_time={policy.max_retry_time:g}s",
            )
        stop_by = deadline()
        if stop_by is not None and now + wait > stop_by:
            return Outcome(response, attempts, error, gave_up=GAVE_UP_CLOSING)
        if interrupt.wait(wait):
            interrupt.clear()


def _named(err: BaseException) -> str:
    """``err``'s type and message, even when its ``__str__`` raises."""
    try:
        return f"{type(err).__name__}: {err}"
    except Exception:  # a report must not fail on the error it reports
        return type(err).__name__


def _post(transport: Transport, path: str, body: bytes, stop_by: float | None) -> Response:
    """One attempt; while closing, cut to the time left if the transport allows it."""
    if stop_by is None or not _takes_timeout(transport):
        return transport.post(path, body)
    return transport.post(path, body, timeout=max(0.001, stop_by - time.monotonic()))  # type: ignore[call-arg]


def _takes_timeout(transport: Transport) -> bool:
    try:
        return "timeout" in inspect.signature(transport.post).parameters
    except (TypeError, ValueError):
        return False
