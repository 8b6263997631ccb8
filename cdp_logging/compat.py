"""The official client's API on cdp-logging: moving from ``customerio-cdp-analytics`` is one import.

``customerio-cdp-analytics`` 1.1 is used through its module (``analytics.write_key = ...``,
``analytics.track(...)``) or its ``Client`` class. This module has the same names, the same
positional order of every call's arguments, the same options and the same return values, and
sends through :class:`cdp_logging.Analytics`::

    # before
    from customerio import analytics
    # after
    from cdp_logging import compat as analytics

    analytics.write_key = "YOUR_WRITE_KEY"
    analytics.track("42", "Order Completed", {"total": 9.5})
    analytics.flush()

    client = analytics.Client("YOUR_WRITE_KEY", on_error=lambda error, batch: print(error))
    success, message = client.identify("42", {"plan": "pro"})
    client.shutdown()

Differences on purpose (the documentation's "Moving from customerio-cdp-analytics", docs/migration.md, lists them all):

- Absent fields are left out of the message, never sent as null (``anonymousId``,
  ``messageId`` of no value) or as ``{}`` (``properties``, ``traits``, ``context``'s other
  keys, ``integrations``).
- ``timestamp`` is UTC with a ``Z`` (``2024-05-01T12:00:00.000Z``, not ``+00:00``); a naive
  datetime is local time, always (the official client guesses: local when within five
  seconds of now, else UTC). ``context.library`` and the User-Agent name cdp-logging.
- A numeric ``group_id`` or ``previous_id`` is sent as a string, like every id.
- The first call is sent at once, then every ``upload_size`` events or ``upload_interval``
  seconds, as :class:`~cdp_logging.Analytics` batches; no request carries more than
  ``upload_size`` events.
- Bad input raises :class:`~cdp_logging.InvalidEventError` (a ``ValueError``) naming the call
  and the field, where the official client raises ``AssertionError``; a bool, NaN or infinite
  id, an empty ``event`` or ``message_id`` are refused.
- ``on_error(error, batch)`` receives a :class:`~cdp_logging.DeliveryError` (with ``status``,
  ``message`` and ``cause``) once per failed batch. ``sync_mode=True`` never raises: the call
  returns ``(False, message)`` when the message was not delivered.
- A ``Client`` keeps no ``write_key`` attribute: the key never leaves cdp-logging's transport.
- ``max_retries`` retries within 60 s at most (``Analytics``' ``max_retry_time``); ``debug``
  sets the ``cdp_logging`` logger to DEBUG; ``thread`` is the most requests in flight at once (``Analytics``'
  ``max_concurrent_requests``), where the official client runs that many consumer threads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .client import Analytics
from .secret import Secret
from .constants import ENV_HOST
from .errors import CDPError, EventDroppedError
from .messages import LIBRARY
from .delivery.transport import HTTPTransport, default_host

__all__ = [
    "Client", "alias", "debug", "default_client", "flush", "group", "gzip", "host", "identify",
    "join", "max_queue_size", "max_retries", "on_error", "page", "screen", "send", "shutdown",
    "sync_mode", "timeout", "track", "write_key",
]

#: ``on_error(error, batch)``: the error, and the messages of the batch that failed.
OnError = Callable[[CDPError, list[dict[str, Any]]], object]


class _ProxiedTransport(HTTPTransport):
    """HTTPTransport through ``requests`` with the official client's ``proxies`` dict."""

    def __init__(self, host: str, write_key: Secret[str], proxies: Mapping[str, str], *,
                 timeout: float, gzip: bool) -> None:
        super().__init__(host, write_key, timeout=timeout, gzip=gzip)
        self._proxies = dict(proxies)
        self._route = False  # every request through requests, which applies the proxies

    def _new_session(self) -> Any:
        session = super()._new_session()
        session.proxies.update(self._proxies)
        return session


