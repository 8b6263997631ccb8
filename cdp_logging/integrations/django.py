"""Django: :class:`ScopeMiddleware` opens a :class:`cdp_logging.scope` for each request.

::

    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "cdp_logging.integrations.django.ScopeMiddleware",   # after AuthenticationMiddleware
    ]
    CDP_ANONYMOUS_ID_COOKIE = "ajs_anonymous_id"   # optional: the cookie holding the anonymous id
    CDP_USER_ID = "myapp.analytics.user_id"        # optional: a function(request) -> id

Without ``CDP_USER_ID``, the user id is ``request.user.pk`` when ``request.user`` is
authenticated (Django's ``AuthenticationMiddleware`` must come first). Works for sync and
async (ASGI) Django alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

from ..option_table import resolve_callable
from ..scoping import scope
from .request import call_user_id, request_scope

__all__ = ["ScopeMiddleware"]


class ScopeMiddleware:
    """Django middleware: every event logged while a request is handled is about its user.

    Settings (both optional): ``CDP_USER_ID``, a function of the request (or its dotted path)
    returning the user id; ``CDP_ANONYMOUS_ID_COOKIE``, the name of the cookie holding the
    anonymous id (none is read without it, and none is ever made up). ``context`` gets the
    client's ``ip`` (``REMOTE_ADDR``: put your proxy's middleware first), ``userAgent`` and
    ``page.url`` / ``page.path``.

    Example (settings.py)::

        MIDDLEWARE = [..., "cdp_logging.integrations.django.ScopeMiddleware"]
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.user_id = resolve_callable(getattr(settings, "CDP_USER_ID", None), "CDP_USER_ID")
        self.cookie: str | None = getattr(settings, "CDP_ANONYMOUS_ID_COOKIE", None)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self._call_async(request)
        if self.user_id:
            user_id = call_user_id(self.user_id, request)
        else:
            user_id = _authenticated_pk(getattr(request, "user", None))
        with self._scope(request, user_id):
            return self.get_response(request)

    async def _call_async(self, request: Any) -> Any:
        if self.user_id:
            user_id = call_user_id(self.user_id, request)
        else:
            auser: Callable[[], Awaitable[Any]] | None = getattr(request, "auser", None)
            user_id = _authenticated_pk(await auser()) if auser is not None else None
        with self._scope(request, user_id):
            return await self.get_response(request)

    def _scope(self, request: Any, user_id: Any) -> scope:
        meta = request.META
        return request_scope(
            user_id, request.COOKIES.get(self.cookie) if self.cookie else None,
            ip=meta.get("REMOTE_ADDR"), user_agent=meta.get("HTTP_USER_AGENT"),
            url=_url(request), path=request.path,
        )


def _url(request: Any) -> str | None:
    try:
        return str(request.build_absolute_uri())
    except Exception:  # a Host header Django refuses (DisallowedHost): Django answers it, not us
        return None


def _authenticated_pk(user: Any) -> Any:
    if user is not None and getattr(user, "is_authenticated", False):
        return user.pk
    return None
