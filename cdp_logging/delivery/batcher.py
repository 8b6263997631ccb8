"""The queue between the application's threads and the worker threads that deliver.

The application thread only appends already-encoded bytes under a short lock; the worker
wakes when a batch is due (the first event, ``max_events_in_batch`` events or a full request
body queued, every ``flush_interval`` seconds, a flush or a close) and hands each batch to
``deliver``. ``max_events_in_batch`` is a cap: no batch ever holds more events, nor more
bytes than one request body takes. A backlog (a batch due while every worker is sending)
goes out in back-to-back full batches, up to ``max_concurrent_requests`` of them at once,
and what it leaves after the last full one goes next, not a flush interval later.

One worker thread runs while the client has sent anything. While a backlog exists (a batch
due and every worker busy sending), up to ``max_concurrent_requests - 1`` helper threads
join it, each taking the next batch, so up to that many requests are in flight at once;
a helper leaves when it has found nothing due for :data:`HELPER_LINGER` seconds. No fault of
``deliver`` stops a worker: the events it had not settled go to ``on_abandoned``.
"""

from __future__ import annotations


import threading
import time
from collections import deque
from collections.abc import Callable
from itertools import islice
from threading import get_ident


from ..constants import MAX_BATCH_BYTES
from .items import (
    BODY_OVERHEAD, CLOSED, QUEUE_BYTES_FULL, QUEUE_FULL, Item, Overflow, item_bytes, logger, own_thread,
)


#: The most a close waits past its deadline for a worker that is not in a request to settle
#: its batch; part of the moment by which a process's shutdown may pass ``shutdown_timeout``.
SETTLE_MOMENT = 0.1


#: How the reason given to ``on_abandoned`` begins for the events of a request still in flight
#: at the close deadline: the API may have them.
IN_FLIGHT_AT_CLOSE = "still in flight when the close timeout"


#: Seconds a helper thread waits for another due batch before it leaves.
HELPER_LINGER = 1.0


class Flight:
    """One batch being delivered, by the thread that took it: how many of its events (at its
    end) are still unsettled, and whether close() already reported them."""

    __slots__ = ("abandoned", "batch", "unsettled")

    def __init__(self, batch: list[Item]) -> None:
        self.batch = batch
        self.unsettled = len(batch)
        self.abandoned = False

    def take_unsettled(self) -> list[Item]:
        """Mark the unsettled events as no longer this flight's to settle, and return them."""
        unsettled = self.batch[len(self.batch) - self.unsettled:] if self.unsettled else []
        self.unsettled = 0
        return unsettled


