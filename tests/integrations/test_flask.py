"""Flask's init_app under Flask's test client: each request's events are about its user, with its
ip, user agent and page; requests on concurrent threads keep their own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

flask = pytest.importorskip("flask")

import cdp_logging  # noqa: E402 - after the skip
from cdp_logging.integrations.flask import init_app  # noqa: E402
from cdp_logging.testing import LocalCollector  # noqa: E402

from support.fronts import arrived, client, collector, context  # noqa: E402, F401 - fixtures

log = logging.getLogger("shop.flask")


@pytest.fixture(autouse=True)
def handler(client: cdp_logging.Analytics) -> Iterator[None]:
    cdp = cdp_logging.CDPHandler(client=client)
    log.addHandler(cdp)
    log.setLevel(logging.INFO)
    yield
    log.removeHandler(cdp)


def make_app(**options: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    both_inside = threading.Barrier(2, timeout=10)

    @app.get("/cart")
    def cart() -> str:
        if flask.request.args.get("together"):
            both_inside.wait()   # two requests inside their scopes at once, on two threads
        log.info("added", extra={"track": {"event": "Added To Cart"}})
        log.info("gift", extra={"track": {"event": "Gift Sent", "user_id": "friend-9"}})
        return "ok"

    return init_app(app, **options)


def test_each_requests_events_carry_its_user_cookie_ip_user_agent_and_page(
        collector: LocalCollector, client: cdp_logging.Analytics) -> None:
    app = make_app(user_id=lambda request: request.headers.get("X-User"), anonymous_id_cookie="ajs_anonymous_id")
    browser = app.test_client()
    browser.set_cookie("ajs_anonymous_id", "visitor-1")
    answer = browser.get("/cart?ref=mail", headers={"X-User": "42", "User-Agent": "Browser/1.0"},
                         environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert answer.status_code == 200
    assert app.test_client().get("/cart", headers={"User-Agent": "Other/2"}).status_code == 200
    request = context(ip="203.0.113.7", userAgent="Browser/1.0",
                      page={"url": "http://localhost/cart?ref=mail", "path": "/cart"})
    assert arrived(collector, client, 3) == [
        {"type": "track", "userId": "42", "anonymousId": "visitor-1", "event": "Added To Cart", "context": request},
        {"type": "track", "userId": "friend-9", "anonymousId": "visitor-1", "event": "Gift Sent", "context": request},
        # The second request: no user, no cookie, no id invented ("Added To Cart" is refused).
        {"type": "track", "userId": "friend-9", "event": "Gift Sent", "context": context(
            ip="127.0.0.1", userAgent="Other/2", page={"url": "http://localhost/cart", "path": "/cart"})},
    ]
    assert client.stats()["invalid"] == 1


def test_concurrent_requests_keep_their_own_scope(collector: LocalCollector, client: cdp_logging.Analytics) -> None:
    app = make_app(user_id=lambda request: request.headers["X-User"])
    answers: list[int] = []

    def request(user: str) -> None:
        answers.append(app.test_client().get("/cart?together=1", headers={"X-User": user}).status_code)

    threads = [threading.Thread(target=request, args=(user,)) for user in ("u1", "u2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert answers == [200, 200]
    added = sorted(m["userId"] for m in arrived(collector, client, 4) if m["event"] == "Added To Cart")
    assert added == ["u1", "u2"]


def test_a_user_id_function_that_raises_fails_no_request(collector: LocalCollector, client: cdp_logging.Analytics) -> None:
    def broken(request: Any) -> str:
        raise KeyError("session")

    app = make_app(user_id=broken, anonymous_id_cookie="ajs_anonymous_id")
    browser = app.test_client()
    browser.set_cookie("ajs_anonymous_id", "visitor-3")
    assert browser.get("/cart").status_code == 200
    assert [m.get("userId") for m in arrived(collector, client, 2)] == [None, "friend-9"]
