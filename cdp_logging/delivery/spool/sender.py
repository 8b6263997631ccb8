"""The spool as the client uses it: write, start, flush, close."""

from __future__ import annotations


import contextlib
import threading
import time


from ..batcher import Item
from ..items import item_bytes, message_ids
from ...errors import DeliveryError
from .common import ANSWER_RESERVE, FLUSH_POLL, SpoolBusy, SpoolUnavailable
from .loop import SenderLoop


class Spool(SenderLoop):
    """A :class:`SpoolFile` and the thread that sends from it, as a client uses them.

    The batcher's worker calls :meth:`write`; :meth:`flush` and :meth:`close` wait for the
    sender. The sender claims a batch when ``max_events_in_batch`` events were written, on the
    first event, every ``flush_interval`` (which also finds what other processes left), on
    flush and close, and at once while a backlog lasts. After a batch is given up (the retry
    budget spent, or an answer such as 401), its rows are released and the sender pauses
    ``backoff(n)`` seconds, n counting the batches given up in a row.

    Example::

        spool = Spool(SpoolFile(path, max_bytes=..., full="drop_oldest", lease=100.0), outcomes,
                      post=sender.post,
                      max_events_in_batch=20, max_batch_bytes=499_936, flush_interval=10.0,
                      backoff=policy.backoff, name="cdp-logging")
        spool.start()
        unwritten = spool.write(items)       # on the batcher's worker
    """

    def write(self, items: list[Item]) -> list[Item]:
        """Write ``items`` in one transaction; returns them all if they could not be written
        (the caller sends them from memory), else nothing. Full-spool drops are reported."""
        if self.unusable is not None:
            return items
        try:
            appended = self.file.append([item_bytes(item) for item in items])
        except SpoolBusy:
            return items
        except SpoolUnavailable as err:
            self._stop_using(err.error)
            return items
        end = appended.start + appended.written
        written, refused = items[appended.start:end], items[:appended.start] + items[end:]
        with self._lock:
            for offset, item in enumerate(written):
                if type(item) is tuple:
                    self._callbacks[appended.first_id + offset] = item
            dropped = [self._callbacks.pop(i) for i in appended.dropped_ids if i in self._callbacks]
            if written:
                self._written += len(written)
                self._last_written = appended.first_id + len(written) - 1
                self._wake.notify()
            self._start_locked()
        count = len(appended.dropped_ids) + len(refused)
        if count:
            which = "its oldest events were" if self.file.full == "drop_oldest" else "new events are"
            self._client.dropped(
                count, dropped + [item for item in refused if type(item) is tuple],
                f"the spool is full (spool_max_bytes={self.file.max_bytes}): {which} dropped",
            )
        return []

    def start(self) -> None:
        """Start the sender; it begins with what earlier processes left in the file."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> bool:
        """With the lock held: start the sender if it never ran; whether it runs now."""
        if not self._started:
            self._started = True
            try:
                self.thread.start()
            except RuntimeError:
                # Python 3.12+ refuses new threads at interpreter exit: flush and close then
                # send on their own thread.
                self._no_thread = True
        return self.thread.is_alive()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event in the spool when called (up to the newest this client
        wrote, or the sender saw) was delivered. False at ``timeout``, when a batch is given
        up, after close, and without a usable spool."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self.unusable is not None:
                return False
            if self._closing:
                return self._delivered_up_to(self._last_written)
            running = self._start_locked()
            last_written = self._last_written
        if not running:
            return self._send_here(deadline, last_written)
        with self._lock:
            self._flush_requests += 1
            request = self._flush_requests
            given_up_before = self._given_up
            self._flushers += 1
            self._wake.notify()
            mark: int | None = None
            try:
                while self.unusable is None:
                    if self._looked_for >= request:
                        if mark is None:
                            mark = max(self._last_written, self._newest or 0)
                        if self._delivered_up_to(mark):
                            return True
                        if self._given_up != given_up_before:
                            return False
                    left = None if deadline is None else deadline - time.monotonic()
                    if (left is not None and left <= 0) or not self.thread.is_alive():
                        return False
                    self._looked.wait(1.0 if left is None else min(left, 1.0))
                return False
            finally:
                self._flushers -= 1

    def begin_close(self, timeout: float, *, deadline: float | None = None) -> None:
        """Start closing: deliver what this client wrote until ``deadline`` (monotonic), else
        ``timeout`` seconds from now."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._given_up_before_close = self._given_up
            now = time.monotonic()
            self._deadline = now + timeout if deadline is None else deadline
            self._answer_reserve = min(ANSWER_RESERVE, max(0.0, self._deadline - now) / 2)
            self._wake.notify()
        self.interrupt.set()

    def close(self) -> bool:
        """Once nothing more will be written: let the sender deliver what this client wrote
        until the deadline, stop it and close the file; events still waiting for their fate
        run their callbacks now. How many stay in the spool is then ``kept_at_close``.

        True for the call that closed; later calls return False at once.
        """
        with self._close_lock:
            if self.kept_at_close is not None:
                return False
            self.kept_at_close = self._close()
            return True

    def _close(self) -> int:
        with self._lock:
            self._writer_done = True
            deadline = self._deadline if self._deadline is not None else time.monotonic()
            no_thread = self._no_thread
            last_written = self._last_written
            self._wake.notify()
        if self.unusable is not None:
            return 0
        if no_thread and last_written:
            self._send_here(deadline, last_written)
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(max(0.0, deadline - time.monotonic()))
        stopped = not self.thread.is_alive()
        with self._lock:
            # A request still unanswered: its rows stay, and the next process sends them again.
            self.unconfirmed_at_close = self._cut_at_close + (0 if stopped else self.in_flight)
        with self._lock:
            callbacks, self._callbacks = self._callbacks, {}
        kept = 0
        remaining = set(callbacks)
        with contextlib.suppress(SpoolBusy, SpoolUnavailable):
            if last_written:
                kept = self.file.count_up_to(last_written)
            remaining = self.file.existing(list(callbacks)) if callbacks else set()
        if callbacks:
            # Gone from the spool: another process sharing it delivered them.
            self._client.finish([item for i, item in callbacks.items() if i not in remaining], None)
            waiting = [item for i, item in callbacks.items() if i in remaining]
            if waiting:
                self._client.finish(waiting, DeliveryError(
                    f"not delivered before closing; kept in the spool {self.file.path} for the "
                    "next process to send", message_ids=message_ids(waiting), attempts=0,
                ))
        if stopped:
            self.file.close()
        return kept

    def after_fork(self) -> None:
        """In a forked child: state of its own, no sender until one is needed (the file
        resets itself at the fork)."""
        self._init_state()

    def _send_here(self, deadline: float | None, last_id: int) -> bool:
        """Without a sender thread (none may start at interpreter exit): send on this thread
        until the rows up to ``last_id`` are gone, a batch is given up, or ``deadline``."""
        try:
            while deadline is None or time.monotonic() < deadline:
                given_up = self._given_up
                if not self._cycle() or self._given_up != given_up:
                    return False
                with self._lock:
                    if self._delivered_up_to(last_id):
                        return True
                    if not self._backlog:
                        # What remains is held by another process: give it a moment.
                        self._looked.wait(FLUSH_POLL)
            return False
        finally:
            self._settle_deferred()