class Batcher:
    """A bounded queue of encoded events and the worker thread that drains it.

    ``deliver(items)`` is called on a worker thread with items whose bytes fit one request
    body, at most ``max_events_in_batch`` of them; while a backlog lasts, on up to
    ``max_concurrent_requests`` threads at once (so it must be thread-safe when that is
    above 1). It may call :meth:`settle` as it learns the fate of its items. ``on_abandoned(items, reason)``
    receives what close() could not deliver in time: the events still queued, and those of
    a request still in flight at the deadline.
    Forked children call :meth:`reset_after_fork`.

    Example::

        batcher = Batcher(send, max_events_in_batch=20, flush_interval=10.0)
        batcher.put(b'{"type":"track",...}')
        batcher.close(timeout=5.0)
    """

    def __init__(
        self,
        deliver: Callable[[list[Item]], None],
        *,
        max_events_in_batch: int = 20,
        flush_interval: float = 10.0,
        max_queue_size: int = 50_000,
        max_queue_bytes: int = 20_000_000,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_concurrent_requests: int = 1,
        overflow: Overflow = "drop",
        overflow_timeout: float = 1.0,
        on_abandoned: Callable[[list[Item], str], None] | None = None,
        name: str = "cdp-logging",
    ) -> None:
        self._deliver = deliver
        self.max_events_in_batch = max_events_in_batch
        self.flush_interval = flush_interval
        self.max_queue_size = max_queue_size
        self.max_queue_bytes = max_queue_bytes
        self._body_budget = max_batch_bytes - BODY_OVERHEAD
        self.max_concurrent_requests = max_concurrent_requests
        self.overflow = overflow
        self.overflow_timeout = overflow_timeout
        self._on_abandoned = on_abandoned
        self._name = name
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._space = threading.Condition(self._lock)
        self._queue: deque[Item] = deque()
        self._queued_bytes = 0
        #: The batches being delivered, by the ident of the thread delivering each.
        self._flights: dict[int, Flight] = {}
        #: Helper threads running beside the worker (at most max_concurrent_requests - 1).
        self._helpers: list[threading.Thread] = []
        #: Worker threads waiting for a batch to be due.
        self._idle_workers = 0
        #: When the worker last found the queue empty or finished a batch: the flush
        #: interval counts from there.
        self._last_sent = time.monotonic()
        self._first = True
        self._flush_requests = 0
        self._space_waiters = 0
        self._closed = False
        self._stopping = False
        self._close_timeout = 0.0
        self._closed_cleanly: bool | None = None
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        #: Idents of the threads that deliver for this batcher while they run: its worker and
        #: the spool's sender (see cdp_logging.delivery.spool), which adds itself. A set, so that a
        #: CDPHandler can tell in one look-up that a record comes from one of them.
        self.own_threads: set[int] = set()
        self._no_thread = False
        self._sent_any = False
        self._draining = False
        #: Events accepted into the queue since start (or fork).
        self.accepted = 0
        #: Set by close() to cut a retry wait short; the transport clears it.
        self.interrupt = threading.Event()

    def put(self, item: Item, size: int) -> str | None:
        """Queue one encoded event; None when queued, else why it was refused. Never blocks
        unless ``overflow="wait"``, and then at most ``overflow_timeout`` seconds."""
        # acquire() and release() rather than "with": on the path of every event, the with
        # statement's look-ups of __enter__ and __exit__ cost a third of the rest.
        lock = self._lock
        lock.acquire()
        try:
            queue = self._queue
            if (self._closed or len(queue) >= self.max_queue_size
                    or self._queued_bytes + size > self.max_queue_bytes):
                refused = CLOSED if self._closed else self._wait_for_space(size)
                if refused:
                    return refused
            queue.append(item)
            queued = self._queued_bytes = self._queued_bytes + size
            self.accepted += 1
            # Due: a batch full by count, a body full by size (this event crossed the budget),
            # or the very first event.
            if (len(queue) == self.max_events_in_batch
                    or queued > self._body_budget >= queued - size or self._first):
                # The worker starts with the first event (again in a forked child, where
                # _init_state() set _first), so only this branch needs to look for it.
                if self._first and self._thread is None and not self._no_thread:
                    self._start_worker()
                elif not self._idle_workers and self._flights:
                    self._call_for_help()  # every worker is sending: a backlog starts
                self._first = False
                self._wake.notify()
            return None
        finally:
            lock.release()

    def _wait_for_space(self, size: int) -> str | None:
        """With the lock held: wait (policy "wait") for room, or say why there is none."""
        # The worker itself (a callback sending an event) would only wait for itself.
        if self.overflow == "wait" and not self.is_worker_thread():
            deadline = time.monotonic() + self.overflow_timeout
            self._space_waiters += 1
            self._wake.notify()
            try:
                while not self._closed and self._is_full(size):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._space.wait(left)
            finally:
                self._space_waiters -= 1
            if self._closed:
                return CLOSED
        if len(self._queue) >= self.max_queue_size:
            return QUEUE_FULL
        if self._queued_bytes + size > self.max_queue_bytes:
            return QUEUE_BYTES_FULL
        return None

    def _is_full(self, size: int) -> bool:
        return len(self._queue) >= self.max_queue_size or self._queued_bytes + size > self.max_queue_bytes

    def _start_worker(self) -> None:
        thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        try:
            thread.start()
        except RuntimeError:
            # Python 3.12+ refuses new threads at interpreter exit; flush/close then
            # deliver on the calling thread instead.
            self._no_thread = True
            return
        self._thread = thread

    @property
    def pending(self) -> int:
        """Events queued or being delivered right now."""
        return len(self._queue) + self._unsettled()

    @property
    def queued_bytes(self) -> int:
        """Encoded bytes waiting in the queue."""
        return self._queued_bytes

    def is_worker_thread(self) -> bool:
        """True on this batcher's own worker thread, or the spool's sender (callbacks and error
        reports run there)."""
        return get_ident() in self.own_threads

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything queued and wait for every request in flight; True when all of
        it was settled within ``timeout`` seconds."""
        return self.flush_until(None if timeout is None else time.monotonic() + timeout)

    def flush_until(self, deadline: float | None) -> bool:
        """:meth:`flush` by an absolute ``time.monotonic()`` deadline (None: no bound), so a
        caller sharing one deadline among several waits passes it down unchanged."""
        if self.is_worker_thread():
            return False  # a callback asking to flush would wait for itself
        with self._lock:
            if not self._worker_available():
                return self._drain_here(deadline)
            self._flush_requests += 1
            self._wake.notify_all()
            try:
                while self._queue or self._flights:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    if not self._thread or not self._thread.is_alive():
                        return self._drain_here(deadline)
                    self._idle.wait(left if left is None else min(left, 1.0))
                return True
            finally:
                self._flush_requests -= 1

    def _worker_available(self) -> bool:
        """With the lock held: is (or can there be) a worker to do the sending?"""
        if self._thread is None and self._queue and not self._no_thread:
            self._start_worker()
        return self._thread is not None and self._thread.is_alive()

    def _drain_here(self, deadline: float | None) -> bool:
        """With the lock held and no worker: deliver on the calling thread."""
        while self._queue:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            batch = self._take_batch()
            self._lock.release()
            try:
                self._deliver_safely(batch)
            finally:
                self._lock.acquire()
                self._batch_done()
        return not self._flights

    def close(self, timeout: float = 5.0) -> bool:
        """Stop taking events, deliver what is queued within ``timeout`` seconds, stop the
        worker. What could not be delivered goes to ``on_abandoned``. Safe to call twice.

        True when every event accepted was delivered (or failed and reported by deliver)
        before the deadline; False when some were abandoned.
        """
        self.begin_close(timeout)
        return self._finish_close()

    def begin_close(self, timeout: float = 5.0, *, deadline: float | None = None) -> None:
        """Start closing without waiting: refuse new events, set the deadline, wake the workers.

        ``deadline`` (an absolute ``time.monotonic()`` time) replaces ``now + timeout`` when
        given. Lets several batchers close side by side under one deadline; :meth:`close`
        finishes, waiting for every request in flight until then.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            now = time.monotonic()
            self._deadline = now + timeout if deadline is None else deadline
            self._close_timeout = timeout if deadline is None else max(0.0, deadline - now)
            self._wake.notify_all()
            self._space.notify_all()
        self.interrupt.set()

    def _finish_close(self) -> bool:
        with self._lock:
            if self._closed_cleanly is not None:
                return self._closed_cleanly
            deadline = self._deadline if self._deadline is not None else time.monotonic()
            self._worker_available()
        self._join_workers(deadline)
        self._settle_moment()
        with self._lock:
            worker_running = any(thread.is_alive() for thread in self.threads())
            if not worker_running:
                self._drain_here(deadline)
            leftover = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            unsettled: list[Item] = []
            if worker_running:
                # A worker is stuck in a request past the deadline; at exit it will be
                # stopped mid-way. Report those events now; deliver() must not count them.
                for flight in self._flights.values():
                    if not flight.abandoned:
                        unsettled.extend(flight.take_unsettled())
                        flight.abandoned = True
            if self._closed_cleanly is None:
                self._closed_cleanly = not leftover and not unsettled
            delivered_all = self._closed_cleanly
        if self._on_abandoned is not None:
            timeout = f"{self._close_timeout:g}s"
            if leftover:
                self._on_abandoned(leftover, f"not delivered within the close timeout of {timeout}")
            if unsettled:
                self._on_abandoned(
                    unsettled,
                    f"{IN_FLIGHT_AT_CLOSE} of {timeout} ran out; delivery not confirmed",
                )
        return delivered_all

    def _join_workers(self, deadline: float) -> None:
        """Wait for the worker and every helper (a helper may start while others end) to
        finish, that is for every request in flight, until the absolute ``deadline``."""
        current = threading.current_thread()
        while True:
            with self._lock:
                running = [thread for thread in self.threads() if thread is not current and thread.is_alive()]
            left = deadline - time.monotonic()
            if not running or left <= 0:
                return
            running[0].join(left)

    def _settle_moment(self) -> None:
        """A worker waiting to retry was woken by begin_close and gives up at once: a moment
        lets it say so itself, rather than its batch be reported unconfirmed."""
        current = threading.current_thread()
        with self._lock:
            running = [thread for thread in self.threads() if thread is not current and thread.is_alive()]
        end = time.monotonic() + SETTLE_MOMENT
        for thread in running:
            thread.join(max(0.0, end - time.monotonic()))

    def settle(self, count: int) -> bool:
        """Called by ``deliver`` when it knows the fate of the next ``count`` events of its
        batch (settled in order): True to count and report them; False when close() has
        already reported them as undelivered, so nothing is counted or called back twice."""
        with self._lock:
            flight = self._flights.get(get_ident())
            if flight is None:
                return True
            if flight.abandoned:
                return False
            flight.unsettled = max(0, flight.unsettled - count)
            return True

    def closing_deadline(self) -> float | None:
        """The monotonic time by which a closing batcher must stop trying, else None."""
        return self._deadline

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh, empty queue, new locks and no worker; the parent sends
        its own events. A batcher closed before the fork stays closed."""
        closed = self._closed
        self._init_state()
        if closed:
            self._closed = True
            self._closed_cleanly = True

    # -- the worker threads: when a batch is due, which events it takes ---------------------

    def _run(self, helper: bool = False) -> None:
        try:
            with own_thread(self.own_threads):
                while True:
                    with self._lock:
                        batch = self._next_batch(helper)
                        if batch is None:
                            return
                        self._call_for_help()
                    self._deliver_safely(batch)
                    with self._lock:
                        self._batch_done()
                        if not self._queue:
                            self._idle.notify_all()
        finally:
            if helper:
                with self._lock:
                    self._helpers.remove(threading.current_thread())

    def _call_for_help(self) -> None:
        """With the lock held: another batch is due and this thread is about to send one;
        wake a waiting worker, or start a helper while fewer than
        ``max_concurrent_requests`` requests are in flight."""
        if not self._queue or not self._batch_due():
            return
        if self._idle_workers:
            self._wake.notify()
        elif len(self._flights) < self.max_concurrent_requests and not self._no_thread:
            self._start_helper()

    def _start_helper(self) -> None:
        """With the lock held: one more thread to take due batches (it leaves when idle)."""
        if 1 + len(self._helpers) >= self.max_concurrent_requests:
            return
        helper = threading.Thread(target=self._run, args=(True,), name=f"{self._name}-helper", daemon=True)
        self._helpers.append(helper)
        try:
            helper.start()
        except RuntimeError:  # at interpreter exit on 3.12+: the worker goes on alone
            self._helpers.remove(helper)

    def threads(self) -> list[threading.Thread]:
        """With the lock held: the worker and its helpers, those started."""
        return ([self._thread] if self._thread is not None else []) + list(self._helpers)

    def _deliver_safely(self, batch: list[Item]) -> None:
        try:
            self._deliver(batch)
        except BaseException as err:  # the worker must outlive anything deliver() runs into
            logger.exception(
                "cdp-logging worker caught an unexpected error delivering %d events; "
                "the worker keeps running", len(batch)
            )
            self._fail_unsettled(err)

    def _fail_unsettled(self, err: BaseException) -> None:
        """After ``deliver`` raised: the events of its batch it had not settled go to
        ``on_abandoned`` (counted, reported, called back), never dropped in silence."""
        with self._lock:
            flight = self._flights.get(get_ident())
            if flight is None or flight.abandoned or not flight.unsettled:
                return
            unsettled = flight.take_unsettled()
        if self._on_abandoned is None:
            return
        try:
            self._on_abandoned(unsettled, f"delivery failed with an unexpected {type(err).__name__}: {err}")
        except Exception:  # the error's own __str__ or the report may fail; the worker goes on
            logger.exception("cdp-logging could not report %d undelivered events", len(unsettled))

    def _batch_due(self) -> bool:
        """With the lock held and events queued: is a batch due now, the flush interval
        aside? A full batch (by count or bytes), a flush, a caller waiting for room, or
        what a backlog left, once no other request is in flight (while one is, more may
        come to fill the batch)."""
        return bool(
            len(self._queue) >= self.max_events_in_batch
            or self._queued_bytes > self._body_budget
            or self._flush_requests
            or self._space_waiters
            or (self._draining and not self._flights)
        )

    def _next_batch(self, helper: bool = False) -> list[Item] | None:
        """With the lock held: wait until a batch is due and take it; None to stop. A
        helper stops, too, when nothing was due for :data:`HELPER_LINGER` seconds."""
        if not helper:
            self._last_sent = time.monotonic()
        give_up_at = time.monotonic() + HELPER_LINGER
        while True:
            queue = self._queue
            now = time.monotonic()
            if self._stopping:
                if not queue or (self._deadline is not None and now >= self._deadline):
                    self._idle.notify_all()
                    return None
                return self._take_batch()
            if queue and (
                self._batch_due()
                or (not helper and (now - self._last_sent >= self.flush_interval or self._first_batch_due()))
            ):
                return self._take_batch()
            if not queue:
                self._idle.notify_all()
                if not self._flights:
                    self._draining = False  # the backlog is over
                if not helper:
                    self._last_sent = now
            if helper:
                wait = give_up_at - now
                if wait <= 0:
                    return None
            else:
                wait = max(0.0, self._last_sent + self.flush_interval - now)
            self._idle_workers += 1
            try:
                self._wake.wait(wait)
            finally:
                self._idle_workers -= 1

    def _first_batch_due(self) -> bool:
        # put() notifies for the very first event; it is due however few are queued.
        return not self._first and not self._sent_any

    def _take_batch(self) -> list[Item]:
        """With the lock held: remove the next batch, the oldest events queued: at most
        ``max_events_in_batch`` of them, and no more than fit one request body."""
        queue = self._queue
        count = len(queue)
        if count <= self.max_events_in_batch and self._queued_bytes + count <= self._body_budget:
            # Ordinary traffic, run for every batch with the application's threads waiting
            # for the lock: C-level steps only, and the queue's byte count is the batch's.
            batch = list(queue)
            queue.clear()
            used = self._queued_bytes + count
        else:
            batch, used = self._take_within_budget()
        self._queued_bytes -= used - len(batch)
        # A backlog (more than a batch queued, or requests side by side) lasts until a worker
        # finds the queue empty and no request in flight: meanwhile what is queued goes as
        # soon as no request is in flight, not a flush interval later.
        if queue or self._flights:
            self._draining = True
        self._flights[get_ident()] = Flight(batch)
        self._sent_any = True
        if self._space_waiters:
            self._space.notify_all()
        return batch

    def _take_within_budget(self) -> tuple[list[Item], int]:
        """With the lock held: the oldest events, at most ``max_events_in_batch`` and as
        many as fit the body's budget (at least one); the batch and its bytes, a comma
        counted for each."""
        queue = self._queue
        budget = self._body_budget
        count = used = 0
        for item in islice(queue, self.max_events_in_batch):
            size = len(item_bytes(item)) + 1
            if count and used + size > budget:
                break
            count += 1
            used += size
        take = queue.popleft
        return [take() for _ in range(count)], used

    def _batch_done(self) -> None:
        """With the lock held: this thread's batch is finished, whatever became of it."""
        self._flights.pop(get_ident(), None)

    def _unsettled(self) -> int:
        """With the lock held: events taken and not yet settled, over all flights."""
        return sum(flight.unsettled for flight in self._flights.values())
