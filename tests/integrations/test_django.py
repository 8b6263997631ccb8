"""Django's ScopeMiddleware under Django's test clients (sync and async): each request's events
are about its user, with its ip, user agent and page, and nothing of it outlives the request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402 - after the skip

if not settings.configured:
    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["shop.example", "testserver"], ROOT_URLCONF=__name__, SECRET_KEY="test",
        MIDDLEWARE=[f"{__name__}.FakeAuthentication", "cdp_logging.integrations.django.ScopeMiddleware"],
        CDP_ANONYMOUS_ID_COOKIE="ajs_anonymous_id", INSTALLED_APPS=[], DATABASES={},
    )
    django.setup()

from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

import cdp_logging  # noqa: E402
from cdp_logging.testing import LocalCollector  # noqa: E402

from support.fronts import arrived, client, collector, context  # noqa: E402, F401 - fixtures

log = logging.getLogger("shop.views")


class User:
    def __init__(self, pk: Any) -> None:
        self.pk = pk
        self.is_authenticated = pk is not None


class FakeAuthentication:
    """Stands in for AuthenticationMiddleware: the X-Test-User header names the signed-in user."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        user = User(request.headers.get("X-Test-User"))
        request.user = user  # type: ignore[assignment]

        async def auser() -> User:
            return user

        request.auser = auser  # type: ignore[attr-defined]
        return self.get_response(request)


def cart(request: HttpRequest) -> HttpResponse:
    log.info("added", extra={"track": {"event": "Added To Cart", "properties": {"sku": "s1"}}})
    log.info("explicit", extra={"track": {"event": "Gift Sent", "user_id": "friend-9"}})
    return HttpResponse("ok")


async def cart_async(request: HttpRequest) -> HttpResponse:
    log.info("added", extra={"track": {"event": "Added Async"}})
    return HttpResponse("ok")


urlpatterns = [path("cart", cart), path("cart-async", cart_async)]


def user_from_header(request: HttpRequest) -> str:
    return f"custom-{request.headers['X-Test-User']}"


@pytest.fixture(autouse=True)
def handler(client: cdp_logging.Analytics) -> Iterator[None]:
    cdp = cdp_logging.CDPHandler(client=client)
    log.addHandler(cdp)
    log.setLevel(logging.INFO)
    yield
    log.removeHandler(cdp)


def page(query: str = "") -> dict[str, Any]:
    return {"url": f"http://shop.example/cart{query}", "path": "/cart"}


def test_each_requests_events_carry_its_user_cookie_ip_user_agent_and_page(
        collector: LocalCollector, client: cdp_logging.Analytics) -> None:
    browser = Client(HTTP_HOST="shop.example", HTTP_USER_AGENT="Browser/1.0", REMOTE_ADDR="203.0.113.7")
    browser.cookies["ajs_anonymous_id"] = "visitor-1"
    assert browser.get("/cart?ref=mail", HTTP_X_TEST_USER="42").status_code == 200
    anonymous = Client(HTTP_HOST="shop.example", REMOTE_ADDR="198.51.100.2")
    assert anonymous.get("/cart").status_code == 200
    request = context(ip="203.0.113.7", userAgent="Browser/1.0", page=page("?ref=mail"))
    assert arrived(collector, client, 3) == [
        {"type": "track", "userId": "42", "anonymousId": "visitor-1", "event": "Added To Cart",
         "properties": {"sku": "s1"}, "context": request},
        {"type": "track", "userId": "friend-9", "anonymousId": "visitor-1", "event": "Gift Sent", "context": request},
        # The second request: neither user nor cookie, so no id is invented ("Added To Cart" is
        # refused as without a scope) and nothing of the first request's scope is left.
        {"type": "track", "userId": "friend-9", "event": "Gift Sent",
         "context": context(ip="198.51.100.2", page=page())},
    ]
    assert client.stats()["invalid"] == 1
    assert cdp_logging.scoping.active_scope() is None


def test_the_apps_function_gives_the_user_id(collector: LocalCollector, client: cdp_logging.Analytics) -> None:
    with override_settings(CDP_USER_ID=f"{__name__}.user_from_header"):
        browser = Client(HTTP_HOST="shop.example")
        assert browser.get("/cart", HTTP_X_TEST_USER="7").status_code == 200
    [added, gift] = arrived(collector, client, 2)
    assert (added["userId"], gift["userId"]) == ("custom-7", "friend-9")


def test_async_views_see_the_scope_and_requests_do_not_share_it(
        collector: LocalCollector, client: cdp_logging.Analytics) -> None:
    async def two_requests() -> list[int]:
        browser = AsyncClient(HTTP_HOST="shop.example")
        return [(await browser.get("/cart-async", headers={"X-Test-User": user})).status_code for user in ("1", "2")]

    assert asyncio.run(two_requests()) == [200, 200]
    messages = arrived(collector, client, 2)
    assert [(m["userId"], m["context"]["page"]["path"]) for m in messages] == [("1", "/cart-async"), ("2", "/cart-async")]
