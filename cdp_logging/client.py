"""``Analytics``: the six calls as methods, the options, and the client's lifecycle."""

from __future__ import annotations


import inspect
import os
import time
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Mapping

import orjson

from .delivery.connection import Secret, Timeout
from .delivery.batcher import BODY_OVERHEAD, Batcher, Overflow
from .constants import (
    BATCH_PATH, ENV_ENABLE, ENV_HOST, ENV_REQUIRE_WRITE_KEY, ENV_WRITE_KEY, FALSE_WORDS, MAX_BATCH_BYTES,
    TRUE_WORDS,
)
from . import environment
from .errors import CDPError, EventDroppedError, InvalidEventError
from .messages import build_message, encode_message, encode_plain, substitution_error
from .reporting import ErrorHandler, Reporter, warn
from .delivery.transport import (
    GAVE_UP_CLOSING, HTTPTransport, RetryPolicy, Transport, default_host, warn_if_other_region,
)

if TYPE_CHECKING:
    # Imported when a client has a spool: a client without one never loads sqlite3.
    from .delivery.spool import Spool, SpoolFull
from .outcomes import Callback, DeliveryOutcomes, Stats, _Counters, logger
from .registry import _track_client


#: While ``cdp_logging.testing`` captures events, every encoded message goes to these
#: functions instead of the queue (in every client), so tests see exactly what would be sent.
capture_sinks: list[Callable[[bytes], None]] = []


def _option_error(option: str, expected: str, value: Any) -> TypeError:
    return TypeError(f"cdp_logging option {option!r} must be {expected}, got {value!r}")


_warned_missing_write_key = False


_environment_checked = False


def _check_environment() -> None:
    """Once per process, at the first client: warn of CDP_* variables nothing reads."""
    global _environment_checked
    if _environment_checked:
        return
    _environment_checked = True
    environment.warn_about_unknown_variables(
        environment.known_variables(inspect.signature(Analytics.__init__).parameters)
    )


def _missing_write_key() -> None:
    """Say once per process that nothing is sent for want of a key (under pytest with the
    plugin a test needs none, so it is only logged at DEBUG there)."""
    global _warned_missing_write_key
    if environment.pytest_plugin_active():
        logger.debug("cdp-logging: no write key: sending nothing (pytest)")
        return
    if _warned_missing_write_key:
        return
    _warned_missing_write_key = True
    warn(
        "cdp-logging: %s is not set: sending nothing. Set it to the write key of your Customer.io "
        "Data Pipelines source (or pass write_key=...); %s=false silences this, and "
        "require_write_key=True (%s=true) makes it an error.",
        ENV_WRITE_KEY, ENV_ENABLE, ENV_REQUIRE_WRITE_KEY,
    )


def _without_api_path(host: str) -> str:
    """The host without a trailing ``/v1`` or ``/v1/batch``: the client adds the path, and
    ``https://cdp.customer.io/v1`` would otherwise be posted to at ``/v1/v1/batch`` (404)."""
    host = host.rstrip("/")
    for path in (BATCH_PATH, BATCH_PATH.rpartition("/")[0]):
        if host.endswith(path):
            return host[: -len(path)]
    return host


def _number(option: str, value: Any, *, minimum: float, integer: bool = False) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise _option_error(option, "an integer" if integer else "a number", value)
    if value < minimum:
        raise ValueError(f"cdp_logging option {option!r} must be at least {minimum}, got {value!r}")
    return value