class Client:
    """The official client's ``Client``, sending through :class:`cdp_logging.Analytics`.

    Options and defaults are the official ones: ``write_key``, ``host`` (None: from the key's
    region, or ``CDP_HOST``), ``debug`` (False), ``max_queue_size`` (10000), ``send`` (True;
    False checks calls and sends nothing), ``on_error`` (None), ``gzip`` (False),
    ``max_retries`` (10), ``sync_mode`` (False: True delivers each call before it returns),
    ``timeout`` (15 s), ``proxies`` (None: requests' dict, e.g. ``{"https": "http://proxy:3128"}``),
    ``thread`` (1), ``upload_size`` (100 events), ``upload_interval`` (0.5 s); and ours,
    keyword-only: ``redact_keys`` and ``before_send`` (see :class:`cdp_logging.Analytics`).

    Each call returns ``(success, message)``: False when the queue was full (or, in sync
    mode, when the message was not delivered). The client underneath is ``.analytics``.

    Example::

        client = Client("YOUR_WRITE_KEY", upload_interval=1.0)
        success, message = client.track("42", "Signed Up", {"plan": "pro"})
        client.shutdown()
    """

    class DefaultConfig:
        """The official client's defaults."""

        write_key: str | None = None
        host: str | None = None
        on_error: OnError | None = None
        debug = False
        send = True
        sync_mode = False
        max_queue_size = 10000
        gzip = False
        timeout = 15
        max_retries = 10
        proxies: Mapping[str, str] | None = None
        thread = 1
        upload_interval = 0.5
        upload_size = 100

    log = logging.getLogger("cdp_logging")

    def __init__(
        self,
        write_key: str | None = DefaultConfig.write_key,
        host: str | None = DefaultConfig.host,
        debug: bool = DefaultConfig.debug,
        max_queue_size: int = DefaultConfig.max_queue_size,
        send: bool = DefaultConfig.send,
        on_error: OnError | None = DefaultConfig.on_error,
        gzip: bool = DefaultConfig.gzip,
        max_retries: int = DefaultConfig.max_retries,
        sync_mode: bool = DefaultConfig.sync_mode,
        timeout: float = DefaultConfig.timeout,
        proxies: Mapping[str, str] | None = DefaultConfig.proxies,
        thread: int = DefaultConfig.thread,
        upload_size: int = DefaultConfig.upload_size,
        upload_interval: float = DefaultConfig.upload_interval,
        *,
        redact_keys: Iterable[str] | None = None,
        before_send: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    ) -> None:
        key = Secret.of(write_key)  # hidden before anything can raise, as in Analytics
        del write_key
        if on_error is not None and not callable(on_error):
            raise TypeError(f"on_error must be a callable taking (error, batch), got {on_error!r}")
        if isinstance(thread, bool) or not isinstance(thread, int) or thread < 1:
            raise ValueError(f"thread must be a positive integer, got {thread!r}")
        self.on_error = on_error
        self.debug = debug
        self.send = send
        self.sync_mode = sync_mode
        self.gzip = gzip
        self.timeout = timeout
        self.proxies = proxies
        if debug:
            self.log.setLevel(logging.DEBUG)
        transport = None
        if proxies is not None and send:
            transport = _ProxiedTransport(
                _host_for(key, host), Secret((key.value or "").strip()), proxies,
                timeout=float(timeout), gzip=gzip,
            )
        self.analytics = Analytics(
            key.value, host=host, enable=send, max_queue_size=max_queue_size, gzip=gzip,
            max_retries=max_retries, timeout=float(timeout), max_events_in_batch=upload_size,
            flush_interval=float(upload_interval), transport=transport,
            redact_keys=redact_keys, before_send=before_send, max_concurrent_requests=thread,
        )
        self.host = self.analytics.host
        self._dropped = threading.local()
        self._last_failed: list[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"<cdp_logging.compat.Client host={self.host!r} send={self.send}>"

    # -- the six calls, in the official client's order ----------------------------------

    def identify(self, user_id: Any = None, traits: Any = None, context: Any = None,
                 timestamp: Any = None, anonymous_id: Any = None, integrations: Any = None,
                 message_id: Any = None) -> tuple[bool, dict[str, Any]]:
        """Say who a person is; returns ``(success, message)``.

        Example::

            client.identify("42", {"email": "ann@example.com"})
        """
        return self._call("identify", user_id=user_id, traits=traits, context=context,
                          timestamp=timestamp, anonymous_id=anonymous_id,
                          integrations=integrations, message_id=message_id)

    def track(self, user_id: Any = None, event: Any = None, properties: Any = None,
              context: Any = None, timestamp: Any = None, anonymous_id: Any = None,
              integrations: Any = None, message_id: Any = None) -> tuple[bool, dict[str, Any]]:
        """Record an action; returns ``(success, message)``.

        Example::

            client.track("42", "Order Completed", {"total": 9.5})
        """
        return self._call("track", user_id=user_id, event=event, properties=properties,
                          context=context, timestamp=timestamp, anonymous_id=anonymous_id,
                          integrations=integrations, message_id=message_id)

    def alias(self, previous_id: Any = None, user_id: Any = None, context: Any = None,
              timestamp: Any = None, integrations: Any = None,
              message_id: Any = None) -> tuple[bool, dict[str, Any]]:
        """Merge ``previous_id`` into ``user_id``; returns ``(success, message)``.

        Example::

            client.alias("anon-7", "42")
        """
        return self._call("alias", previous_id=previous_id, user_id=user_id, context=context,
                          timestamp=timestamp, integrations=integrations, message_id=message_id)

    def group(self, user_id: Any = None, group_id: Any = None, traits: Any = None,
              context: Any = None, timestamp: Any = None, anonymous_id: Any = None,
              integrations: Any = None, message_id: Any = None) -> tuple[bool, dict[str, Any]]:
        """Put a person in a group; returns ``(success, message)``.

        Example::

            client.group("42", "acme", {"name": "Acme Inc."})
        """
        return self._call("group", user_id=user_id, group_id=group_id, traits=traits,
                          context=context, timestamp=timestamp, anonymous_id=anonymous_id,
                          integrations=integrations, message_id=message_id)

    def page(self, user_id: Any = None, category: Any = None, name: Any = None,
             properties: Any = None, context: Any = None, timestamp: Any = None,
             anonymous_id: Any = None, integrations: Any = None,
             message_id: Any = None) -> tuple[bool, dict[str, Any]]:
        """Record a page view (category before name); returns ``(success, message)``.

        Example::

            client.page("42", "Docs", "Pricing", {"url": "https://example.com/pricing"})
        """
        return self._call("page", user_id=user_id, category=category, name=name,
                          properties=properties, context=context, timestamp=timestamp,
                          anonymous_id=anonymous_id, integrations=integrations,
                          message_id=message_id)

    def screen(self, user_id: Any = None, category: Any = None, name: Any = None,
               properties: Any = None, context: Any = None, timestamp: Any = None,
               anonymous_id: Any = None, integrations: Any = None,
               message_id: Any = None) -> tuple[bool, dict[str, Any]]:
        """Record a screen view (category before name); returns ``(success, message)``.

        Example::

            client.screen("42", "Shop", "Checkout")
        """
        return self._call("screen", user_id=user_id, category=category, name=name,
                          properties=properties, context=context, timestamp=timestamp,
                          anonymous_id=anonymous_id, integrations=integrations,
                          message_id=message_id)

    # -- lifecycle ----------------------------------------------------------------------

    def flush(self) -> None:
        """Deliver everything queued, waiting until done (as the official client does).

        Example::

            client.flush()
        """
        self.analytics.flush()

    def join(self) -> None:
        """Deliver what is queued (within the client's ``shutdown_timeout``) and stop the worker.

        Example::

            client.join()
        """
        self.analytics.close_and_flush()

    def shutdown(self) -> None:
        """Flush, then stop: the official client's way to end.

        Example::

            client.shutdown()
        """
        self.flush()
        self.join()

    # -- the common path ----------------------------------------------------------------

    def _call(self, call: str, **fields: Any) -> tuple[bool, dict[str, Any]]:
        analytics = self.analytics
        message = analytics._build(call, **fields)
        self._dropped.message_id = None
        message_id = analytics.send(message, self._finished)
        # The caller's copy: the library's own context entry is shared by every message.
        message = {**message, "context": {**message["context"], "library": dict(LIBRARY)}}
        if self._dropped.message_id == message_id:
            return False, message
        if self.sync_mode and self.send:
            return analytics.flush(timeout=None), message
        return True, message

    def _finished(self, error: CDPError | None, batch: list[dict[str, Any]]) -> None:
        """Every call's callback: notes a refused call, and gives ``on_error`` each failed batch once."""
        if isinstance(error, EventDroppedError):
            self._dropped.message_id = error.message_id  # on the caller's thread, within send()
            return
        if error is None or self.on_error is None or batch is self._last_failed:
            return
        # The batch's callbacks run one after another with the same list: keep it to know
        # the rest of them, and so that its id is not reused meanwhile.
        self._last_failed = batch
        self.on_error(error, batch)


def _host_for(write_key: Secret[Any], host: str | None) -> str:
    """The host Analytics would pick, for a transport made before it."""
    return (host or os.environ.get(ENV_HOST) or default_host((write_key.value or "").strip())).rstrip("/")


# -- the module-level API: settings, then calls on a default client made at the first ----------

write_key: str | None = Client.DefaultConfig.write_key
host: str | None = Client.DefaultConfig.host
on_error: OnError | None = Client.DefaultConfig.on_error
debug: bool = Client.DefaultConfig.debug
send: bool = Client.DefaultConfig.send
sync_mode: bool = Client.DefaultConfig.sync_mode
max_queue_size: int = Client.DefaultConfig.max_queue_size
gzip: bool = Client.DefaultConfig.gzip
timeout: float = Client.DefaultConfig.timeout
max_retries: int = Client.DefaultConfig.max_retries

#: The client the module-level calls use, made from the settings above at the first call.
default_client: Client | None = None
_default_lock = threading.Lock()


def _client() -> Client:
    global default_client
    with _default_lock:
        if default_client is None:
            default_client = Client(
                write_key, host=host, debug=debug, max_queue_size=max_queue_size, send=send,
                on_error=on_error, gzip=gzip, max_retries=max_retries, sync_mode=sync_mode,
                timeout=timeout,
            )
        return default_client


def identify(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """``Client.identify`` on the default client."""
    return _client().identify(*args, **kwargs)


def track(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """``Client.track`` on the default client."""
    return _client().track(*args, **kwargs)


def group(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """``Client.group`` on the default client."""
    return _client().group(*args, **kwargs)


def alias(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """``Client.alias`` on the default client."""
    return _client().alias(*args, **kwargs)


def page(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """``Client.page`` on the default client."""
    return _client().page(*args, **kwargs)


def screen(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """``Client.screen`` on the default client."""
    return _client().screen(*args, **kwargs)


def flush() -> None:
    """Deliver everything the default client queued."""
    _client().flush()


def join() -> None:
    """Deliver what is queued and stop the default client's worker."""
    _client().join()


def shutdown() -> None:
    """Flush, then stop the default client."""
    _client().flush()
    _client().join()
