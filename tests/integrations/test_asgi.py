"""The ASGI ScopeMiddleware under Starlette's TestClient: async and sync endpoints see the
request's scope; Starlette's authenticated user gives the user id; requests keep their own."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

starlette = pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.applications import Starlette  # noqa: E402 - after the skip
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.authentication import AuthenticationMiddleware  # noqa: E402
from starlette.requests import HTTPConnection, Request  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import cdp_logging  # noqa: E402
from cdp_logging.integrations.asgi import ScopeMiddleware  # noqa: E402
from cdp_logging.testing import LocalCollector  # noqa: E402

from support.fronts import arrived, client, collector, context  # noqa: E402, F401 - fixtures

log = logging.getLogger("shop.asgi")


@pytest.fixture(autouse=True)
def handler(client: cdp_logging.Analytics) -> Iterator[None]:
    cdp = cdp_logging.CDPHandler(client=client)
    log.addHandler(cdp)
    log.setLevel(logging.INFO)
    yield
    log.removeHandler(cdp)


class HeaderUser(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        name = conn.headers.get("X-User")
        return (AuthCredentials(["authenticated"]), SimpleUser(name)) if name else None


class User(SimpleUser):
    @property
    def identity(self) -> str:
        return f"id-{self.username}"


class IdentityUser(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        name = conn.headers.get("X-User")
        return (AuthCredentials(["authenticated"]), User(name)) if name else None


async def cart(request: Request) -> PlainTextResponse:
    log.info("added", extra={"track": {"event": "Added To Cart"}})
    log.info("gift", extra={"track": {"event": "Gift Sent", "user_id": "friend-9"}})
    return PlainTextResponse("ok")


def cart_sync(request: Request) -> PlainTextResponse:   # Starlette runs it on a worker thread
    log.info("added", extra={"track": {"event": "Added Sync"}})
    return PlainTextResponse("ok")


def make_app(backend: AuthenticationBackend, **options: Any) -> Starlette:
    return Starlette(
        routes=[Route("/cart", cart), Route("/cart-sync", cart_sync)],
        middleware=[Middleware(AuthenticationMiddleware, backend=backend),
                    Middleware(ScopeMiddleware, **options)],
    )


def test_each_requests_events_carry_its_user_cookie_ip_user_agent_and_page(
        collector: LocalCollector, client: cdp_logging.Analytics) -> None:
    app = make_app(IdentityUser(), anonymous_id_cookie="ajs_anonymous_id")
    with TestClient(app, base_url="https://shop.example", client=("203.0.113.7", 5000)) as browser:
        answer = browser.get("/cart?ref=mail", headers={"X-User": "ada", "User-Agent": "Browser/1.0",
                                                          "Cookie": "theme=dark; ajs_anonymous_id=visitor-1"})
        assert answer.status_code == 200
        assert browser.get("/cart", headers={"User-Agent": "Other/2"}).status_code == 200
    request = context(ip="203.0.113.7", userAgent="Browser/1.0",
                      page={"url": "https://shop.example/cart?ref=mail", "path": "/cart"})
    assert arrived(collector, client, 3) == [
        {"type": "track", "userId": "id-ada", "anonymousId": "visitor-1", "event": "Added To Cart", "context": request},
        {"type": "track", "userId": "friend-9", "anonymousId": "visitor-1", "event": "Gift Sent", "context": request},
        # The second request: no user, no cookie, no id invented ("Added To Cart" is refused).
        {"type": "track", "userId": "friend-9", "event": "Gift Sent", "context": context(
            ip="203.0.113.7", userAgent="Other/2", page={"url": "https://shop.example/cart", "path": "/cart"})},
    ]
    assert client.stats()["invalid"] == 1


def test_sync_endpoints_and_the_apps_function(collector: LocalCollector, client: cdp_logging.Analytics) -> None:
    app = make_app(HeaderUser(), user_id=lambda scope: scope["user"].display_name if scope["user"].is_authenticated
                   else None)
    with TestClient(app) as browser:
        for user in ("u1", "u2"):
            assert browser.get("/cart-sync", headers={"X-User": user}).status_code == 200
    assert [(m["userId"], m["context"]["page"]["path"]) for m in arrived(collector, client, 2)] == [
        ("u1", "/cart-sync"), ("u2", "/cart-sync")]


def test_the_default_user_id_is_the_authenticated_users_identity(
        collector: LocalCollector, client: cdp_logging.Analytics) -> None:
    app = make_app(HeaderUser(), anonymous_id_cookie="ajs_anonymous_id")
    with TestClient(app) as browser:
        browser.cookies.set("ajs_anonymous_id", "visitor-2")
        assert browser.get("/cart-sync", headers={"X-User": "u1"}).status_code == 200
    [added] = arrived(collector, client, 1)
    assert (added["userId"], added["anonymousId"]) == ("u1", "visitor-2")   # SimpleUser.identity
