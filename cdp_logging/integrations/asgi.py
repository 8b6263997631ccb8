"""ASGI (Starlette, FastAPI, any ASGI app): :class:`ScopeMiddleware` opens a
:class:`cdp_logging.scope` for each HTTP request and websocket.

::

    from fastapi import FastAPI
    from cdp_logging.integrations.asgi import ScopeMiddleware

    app = FastAPI()
    app.add_middleware(ScopeMiddleware, anonymous_id_cookie="ajs_anonymous_id")
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import quote

from .request import call_user_id, request_scope

__all__ = ["ScopeMiddleware"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ScopeMiddleware:
    """ASGI middleware: every event logged while a request is handled is about its user.

    ``user_id``: a function of the ASGI connection scope (a dict) returning the user id;
    default: ``scope["user"]`` as Starlette's ``AuthenticationMiddleware`` sets it (add that
    first), its ``identity`` when authenticated. ``anonymous_id_cookie``: the cookie holding
    the anonymous id (none is read without it, and none is ever made up). ``context`` gets
    ``ip`` (the ASGI client address: run uvicorn with ``--proxy-headers`` behind a proxy),
    ``userAgent`` and ``page.url`` / ``page.path``. Sync endpoints see the scope too: Starlette
    runs them in threads with a copy of the request's context.

    Example::

        app.add_middleware(ScopeMiddleware, user_id=lambda scope: scope["state"].get("user_id"))
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *,
                 user_id: Callable[[Scope], Any] | None = None,
                 anonymous_id_cookie: str | None = None) -> None:
        self.app = app
        self.user_id = user_id
        self.anonymous_id_cookie = anonymous_id_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        user_id = call_user_id(self.user_id, scope) if self.user_id is not None else _identity(scope)
        anonymous_id = None
        if self.anonymous_id_cookie and "cookie" in headers:
            anonymous_id = _cookie(headers["cookie"], self.anonymous_id_cookie)
        client = scope.get("client")
        path = scope.get("root_path", "") + scope.get("path", "")
        with request_scope(user_id, anonymous_id, ip=client[0] if client else None,
                           user_agent=headers.get("user-agent"), url=_url(scope, headers, path), path=path):
            await self.app(scope, receive, send)


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        # Several Cookie headers (HTTP/2) are one list; other repeats keep the first.
        found[key] = f"{found[key]}; {text}" if key == "cookie" and key in found else found.get(key, text)
    return found


def _cookie(header: str, name: str) -> str | None:
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(header)
    except CookieError:
        return None
    morsel = cookies.get(name)
    return morsel.value if morsel is not None and morsel.value else None


def _identity(scope: Scope) -> Any:
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    try:
        return user.identity
    except NotImplementedError:  # Starlette's BaseUser leaves identity to the application
        return None


def _url(scope: Scope, headers: dict[str, str], path: str) -> str | None:
    host = headers.get("host")
    if not host:
        server = scope.get("server")
        if not server:
            return None
        host = f"{server[0]}:{server[1]}" if server[1] is not None else server[0]
    scheme = scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http")
    url = f"{scheme}://{host}{quote(path)}"
    query = scope.get("query_string")
    if query:
        url += "?" + query.decode("latin-1")
    return url
