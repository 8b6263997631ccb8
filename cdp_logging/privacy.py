"""What leaves the process: the step between a built message and its encoding, redaction (see
:mod:`cdp_logging.redaction`) then the user's ``before_send``.

Every message passes here once, on the calling thread, after it was built and validated and
before it is encoded: :meth:`cdp_logging.Analytics.send` (the six calls) and
:meth:`cdp_logging.Analytics.enqueue` (where every logging front ends) run the step.

Example::

    def scrub(message):
        message.get("properties", {}).pop("internal_note", None)
        return message

    analytics = Analytics(before_send=scrub)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from threading import get_ident
from typing import Any

from .constants import CALL_TYPES
from .errors import BeforeSendError, InvalidEventError
from .messages import LIBRARY
from .redaction import DEFAULT_REDACT_KEYS, Redactor, check_redact_keys
from .reporting import threads_in_report


def leaving_step(
    redact_keys: Iterable[str] | None, before_send: Callable[[dict[str, Any]], Any] | None,
    on_redacted: Callable[[str, Any], object], on_dropped: Callable[[], object],
    on_refused: Callable[[InvalidEventError], object],
) -> Callable[[dict[str, Any]], dict[str, Any] | None] | None:
    """The step of a client with these options (``redact_keys`` None: the default list; the
    client has already read ``CDP_REDACT_KEYS``), as :attr:`LeavingStep.run`; None when it has nothing to do.

    Example::

        step = leaving_step((), None, on_redacted, on_dropped, on_refused)   # None: nothing to do
    """
    keys = DEFAULT_REDACT_KEYS if redact_keys is None else check_redact_keys(redact_keys)
    if not keys and before_send is None:
        return None
    redactor = Redactor(keys, on_redacted, on_refused) if keys else None
    return LeavingStep(redactor, before_send, on_dropped, on_refused).run


#: Idents of the threads running a ``before_send`` right now: an event made inside it is refused.
_threads_in_before_send: set[int] = set()
# A forked child has one thread: the others' idents could be reused by its new threads.
os.register_at_fork(after_in_child=_threads_in_before_send.clear)


class LeavingStep:
    """The step between a built message and its encoding: redaction, then ``before_send``.

    :attr:`run` returns the message to encode, or None when ``before_send`` dropped it (told to
    ``on_dropped``); raises :class:`BeforeSendError` when ``before_send`` raised or returned
    something other than a message, and :class:`InvalidEventError` for one redaction cannot
    look through, each told to ``on_refused`` first; the caller reports it with its origin.

    Example::

        step = LeavingStep(redactor, None, on_dropped=lambda: None, on_refused=counters.add)
        message = step.run(build_message("track", user_id="42", event="Login",
                                     properties={"password": "hunter2"}))
    """

    def __init__(self, redactor: Redactor | None, before_send: Callable[[dict[str, Any]], Any] | None,
                 on_dropped: Callable[[], object], on_refused: Callable[[InvalidEventError], object]) -> None:
        if before_send is not None and not callable(before_send):
            raise TypeError(f"cdp_logging option 'before_send' must be a callable, got {before_send!r}")
        self.redactor = redactor
        self.before_send = before_send
        self._on_dropped = on_dropped
        self._on_refused = on_refused
        #: The one method a message goes through, chosen once, so that no before_send costs
        #: nothing: ``run(message)`` returns the message to encode or None (dropped).
        self.run: Callable[[dict[str, Any]], dict[str, Any] | None] = (
            redactor.redact if before_send is None and redactor is not None else self._both
        )

    def _both(self, message: dict[str, Any]) -> dict[str, Any] | None:
        if self.redactor is not None:
            message = self.redactor.redact(message)
        return self._before_send(message)

    def _before_send(self, message: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return self._before_send_or_refuse(message)
        except BeforeSendError as err:
            self._on_refused(err)
            raise

    def _before_send_or_refuse(self, message: dict[str, Any]) -> dict[str, Any] | None:
        call, message_id = message.get("type", "?"), message.get("messageId")
        thread = get_ident()
        if thread in _threads_in_before_send:
            raise BeforeSendError(call, "the event was made inside before_send, which would run "
                                  "again for it; not sent", message_id=message_id)
        given = _own_copy(message)
        reporting = thread in threads_in_report
        _threads_in_before_send.add(thread)
        threads_in_report.add(thread)  # what it logs is not fed back into a CDPHandler
        try:
            result = self.before_send(given)  # type: ignore[misc]
        except Exception as err:
            raise BeforeSendError(call, f"before_send raised {type(err).__name__}: {err}",
                                  message_id=message_id) from err
        finally:
            _threads_in_before_send.discard(thread)
            if not reporting:
                threads_in_report.discard(thread)
        if result is None:
            self._on_dropped()
            return None
        problem = _not_a_message(result, call)
        if problem:
            raise BeforeSendError(call, f"before_send returned {problem}", message_id=message_id)
        checked: dict[str, Any] = result  # _not_a_message found it a dict
        return checked


def _own_copy(message: dict[str, Any]) -> dict[str, Any]:
    """The message with its own top-level dicts: a before_send changing ``properties`` or
    ``context`` must not change the application's dicts or the library's shared context."""
    given = dict(message)
    for field in ("properties", "traits", "context", "integrations"):
        value = given.get(field)
        if isinstance(value, Mapping):
            given[field] = dict(value)
    context = given.get("context")
    if context is not None and context.get("library") is LIBRARY:
        context["library"] = dict(LIBRARY)
    return given


#: The fields each call's message must keep, besides type and messageId.
_REQUIRED = {"track": ("event",), "group": ("groupId",), "alias": ("previousId", "userId")}


def _not_a_message(result: Any, call: str) -> str:
    """What is wrong with what before_send returned, or "" for a message the API takes."""
    if type(result) is not dict:
        return f"{type(result).__name__}, not a message (a dict) or None"
    kind = result.get("type")
    if kind not in CALL_TYPES:
        return f"a message whose type is {kind!r}, not one of {', '.join(CALL_TYPES)}"
    message_id = result.get("messageId")
    if type(message_id) is not str or not message_id:
        return "a message without a messageId (a non-empty string)"
    for field in _REQUIRED.get(kind, ()):
        if not result.get(field):
            return f"a {kind} message without {field}"
    if kind in ("track", "identify", "page", "screen") and not (result.get("userId") or result.get("anonymousId")):
        return f"a {kind} message without userId or anonymousId"
    return ""


#: Frames of these packages are not where an event came from.
_NOT_ORIGINS = ("cdp_logging", "logging", "structlog", "loguru", "threading")


def caller_origin() -> str:
    """Where the application made the call now being sent: the first frame outside the library
    and the logging packages, as ``path:line in function``; only on the error path.

    Example::

        error.with_origin(caller_origin())
    """
    frame = sys._getframe(1)
    while frame is not None:
        package = str(frame.f_globals.get("__name__", "")).partition(".")[0]
        if package not in _NOT_ORIGINS:
            return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return "an unknown caller"
