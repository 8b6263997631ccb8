"""One deadline for a process's whole shutdown, however it is reached.

``logging.shutdown()`` (at exit, or called by the application) calls each handler's
``flush()`` and then its ``close()``, handler after handler; each would wait up to
``shutdown_timeout``, so two handlers, or a flush and a close, waited twice as long. Instead,
the first :class:`~cdp_logging.CDPHandler` that ``logging.shutdown()`` reaches starts the
shutdown: every live client gets one deadline (now plus its ``shutdown_timeout``), and the
clients the handlers own begin closing side by side. Every later wait (the flushes and
closes that follow, atexit's :func:`~cdp_logging.close_all_clients`) ends by that deadline.
A close right after a handler's flush that ran out of time ends by that flush's deadline.
"""

from __future__ import annotations

import logging
import sys
import time
import weakref
from types import FrameType
from typing import Any

from .registry import begin_shutdown

__all__ = ["ShutdownDeadlines", "begin_logging_shutdown", "closing_handler", "flush_handler",
           "in_logging_shutdown"]

#: logging.shutdown's code, taken at import: what a frame runs when logging.shutdown called it.
_SHUTDOWN_CODE = logging.shutdown.__code__

#: How many frames up (a subclass's flush calling ours, say) logging.shutdown is looked for.
_FRAMES = 6

#: The CDPHandlers that own their client: closed side by side when logging shuts down.
_handlers: weakref.WeakSet[Any] = weakref.WeakSet()

#: Per handler, (deadline, events queued) of its last flush() that ran out of time.
_ran_out: weakref.WeakKeyDictionary[Any, tuple[float, int]] = weakref.WeakKeyDictionary()


class ShutdownDeadlines:
    """The deadlines of one client's close: the close's, set once as closing begins, and the
    process shutdown's, set by :func:`~cdp_logging.registry.begin_shutdown`, by which every
    later wait ends.

    Example::

        deadlines = ShutdownDeadlines()
        deadlines.shutdown_begins(time.monotonic() + 5.0)
        batcher.begin_close(5.0, deadline=deadlines.closing_deadline(5.0))
    """

    def __init__(self) -> None:
        #: When closing must end (monotonic), set once as closing begins.
        self.close_deadline: float | None = None
        #: When every wait must end once the process began to shut down, else None.
        self.shutdown_deadline: float | None = None

    def shutdown_begins(self, deadline: float) -> None:
        """The process began shutting down: every wait from now on (flush, close) ends by
        ``deadline``, whoever asks for it."""
        if self.shutdown_deadline is None:
            self.shutdown_deadline = deadline

    def within_shutdown(self, deadline: float | None) -> float | None:
        """``deadline`` (monotonic, None: none), no later than the shutdown's."""
        ends = self.shutdown_deadline
        if ends is None:
            return deadline
        return ends if deadline is None else min(deadline, ends)

    def closing_deadline(self, timeout: float) -> float:
        """The close's deadline: ``timeout`` from the first call, within the shutdown's."""
        if self.close_deadline is None:
            self.close_deadline = self.within_shutdown(time.monotonic() + timeout)
        assert self.close_deadline is not None
        return self.close_deadline


def track_handler(handler: Any) -> None:
    """Remember a CDPHandler that owns its client (``handler.client``), to close it side by
    side with the others when ``logging.shutdown()`` runs."""
    _handlers.add(handler)


def in_logging_shutdown() -> bool:
    """True when the calling handler method was called by ``logging.shutdown()``.

    Example::

        def flush(self):
            if in_logging_shutdown():
                begin_logging_shutdown()
    """
    frame: FrameType | None
    try:
        frame = sys._getframe(2)  # the caller's caller; CPython and PyPy have it
    except (AttributeError, ValueError):
        return False
    for _ in range(_FRAMES):
        if frame is None:
            return False
        if frame.f_code is _SHUTDOWN_CODE:
            return True
        frame = frame.f_back
    return False


def begin_logging_shutdown() -> None:
    """Start the process's shutdown: one deadline for every live client, and the clients
    owned by CDPHandlers begin closing now, side by side, by it."""
    begin_shutdown()
    for handler in list(_handlers):
        client = handler.client
        if not client.closed:
            try:
                client._begin_close()
            except Exception:  # noqa: S112 - at exit every client gets its turn
                continue


def flush_handler(handler: Any, reconfiguring: bool) -> None:
    """A CDPHandler's flush(): called by ``logging.shutdown()`` (not a reconfiguration, which
    calls it too, holding logging's lock), start the process's shutdown; then flush the
    client within ``shutdown_timeout``, remembering the deadline of a flush that ran out of
    time for the close that follows."""
    if not reconfiguring and in_logging_shutdown():
        begin_logging_shutdown()
    client = handler.client
    if client.closed or reconfiguring:
        return
    deadline = time.monotonic() + client.shutdown_timeout
    if not client.flush(timeout=client.shutdown_timeout):
        _ran_out[handler] = (deadline, client.stats()["queued"])


def closing_handler(handler: Any, reconfiguring: bool, owns_client: bool) -> bool:
    """A CDPHandler's close() begins: start the process's shutdown if ``logging.shutdown()``
    called it (True then); a close right after a flush that ran out of time, with nothing
    logged since, ends by that flush's deadline rather than waiting again."""
    shutting_down = not reconfiguring and in_logging_shutdown()
    if shutting_down:
        begin_logging_shutdown()
    ran_out = _ran_out.pop(handler, None)
    if ran_out is not None and owns_client and handler.client.stats()["queued"] == ran_out[1]:
        handler.client._shutdown_begins(ran_out[0])
    return shutting_down
