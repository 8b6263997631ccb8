"""The spool's sender thread: when it claims a batch, how it sends it, what it does with the answer."""

from __future__ import annotations


import contextlib
import threading
import time
from typing import Any, Protocol
from collections.abc import Callable


from ..batcher import Item
from ..items import own_thread
from ...errors import SpoolError
from ..retry import Outcome
from .common import ACK_MARGIN, FLUSH_POLL, REFUSED_STATUSES, SpoolBusy, SpoolUnavailable, logger
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


class SenderLoop:
    """The thread that claims batches from a :class:`SpoolFile`, posts them through the client
    and settles their rows; :class:`Spool` adds what the client calls."""

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
