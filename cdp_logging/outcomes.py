"""What becomes of each batch: sent and acknowledged, refused, given up, kept in the spool;
the counts, the reports and the per-call callbacks that follow."""

from __future__ import annotations


import json
import threading
from typing import Any, TypedDict
from collections.abc import Callable, Sequence

import orjson

from .delivery.batcher import IN_FLIGHT_AT_CLOSE
from .delivery.items import Item, is_plain, item_bytes, message_ids
from .constants import ENV_WRITE_KEY
# CallbackError is imported from here too (its home before errors.py).
from .errors import CallbackError as CallbackError
from .errors import CDPError, DeliveryError, EventDroppedError, SpoolError
from .reporting import Reporter
from .delivery.retry import Outcome



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


class Outcomes:
    """What the engine does as events settle: count them, report them, run their per-call
    callbacks. Delivery and the spool call it, outward (its methods are the spool's
    :class:`~cdp_logging.delivery.spool.SpoolClient`); it never calls back into them.

    Example::

        outcomes = Outcomes(Reporter(error_handler), on_spool_unusable=batch_in_memory)
        sender = BatchSender(transport, policy, on_settled=outcomes.settled, on_retry=outcomes.count_retry)
    """

    def __init__(self, reporter: Reporter, *, on_spool_unusable: Callable[[], object]) -> None:
        #: The counts behind :meth:`cdp_logging.Analytics.stats`.
        self.counters = _Counters()
        self.reporter = reporter
        #: Why the last batch given up failed, for the summary at close.
        self.last_failure = ""
        self._on_spool_unusable = on_spool_unusable

    def reset_after_fork(self) -> None:
        """In a forked child: counts from zero, and a reporter whose locks no thread holds."""
        self.counters = _Counters()
        self.reporter = Reporter(self.reporter.error_handler)

    def settled(self, items: list[Item], outcome: Outcome) -> None:
        """A batch's fate is known: delivered when ``outcome.ok``, else given up for good."""
        if outcome.ok:
            self.delivered(items)
        else:
            self.refused(items, outcome)

    def delivered(self, items: list[Item]) -> None:
        """Count a batch the API acknowledged and run its callbacks."""
        self.counters.add_delivered(len(items))
        if not is_plain(items):
            self.finish(items, None)

    def refused(self, items: list[Item], outcome: Outcome) -> None:
        """Count, report and call back a batch given up for good."""
        self._fail(items, _delivery_error(items, outcome))

    def kept(self, messages: list[bytes], outcome: Outcome, retry_in: float) -> None:
        """Report a batch given up for now: its events stay in the spool."""
        self.reporter.report(_delivery_error(
            messages, outcome, f"; the events stay in the spool and are sent again in {retry_in:.1f}s",
        ))

    def dropped(self, count: int, items: list[Item], reason: str) -> None:
        """Count and report events a full spool dropped; ``items`` are those with callbacks."""
        self.counters.add("dropped", count)
        error = EventDroppedError(reason, count=count)
        self.reporter.report(error)
        for item in items:
            if isinstance(item, tuple):
                self.run_callback(item[1], error, [])

    def unusable(self, error: SpoolError) -> None:
        """The spool cannot be used: report it; the client batches in memory from now on."""
        self.reporter.report(error)
        self._on_spool_unusable()

    def replaced(self, error: SpoolError) -> None:
        """A corrupt spool was moved aside and a fresh one made: report it; the spool goes on."""
        self.reporter.report(error)

    def count_retry(self) -> None:
        """One more attempt at a batch."""
        self.counters.add("retries")

    def abandoned(self, items: list[Item], reason: str) -> None:
        """Count, report and call back what a close (or a fault) left undelivered."""
        self._fail(items, DeliveryError(reason, message_ids=message_ids(items), attempts=0,
                                        unconfirmed=reason.startswith(IN_FLIGHT_AT_CLOSE)))

    def _fail(self, items: list[Item], error: DeliveryError) -> None:
        self.last_failure = error.reason
        self.counters.add("unconfirmed" if error.unconfirmed else "failed", len(items))
        self.reporter.report(error)
        self.finish(items, error)

    def finish(self, items: list[Item], error: CDPError | None) -> None:
        """Run the per-call callbacks of a finished batch."""
        callbacks = [item[1] for item in items if type(item) is tuple]
        if not callbacks:
            return
        batch = [_decoded(item_bytes(item)) for item in items]
        for callback in callbacks:
            self.run_callback(callback, error, batch)

    def run_callback(self, callback: Callback, error: CDPError | None, batch: list[dict[str, Any]]) -> None:
        """Call a per-call callback; what it raises is reported, never passed on."""
        try:
            callback(error, batch)
        except Exception as err:
            self.reporter.report(CallbackError(err))


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
