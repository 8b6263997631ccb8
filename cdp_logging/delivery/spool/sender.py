"""The spool's sender: a :class:`SpoolFile` and the thread that sends from it, as a client
uses them (write, start, flush, close), and how that thread claims a batch, sends it and
settles its rows; what becomes of the events is told outward, to a :class:`SpoolClient`."""

from __future__ import annotations


import contextlib
import threading
import time
from typing import Any, Protocol
from collections.abc import Callable


from ..items import Item
from ..items import item_bytes, message_ids, own_thread
from ...errors import DeliveryError, SpoolError
from ..retry import Outcome
from .common import (
    ACK_MARGIN, ANSWER_RESERVE, FLUSH_POLL, REFUSED_STATUSES, SpoolBusy, SpoolUnavailable, logger,
)
from .file import SpoolFile


class SpoolClient(Protocol):
    """What the spool tells its client (the engine's
    :class:`~cdp_logging.outcomes.Outcomes`) as events settle: outward calls only.

    Example::

        spool = Spool(file, client=outcomes, post=sender.post, ...)
    """

    def delivered(self, items: list[Item]) -> None:
        """The API acknowledged these events."""

    def refused(self, items: list[Item], outcome: Outcome) -> None:
        """The API refused these events for good."""

    def kept(self, messages: list[bytes], outcome: Outcome, retry_in: float) -> None:
        """A batch was given up for now; its events stay in the spool."""

    def dropped(self, count: int, items: list[Item], reason: str) -> None:
        """``count`` events were dropped (a full spool, unreadable rows); ``items``: those with callbacks."""

    def unusable(self, error: SpoolError) -> None:
        """The spool cannot be used any more."""

    def replaced(self, error: SpoolError) -> None:
        """A corrupt spool file was moved aside and a fresh one made."""

    def finish(self, items: list[Item], error: Any) -> None:
        """These events are settled (``error`` None: delivered): run their callbacks."""


#: ``post(messages, interrupt=, deadline=, answer_reserve=)``: send one body of encoded
#: messages with retries (:meth:`cdp_logging.delivery.sending.BatchSender.post`).
Post = Callable[..., Outcome]


