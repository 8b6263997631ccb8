"""What becomes of each batch: sent and acknowledged, refused, given up, kept in the spool;
the counts, the reports and the per-call callbacks that follow."""

from __future__ import annotations


import json
import logging
import threading
from typing import TYPE_CHECKING, Any, TypedDict
from collections.abc import Callable, Sequence

import orjson

from .delivery.batcher import IN_FLIGHT_AT_CLOSE, Batcher
from .delivery.items import Item
from .delivery.items import is_plain, item_bytes, message_ids
from .constants import (
    BATCH_PATH, ENV_WRITE_KEY,
)
from .encoding import now_iso
# CallbackError is imported from here too (its home before errors.py).
from .errors import CallbackError as CallbackError
from .errors import CDPError, DeliveryError, EventDroppedError, SpoolError
from .reporting import Reporter
from .delivery.retry import Outcome, RetryPolicy, send_with_retries
from .delivery.protocol import Transport

if TYPE_CHECKING:
    # Imported when a client has a spool: a client without one never loads sqlite3.
    from .delivery.spool import Spool


logger = logging.getLogger("cdp_logging")


#: ``callback(error, batch)``: error is None on success; batch lists the messages sent
#: in the same request (as dicts).
Callback = Callable[[Any, list[dict[str, Any]]], object]


class Stats(TypedDict):
    """Counts since the client started (or since fork, in a child process).

    ``queued``: accepted into the queue; ``delivered``: acknowledged by the API; ``failed``:
    given up on after retries (or not delivered by close), known not to have reached the API;
    ``unconfirmed``: given up on, but a request carrying them went out in full and its answer
    was lost (or it was still in flight when the close timeout ran out): the API may have
    them, under the same messageIds; ``dropped``: refused by a full or
    closed queue, or a full spool; ``invalid``: rejected by validation or size;
    ``substituted``: sent with a value written as ``"<unprintable TYPE>"`` because its
    ``str()`` raised (each reported, naming the field); ``skipped``:
    accepted while ``enable=False``; ``batches``: requests that succeeded; ``retries``: extra
    attempts; ``pending``: queued or in flight right now; ``spooled``: events in the spool
    file (those of every process sharing it) when the sender last looked, 0 without a spool;
    ``dropped_by_before_send``: events the ``before_send`` option dropped (returned None);
    ``redacted``: how many values were sent as ``"[redacted]"``, by the ``redact_keys`` entry
    their key matched (``{"password": 3}``). An event ``before_send`` failed on is ``failed``.

    With a spool, a batch given up is not ``failed``: its events stay in the spool and are
    sent again later; only events the API refuses for good (400, 413, 422) are.

    Example::

        stats = analytics.stats()
        if stats["dropped"] or stats["failed"]:
            log.warning("analytics lost events: %s", stats)
    """

    queued: int
    delivered: int
    failed: int
    unconfirmed: int
    dropped: int
    invalid: int
    substituted: int
    skipped: int
    batches: int
    retries: int
    pending: int
    spooled: int
    dropped_by_before_send: int
    redacted: dict[str, int]


_COUNTERS = ("delivered", "failed", "unconfirmed", "dropped", "invalid", "substituted", "skipped", "batches",
             "retries", "dropped_by_before_send")


