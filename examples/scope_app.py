"""Who the events are about, said once per request: an ASGI app (Starlette; FastAPI is the same)
with cdp_logging's ScopeMiddleware, whose handlers log events without any user id, and a job
decorated with cdp_logging.scope.

Run it with CDP_WRITE_KEY and CDP_HOST set (``cdp-logging collect`` starts a local collector);
the requests are made by Starlette's TestClient, in process.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import cdp_logging
from cdp_logging.integrations.asgi import ScopeMiddleware

log = logging.getLogger("shop")


async def add_to_cart(request: Request) -> PlainTextResponse:
    # No user id here: the request's scope fills userId, anonymousId, ip, userAgent and page.
    log.info("added to cart", extra={"track": {"event": "Added To Cart", "properties": {"sku": "shoe-42"}}})
    return PlainTextResponse("added")


def session_user(scope: dict) -> str | None:
    """The app's own way to find the signed-in user (here: a header set by a gateway)."""
    for name, value in scope["headers"]:
        if name == b"x-user-id":
            return value.decode()
    return None


app = Starlette(
    routes=[Route("/cart", add_to_cart, methods=["POST"])],
    middleware=[Middleware(ScopeMiddleware, user_id=session_user, anonymous_id_cookie="ajs_anonymous_id")],
)


@cdp_logging.scope(user_id="system:nightly-report")
def nightly_report() -> None:
    log.info("report sent", extra={"track": {"event": "Report Sent"}})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, handlers=[logging.StreamHandler(), cdp_logging.CDPHandler()])
    with TestClient(app, base_url="https://shop.example") as browser:
        browser.cookies.set("ajs_anonymous_id", "visitor-7")
        print(browser.post("/cart", headers={"X-User-Id": "019mr8mf4r"}).text)
    nightly_report()
