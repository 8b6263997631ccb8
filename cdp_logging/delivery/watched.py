"""The requests path (through a proxy, or without httptools): every connection watched so that a
request ends at its deadline, however slowly the server answers."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import SplitResult, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import requests.auth
import requests.sessions
import requests.utils

from .answer import PARSER_AVAILABLE
from .connection import causes, port_of, tls_context
from .endpoint import hide_passwords
from ..secret import Secret
from .protocol import USER_AGENT, authorization

logger = logging.getLogger("cdp_logging")


def proxy_for(session: requests.Session, url: str) -> str:
    """``host:port`` of the proxy ``session`` sends requests for ``url`` through."""
    proxies = session.merge_environment_settings(url, {}, None, None, None)["proxies"]
    proxy = requests.utils.select_proxy(url, proxies)
    if not proxy:
        return "(unknown)"
    # types-requests leaves prepend_scheme_if_needed unannotated; it takes and returns a str.
    parts = urlsplit(requests.utils.prepend_scheme_if_needed(proxy, "http"))  # type: ignore[no-untyped-call]
    return f"{parts.hostname}:{port_of(parts)}"


class Watchdog:
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
    watchdog: Watchdog | None = getattr(_watching, "dog", None)
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


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, its connections (direct or through an HTTP proxy) watched."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.PoolManager:
        manager: urllib3.PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # SOCKS managers keep their own pools
            manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        return manager


class Route:
    """Where direct requests go and the bytes their heads share, worked out once; the
    heads, which carry the key, held as :class:`~cdp_logging.secret.Secret`."""

    def __init__(self, url: SplitResult, write_key: Secret[str]) -> None:
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
    def for_host(cls, host: str, write_key: Secret[str]) -> Route | bool:
        """A route for direct requests to ``host``, or False where requests must go (a
        proxy, a URL the lean client does not handle, or no httptools to parse answers)."""
        url = urlsplit(host)
        if (not PARSER_AVAILABLE or url.scheme not in ("http", "https") or not url.hostname
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


def requests_is_patched() -> bool:
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


def scrubbed_error(err: BaseException) -> BaseException:
    """``err`` without what could show the key: ``requests`` keeps the prepared request
    (its Authorization header) on the exception, and the frames of its tracebacks (and of
    those it wraps) hold the headers in their locals."""
    for error in list(causes(err)):
        if isinstance(error, requests.RequestException):
            error.request = None
            error.response = None
        if isinstance(error, UnicodeError) and hasattr(error, "object"):
            error.object = type(error.object)()  # the text that would not encode may be the key
        # A proxy URL's password shows in urllib3's "Failed to parse: http://user:PASSWORD@..."
        # (and urllib3 keeps the URL on the exception too, as ``location`` or ``url``).
        error.args = tuple(hide_passwords(arg) if isinstance(arg, str) else arg for arg in error.args)
        for name, value in list(getattr(error, "__dict__", {}).items()):
            if isinstance(value, str):
                setattr(error, name, hide_passwords(value))
        error.__traceback__ = None
    err.__context__ = None
    return err


def warn_if_unencrypted(host: str) -> None:
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
