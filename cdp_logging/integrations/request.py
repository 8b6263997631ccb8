"""What a web request says about who an event is about, as every middleware reads it: the
user id (the framework's authenticated user, or the application's function), the anonymous id
(a cookie the application names; never invented) and ``context.ip``, ``context.userAgent``,
``context.page.url`` and ``context.page.path``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..reporting import warn
from ..scoping import scope


def request_scope(user_id: Any, anonymous_id: Any, *, ip: str | None, user_agent: str | None,
                  url: str | None, path: str | None) -> scope:
    """The scope for one request; an id that is not a string, number or UUID is left out
    with a WARNING (a request never fails for it).

    Example::

        with request_scope("42", None, ip="203.0.113.7", user_agent="curl/8", url=None, path="/"):
            handle_request()
    """
    context: dict[str, Any] = {}
    if ip:
        context["ip"] = ip
    if user_agent:
        context["userAgent"] = user_agent
    page = {key: value for key, value in (("url", url), ("path", path)) if value}
    if page:
        context["page"] = page
    try:
        return scope(user_id=user_id, anonymous_id=anonymous_id, context=context or None)
    except TypeError as err:
        warn("cdp-logging: the request's scope leaves out an id: %s", err)
        return scope(context=context or None)


def call_user_id(function: Callable[[Any], Any], request: Any) -> Any:
    """The application's ``user_id(request)``, None when it raises (logged once per kind of
    failure at WARNING: a request never fails for it).

    Example::

        call_user_id(lambda request: request.headers.get("X-User"), request)
    """
    try:
        return function(request)
    except Exception as err:  # the application's code: its failure must not fail the request
        if type(err) in _warned:
            return None
        _warned.add(type(err))
        warn("cdp-logging: user_id(request) raised %s: %s; the request's events carry no user id",
                       type(err).__name__, err)
        return None


#: The kinds of failure of the application's user_id function warned about so far.
_warned: set[type[BaseException]] = set()
