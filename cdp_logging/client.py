"""``Analytics``: the six calls as methods, the options, and the client's lifecycle."""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .delivery.connection import Timeout
from .secret import Secret
from .delivery.batcher import Batcher
from .delivery.sending import BatchSender
from .delivery.items import BODY_OVERHEAD, Overflow
from .constants import (
    ENV_WRITE_KEY, MAX_BATCH_BYTES,
)
from .reporting import ErrorHandler, Reporter, warn
from .delivery.transport import HTTPTransport, warn_if_other_region
from .delivery.pacing import Pacer
from .delivery.retry import GAVE_UP_CLOSING, RetryPolicy
from .delivery.protocol import Transport

if TYPE_CHECKING:
    # Imported when a client has a spool: a client without one never loads sqlite3.
    from .delivery.spool import Spool, SpoolFull
from .outcomes import Outcomes, Stats
from .registry import track_client
from .calls import Calls
from .options import without_api_path, check_options
from .option_sources import from_environment
from .privacy import leaving_step
from .shutdown import ShutdownDeadlines


class Analytics(Calls):
    """A Customer.io Data Pipelines client: validates, queues and delivers calls in batches.

    Calls return at once: messages are encoded on the calling thread and sent by a
    background thread per client, on the first call, every ``max_events_in_batch`` events,
    every ``flush_interval`` seconds and on :meth:`flush`; a backlog goes out in full
    batches, up to ``max_concurrent_requests`` at once. At interpreter exit the client
    delivers what is queued within ``shutdown_timeout`` seconds.

    Options (all keyword-only):

    - ``write_key``: the source's write key; default the ``CDP_WRITE_KEY`` environment variable.
      Leading and trailing whitespace is stripped. A region API key (``pk_us_``, ``sk_us_``,
      ``pk_eu_``, ``sk_eu_``) is sent as a Bearer token, any other key as Basic auth.
    - ``host``: the API's address; default ``CDP_HOST``, else the region API key's region
      (``https://cdp-eu.customer.io`` for ``pk_eu_``/``sk_eu_``), else ``https://cdp.customer.io``.
    - ``max_events_in_batch`` (20), ``flush_interval`` (10.0 s): when a batch is sent; the
      former is also the most events a request carries, always (1: no batching).
    - ``max_concurrent_requests`` (8): requests in flight at once while a backlog lasts,
      within the API's rate limit; a 429 or 5xx slows all. One at a time with your own
      ``transport`` or a spool. See docs/batching.md.
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
      interpreter exit may take, one deadline however the shutdown goes (docs/faults.md);
      what is not delivered by then is reported as failed, or unconfirmed for a request
      still unanswered (with a spool: kept in the spool for the next process).
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
    - ``transport``: a :class:`~cdp_logging.Transport` to send with instead of HTTP.
    - ``redact_keys`` (``CDP_REDACT_KEYS``, else ``DEFAULT_REDACT_KEYS``; ``()``: off) and
      ``before_send`` (None): what leaves the process, see :mod:`cdp_logging.privacy`.
    Options not given take their ``CDP_*`` variable (docs/configuration.md: ranges, sources);
    ``option_sources`` maps each to ``"code"``, its variable, or ``"default"``.

    Example::

        analytics = Analytics("YOUR_WRITE_KEY")            # or CDP_WRITE_KEY in the environment
        analytics.identify(user_id="019mr8mf4r", traits={"plan": "Enterprise"})
        analytics.track(user_id="019mr8mf4r", event="added_to_cart", properties={"qty": 1})
        analytics.close_and_flush()
    """

    option_sources: dict[str, str]

    @from_environment
    def __init__(
        self,
        write_key: str | None = None,
        *,
        host: str | None = None,
        max_events_in_batch: int = 20,
        flush_interval: float = 10.0,
        max_concurrent_requests: int = 8,
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
        redact_keys: Iterable[str] | None = None,
        before_send: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    ) -> None:
        # Hidden before anything can raise: a traceback recorded with its locals (as Sentry
        # records them) shows this frame's. CDPHandler and compat.Client pass it hidden.
        key = Secret.of(write_key)
        del write_key
        if key.value is None:
            key.value = os.environ.get(ENV_WRITE_KEY) or None
        given = locals()  # the number options, checked by name
        host, enable, longest_request = check_options(
            key, inspect.signature(Analytics.__init__).parameters, host=host, enable=enable,
            require_write_key=require_write_key, error_handler=error_handler, overflow=overflow,
            spool_path=spool_path, spool_full=spool_full, gzip=gzip, transport=transport,
            numbers=given, timeout=timeout,
        )

        self.host = without_api_path(host)
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
        self._outcomes = Outcomes(Reporter(error_handler), on_spool_unusable=self._batch_in_memory)
        # The outcomes' own, bound here too: the calls count and report on the caller's thread.
        self._reporter = self._outcomes.reporter
        self._counters = self._outcomes.counters
        self._leaving = leaving_step(redact_keys, before_send, self._count_redacted, self._count_dropped_by_before_send,
                                     self._count_not_sent)
        self._transport: Transport = transport or HTTPTransport(
            self.host, Secret(key.value or ""), timeout=timeout, gzip=gzip
        )
        #: The failed count when closing began: clients closing side by side fail batches
        #: while another's close_and_flush waits, and those belong to this close too.
        self._failed_when_closing: int | None = None
        self._deadlines = ShutdownDeadlines()
        self._max_events_in_batch = max_events_in_batch
        self._flush_interval = float(flush_interval)
        self._spool: Spool | None = None
        spooling = spool_path is not None and enable
        if spooling:
            from .delivery import spool  # only here: without a spool, sqlite3 is never imported

            # The worker writes to the spool: many events a transaction, at least every
            # spool_sync_interval; the spool's own thread batches and sends.
            max_events_in_batch, flush_interval = spool.WRITE_EVENTS, spool_sync_interval
        self._max_concurrent_requests = concurrency = _paced(self, max_concurrent_requests)
        self._sender = BatchSender(
            self._transport, self.retry_policy, on_settled=self._outcomes.settled,
            on_retry=self._outcomes.count_retry, max_events_in_batch=self._max_events_in_batch,
        )
        self._batcher = Batcher(
            self._sender.write_to_spool if spooling else self._sender.deliver,
            max_events_in_batch=max_events_in_batch,
            flush_interval=float(flush_interval),
            max_queue_size=max_queue_size,
            max_queue_bytes=max_queue_bytes,
            max_batch_bytes=MAX_BATCH_BYTES,
            # The spool's sender sends one request at a time; the worker only writes to it.
            max_concurrent_requests=1 if spooling else concurrency,
            overflow=overflow,
            overflow_timeout=float(overflow_timeout),
            on_abandoned=self._outcomes.abandoned,
            name=f"cdp-logging-{id(self):x}",
        )
        self._sender.batcher = self._batcher
        #: Idents of the threads delivering for this client (its worker and helpers, the
        #: spool's sender): a front ignores what they log, which could otherwise loop.
        self.own_threads: set[int] = self._batcher.own_threads
        if spool_path is not None and enable:
            self._spool = spool.Spool(
                spool.SpoolFile(
                    spool_path, max_bytes=spool_max_bytes, full=spool_full,
                    # A lease outlives the longest a batch's sending may take.
                    lease=longest_request + float(max_retry_time) + spool.LEASE_MARGIN,
                ),
                self._outcomes,
                post=self._sender.post,
                max_events_in_batch=self._max_events_in_batch,
                max_batch_bytes=MAX_BATCH_BYTES - BODY_OVERHEAD,
                flush_interval=self._flush_interval,
                backoff=self.retry_policy.backoff,
                name=f"cdp-logging-{id(self):x}",
            )
            self._spool.own_threads = self._batcher.own_threads
            self._sender.spool = self._spool
            self._spool.start()
        track_client(self)

    def stats(self) -> Stats:
        """Counts of what happened to the calls made so far.

        Example::

            >>> analytics.stats()["delivered"]
            20
        """
        values = dict(self._counters.values)
        spool = self._spool
        return Stats(
            queued=self._batcher.accepted,
            delivered=values["delivered"],
            failed=values["failed"],
            unconfirmed=values["unconfirmed"],
            dropped=values["dropped"],
            invalid=values["invalid"],
            substituted=values["substituted"],
            skipped=values["skipped"],
            batches=values["batches"],
            retries=values["retries"],
            pending=self._batcher.pending + (spool.in_flight if spool else 0),
            spooled=spool.spooled if spool else 0,
            dropped_by_before_send=values["dropped_by_before_send"],
            redacted=self._counters.redacted_counts(),
        )

    def _batch_in_memory(self) -> None:
        """The spool became unusable: batch and send from memory, as without a spool."""
        self._batcher.max_events_in_batch = self._max_events_in_batch
        self._batcher.flush_interval = self._flush_interval
        self._batcher.max_concurrent_requests = self._max_concurrent_requests

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

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything queued now; True when all of it was delivered.

        Blocks up to ``timeout`` seconds (None: until done).

        Example::

            if not analytics.flush(timeout=2.0):
                print(analytics.stats())
        """
        failed_before = self._counters.given_up()
        deadline = self._deadlines.within_shutdown(None if timeout is None else time.monotonic() + timeout)
        drained = self._batcher.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))
        spool = self._spool
        if drained and spool is not None and spool.unusable is None:
            # Written to the spool: now wait for the spool's sender to deliver it.
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            drained = spool.flush(left)
        return drained and self._counters.given_up() == failed_before

    def close_and_flush(self, timeout: float | None = None) -> bool:
        """Stop accepting calls, deliver what is queued within ``timeout`` (default
        ``shutdown_timeout``) and stop the worker. Calling it again does nothing.

        Example::

            analytics.close_and_flush(timeout=3.0)
        """
        timeout = self.shutdown_timeout if timeout is None else timeout
        counters = self._counters.values
        self._begin_close(timeout)
        failed_before = self._failed_when_closing
        assert failed_before is not None  # set by _begin_close
        delivered = self._batcher.close(timeout)  # by the deadline _begin_close set, once
        spool = self._spool
        kept = 0
        if spool is not None:
            if spool.close():
                self._count_cut_in_spool(spool, timeout)
                if spool.kept_at_close:
                    warn(
                        "cdp-logging: %d event(s) not delivered before closing (shutdown timeout %gs) "
                        "are kept in the spool %s; the next process using it sends them",
                        spool.kept_at_close, timeout, spool.file.path,
                    )
            kept = spool.kept_at_close or 0
        sender_stopped = spool is None or not spool.thread.is_alive()
        if delivered and sender_stopped and isinstance(self._transport, HTTPTransport):
            self._transport.close()
        not_delivered = self._counters.given_up() - failed_before
        self._failed_when_closing = failed_before + not_delivered  # a later call reports only what is new
        # Only what the deadline cut short is the timeout's doing; a batch the API refused
        # (HTTP 401, say) failed for its own reason, however soon, and its own line said so.
        cut_short = not delivered or self._outcomes.last_failure.startswith(GAVE_UP_CLOSING)
        if not_delivered and (cut_short or self.error_handler is not None):
            why = (f"before closing (shutdown timeout {timeout:g}s)" if cut_short
                   else f"while closing: {self._outcomes.last_failure}")
            warn(
                "cdp-logging: %d event(s) could not be delivered %s; since start: %d delivered, "
                "%d failed, %d unconfirmed, %d dropped",
                not_delivered, why, *(counters[k] for k in ("delivered", "failed", "unconfirmed", "dropped")),
            )
        return delivered and not not_delivered and not kept

    def _begin_close(self, timeout: float | None = None) -> None:
        """Start closing without waiting, so several clients can close side by side; every
        wait of the close ends by the one deadline set by the first call."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        if self._failed_when_closing is None:
            self._failed_when_closing = self._counters.given_up()
        deadline = self._deadlines.closing_deadline(timeout)
        self._batcher.begin_close(timeout, deadline=deadline)
        if self._spool is not None:
            self._spool.begin_close(timeout, deadline=deadline)

    def _shutdown_begins(self, deadline: float) -> None:
        """The process began shutting down: every wait from now on ends by ``deadline``."""
        self._deadlines.shutdown_begins(deadline)

    def _count_cut_in_spool(self, spool: Spool, timeout: float) -> None:
        """After the spool's close: count and tell the events of a request still unanswered
        at the deadline, which the next process sends again."""
        cut = spool.unconfirmed_at_close or 0
        if cut:
            self._counters.add("unconfirmed", cut)
            warn(
                "cdp-logging: %d event(s) were in a request still unanswered when the shutdown "
                "timeout (%gs) ran out; they stay in the spool %s and the next process sends "
                "them again, with the same messageIds: the API may get them twice",
                cut, timeout, spool.file.path,
            )

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

    def _after_fork_in_child(self) -> None:
        # Every lock the parent's threads might have held at the fork is replaced.
        self._batcher.reset_after_fork()
        self.own_threads = self._batcher.own_threads
        if self._spool is not None:
            self._spool.after_fork()
            self._spool.own_threads = self._batcher.own_threads
        self._outcomes.reset_after_fork()
        self._counters = self._outcomes.counters
        self._reporter = self._outcomes.reporter
        self._failed_when_closing = None
        self._deadlines = ShutdownDeadlines()
        reset = getattr(self._transport, "reset", None)
        if reset is not None:
            reset()


def _paced(client: Analytics, max_concurrent_requests: int) -> int:
    """How many requests ``client`` may have in flight at once: with the built-in HTTP
    transport, ``max_concurrent_requests``, paced by the API's rate limit; a transport of the
    caller's own is called one request at a time."""
    transport = client._transport
    if not isinstance(transport, HTTPTransport):
        return 1
    policy = client.retry_policy
    transport.pacer = Pacer(
        max_concurrent_requests, deadline=lambda: client._batcher.closing_deadline(),
        pause=policy.initial_backoff, max_pause=policy.max_retry_after,
    )
    return max_concurrent_requests
