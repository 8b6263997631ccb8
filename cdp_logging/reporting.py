"""Where problems go: the user's ``error_handler``, else the ``cdp_logging`` logger.

Both paths are contained: an error_handler that raises is logged, one that logs through a
CDPHandler is not fed back into it (see :func:`in_report`), and warnings are rate-limited so a
flood of bad events cannot flood the logs. Counting happens elsewhere and is never limited.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from threading import get_ident
from collections.abc import Callable

from .errors import CDPError

logger = logging.getLogger("cdp_logging")

ErrorHandler = Callable[[CDPError], object]

#: Idents of the threads inside a report right now; read it, never change it. A set rather
#: than a thread-local flag: every record a CDPHandler sends asks, and CDPHandler.handle
#: reads it directly, an empty set answering without a look-up.
threads_in_report: set[int] = set()


def in_report() -> bool:
    """True while this thread is inside a report (running the error_handler or warning).

    CDPHandler ignores records logged then, so a report can never loop back into itself.
    """
    return bool(threads_in_report) and get_ident() in threads_in_report


def _keep_only_this_thread() -> None:
    # A forked child has one thread: the others' idents could be reused by its new threads.
    threads_in_report.intersection_update((get_ident(),))


os.register_at_fork(after_in_child=_keep_only_this_thread)


class RateLimit:
    """Allows ``burst`` events per ``period`` seconds, counting what it held back.

    Example::

        limit = RateLimit(burst=10, period=60.0)
        if limit.allow():
            logger.warning("...")
    """

    def __init__(self, burst: int = 10, period: float = 60.0) -> None:
        self.burst = burst
        self.period = period
        self._window_start = -period
        self._used = 0
        self.suppressed = 0
        self._lock = threading.Lock()

    def allow(self) -> tuple[bool, int]:
        """(whether to report now, how many were held back since the last report)."""
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.period:
                self._window_start = now
                self._used = 0
            if self._used < self.burst:
                self._used += 1
                held, self.suppressed = self.suppressed, 0
                return True, held
            self.suppressed += 1
            return False, 0


class Reporter:
    """Sends each error to ``error_handler``, or logs a rate-limited WARNING without one.

    Example::

        reporter = Reporter(error_handler=None)
        reporter.report(DeliveryError("HTTP 500", message_ids=["m1"], status=500))
    """

    def __init__(self, error_handler: ErrorHandler | None = None) -> None:
        self.error_handler = error_handler
        self._limits: dict[type, RateLimit] = {}

    def report(self, error: CDPError) -> None:
        """Report one problem; never raises."""
        if in_report():
            # A report raised while reporting (the handler logged a bad event, say):
            # log it, rate-limited, and stop there.
            self._warn(error)
            return
        thread = get_ident()
        threads_in_report.add(thread)
        try:
            if self.error_handler is None:
                self._warn(error)
            else:
                try:
                    self.error_handler(error)
                except Exception:
                    allowed, _ = self._limit(RuntimeError).allow()
                    if allowed:
                        _warning(
                            "cdp-logging: error_handler raised %s while handling: %s",
                            _current_exception(), error,
                        )
        except Exception:  # noqa: S110 - reporting must never break the application
            pass  # reporting must never be what breaks the application
        finally:
            threads_in_report.discard(thread)

    def _limit(self, kind: type) -> RateLimit:
        limit = self._limits.get(kind)
        if limit is None:
            limit = self._limits.setdefault(kind, RateLimit())
        return limit

    def _warn(self, error: CDPError) -> None:
        allowed, held = self._limit(type(error)).allow()
        if not allowed:
            return
        if held:
            _warning("cdp-logging: %s (and %d similar reports suppressed)", error, held)
        else:
            _warning("cdp-logging: %s", error)


def warn(message: str, *args: object, level: int = logging.WARNING) -> None:
    """Log a one-off WARNING (or ``level``) on ``cdp_logging``, not rate-limited (a summary
    at close, say).

    Example::

        warn("cdp-logging: %d event(s) could not be delivered", 3)
    """
    _warning(message, *args, level=level)


def _warning(message: str, *args: object, level: int = logging.WARNING) -> None:
    """Log on ``cdp_logging``; if only CDPHandlers would see it (they ignore records without
    a payload), write it to logging's last-resort stderr handler so it is not lost."""
    # dictConfig's default disable_existing_loggers=True disables this logger in most
    # applications without anyone meaning to silence it: honour levels, not that flag.
    if logger.getEffectiveLevel() > level:
        return
    record = logger.makeRecord(logger.name, level, __file__, 0, message, args, None)
    if _reaches_a_real_handler():
        logger.callHandlers(record)
    elif logging.lastResort is not None:
        logging.lastResort.handle(record)


def _current_exception() -> str:
    err = sys.exc_info()[1]
    return f"{type(err).__name__}: {err}" if err is not None else "an exception"


#: The class attribute that marks a handler sending to CDP (``CDPHandler``, whose module builds
#: on this one): a warning is not "delivered" by reaching it.
SENDS_TO_CDP = "_sends_to_cdp"


def _reaches_a_real_handler() -> bool:
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if not getattr(handler, SENDS_TO_CDP, False) and handler.level <= logging.WARNING:
                return True
        if not current.propagate:
            return False
        current = current.parent
    return False
