"""The queue between the application's threads and the one worker thread that delivers.

The application thread only appends already-encoded bytes under a short lock; the worker
wakes when a batch is due (the first event, ``max_events_in_batch`` events or a full request
body queued, every ``flush_interval`` seconds, a flush or a close) and hands each batch to
``deliver``. ``max_events_in_batch`` is the trigger, not a cap: a batch is what is queued,
which in ordinary traffic is at most that many events; from a backlog (more than one batch
queued while a request was in flight) the worker takes as many events as fit one request
body, so a backlog goes out in back-to-back full bodies, and what it leaves after the last
one goes next, not a flush interval later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from threading import get_ident
from typing import Any, Literal, Union
from collections.abc import Callable, Sequence

import orjson

from ..constants import MAX_BATCH_BYTES

logger = logging.getLogger("cdp_logging")

#: A queued event: its encoded bytes, or the bytes with the caller's callback.
Item = Union[bytes, tuple[bytes, Callable[..., Any]]]  # noqa: UP007 - a runtime alias; X | Y on a subscripted generic needs 3.10 types at import
Overflow = Literal["drop", "wait"]

#: Room kept in every body for ``{"batch":[`` and ``],"sentAt":"...Z"}``.
BODY_OVERHEAD = 64

# Why put() refused an event.
QUEUE_FULL = "queue full"
QUEUE_BYTES_FULL = "queue byte limit reached"
CLOSED = "client is closed"


def is_plain(items: list[Item]) -> bool:
    """True when no item carries a callback: each is the encoded event itself (bytes).

    Example::

        >>> is_plain([b'{"type":"track"}', (b'{"type":"identify"}', print)])
        False
    """
    return tuple not in set(map(type, items))


def item_bytes(item: Item) -> bytes:
    """The encoded message of a queued item."""
    return item if type(item) is bytes else item[0]  # type: ignore[return-value]


@contextmanager
def own_thread(idents: set[int]) -> Iterator[None]:
    """Count the current thread in ``idents`` (a batcher's ``own_threads``) while the block
    runs; a thread's ident may be reused once it ends, so it is taken out as it finishes.

    Example::

        with own_thread(batcher.own_threads):
            deliver_everything()
    """
    ident = get_ident()
    idents.add(ident)
    try:
        yield
    finally:
        idents.discard(ident)


def message_ids(items: Sequence[Item]) -> list[str]:
    """The messageIds of queued items, for reports ("?" where one cannot be read)."""
    ids = []
    for item in items:
        try:
            ids.append(orjson.loads(item_bytes(item))["messageId"])
        except Exception:
            ids.append("?")
    return ids


class Batcher:
    """A bounded queue of encoded events and the worker thread that drains it.

    ``deliver(items)`` is called on the worker with items whose bytes fit one request body:
    at most ``max_events_in_batch`` of them, or from a backlog as many as fit; it may call
    :meth:`settle` as it learns the fate of its items. ``on_abandoned(items, reason)``
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
        #: The batch being delivered, and how many of its events (at its end) are unsettled.
        self._in_flight_batch: list[Item] = []
        self._in_flight = 0
        #: Set when close() gave up on the batch in flight: its fate is no longer deliver's.
        self._in_flight_abandoned = False
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

    # -- the application's side ---------------------------------------------------------

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
        return len(self._queue) + self._in_flight

    @property
    def queued_bytes(self) -> int:
        """Encoded bytes waiting in the queue."""
        return self._queued_bytes

    def is_worker_thread(self) -> bool:
        """True on this batcher's own worker thread, or the spool's sender (callbacks and error
        reports run there)."""
        return get_ident() in self.own_threads

    # -- flush and close ------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything queued; True when the queue emptied within ``timeout``."""
        if self.is_worker_thread():
            return False  # a callback asking to flush would wait for itself
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if not self._worker_available():
                return self._drain_here(deadline)
            self._flush_requests += 1
            self._wake.notify()
            try:
                while self._queue or self._in_flight:
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
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Stop taking events, deliver what is queued within ``timeout`` seconds, stop the
        worker. What could not be delivered goes to ``on_abandoned``. Safe to call twice.

        True when every event accepted was delivered (or failed and reported by deliver)
        before the deadline; False when some were abandoned.
        """
        self.begin_close(timeout)
        return self._finish_close()

    def begin_close(self, timeout: float = 5.0) -> None:
        """Start closing without waiting: refuse new events, set the deadline, wake the worker.

        Lets several batchers close side by side under one deadline; :meth:`close` finishes.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            self._close_timeout = timeout
            self._deadline = time.monotonic() + timeout
            self._wake.notify()
            self._space.notify_all()
        self.interrupt.set()

    def _finish_close(self) -> bool:
        with self._lock:
            if self._closed_cleanly is not None:
                return self._closed_cleanly
            deadline = self._deadline if self._deadline is not None else time.monotonic()
            worker = self._thread if self._worker_available() else None
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            worker_running = worker is not None and worker.is_alive()
            if not worker_running:
                self._drain_here(deadline)
            leftover = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            unsettled: list[Item] = []
            if worker_running and self._in_flight:
                # The worker is stuck in a request past the deadline; at exit it will be
                # stopped mid-way. Report those events now; deliver() must not count them.
                unsettled = self._in_flight_batch[len(self._in_flight_batch) - self._in_flight:]
                self._in_flight_abandoned = True
                self._in_flight = 0
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
                    f"still in flight when the close timeout of {timeout} ran out; delivery not confirmed",
                )
        return delivered_all

    def settle(self, count: int) -> bool:
        """Called by ``deliver`` when it knows the fate of the next ``count`` events of its
        batch (settled in order): True to count and report them; False when close() has
        already reported them as undelivered, so nothing is counted or called back twice."""
        with self._lock:
            if self._in_flight_abandoned:
                return False
            self._in_flight = max(0, self._in_flight - count)
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

    # -- the worker's side ----------------------------------------------------------------

    def _run(self) -> None:
        with own_thread(self.own_threads):
            while True:
                with self._lock:
                    batch = self._next_batch()
                if batch is None:
                    return
                self._deliver_safely(batch)
                with self._lock:
                    self._batch_done()
                    if not self._queue:
                        self._idle.notify_all()

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
            if self._in_flight_abandoned or not self._in_flight:
                return
            unsettled = self._in_flight_batch[len(self._in_flight_batch) - self._in_flight:]
            self._in_flight = 0
        if self._on_abandoned is None:
            return
        try:
            self._on_abandoned(unsettled, f"delivery failed with an unexpected {type(err).__name__}: {err}")
        except Exception:  # the error's own __str__ or the report may fail; the worker goes on
            logger.exception("cdp-logging could not report %d undelivered events", len(unsettled))

    def _next_batch(self) -> list[Item] | None:
        """With the lock held: wait until a batch is due and take it; None to stop."""
        last_sent = time.monotonic()
        while True:
            queue = self._queue
            now = time.monotonic()
            if self._stopping:
                if not queue or (self._deadline is not None and now >= self._deadline):
                    self._idle.notify_all()
                    return None
                return self._take_batch()
            if queue and (
                len(queue) >= self.max_events_in_batch
                or self._queued_bytes > self._body_budget
                or self._flush_requests
                or self._space_waiters
                or now - last_sent >= self.flush_interval
                or self._draining
                or self._first_batch_due()
            ):
                return self._take_batch()
            if not queue:
                self._idle.notify_all()
                self._draining = False
                last_sent = now
            self._wake.wait(max(0.0, last_sent + self.flush_interval - now))

    def _first_batch_due(self) -> bool:
        # put() notifies for the very first event; it is due however few are queued.
        return not self._first and not self._sent_any

    def _take_batch(self) -> list[Item]:
        """With the lock held: remove the next batch. Normally what is queued, which is at
        most ``max_events_in_batch`` events; from a backlog (more queued than one batch, by
        count or by bytes), as many events as fit one request body."""
        queue = self._queue
        over_budget = self._queued_bytes + len(queue) > self._body_budget
        if over_budget:
            batch, used = self._take_within_budget()
        else:
            # Run for every batch with the application's threads waiting for the lock: C-level
            # steps only, and the queue's byte count is the batch's.
            batch = list(queue)
            queue.clear()
            used = self._queued_bytes + len(batch)
        self._queued_bytes -= used - len(batch)
        self._in_flight_batch = batch
        self._in_flight = len(batch)
        self._in_flight_abandoned = False
        self._sent_any = True
        # What a backlog leaves after its last full body goes next, not a flush interval later.
        self._draining = over_budget or len(batch) > self.max_events_in_batch
        if self._space_waiters:
            self._space.notify_all()
        return batch

    def _take_within_budget(self) -> tuple[list[Item], int]:
        """With the lock held: as many events as fit the body's budget (at least one); the
        batch and its bytes, a comma counted for each."""
        queue = self._queue
        budget = self._body_budget
        count = used = 0
        for item in queue:
            size = len(item_bytes(item)) + 1
            if count and used + size > budget:
                break
            count += 1
            used += size
        take = queue.popleft
        return [take() for _ in range(count)], used

    def _batch_done(self) -> None:
        """With the lock held: the batch in flight is finished, whatever became of it."""
        self._in_flight_batch = []
        self._in_flight = 0
        self._in_flight_abandoned = False
