"""structlog as a CDP front: :data:`send_to_cdp`, a processor for structlog's own chain, and the
check that finds a chain which renders event dicts to text before logging's handlers see them.

Natively (no standard library), put the processor anywhere before the renderer::

    import structlog
    from cdp_logging.structlog import send_to_cdp

    structlog.configure(processors=[
        structlog.contextvars.merge_contextvars,
        send_to_cdp,
        structlog.processors.JSONRenderer(),
    ])
    structlog.get_logger().info("added to cart", track={"user_id": "42", "event": "Added To Cart"})

An event dict asks for a call with the keys of logging's ``extra`` (``track={...}``,
``identify={...}``, ...; see :mod:`cdp_logging.nested`); structlog's ``event`` key is its
message and never makes a call by itself. Its ``user_id``, ``anonymous_id`` and ``context``
(bound with ``structlog.contextvars.bind_contextvars`` or ``log.bind``) fill the fields the call
leaves unset. Over the standard library, :class:`cdp_logging.CDPHandler` reads the event dict
that ``structlog.stdlib.ProcessorFormatter.wrap_for_formatter`` or
``structlog.stdlib.render_to_log_kwargs`` hands to logging.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import Any

from .client import Analytics
from .nested import CALL_KEYS, calls_from_values
from .reporting import threads_in_report, warn
from .route import FrontClient, send_call
from .errors import InvalidEventError

__all__ = ["CDPProcessor", "rendering_problem", "send_to_cdp"]


class CDPProcessor:
    """A structlog processor that sends the calls an event dict asks for and returns the event
    dict unchanged, so it sits anywhere in a processor chain (before the renderer).

    ``client`` is the :class:`~cdp_logging.Analytics` to send through (a handler's
    ``handler.client`` shares its pipeline); without one, the processor makes its own on its
    first call, from ``options`` (those of ``Analytics``: the write key defaults to
    ``CDP_WRITE_KEY``, the host to ``CDP_HOST``). It never raises into the log call: a call it
    cannot send is counted as invalid and reported, naming the event.

    Example::

        structlog.configure(processors=[
            structlog.contextvars.merge_contextvars,
            CDPProcessor(client=analytics),
            structlog.processors.JSONRenderer(),
        ])
    """

    def __init__(self, client: Analytics | None = None, **options: Any) -> None:
        self._holder = FrontClient("CDPProcessor", client, options)

    def __repr__(self) -> str:
        return f"<CDPProcessor {self._holder.current!r}>"

    @property
    def client(self) -> Analytics:
        """The client the processor sends through (made on first use when none was given)."""
        return self._holder.get()

    def __call__(self, logger: Any, method_name: str,
                 event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """Send what ``event_dict`` asks for; return it as it came."""
        if event_dict.keys().isdisjoint(CALL_KEYS) or (
                threads_in_report and threading.get_ident() in threads_in_report):
            return event_dict
        client = self._holder.get()
        timestamp = time.time()
        present = event_dict.keys() & CALL_KEYS
        if len(present) == 1 and "user_id" not in event_dict and "anonymous_id" not in event_dict \
                and "context" not in event_dict:
            # The commonest event: one call, nothing bound to fill it; send_call checks the
            # payload as logged (calls_from_values below is the general case).
            call = present.pop()
            payload = event_dict[call]
            calls = [] if payload is None else [(call, payload)]
        else:
            try:
                calls = calls_from_values(event_dict, None)
            except InvalidEventError as err:
                client.count_invalid(err.with_origin(_origin(event_dict)))
                return event_dict
            except Exception as err:  # whatever the event dict holds, the log call goes on
                client.count_invalid(_failure(err, event_dict))
                return event_dict
        for call, fields in calls:
            try:
                send_call(client, call, fields, lambda: _origin(event_dict), timestamp)
            except Exception as err:
                client.count_invalid(_failure(err, event_dict, call))
        return event_dict


#: The processor most applications want: its client made from the environment
#: (``CDP_WRITE_KEY``, ``CDP_HOST``) on the first event that asks for a call.
send_to_cdp = CDPProcessor()


def rendering_problem() -> str | None:
    """What keeps structlog's calls from reaching :class:`~cdp_logging.CDPHandler`, as a
    warning naming the fix, or None: structlog configured to log through the standard library
    (``structlog.stdlib.LoggerFactory``) with a renderer last, which turns each event dict
    into text before any handler sees it, and no :class:`CDPProcessor` in the chain.

    Example::

        problem = rendering_problem()
        if problem:
            logging.getLogger("cdp_logging").warning(problem)
    """
    structlog = sys.modules.get("structlog")
    if structlog is None or not structlog.is_configured():
        return None
    config = structlog.get_config()
    processors = list(config.get("processors") or ())
    if not processors or not isinstance(config.get("logger_factory"), structlog.stdlib.LoggerFactory):
        return None
    last = processors[-1]
    if last is structlog.stdlib.ProcessorFormatter.wrap_for_formatter or last is structlog.stdlib.render_to_log_kwargs:
        return None
    if any(isinstance(processor, CDPProcessor) for processor in processors):
        return None
    renderer = getattr(last, "__qualname__", None) or type(last).__qualname__
    return (
        f"structlog renders each event dict to text ({renderer}, last of its processors) before "
        "logging's handlers see it, so CDPHandler cannot find track=/identify=/... in it and "
        "sends nothing for structlog's log calls. Fix: add cdp_logging.structlog.send_to_cdp "
        f"to structlog.configure(processors=[...]) before {renderer} (or end the chain with "
        "structlog.stdlib.ProcessorFormatter.wrap_for_formatter)."
    )


def warn_if_rendered() -> bool:
    """Log :func:`rendering_problem` once per process as a WARNING on ``cdp_logging``; True
    once structlog is configured (checked), False while there is nothing yet to check."""
    global _warned
    structlog = sys.modules.get("structlog")
    if structlog is None or not structlog.is_configured():
        return False
    problem = rendering_problem()
    if problem and not _warned:
        _warned = True
        warn("cdp-logging: %s", problem)
    return True


_warned = False

#: How many records a :class:`~cdp_logging.CDPHandler` made before structlog was configured
#: checks with :func:`warn_if_rendered` before it stops looking.
CHECKED_WITHIN = 1000


def watch_structlog(handler: logging.Handler) -> None:
    """Check structlog's configuration now, or, when structlog is imported but not configured
    yet (it may be configured after logging), at each of the handler's next
    :data:`CHECKED_WITHIN` records until it is: ``handler.handle`` is wrapped meanwhile, then
    the class's own takes over again.

    Example::

        watch_structlog(handler)   # CDPHandler.__init__ does this
    """
    if "structlog" not in sys.modules or warn_if_rendered():
        # Without structlog imported, nothing to watch: the handler's attributes stay as made
        # (removing an instance attribute later would slow down every record's look-ups).
        return
    handle = type(handler).handle
    left = [CHECKED_WITHIN]

    def handle_checking_structlog(record: logging.LogRecord) -> Any:
        left[0] -= 1
        if warn_if_rendered() or left[0] <= 0:
            handler.__dict__.pop("handle", None)
        return handle(handler, record)

    handler.handle = handle_checking_structlog  # type: ignore[method-assign]


def _origin(event_dict: MutableMapping[str, Any]) -> str:
    try:
        return f"structlog event {str(event_dict.get('event'))[:80]!r}"
    except Exception:  # an event whose str() raises is still reported
        return "structlog event"


def _failure(err: Exception, event_dict: MutableMapping[str, Any], call: str = "track") -> InvalidEventError:
    error = InvalidEventError(call, None, f"could not be sent: {type(err).__name__}: {err}",
                              origin=_origin(event_dict))
    error.__cause__ = err
    return error