class _Counters:
    """Counts shared by the application's threads and the worker; one short lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values = dict.fromkeys(_COUNTERS, 0)
        self.redacted: dict[str, int] = {}

    def add_redacted(self, entry: str) -> bool:
        """One value redacted under ``entry``; True for the first under it."""
        with self._lock:
            count = self.redacted.get(entry, 0)
            self.redacted[entry] = count + 1
            return count == 0

    def redacted_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.redacted)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.values[name] += amount

    def given_up(self) -> int:
        """Events given up on so far: failed, and unconfirmed."""
        values = self.values
        return values["failed"] + values["unconfirmed"]

    def add_delivered(self, events: int) -> None:
        """One batch of ``events`` delivered: both counts under one acquisition of the lock."""
        with self._lock:
            values = self.values
            values["delivered"] += events
            values["batches"] += 1


def _delivery_error(items: Sequence[Item], outcome: Outcome, suffix: str = "") -> DeliveryError:
    """The DeliveryError telling why ``outcome`` did not deliver ``items``."""
    response = outcome.response
    if response is not None and response.status in (401, 403):
        reason = (f"the API refused the write key (HTTP {response.status}): check {ENV_WRITE_KEY} / "
                  "write_key for this source")
    elif response is not None and response.status == 413:
        reason = "the API refused the event as too large (HTTP 413)"
    elif response is not None and 300 <= response.status < 400:
        location = next((value for name, value in response.headers.items() if name.lower() == "location"), None)
        reason = (f"the API answered HTTP {response.status}, a redirect to {str(location)[:200]!r}: "
                  "not followed, events go only to the configured host")
    elif outcome.gave_up:
        last = f"HTTP {response.status}" if response is not None else str(outcome.error)
        reason = f"{outcome.gave_up}; last: {last}"
    elif response is not None:
        reason = f"the API answered HTTP {response.status}"
    else:
        reason = str(outcome.error)
    return DeliveryError(
        reason + suffix,
        message_ids=message_ids(items),
        status=None if response is None else response.status,
        text="" if response is None else response.text,
        attempts=outcome.attempts,
        cause=None if outcome.error is None else outcome.error.cause,
        unconfirmed=outcome.unconfirmed,
    )


class DeliveryOutcomes:
    """The worker's side of :class:`~cdp_logging.Analytics` (and the spool's client): send
    a batch, then count, report and call back what became of it."""

    # Set by Analytics.__init__.
    retry_policy: RetryPolicy
    _reporter: Reporter
    _transport: Transport
    _counters: _Counters
    _last_failure: str
    _max_events_in_batch: int
    _max_concurrent_requests: int
    _flush_interval: float
    _batcher: Batcher
    _spool: Spool | None

    def stats(self) -> Stats:
        """Counts of what happened to the calls made so far.

        Example::

            >>> analytics.stats()["delivered"]
            20
        """
        values = dict(self._counters.values)
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
            pending=self._batcher.pending + (self._spool.in_flight if self._spool else 0),
            spooled=self._spool.spooled if self._spool else 0,
            dropped_by_before_send=values["dropped_by_before_send"],
            redacted=self._counters.redacted_counts(),
        )

    def _deliver(self, items: list[Item]) -> None:
        """Send one batch (on the worker thread), then count, call back and report."""
        plain = is_plain(items)  # no callbacks: the items are the encoded events
        outcome = self._post(
            items if plain else [item_bytes(item) for item in items],  # type: ignore[arg-type]
            interrupt=self._batcher.interrupt, deadline=self._batcher.closing_deadline,
        )
        if outcome.ok:
            if self._batcher.settle(len(items)):
                self._delivered(items, plain)
            return
        response = outcome.response
        if response is not None and response.status == 413 and len(items) > 1:
            # Halves in order: settle() expects the batch's events settled front to back.
            half = len(items) // 2
            self._deliver(items[:half])
            self._deliver(items[half:])
            return
        if not self._batcher.settle(len(items)):
            return  # close() already reported these events
        self._refused(items, outcome)

    def _post(self, messages: list[bytes], *, interrupt: threading.Event,
              deadline: Callable[[], float | None], answer_reserve: float = 0.0) -> Outcome:
        """Assemble a body from encoded messages and send it, with retries (none starting
        within ``answer_reserve`` seconds of a closing deadline)."""
        body = b"".join((
            b'{"batch":[', b",".join(messages), b'],"sentAt":"', now_iso().encode(), b'"}',
        ))
        return send_with_retries(
            self._transport, BATCH_PATH, body, self.retry_policy,
            interrupt=interrupt, deadline=deadline, on_retry=self._count_retry,
            answer_reserve=answer_reserve,
        )

    def _delivered(self, items: list[Item], plain: bool = False) -> None:
        """Count a batch the API acknowledged and run its callbacks (``plain``: it has none)."""
        self._counters.add_delivered(len(items))
        if not plain:
            self._finish(items, None)

    def _refused(self, items: list[Item], outcome: Outcome) -> None:
        """Count, report and call back a batch given up for good."""
        self._fail(items, _delivery_error(items, outcome))

    def _write_to_spool(self, items: list[Item]) -> None:
        """The worker's work with a spool: write what was queued to it; what cannot be
        written is sent from memory, in batches as without a spool."""
        try:
            unwritten = self._spool.write(items)  # type: ignore[union-attr]
        except Exception:  # never lose a batch to a fault of the spool's own
            logger.exception("cdp-logging could not write %d events to the spool; sending them", len(items))
            unwritten = items
        size = self._max_events_in_batch
        for start in range(0, len(unwritten), size):
            self._deliver(unwritten[start:start + size])

    def _kept(self, messages: list[bytes], outcome: Outcome, retry_in: float) -> None:
        """Report a batch given up for now: its events stay in the spool."""
        self._reporter.report(_delivery_error(
            messages, outcome, f"; the events stay in the spool and are sent again in {retry_in:.1f}s",
        ))

    def _spool_dropped(self, count: int, items: list[Item], reason: str) -> None:
        """Count and report events a full spool dropped; ``items`` are those with callbacks."""
        self._counters.add("dropped", count)
        error = EventDroppedError(reason, count=count)
        self._reporter.report(error)
        for item in items:
            if isinstance(item, tuple):
                self._run_callback(item[1], error, [])

    def _spool_unusable(self, error: SpoolError) -> None:
        """The spool cannot be used: report it, and batch in memory as without a spool."""
        self._reporter.report(error)
        self._batcher.max_events_in_batch = self._max_events_in_batch
        self._batcher.flush_interval = self._flush_interval
        self._batcher.max_concurrent_requests = self._max_concurrent_requests

    def _spool_replaced(self, error: SpoolError) -> None:
        """A corrupt spool was moved aside and a fresh one made: report it; the spool goes on."""
        self._reporter.report(error)

    def _count_retry(self) -> None:
        self._counters.add("retries")

    def _fail(self, items: list[Item], error: DeliveryError) -> None:
        self._last_failure = error.reason
        self._counters.add("unconfirmed" if error.unconfirmed else "failed", len(items))
        self._reporter.report(error)
        self._finish(items, error)

    def _abandon(self, items: list[Item], reason: str) -> None:
        self._fail(items, DeliveryError(reason, message_ids=message_ids(items), attempts=0,
                                        unconfirmed=reason.startswith(IN_FLIGHT_AT_CLOSE)))

    def _finish(self, items: list[Item], error: DeliveryError | None) -> None:
        """Run the per-call callbacks of a finished batch."""
        callbacks = [item[1] for item in items if type(item) is tuple]
        if not callbacks:
            return
        batch = [_decoded(item_bytes(item)) for item in items]
        for callback in callbacks:
            self._run_callback(callback, error, batch)

    def _run_callback(self, callback: Callback, error: CDPError | None, batch: list[dict[str, Any]]) -> None:
        try:
            callback(error, batch)
        except Exception as err:
            self._reporter.report(CallbackError(err))


def _decoded(data: bytes) -> Any:
    """An encoded event as the callbacks see it. Never raises: one event orjson cannot read
    back (a spool row of an earlier release holding a lone surrogate's escape) must not
    keep the callbacks of its whole batch from running."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        return {"unreadable": data[:200].decode("utf-8", "replace")}