class Analytics(DeliveryOutcomes):
    """A Customer.io Data Pipelines client: validates, queues and delivers calls in batches.

    Calls return at once: messages are encoded on the calling thread and sent by one
    background thread per client, on the first call, every ``max_events_in_batch`` events,
    every ``flush_interval`` seconds and on :meth:`flush`; events that queued up while a
    request was in flight go out in request bodies as full as the API's 500 KB limit
    allows. At interpreter exit the client delivers what is queued within
    ``shutdown_timeout`` seconds.

    Options (all keyword-only):

    - ``write_key``: the source's write key; default the ``CDP_WRITE_KEY`` environment variable.
      Leading and trailing whitespace is stripped. A region API key (``pk_us_``, ``sk_us_``,
      ``pk_eu_``, ``sk_eu_``) is sent as a Bearer token, any other key as Basic auth.
    - ``host``: the API's address; default ``CDP_HOST``, else the region API key's region
      (``https://cdp-eu.customer.io`` for ``pk_eu_``/``sk_eu_``), else ``https://cdp.customer.io``.
    - ``max_events_in_batch`` (20), ``flush_interval`` (10.0 s): when a batch is sent. Not a
      cap: a backlog goes out in full 500 KB bodies, then what it leaves at once.
    - ``enable`` (True): False validates calls but sends nothing. The environment variable
      ``CDP_ENABLE=false`` turns every client off, those given ``enable=True`` included.
    - ``require_write_key`` (False): without a write key the client sends nothing and logs one
      WARNING naming ``CDP_WRITE_KEY`` (none under pytest with the plugin); True (or the
      environment variable ``CDP_REQUIRE_WRITE_KEY=true``) makes a missing key a ValueError.
    - ``error_handler`` (None): called with each :class:`CDPError` (a failed batch, a dropped
      event); without one, problems are logged on ``cdp_logging``, rate-limited.
    - ``max_queue_size`` (50,000 events) and ``max_queue_bytes`` (20,000,000 encoded bytes):
      the queue's bounds, which keep memory flat while the API is unreachable. The byte bound
      is the memory guarantee: at most about 22 MB with the defaults (each queued event holds
      its encoded bytes plus 41).
    - ``overflow`` ("drop"): what a call does when the queue is full. "drop" refuses the new
      event at once; "wait" blocks the calling thread up to ``overflow_timeout`` (1.0 s) for
      room, then drops it. Every dropped event is counted in :meth:`stats` and reported.
    - ``timeout`` (10.0 s): the most one HTTP request may take, connecting, sending and the
      whole answer together; or ``(connect, read)``: connecting, then the rest. ``gzip`` (False).
    - ``max_retries`` (5): retries of a failed batch after its first attempt. Connection
      errors, timeouts, 408, 429 and 5xx other than 501 and 505 are retried; other statuses
      are not.
    - ``max_retry_time`` (60.0 s): no retry starts that would end later than this after the
      batch's first attempt; a batch takes at most this plus one ``timeout``.
    - ``initial_backoff`` (0.5 s) and ``max_backoff`` (10.0 s): retry ``n`` waits a random time
      between half and all of ``min(max_backoff, initial_backoff * 2 ** (n - 1))``.
    - ``max_retry_after`` (30.0 s): the cap on a server's ``Retry-After`` (429 and 503), which
      replaces the computed wait.
    - ``shutdown_timeout`` (5.0 s): how long :meth:`close_and_flush` and the flush at
      interpreter exit may take; what is not delivered by then is reported as failed (with a
      spool: kept in the spool for the next process).
    - ``spool_path`` (None): a file on local disk (SQLite, created if missing) where events
      wait until the API acknowledged them, so that neither a killed process nor an outage
      longer than the retry budget loses them; several processes may share one. See
      :mod:`cdp_logging.delivery.spool`.
    - ``spool_max_bytes`` (100,000,000): the bound on the spool file's size, which holds its
      events in pages on disk (its write-ahead log, up to 4 MB between checkpoints, is extra).
    - ``spool_full`` ("drop_oldest"): what a full spool drops, "drop_oldest" (the events
      waiting longest) or "drop_newest" (the new ones); dropped events are counted and reported.
    - ``spool_sync_interval`` (0.2 s): the longest an event waits in memory before it is
      written to the spool, which bounds what a kill -9 loses.
    - ``transport``: a :class:`~cdp_logging.delivery.transport.Transport` to send with instead of HTTP.

    Example::

        analytics = Analytics("YOUR_WRITE_KEY")            # or CDP_WRITE_KEY in the environment
        analytics.identify(user_id="019mr8mf4r", traits={"plan": "Enterprise"})
        analytics.track(user_id="019mr8mf4r", event="added_to_cart", properties={"qty": 1})
        analytics.close_and_flush()
    """

    def __init__(
        self,
        write_key: str | None = None,
        *,
        host: str | None = None,
        max_events_in_batch: int = 20,
        flush_interval: float = 10.0,
        enable: bool = True,
        require_write_key: bool = False,
        error_handler: ErrorHandler | None = None,
        max_queue_size: int = 50_000,
        max_queue_bytes: int = 20_000_000,
        overflow: Overflow = "drop",
        overflow_timeout: float = 1.0,
        timeout: Timeout = 10.0,
        gzip: bool = False,
        max_retries: int = 5,
        max_retry_time: float = 60.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 10.0,
        max_retry_after: float = 30.0,
        shutdown_timeout: float = 5.0,
        spool_path: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = 100_000_000,
        spool_full: SpoolFull = "drop_oldest",
        spool_sync_interval: float = 0.2,
        transport: Transport | None = None,
    ) -> None:
        # Hidden before anything can raise: a traceback recorded with its locals (as Sentry
        # records them) shows this frame's. CDPHandler and compat.Client pass it hidden.
        key = Secret.of(write_key)
        del write_key
        if key.value is None:
            key.value = os.environ.get(ENV_WRITE_KEY) or None
        if key.value is not None and not isinstance(key.value, str):
            raise _option_error("write_key", "a string", type(key.value).__name__)
        if key.value is not None:
            # A key read from a mounted secret file, or $(cat file), ends in a newline.
            key.value = key.value.strip() or None
        _check_environment()
        if not isinstance(require_write_key, bool):
            raise _option_error("require_write_key", "True or False", require_write_key)
        if os.environ.get(ENV_ENABLE, "").strip().lower() in FALSE_WORDS:
            enable = False  # the switch for every client, those made in code included
        if enable and not key.value and transport is None:
            if require_write_key or os.environ.get(ENV_REQUIRE_WRITE_KEY, "").strip().lower() in TRUE_WORDS:
                raise ValueError(
                    "cdp_logging needs a write key: pass write_key=... or set the environment "
                    f"variable {ENV_WRITE_KEY}."
                )
            # Analytics must never be what stops an application starting: send nothing.
            _missing_write_key()
            enable = False
        if host is None:
            host = os.environ.get(ENV_HOST) or default_host(key.value)
        if not isinstance(host, str) or not host.startswith(("http://", "https://")):
            raise ValueError(f"cdp_logging option 'host' must be an http(s) URL, got {host!r}")
        if error_handler is not None and not callable(error_handler):
            raise _option_error("error_handler", "a callable", error_handler)
        if overflow not in ("drop", "wait"):
            raise ValueError(f"cdp_logging option 'overflow' must be 'drop' or 'wait', got {overflow!r}")
        if spool_path is not None and not isinstance(spool_path, (str, os.PathLike)):
            raise _option_error("spool_path", "a path", spool_path)
        if spool_full not in ("drop_oldest", "drop_newest"):
            raise ValueError(
                f"cdp_logging option 'spool_full' must be 'drop_oldest' or 'drop_newest', got {spool_full!r}"
            )
        for option, flag in (("enable", enable), ("gzip", gzip)):
            if not isinstance(flag, bool):
                raise _option_error(option, "True or False", flag)
        _number("max_events_in_batch", max_events_in_batch, minimum=1, integer=True)
        _number("max_queue_size", max_queue_size, minimum=1, integer=True)
        _number("max_queue_bytes", max_queue_bytes, minimum=1, integer=True)
        _number("max_retries", max_retries, minimum=0, integer=True)
        _number("flush_interval", flush_interval, minimum=0.001)
        _number("overflow_timeout", overflow_timeout, minimum=0)
        if isinstance(timeout, tuple) and len(timeout) == 2:
            _number("timeout[0] (connect)", timeout[0], minimum=0.001)
            _number("timeout[1] (read)", timeout[1], minimum=0.001)
            longest_request = float(timeout[0]) + float(timeout[1])
        else:
            longest_request = float(_number("timeout", timeout, minimum=0.001))
        _number("max_retry_time", max_retry_time, minimum=0)
        _number("initial_backoff", initial_backoff, minimum=0)
        _number("max_backoff", max_backoff, minimum=0)
        _number("max_retry_after", max_retry_after, minimum=0)
        _number("shutdown_timeout", shutdown_timeout, minimum=0)
        _number("spool_max_bytes", spool_max_bytes, minimum=1, integer=True)
        _number("spool_sync_interval", spool_sync_interval, minimum=0.001)

        self.host = _without_api_path(host)
        if key.value:
            warn_if_other_region(key.value, self.host)
        self.enable = enable
        self.shutdown_timeout = float(shutdown_timeout)
        self.retry_policy = RetryPolicy(
            max_retries=max_retries,
            max_retry_time=float(max_retry_time),
            initial_backoff=float(initial_backoff),
            max_backoff=float(max_backoff),
            max_retry_after=float(max_retry_after),
        )
        self._reporter = Reporter(error_handler)
        self._transport: Transport = transport or HTTPTransport(
            self.host, Secret(key.value or ""), timeout=timeout, gzip=gzip
        )
        self._counters = _Counters()
        #: Why the last batch given up failed, for the summary at close.
        self._last_failure = ""
        self._max_events_in_batch = max_events_in_batch
        self._flush_interval = float(flush_interval)
        self._spool: Spool | None = None
        spooling = spool_path is not None and enable
        if spooling:
            from .delivery import spool  # only here: without a spool, sqlite3 is never imported

            # The worker writes to the spool: many events a transaction, at least every
            # spool_sync_interval; the spool's own thread batches and sends.
            max_events_in_batch, flush_interval = spool.WRITE_EVENTS, spool_sync_interval
        self._batcher = Batcher(
            self._write_to_spool if spooling else self._deliver,
            max_events_in_batch=max_events_in_batch,
            flush_interval=float(flush_interval),
            max_queue_size=max_queue_size,
            max_queue_bytes=max_queue_bytes,
            max_batch_bytes=MAX_BATCH_BYTES,
            overflow=overflow,
            overflow_timeout=float(overflow_timeout),
            on_abandoned=self._abandon,
            name=f"cdp-logging-{id(self):x}",
        )
        if spool_path is not None and enable:
            self._spool = spool.Spool(
                spool.SpoolFile(
                    spool_path, max_bytes=spool_max_bytes, full=spool_full,
                    # A lease outlives the longest a batch's sending may take.
                    lease=longest_request + float(max_retry_time) + spool.LEASE_MARGIN,
                ),
                self,
                max_events_in_batch=self._max_events_in_batch,
                max_batch_bytes=MAX_BATCH_BYTES - BODY_OVERHEAD,
                flush_interval=self._flush_interval,
                backoff=self.retry_policy.backoff,
                name=f"cdp-logging-{id(self):x}",
            )
            self._spool.own_threads = self._batcher.own_threads
            self._spool.start()
        _track_client(self)

    def __repr__(self) -> str:
        return f"<Analytics host={self.host!r} enable={self.enable} pending={self._batcher.pending}>"

    @property
    def error_handler(self) -> ErrorHandler | None:
        """The function given each :class:`CDPError`, or None to log them.

        Example::

            analytics = Analytics("WRITE_KEY", error_handler=alerts.send)
            assert analytics.error_handler is alerts.send
        """
        return self._reporter.error_handler

    def identify(
        self,
        *,
        user_id: str | int | None = None,
        anonymous_id: str | int | None = None,
        traits: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Say who a person is and set their traits; returns the messageId.

        Example::

            analytics.identify(user_id="019mr8mf4r", traits={"email": "cool@example.com"})
        """
        return self.send(self._build(
            "identify", user_id=user_id, anonymous_id=anonymous_id, traits=traits,
            context=context, integrations=integrations, timestamp=timestamp, message_id=message_id,
        ), callback)

    def track(
        self,
        *,
        event: str | None = None,
        user_id: str | int | None = None,
        anonymous_id: str | int | None = None,
        properties: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record an action a person took; returns the messageId.

        Example::

            analytics.track(user_id="019mr8mf4r", event="added_to_cart",
                            properties={"product": "shoes", "revenue": 39.95})
        """
        return self.send(self._build(
            "track", user_id=user_id, anonymous_id=anonymous_id, event=event,
            properties=properties, context=context, integrations=integrations,
            timestamp=timestamp, message_id=message_id,
        ), callback)

    def page(
        self,
        *,
        user_id: str | int | None = None,
        anonymous_id: str | int | None = None,
        name: str | None = None,
        category: str | None = None,
        properties: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record a page view; returns the messageId.

        Example::

            analytics.page(user_id="019mr8mf4r", category="Docs", name="CDP",
                           properties={"url": "https://customer.io/cdp/"})
        """
        return self.send(self._build(
            "page", user_id=user_id, anonymous_id=anonymous_id, name=name, category=category,
            properties=properties, context=context, integrations=integrations,
            timestamp=timestamp, message_id=message_id,
        ), callback)

    def screen(
        self,
        *,
        user_id: str | int | None = None,
        anonymous_id: str | int | None = None,
        name: str | None = None,
        category: str | None = None,
        properties: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record a mobile screen view; returns the messageId.

        Example::

            analytics.screen(user_id="019mr8mf4r", name="Checkout")
        """
        return self.send(self._build(
            "screen", user_id=user_id, anonymous_id=anonymous_id, name=name, category=category,
            properties=properties, context=context, integrations=integrations,
            timestamp=timestamp, message_id=message_id,
        ), callback)

    def group(
        self,
        *,
        group_id: str | int | None = None,
        user_id: str | int | None = None,
        anonymous_id: str | int | None = None,
        traits: Mapping[str, Any] | None = None,
        object_type_id: str | int | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Associate a person with a group (an object in Customer.io); returns the messageId.

        Example::

            analytics.group(user_id="019mr8mf4r", group_id="56", object_type_id=1,
                            traits={"name": "Initech"})
        """
        return self.send(self._build(
            "group", user_id=user_id, anonymous_id=anonymous_id, group_id=group_id,
            traits=traits, object_type_id=object_type_id, context=context,
            integrations=integrations, timestamp=timestamp, message_id=message_id,
        ), callback)

    def alias(
        self,
        *,
        previous_id: str | int | None = None,
        user_id: str | int | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Merge two identities: ``previous_id`` into ``user_id``; returns the messageId.

        Example::

            analytics.alias(previous_id="anonymous_user", user_id="identified@example.com")
        """
        return self.send(self._build(
            "alias", user_id=user_id, previous_id=previous_id, context=context,
            integrations=integrations, timestamp=timestamp, message_id=message_id,
        ), callback)

    def _build(self, call: str, **fields: Any) -> dict[str, Any]:
        """build_message, counting the calls it rejects."""
        try:
            return build_message(call, **fields)
        except InvalidEventError:
            self._counters.add("invalid")
            raise

    def send(self, message: dict[str, Any], callback: Callback | None = None) -> str:
        """Encode a built message (see ``cdp_logging.messages.build_message``) and queue it.

        Raises :class:`InvalidEventError` (or :class:`EventTooLargeError`) for a message the
        API would refuse; a message that cannot be queued is counted and reported, not
        raised. Returns the messageId.

        Example::

            from cdp_logging.messages import build_message

            message = build_message("track", user_id="42", event="Signed Up")
            message_id = analytics.send(message)   # the same as analytics.track(...)
        """
        data = encode_plain(message)
        if data is None:
            substituted: list[Any] = []
            try:
                data = encode_message(message, substituted=substituted)
            except InvalidEventError:
                self._counters.add("invalid")
                raise
            if substituted:
                self._counters.add("substituted")
                self._reporter.report(substitution_error(message, substituted))
        message_id: str = message["messageId"]
        if capture_sinks:
            # A snapshot: a capture ending on another thread must not make this loop skip
            # another capture's sink, and an empty snapshot means the message is queued.
            sinks = tuple(capture_sinks)
            if sinks:
                for sink in sinks:
                    sink(data)
                if callback is not None:
                    # Captured counts as delivered: the callback sees success at once.
                    self._run_callback(callback, None, [orjson.loads(data)])
                return message_id
        if not self.enable:
            self._counters.add("skipped")
            return message_id
        refused = self._batcher.put(data if callback is None else (data, callback), len(data))
        if refused is not None:
            self.count_dropped(refused, message_id)
            if callback is not None:
                self._run_callback(callback, EventDroppedError(refused, message_id=message_id), [])
        return message_id

    def count_dropped(self, reason: str, message_id: str) -> None:
        """Count and report an event the queue refused (``reason``: why), as :meth:`send`
        does; for a handler that queued it itself.

        Example::

            refused = analytics._batcher.put(data, len(data))
            if refused is not None:
                analytics.count_dropped(refused, message_id)
        """
        self._counters.add("dropped")
        self._reporter.report(EventDroppedError(reason, message_id=message_id))

    def count_invalid(self, error: InvalidEventError) -> None:
        """Count and report an event rejected before reaching :meth:`send` (the handler's).

        Example::

            try:
                message = build_message("track", user_id="42", event="")
            except InvalidEventError as err:
                analytics.count_invalid(err)   # stats()["invalid"] grows, error_handler sees it
        """
        self._counters.add("invalid")
        self._reporter.report(error)

    def report(self, error: CDPError) -> None:
        """Hand ``error`` to the error_handler, or log it (rate-limited); nothing is counted.

        Example::

            analytics.report(InvalidEventError("track", "event", "must not be empty"))
        """
        self._reporter.report(error)

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything queued now; True when all of it was delivered.

        Blocks up to ``timeout`` seconds (None: until done).

        Example::

            if not analytics.flush(timeout=2.0):
                print(analytics.stats())
        """
        failed_before = self._counters.values["failed"]
        deadline = None if timeout is None else time.monotonic() + timeout
        drained = self._batcher.flush(timeout)
        spool = self._spool
        if drained and spool is not None and spool.unusable is None:
            # Written to the spool: now wait for the spool's sender to deliver it.
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            drained = spool.flush(left)
        return drained and self._counters.values["failed"] == failed_before

    def close_and_flush(self, timeout: float | None = None) -> bool:
        """Stop accepting calls, deliver what is queued within ``timeout`` (default
        ``shutdown_timeout``) and stop the worker. Calling it again does nothing.

        Example::

            analytics.close_and_flush(timeout=3.0)
        """
        timeout = self.shutdown_timeout if timeout is None else timeout
        counters = self._counters.values
        failed_before = counters["failed"]
        self._begin_close(timeout)
        delivered = self._batcher.close(timeout)
        spool = self._spool
        kept = 0
        if spool is not None:
            if spool.close() and spool.kept_at_close:
                warn(
                    "cdp-logging: %d event(s) not delivered before closing (shutdown timeout %gs) "
                    "are kept in the spool %s; the next process using it sends them",
                    spool.kept_at_close, timeout, spool.file.path,
                )
            kept = spool.kept_at_close or 0
        sender_stopped = spool is None or not spool.thread.is_alive()
        if delivered and sender_stopped and isinstance(self._transport, HTTPTransport):
            self._transport.close()
        not_delivered = counters["failed"] - failed_before
        if not_delivered:
            # Only what the deadline cut short is the timeout's doing; a batch the API refused
            # (HTTP 401, say) failed for its own reason, however soon.
            cut_short = not delivered or self._last_failure.startswith(GAVE_UP_CLOSING)
            why = (f"before closing (shutdown timeout {timeout:g}s)" if cut_short
                   else f"while closing: {self._last_failure}")
            warn(
                "cdp-logging: %d event(s) could not be delivered %s; since start: %d delivered, "
                "%d failed, %d dropped",
                not_delivered, why, counters["delivered"], counters["failed"], counters["dropped"],
            )
        return delivered and not not_delivered and not kept

    def _begin_close(self, timeout: float | None = None) -> None:
        """Start closing without waiting, so several clients can close side by side."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        self._batcher.begin_close(timeout)
        if self._spool is not None:
            self._spool.begin_close(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """The same as :meth:`close_and_flush`.

        Example::

            delivered_everything = analytics.close(timeout=3.0)
        """
        return self.close_and_flush(timeout)

    def __enter__(self) -> Analytics:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close_and_flush()

    @property
    def closed(self) -> bool:
        """True once the client was closed.

        Example::

            analytics.close()
            assert analytics.closed
        """
        return self._batcher.closed

    def stats(self) -> Stats:
        """Counts of what happened to the calls made so far.

        Example::

            >>> analytics.stats()["delivered"]
            20
        """
        values = dict(self._counters.values)
        return Stats(
            queued=self._batcher.accepted,
            delivered=values["delivered"],
            failed=values["failed"],
            dropped=values["dropped"],
            invalid=values["invalid"],
            substituted=values["substituted"],
            skipped=values["skipped"],
            batches=values["batches"],
            retries=values["retries"],
            pending=self._batcher.pending + (self._spool.in_flight if self._spool else 0),
            spooled=self._spool.spooled if self._spool else 0,
        )

    def _after_fork_in_child(self) -> None:
        # Every lock the parent's threads might have held at the fork is replaced.
        self._batcher.reset_after_fork()
        if self._spool is not None:
            self._spool.after_fork()
            self._spool.own_threads = self._batcher.own_threads
        self._counters = _Counters()
        self._reporter = Reporter(self._reporter.error_handler)
        reset = getattr(self._transport, "reset", None)
        if reset is not None:
            reset()
