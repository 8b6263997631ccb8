"""Sending a batch: the body made from the already-encoded events, the retries, the settling
with the batcher, and the outcome told outward, to the engine, through one callback.

As sentry-python's ``_batcher.py`` takes the functions it hands its batches and its losses to,
:class:`BatchSender` takes ``on_settled(items, outcome)`` and never reaches into the client;
the batcher's ``on_abandoned`` is the other outward call, for what a close cut short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..constants import BATCH_PATH
from .batcher import Batcher
from .items import Item, is_plain, item_bytes, logger
from .protocol import Transport
from .retry import Outcome, RetryPolicy, send_with_retries

if TYPE_CHECKING:
    # Imported when a client has a spool: a client without one never loads sqlite3.
    from .spool import Spool

#: ``on_settled(items, outcome)``: what became of ``items`` (``outcome.ok``: delivered).
OnSettled = Callable[[list[Item], Outcome], object]


class BatchSender:
    """Sends the batches of one :class:`~cdp_logging.delivery.batcher.Batcher` (its
    ``deliver``, on the worker threads) and of the spool's sender (:meth:`post`).

    Example::

        sender = BatchSender(transport, RetryPolicy(), on_settled=count_outcome, on_retry=count_retry)
        batcher = Batcher(sender.deliver, max_events_in_batch=20)
        sender.batcher = batcher
    """

    def __init__(self, transport: Transport, retry_policy: RetryPolicy, *, on_settled: OnSettled,
                 on_retry: Callable[[], object], max_events_in_batch: int = 20) -> None:
        self.transport = transport
        self.retry_policy = retry_policy
        self._on_settled = on_settled
        self._on_retry = on_retry
        #: The batcher whose batches :meth:`deliver` sends: its interrupt, closing deadline and
        #: :meth:`~cdp_logging.delivery.batcher.Batcher.settle`.
        self.batcher: Batcher | None = None
        #: With a spool, the batcher's worker writes to it (:meth:`write_to_spool`).
        self.spool: Spool | None = None
        #: The most events a request carries, when what the spool could not take is sent.
        self.max_events_in_batch = max_events_in_batch

    def deliver(self, items: list[Item]) -> None:
        """Send one batch of the batcher's (on a worker thread), settle it and tell the outcome;
        a batch the API refuses as too large (413) is sent again in halves."""
        batcher = self.batcher
        assert batcher is not None, "BatchSender.batcher is set before the batcher's first batch"
        outcome = self.post(
            items if is_plain(items) else [item_bytes(item) for item in items],  # type: ignore[arg-type]
            interrupt=batcher.interrupt, deadline=batcher.closing_deadline,
        )
        response = outcome.response
        if not outcome.ok and response is not None and response.status == 413 and len(items) > 1:
            # Halves in order: settle() expects the batch's events settled front to back.
            half = len(items) // 2
            self.deliver(items[:half])
            self.deliver(items[half:])
            return
        if batcher.settle(len(items)):  # False: close() already reported these events
            self._on_settled(items, outcome)

    def write_to_spool(self, items: list[Item]) -> None:
        """The batcher's ``deliver`` with a spool: write what was queued to it; what cannot be
        written is sent from memory, in batches as without a spool."""
        try:
            unwritten = self.spool.write(items)  # type: ignore[union-attr]
        except Exception:  # never lose a batch to a fault of the spool's own
            logger.exception("cdp-logging could not write %d events to the spool; sending them", len(items))
            unwritten = items
        size = self.max_events_in_batch
        for start in range(0, len(unwritten), size):
            self.deliver(unwritten[start:start + size])

    def post(self, messages: list[bytes], *, interrupt: threading.Event,
             deadline: Callable[[], float | None], answer_reserve: float = 0.0) -> Outcome:
        """Assemble a body from encoded messages and send it, with retries (none starting
        within ``answer_reserve`` seconds of a closing deadline)."""
        body = b"".join((
            b'{"batch":[', b",".join(messages), b'],"sentAt":"', _sent_at(), b'"}',
        ))
        return send_with_retries(
            self.transport, BATCH_PATH, body, self.retry_policy,
            interrupt=interrupt, deadline=deadline, on_retry=self._on_retry,
            answer_reserve=answer_reserve,
        )


#: The second of the last ``sentAt`` and its text up to the milliseconds: a backlog sends many
#: bodies a second, and formatting the date costs more than the rest of the body's head.
_second: tuple[int, bytes] = (-1, b"")


def _sent_at() -> bytes:
    """Now, as the API's timestamp (``2024-05-01T12:00:00.250Z``), for a body's ``sentAt``."""
    global _second  # one tuple, replaced whole: threads read it without a lock
    now = time.time()
    second, text = _second
    if int(now) != second:
        second = int(now)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        _second = (second, text)
    return b"%s.%03dZ" % (text, int(now * 1000) % 1000)
