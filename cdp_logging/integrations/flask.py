"""Flask: :func:`init_app` opens a :class:`cdp_logging.scope` for each request.

::

    from flask import Flask
    from cdp_logging.integrations.flask import init_app

    app = Flask(__name__)
    init_app(app, anonymous_id_cookie="ajs_anonymous_id")

The user id comes from ``user_id(request)`` when given, else Flask-Login's ``current_user``
when Flask-Login is installed and the user is authenticated (its ``get_id()``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, g, request

from ..scoping import ScopeFields
from .request import call_user_id, request_scope

__all__ = ["init_app"]

_G_KEY = "_cdp_logging_scope"


def init_app(app: Flask, *, user_id: Callable[[Any], Any] | None = None,
             anonymous_id_cookie: str | None = None) -> Flask:
    """Open a scope for each of ``app``'s requests (before its ``before_request`` functions
    run), closed when the request is torn down; returns ``app``.

    ``user_id``: a function of the request returning the user id (default: Flask-Login's
    authenticated ``current_user.get_id()``, when Flask-Login is installed).
    ``anonymous_id_cookie``: the cookie holding the anonymous id (none is read without it, and
    none is ever made up). ``context`` gets ``ip`` (``request.remote_addr``: use Werkzeug's
    ``ProxyFix`` behind a proxy), ``userAgent`` and ``page.url`` / ``page.path``.

    Example::

        init_app(app, user_id=lambda request: session.get("user_id"))
    """

    def open_scope() -> None:
        found = call_user_id(user_id, request) if user_id is not None else _flask_login_user_id()
        opened = request_scope(
            found, request.cookies.get(anonymous_id_cookie) if anonymous_id_cookie else None,
            ip=request.remote_addr, user_agent=request.headers.get("User-Agent"),
            url=request.url, path=request.path,
        )
        setattr(g, _G_KEY, (opened, opened.__enter__()))

    def close_scope(error: BaseException | None) -> None:
        held: tuple[Any, ScopeFields] | None = g.pop(_G_KEY, None)
        if held is not None:
            held[0].__exit__(None, None, None)

    app.before_request_funcs.setdefault(None, []).insert(0, open_scope)
    app.teardown_request(close_scope)
    return app


def _flask_login_user_id() -> Any:
    try:
        from flask_login import current_user  # optional: only where installed
    except ImportError:
        return None
    if current_user and getattr(current_user, "is_authenticated", False):
        return current_user.get_id()
    return None