class Spool:
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

    def __init__(self, file: SpoolFile, client: SpoolClient, *, post: Post, max_events_in_batch: int,
                 max_batch_bytes: int, flush_interval: float, backoff: Callable[[int], float],
                 name: str) -> None:
        self.file = file
        self._client = client
        self._post = post
        #: Where the sender counts itself while it runs: the batcher's ``own_threads``, which
        #: the client puts here, so that records logged on the sender are told apart.
        self.own_threads: set[int] = set()
        self._max_events = max_events_in_batch
        self._budget = max_batch_bytes
        self._flush_interval = flush_interval
        self._backoff = backoff
        self._name = name
        self.unusable: SpoolError | None = file.unusable
        file.on_replaced = client.replaced
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._looked = threading.Condition(self._lock)
        #: The sender; made here so that the batcher knows it before it runs.
        self.thread = threading.Thread(target=self._run, name=f"{self._name}-spool", daemon=True)
        self._started = False
        self._no_thread = False
        #: Items with a callback, by row id, until their fate is known.
        self._callbacks: dict[int, Item] = {}
        #: Rows delivered whose deletion rides on the next claim, made at once (a backlog).
        self._settled: list[int] = []
        #: Rows this client wrote since the sender's last claim, and the newest row it wrote.
        self._written = 0
        self._last_written = 0
        self._backlog = True  # claim at once: an earlier process may have left rows
        self._sent_any = False
        self._last_cycle = 0.0
        self._pause_until = 0.0
        self._given_up_in_a_row = 0
        self._given_up = 0
        self._flushers = 0
        self._flush_requests = 0
        self._served = 0
        #: The sender's last look at the file, taken after it served flush request _looked_for.
        self._looked_for = 0
        self._oldest: int | None = None
        self.spooled = 0
        self._newest: int | None = None
        self.in_flight = 0
        self._closing = False
        self._given_up_before_close = 0
        self._writer_done = False
        self._deadline: float | None = None
        #: While closing: no request starts this close to the deadline (see ANSWER_RESERVE).
        self._answer_reserve = 0.0
        #: Rows of a request still unanswered when close() stopped waiting: they stay in the
        #: spool and the next process sends them again; None before close.
        self.unconfirmed_at_close: int | None = None
        self._cut_at_close = 0
        self._close_lock = threading.Lock()
        #: How many of this client's events close() left in the spool; None before close.
        self.kept_at_close: int | None = None
        #: Cuts a retry wait short when closing.
        self.interrupt = threading.Event()

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

    # -- the sender thread: when it claims a batch, how it sends it, what it does with the answer

    def _run(self) -> None:
        with own_thread(self.own_threads):
            self._send_until_stopped()

    def _send_until_stopped(self) -> None:
        with contextlib.suppress(SpoolBusy, SpoolUnavailable):
            self.file.release_abandoned()
        while True:
            with self._lock:
                if not self._wait_until_due():
                    break
            try:
                if not self._cycle():
                    break
            except Exception:  # the sender must outlive anything a transport or hook runs into
                logger.exception("cdp-logging spool sender caught an unexpected error; it keeps running")
                self._settle_deferred()
                with contextlib.suppress(SpoolBusy, SpoolUnavailable):
                    self.file.release()
                with self._lock:
                    self._given_up_in_a_row += 1
                    self._pause_until = time.monotonic() + self._backoff(self._given_up_in_a_row)
        self._settle_deferred()
        with contextlib.suppress(SpoolBusy, SpoolUnavailable):
            self.file.release()
        with self._lock:
            self._looked.notify_all()

    def _wait_until_due(self) -> bool:
        """With the lock held: wait until a claim is due; False to stop."""
        while self.unusable is None:
            now = time.monotonic()
            if self._closing:
                if self._deadline is not None and now >= self._deadline:
                    return False
                if self._given_up != self._given_up_before_close:
                    return False  # tried once more while closing; the rest waits in the spool
                if self._writer_done and not self._written and self._delivered_up_to(self._last_written):
                    return False
            if now < self._pause_until and not self._closing:
                wake_at = self._pause_until
            else:
                if (self._backlog or self._written >= self._max_events
                        or (self._written and not self._sent_any)
                        or self._served < self._flush_requests):
                    return True
                poll = FLUSH_POLL if (self._flushers or self._closing) else self._flush_interval
                if now - self._last_cycle >= poll:
                    return True
                wake_at = self._last_cycle + poll
            if self._closing and self._deadline is not None:
                wake_at = min(wake_at, self._deadline)
            self._wake.wait(max(0.0, wake_at - now))
        return False

    def _delivered_up_to(self, last_id: int) -> bool:
        """With the lock held: the last look found no row up to ``last_id``."""
        return self._oldest is None or self._oldest > last_id

    def _cycle(self) -> bool:
        """Claim a batch, send it, look at the file; False to stop (the spool is unusable)."""
        with self._lock:
            request = self._served = self._flush_requests
            self._written = 0
            self._last_cycle = time.monotonic()
        sent_all = True
        try:
            rows, full = self.file.claim(self._max_events, self._budget, settled=self._settled)
            self._settled = []
            quarantined = self.file.take_quarantined()
            if quarantined is not None:
                self._client.dropped(quarantined.count, [], (
                    f"{quarantined.count} row(s) of the spool {self.file.path} could not be read "
                    f"({quarantined.first}); moved to its quarantine table, the rows behind are sent"
                ))
            if rows:
                with self._lock:
                    self.in_flight = len(rows)
                try:
                    # With more rows waiting, the next claim comes at once and deletes these.
                    sent_all = self._send(rows, defer_delete=full)
                finally:
                    with self._lock:
                        self.in_flight = 0
            oldest, newest, count = self.file.look()
            if not rows and count:
                self.file.release_abandoned()  # rows there but none free: is a holder gone?
        except SpoolBusy:
            with self._lock:
                self._backlog = False
            return True
        except SpoolUnavailable as err:
            self._stop_using(err.error)
            return False
        with self._lock:
            self._oldest, self._newest, self.spooled = oldest, newest, count
            self._looked_for = request
            # A full batch may have more behind it; a batch given up is due again after the pause.
            self._backlog = full or not sent_all
            if not sent_all:
                self._given_up += 1
            elif rows:
                self._sent_any = True
                self._given_up_in_a_row = 0
            self._looked.notify_all()
        return True

    def _send(self, rows: list[tuple[int, bytes]], *, defer_delete: bool) -> bool:
        """Post the claimed rows, splitting a batch the API refuses to find the event at fault.
        True when every row was settled (delivered, or refused for good and removed); False
        when the rest were released for later. With ``defer_delete``, the last rows settled
        are deleted by the next claim rather than in a transaction of their own."""
        parts = [rows]
        while parts:
            part = parts.pop(0)
            outcome = self._post([data for _, data in part], interrupt=self.interrupt,
                                         deadline=self._closing_deadline,
                                         answer_reserve=self._answer_reserve)
            status = None if outcome.response is None else outcome.response.status
            if outcome.ok or (status in REFUSED_STATUSES and len(part) == 1):
                ids = [row_id for row_id, _ in part]
                if defer_delete and not parts:
                    self._settled = ids
                else:
                    # The last part settled settles the claim: its lease ends in the same stroke.
                    self._acknowledge(ids, release=not parts)
                items = self._settled_items(part)
                if outcome.ok:
                    self._client.delivered(items)
                else:
                    self._client.refused(items, outcome)
            elif status in REFUSED_STATUSES:
                half = len(part) // 2
                parts[0:0] = [part[:half], part[half:]]
                self.file.renew()
            else:
                self.file.release()
                with self._lock:
                    self._given_up_in_a_row += 1
                    retry_in = self._backoff(self._given_up_in_a_row)
                    self._pause_until = time.monotonic() + retry_in
                    closing = self._closing
                    if closing and outcome.unconfirmed:
                        # Cut by the close's deadline after it went out: the next process
                        # sends these rows again, though the API may have them.
                        self._cut_at_close += len(part)
                if not closing:
                    self._client.kept([data for p in [part, *parts] for _, data in p], outcome, retry_in)
                return False
        return True

    def _acknowledge(self, ids: list[int], *, release: bool) -> None:
        """Delete settled rows, trying again while another process holds the file: a row
        left behind would be sent a second time."""
        for attempt in range(3):
            try:
                self.file.acknowledge(ids, release=release)
                return
            except SpoolBusy:
                if attempt == 2:
                    raise

    def _settle_deferred(self) -> None:
        """Delete the rows whose deletion waited for a next claim that will not come now."""
        settled, self._settled = self._settled, []
        if settled:
            with contextlib.suppress(SpoolBusy, SpoolUnavailable):
                self._acknowledge(settled, release=True)

    def _settled_items(self, part: list[tuple[int, bytes]]) -> list[Item]:
        """The rows as queue items, with the callbacks that waited for them."""
        with self._lock:
            callbacks = self._callbacks
            if not callbacks:
                return [data for _, data in part]
            return [callbacks.pop(row_id, data) for row_id, data in part]

    def _closing_deadline(self) -> float | None:
        """While closing: when a request must end, a margin before the close's deadline so
        that the rows of an answer that came in time are deleted before close stops waiting."""
        return None if self._deadline is None else self._deadline - ACK_MARGIN

    def _stop_using(self, error: SpoolError) -> None:
        """The file cannot be used: report once, hand waiting callbacks the error, wake all."""
        with self._lock:
            if self.unusable is not None:
                return
            self.unusable = error
            callbacks, self._callbacks = self._callbacks, {}
            self._wake.notify_all()
            self._looked.notify_all()
        self._client.unusable(error)
        if callbacks:
            self._client.finish(list(callbacks.values()), error)
