"""How many requests a client may have in flight at once, and how fast it may start them.

A client's concurrent requests (``max_concurrent_requests`` while a backlog lasts) share one
:class:`Pacer`: it keeps them under the API's rate limit (3,000 requests per 3 seconds, as
the Data Pipelines API documents it) and slows all of them when one is answered 429, 5xx or
not at all: the number allowed in flight drops to one, and none starts before the server's
``Retry-After`` (or a short pause) has passed; each success then allows one more again.
"""

from __future__ import annotations


import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .protocol import Response
from .retry import retry_after_seconds


#: The Data Pipelines API's documented rate limit: this many requests ...
RATE_LIMIT_REQUESTS = 3_000


#: ... per this many seconds.
RATE_LIMIT_SECONDS = 3.0


#: The longest one wait for a slot sleeps before it looks again at the closing deadline.
_WAIT_SLICE = 0.1


class NoSlot(Exception):
    """No request slot came free before the deadline."""


class Pacer:
    """Slots for requests: at most ``limit`` in flight, at most ``requests`` started in any
    ``per`` seconds, everyone slowed after a failure.

    ``deadline()`` gives the monotonic time by which a closing client must stop (or None);
    no wait for a slot runs past it. ``pause`` is the wait after a failure without a
    ``Retry-After``; ``max_pause`` caps a ``Retry-After``.

    Example::

        pacer = Pacer(4, deadline=lambda: None)
        with pacer.slot(None) as answered:
            response = connection.post(...)
            answered.append(response)
    """

    def __init__(
        self, limit: int, *, deadline: Callable[[], float | None], requests: int = RATE_LIMIT_REQUESTS,
        per: float = RATE_LIMIT_SECONDS, pause: float = 0.5, max_pause: float = 30.0,
    ) -> None:
        self.limit = limit
        self._deadline = deadline
        self._per = per
        self._pause = pause
        self._max_pause = max_pause
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        #: How many requests may be in flight now: ``limit``, or fewer after a failure.
        self.allowed = limit
        self.active = 0
        #: The most requests that were in flight at once (for tests and stats).
        self.most_active = 0
        #: No request starts before this monotonic time (after a failure).
        self._resume_at = 0.0
        #: When the last ``requests`` requests started.
        self._started: deque[float] = deque(maxlen=requests)

    def _wait_needed(self, now: float, closing: bool) -> float:
        """With the lock held: seconds until a slot may be free (0: one is free now). While
        the client closes, the pause after a failure is cut short, as retry waits are."""
        if self.active >= self.allowed:
            return _WAIT_SLICE  # a request ending notifies
        waits = [0.0 if closing else self._resume_at - now]
        started = self._started
        if len(started) == started.maxlen:
            waits.append(started[0] + self._per - now)
        return max(0.0, *waits)

    def acquire(self, until: float | None) -> None:
        """Take a slot, waiting at most until ``until`` (monotonic) or the closing deadline;
        raises :class:`NoSlot` when neither leaves time."""
        with self._lock:
            while True:
                now = time.monotonic()
                closing = self._deadline()
                wait = self._wait_needed(now, closing is not None)
                if wait <= 0:
                    self.active += 1
                    self.most_active = max(self.most_active, self.active)
                    self._started.append(now)
                    return
                for bound in (until, closing):
                    if bound is not None:
                        if now >= bound:
                            raise NoSlot
                        wait = min(wait, bound - now)
                self._freed.wait(min(wait, _WAIT_SLICE))

    def release(self, status: int | None, retry_after: float | None = None) -> None:
        """Give the slot back, with the request's status (None: no answer). A 429, a 5xx or
        no answer slows everyone; a 2xx allows one more in flight, up to ``limit``."""
        with self._lock:
            self.active -= 1
            if status is None or status == 429 or status >= 500:
                self.allowed = 1
                pause = self._pause if retry_after is None else min(retry_after, self._max_pause)
                self._resume_at = max(self._resume_at, time.monotonic() + pause)
            elif 200 <= status < 300 and self.allowed < self.limit:
                self.allowed += 1
            self._freed.notify_all()

    @contextmanager
    def slot(self, until: float | None) -> Iterator[list[Response]]:
        """A slot for one request: append its response to the list given; nothing appended
        means no answer (an error)."""
        self.acquire(until)
        answered: list[Response] = []
        try:
            yield answered
        finally:
            if answered:
                self.release(answered[0].status, retry_after_seconds(answered[0]))
            else:
                self.release(None)

    def reset(self) -> None:
        """After fork: new locks, nothing in flight."""
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self.active = 0
        self.allowed = self.limit
        self._resume_at = 0.0
        self._started.clear()
