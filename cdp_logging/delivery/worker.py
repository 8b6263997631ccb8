"""The batcher's worker threads: when a batch is due, which events it takes (at most
``max_events_in_batch``, within the byte budget), and delivering it without ever letting a
fault stop the thread.

One worker thread runs while the client has sent anything. While a backlog exists (a batch
due and every worker busy sending), up to ``max_concurrent_requests - 1`` helper threads
join it, each taking the next batch, so up to that many requests are in flight at once;
a helper leaves when it has found nothing due for :data:`HELPER_LINGER` seconds."""

from __future__ import annotations


import threading
import time
from itertools import islice
from threading import get_ident
from collections import deque
from collections.abc import Callable


from ..constants import MAX_BATCH_BYTES
from .items import BODY_OVERHEAD, Item, Overflow, item_bytes, logger, own_thread


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


class Worker:
    """The state of a :class:`~cdp_logging.delivery.batcher.Batcher` and its worker thread's loop."""

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
