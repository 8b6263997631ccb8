"""Delivering at the end of a unit of work, for processes that are frozen or stopped between
units: AWS Lambda, Google Cloud Functions, Azure Functions, cron jobs, CLI commands.

A Lambda container is frozen as soon as the handler returns and may never run again, so what
the background worker has not yet sent could wait for the next invocation or be lost. Flushing
every client at the end of each invocation delivers it; the clients stay open, ready for the
next invocation in the same container.
"""

from __future__ import annotations

import functools
import inspect
from types import TracebackType
from typing import Any, TypeVar, overload
from collections.abc import Callable

from .registry import flush_all_clients

__all__ = ["flush_after"]

F = TypeVar("F", bound=Callable[..., Any])


class FlushAfter:
    """Flushes every live client when the block or the decorated function ends, however it ends.

    Made by :func:`flush_after`. ``delivered`` says whether the last flush delivered
    everything (None before the first); failures are also reported to each client's
    ``error_handler`` or the ``cdp_logging`` logger, and never raised.

    Example::

        with cdp_logging.flush_after(timeout=2.0) as flushed:
            analytics.track(user_id="42", event="Report Sent")
        print(flushed.delivered)
    """

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout
        self.delivered: bool | None = None

    def __repr__(self) -> str:
        return f"<flush_after timeout={self.timeout!r} delivered={self.delivered!r}>"

    def flush(self) -> bool:
        """Flush every live client now; override to flush something else as well."""
        self.delivered = flush_all_clients(self.timeout)
        return self.delivered

    def __enter__(self) -> FlushAfter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.flush()

    def __call__(self, function: F) -> F:
        """Decorate ``function`` (sync or async): flush after each call returns or raises."""
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def flush_after_coroutine(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await function(*args, **kwargs)
                finally:
                    import asyncio  # here, so that synchronous users never import it

                    # Flushing blocks until delivery: keep the event loop free meanwhile.
                    await asyncio.get_running_loop().run_in_executor(None, self.flush)

            return flush_after_coroutine  # type: ignore[return-value]

        @functools.wraps(function)
        def flush_after_call(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            finally:
                self.flush()

        return flush_after_call  # type: ignore[return-value]


@overload
def flush_after(function: F, *, timeout: float | None = None) -> F: ...


@overload
def flush_after(function: None = None, *, timeout: float | None = None) -> FlushAfter: ...


def flush_after(function: F | None = None, *, timeout: float | None = None) -> F | FlushAfter:
    """Deliver what every client has queued when a function or block ends, keeping them open.

    Use it as a decorator, with or without arguments, on plain or ``async`` functions, or as
    a context manager. ``timeout`` bounds the wait in seconds (None: each client at most its
    ``shutdown_timeout``); it never raises because of delivery.

    Example (AWS Lambda)::

        log = logging.getLogger("orders")          # CDPHandler configured at import

        @cdp_logging.flush_after(timeout=2.0)
        def handler(event, context):
            log.info("order paid", extra={"event": "Order Paid", "user_id": event["user"]})
            return {"statusCode": 200}

    Example (a block)::

        with cdp_logging.flush_after():
            run_nightly_export()
    """
    flusher = FlushAfter(timeout)
    if function is None:
        return flusher
    return flusher(function)
