"""One deadline for a process's whole shutdown, however it is reached.

``logging.shutdown()`` (at exit, or called by the application) calls each handler's
``flush()`` and then its ``close()``, handler after handler; each would wait up to
``shutdown_timeout``, so two handlers, or a flush and a close, waited twice as long. Instead,
the first :class:`~cdp_logging.CDPHandler` that ``logging.shutdown()`` reaches starts the
shutdown: every live client gets one deadline (now plus its ``shutdown_timeout``), and the
clients the handlers own begin closing side by side. Every later wait (the flushes and
closes that follow, atexit's :func:`~cdp_logging.close_all_clients`) ends by that deadline.
"""

from __future__ import annotations

import logging
import sys
import weakref
from types import FrameType
from typing import Any

from .registry import begin_shutdown

__all__ = ["begin_logging_shutdown", "in_logging_shutdown", "track_handler"]

#: logging.shutdown's code, taken at import: what a frame runs when logging.shutdown called it.
_SHUTDOWN_CODE = logging.shutdown.__code__

#: How many frames up (a subclass's flush calling ours, say) logging.shutdown is looked for.
_FRAMES = 6

#: The CDPHandlers that own their client: closed side by side when logging shuts down.
_handlers: weakref.WeakSet[Any] = weakref.WeakSet()


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
