"""The queue between the application's threads and the worker threads that deliver.

The application thread only appends already-encoded bytes under a short lock; the worker
wakes when a batch is due (the first event, ``max_events_in_batch`` events or a full request
body queued, every ``flush_interval`` seconds, a flush or a close) and hands each batch to
``deliver``. ``max_events_in_batch`` is a cap: no batch ever holds more events, nor more
bytes than one request body takes. A backlog (a batch due while every worker is sending)
goes out in back-to-back full batches, up to ``max_concurrent_requests`` of them at once,
and what it leaves after the last full one goes next, not a flush interval later.
"""

from __future__ import annotations


import threading
import time
from threading import get_ident


from .items import CLOSED, Item, QUEUE_BYTES_FULL, QUEUE_FULL
from .worker import Worker


#: The most a close waits past its deadline for a worker that is not in a request to settle
#: its batch; part of the moment by which a process's shutdown may pass ``shutdown_timeout``.
SETTLE_MOMENT = 0.1


#: How the reason given to ``on_abandoned`` begins for the events of a request still in flight
#: at the close deadline: the API may have them.
IN_FLIGHT_AT_CLOSE = "still in flight when the close timeout"


class Batcher(Worker):
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
