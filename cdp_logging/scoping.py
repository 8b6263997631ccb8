"""``cdp_logging.scope``: who the events are about, for every call made inside it.

A scope holds a ``user_id``, an ``anonymous_id`` and a ``context`` in a :class:`contextvars.ContextVar`,
so it follows the code the way ``contextvars`` do: into the functions called inside it, into
``asyncio`` tasks created inside it (as copies), never into another thread or another request.
Every message built while one is open takes its fields where the call leaves them unset; that
happens in one place, where a message is built (:func:`cdp_logging.messages.build_message`, and
the handler's one-step version of it), before the message is checked, so every front (the
handler, the structlog and loguru fronts, ``Analytics`` and ``cdp_logging.events``) gets it.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["ScopeFields", "active_scope", "merged_context", "scope"]

_Function = TypeVar("_Function", bound=Callable[..., Any])


class ScopeFields:
    """The fields of the innermost open scope, the outer scopes' merged in (read-only).

    Example::

        with cdp_logging.scope(user_id="42"):
            assert active_scope().user_id == "42"
    """

    __slots__ = ("anonymous_id", "context", "user_id")

    def __init__(self, user_id: str | None, anonymous_id: str | None,
                 context: dict[str, Any] | None) -> None:
        self.user_id = user_id
        self.anonymous_id = anonymous_id
        self.context = context

    def __repr__(self) -> str:
        return (f"ScopeFields(user_id={self.user_id!r}, anonymous_id={self.anonymous_id!r}, "
                f"context={self.context!r})")

    def context_for(self, context: Any) -> Any:
        """The context a call sends: this scope's, with the call's own ``context`` merged over
        it (the call's keys winning, dicts within merged the same way). A call's context that
        is not a dict is left as it is, for the message's checks to refuse.

        Example::

            >>> ScopeFields(None, None, {"ip": "1.2.3.4", "page": {"path": "/"}}).context_for(
            ...     {"page": {"referrer": "x"}})
            {'ip': '1.2.3.4', 'page': {'path': '/', 'referrer': 'x'}}
        """
        if self.context is None or (context is not None and not isinstance(context, Mapping)):
            return context
        if not context:
            return self.context
        return merged_context(self.context, context)

    def fill(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A copy of a call's ``fields`` (snake_case) with this scope's where the call left
        them unset (absent or None).

        Example::

            >>> ScopeFields("42", None, None).fill({"event": "Added"})
            {'event': 'Added', 'user_id': '42'}
        """
        filled = dict(fields)
        if self.user_id is not None and filled.get("user_id") is None:
            filled["user_id"] = self.user_id
        if self.anonymous_id is not None and filled.get("anonymous_id") is None:
            filled["anonymous_id"] = self.anonymous_id
        if self.context is not None:
            filled["context"] = self.context_for(filled.get("context"))
        return filled


#: The innermost open scope of this context, or None (nearly always, outside web requests).
_current: ContextVar[ScopeFields | None] = ContextVar("cdp_logging_scope", default=None)

#: The innermost open scope (a :class:`ScopeFields`), or None: one ``ContextVar.get``, the only
#: cost a message pays when no scope is open.
active_scope: Callable[[], ScopeFields | None] = _current.get


def merged_context(outer: Mapping[str, Any], inner: Mapping[str, Any]) -> dict[str, Any]:
    """``outer`` with ``inner`` over it: ``inner``'s keys win, and where both hold a dict under
    one key, those are merged the same way.

    Example::

        >>> merged_context({"page": {"url": "u", "path": "/"}}, {"page": {"path": "/a"}})
        {'page': {'url': 'u', 'path': '/a'}}
    """
    merged = dict(outer)
    for key, value in inner.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = merged_context(below, value)
        else:
            merged[key] = value
    return merged


class scope:
    """Who the events of a block of code are about: every call made inside it gets these
    fields where it leaves them unset.

    ``user_id`` and ``anonymous_id`` (a string, or a number or UUID, sent as text; None or ""
    leaves the outer scope's) fill the call's ``user_id`` and ``anonymous_id`` when the call
    gives none; ``context`` (a dict) is merged under the call's ``context``, the call's keys
    winning. Scopes nest: the inner one's fields win, and contexts merge. A scope lives in a
    :class:`contextvars.ContextVar`: threads and ``asyncio`` tasks started outside it never see
    it. Use it as a context manager (``with``), or as a decorator on a function or coroutine
    function (each call opens it anew). When no scope is open, a message pays one
    ``ContextVar.get``.

    Example::

        with cdp_logging.scope(user_id="42", context={"ip": "203.0.113.7"}):
            log.info("added", extra={"track": {"event": "Added To Cart"}})   # userId "42"
            analytics.track(event="Checkout Started", user_id="43")          # userId "43"

        @cdp_logging.scope(anonymous_id="batch-import")
        async def import_rows(rows): ...
    """

    def __init__(self, user_id: str | int | uuid.UUID | None = None,
                 anonymous_id: str | int | uuid.UUID | None = None,
                 context: Mapping[str, Any] | None = None) -> None:
        self.user_id = _scope_id("user_id", user_id)
        self.anonymous_id = _scope_id("anonymous_id", anonymous_id)
        if context is not None and not isinstance(context, Mapping):
            raise TypeError(f"cdp_logging.scope: context must be a dict, got {type(context).__name__}")
        self.context = dict(context) if context else None
        self._tokens: list[Token[ScopeFields | None]] = []

    def __repr__(self) -> str:
        return (f"cdp_logging.scope(user_id={self.user_id!r}, anonymous_id={self.anonymous_id!r}, "
                f"context={self.context!r})")

    def _open(self) -> Token[ScopeFields | None]:
        outer = _current.get()
        if outer is None:
            fields = ScopeFields(self.user_id, self.anonymous_id, self.context)
        else:
            context = self.context
            if outer.context is not None:
                context = outer.context if context is None else merged_context(outer.context, context)
            fields = ScopeFields(
                self.user_id if self.user_id is not None else outer.user_id,
                self.anonymous_id if self.anonymous_id is not None else outer.anonymous_id,
                context,
            )
        return _current.set(fields)

    def __enter__(self) -> ScopeFields:
        token = self._open()
        self._tokens.append(token)
        fields = _current.get()
        assert fields is not None
        return fields

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        _current.reset(self._tokens.pop())

    def __call__(self, function: _Function) -> _Function:
        """Decorate ``function`` (or a coroutine function): each call runs inside the scope."""
        if inspect.iscoroutinefunction(function):
            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                token = self._open()
                try:
                    return await function(*args, **kwargs)
                finally:
                    _current.reset(token)
            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            token = self._open()
            try:
                return function(*args, **kwargs)
            finally:
                _current.reset(token)
        return run  # type: ignore[return-value]


def _scope_id(name: str, value: Any) -> str | None:
    """An id as the API takes it: text; a number (not a bool) or a UUID as its text."""
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    if isinstance(value, uuid.UUID) or (isinstance(value, numbers.Number) and not isinstance(value, bool)):
        return str(value)
    raise TypeError(f"cdp_logging.scope: {name} must be a string, a number or a UUID, got {type(value).__name__}")
