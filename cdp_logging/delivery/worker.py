"""The batcher's worker thread: when a batch is due, which events it takes within the byte
budget, and delivering it without ever letting a fault stop the thread."""

from __future__ import annotations


import threading
import time
from collections import deque
from collections.abc import Callable


from ..constants import MAX_BATCH_BYTES
from .items import BODY_OVERHEAD, Item, Overflow, item_bytes, logger, own_thread


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
