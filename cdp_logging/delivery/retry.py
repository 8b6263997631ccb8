"""The retry policy around a transport: which answers are retried, how long to wait (backoff,
Retry-After), when to give up, and the :class:`Outcome` of a batch's sending."""

from __future__ import annotations

import email.utils
import inspect
import random
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable

from ..errors import TransportError
from .protocol import Response, Transport


#: Statuses worth retrying besides 5xx; 501 and 505 will not change on a retry.
_RETRY_STATUSES = frozenset({408, 429})


_NEVER_RETRY_5XX = frozenset({501, 505})


#: Statuses whose Retry-After header is honoured.
_RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried: exponential backoff with jitter, capped.

    The wait before retry ``n`` is drawn between half and all of
    ``min(max_backoff, initial_backoff * 2 ** (n - 1))``: 0.25-0.5 s, 0.5-1 s, 1-2 s, ... with
    the defaults, so clients that failed together do not retry together. ``max_retries``
    retries follow the first attempt; no retry starts once it would end more than
    ``max_retry_time`` seconds after the first attempt began, so one batch takes at most
    ``max_retry_time`` plus one request timeout. A server's ``Retry-After`` (429 and 503)
    replaces the computed wait, capped at ``max_retry_after``.

    Example::

        RetryPolicy(max_retries=3, max_retry_time=20.0)
    """

    max_retries: int = 5
    max_retry_time: float = 60.0
    initial_backoff: float = 0.5
    max_backoff: float = 10.0
    max_retry_after: float = 30.0

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1-based), before any Retry-After."""
        ceiling = min(self.max_backoff, self.initial_backoff * (2 ** (retry - 1)))
        return random.uniform(ceiling / 2, ceiling)


def is_retryable(status: int) -> bool:
    """408, 429 and 5xx other than 501 and 505 are worth another attempt."""
    return status in _RETRY_STATUSES or (500 <= status <= 599 and status not in _NEVER_RETRY_5XX)


def retry_after_seconds(response: Response, now: float | None = None) -> float | None:
    """The server's ``Retry-After`` (seconds or an HTTP date) for 429 and 503, else None."""
    if response.status not in _RETRY_AFTER_STATUSES:
        return None
    value = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None  # nan fails the test too
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class Outcome:
    """The end of :func:`send_with_retries`: a response (maybe an error one), or an error."""

    response: Response | None
    attempts: int
    error: TransportError | None = None
    gave_up: str | None = None
    #: An attempt went out in full and its answer was lost (cut, timed out): the API may
    #: have the events.
    answer_lost: bool = False

    @property
    def ok(self) -> bool:
        """True for any 2xx."""
        return self.response is not None and 200 <= self.response.status < 300

    @property
    def unconfirmed(self) -> bool:
        """Not delivered as far as the client knows, yet the API may have the events: an
        attempt's answer was lost after its request was sent, and no later answer refused
        them for good (a retryable status says nothing of the earlier attempt)."""
        return (not self.ok and self.answer_lost
                and (self.response is None or is_retryable(self.response.status)))


#: Why a batch was given up when the client's closing deadline left no time for a retry.
GAVE_UP_CLOSING = "gave up: the client is closing"


def send_with_retries(
    transport: Transport,
    path: str,
    body: bytes,
    policy: RetryPolicy,
    *,
    interrupt: threading.Event,
    deadline: Callable[[], float | None],
    on_retry: Callable[[], object] | None = None,
    answer_reserve: float = 0.0,
) -> Outcome:
    """POST ``body``, retrying what is worth retrying within ``policy``.

    ``interrupt`` cuts the current wait short (it is cleared when it does); ``deadline()``
    gives the monotonic time by which the client must stop (while closing), or None: no
    attempt starts after it, no wait runs past it, and a transport that takes a ``timeout``
    gets only the time left. The same body is sent each time, so retries carry the same
    messageIds. ``on_retry()`` is called as each retry starts. While closing, no attempt
    starts within ``answer_reserve`` seconds of the deadline, so that the one in flight has
    that long for its answer (the spool's, whose rows stay and are sent again otherwise).
    """
    started = time.monotonic()
    attempts = 0
    response: Response | None = None
    error: TransportError | None = None
    lost = False
    while True:
        stop_by = deadline()
        if stop_by is not None and time.monotonic() >= stop_by - answer_reserve:
            return Outcome(response, attempts, error, GAVE_UP_CLOSING, lost)
        if attempts and on_retry is not None:
            on_retry()
        attempts += 1
        error = None
        response = None
        try:
            response = _post(transport, path, body, stop_by)
            if not isinstance(response, Response):
                raise TypeError(f"{type(transport).__name__}.post returned {type(response).__name__}, not a Response")
        except TransportError as err:
            error = _without_tracebacks(err)
            lost = lost or bool(getattr(err, "sent", False))
        except Exception as err:  # a transport's own fault is retried and reported, never lost
            response = None
            error = _without_tracebacks(TransportError(f"the transport raised {_named(err)}", err))
        if response is not None and not is_retryable(response.status):
            return Outcome(response, attempts, answer_lost=lost)
        if attempts > policy.max_retries:
            return Outcome(response, attempts, error, f"retries exhausted (max_retries={policy.max_retries})", lost)
        wait = policy.backoff(attempts)
        if response is not None:
            hinted = retry_after_seconds(response)
            if hinted is not None:
                wait = min(hinted, policy.max_retry_after)
        now = time.monotonic()
        if now + wait - started > policy.max_retry_time:
            return Outcome(
                response, attempts, error,
                f"gave up: retrying would exceed max_retry_time={policy.max_retry_time:g}s", lost,
            )
        stop_by = deadline()
        if stop_by is not None and now + wait > stop_by - answer_reserve:
            return Outcome(response, attempts, error, GAVE_UP_CLOSING, lost)
        if interrupt.wait(wait):
            interrupt.clear()


def _without_tracebacks(error: TransportError) -> TransportError:
    """``error`` and the errors behind it, without their tracebacks.

    A traceback holds the frames it passed through, and a finished frame that is kept holds
    its callers' frames, up to the worker's: with their locals, the batch's events and its
    request body (about 1.5 MB for a full body). Kept in the Outcome, the error and those
    frames form a cycle that only the cyclic garbage collector frees, and it rarely looks at
    old objects: through an outage, one such cycle stayed behind per batch given up, and
    memory climbed by about 1.7 MB every 15 s (issue 25). Without the tracebacks the cycle
    never forms; the report keeps what it says (the error's type and message).
    """
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending and len(seen) < 20:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending.extend((current.__cause__, current.__context__, getattr(current, "cause", None)))
    return error


def _named(err: BaseException) -> str:
    """``err``'s type and message, even when its ``__str__`` raises."""
    try:
        return f"{type(err).__name__}: {err}"
    except Exception:  # a report must not fail on the error it reports
        return type(err).__name__


def _post(transport: Transport, path: str, body: bytes, stop_by: float | None) -> Response:
    """One attempt; while closing, cut to the time left if the transport allows it."""
    if stop_by is None or not _takes_timeout(transport):
        return transport.post(path, body)
    return transport.post(path, body, timeout=max(0.001, stop_by - time.monotonic()))  # type: ignore[call-arg]


def _takes_timeout(transport: Transport) -> bool:
    try:
        return "timeout" in inspect.signature(transport.post).parameters
    except (TypeError, ValueError):
        return False
