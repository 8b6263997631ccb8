"""An answer is exactly the first complete answer: a second answer (or any bytes) arriving in
the same read never replaces it, a refusal is never counted delivered, and the connection the
extra bytes came on is closed. On the lean connection (httptools) and on the requests path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import cdp_logging
from support.helpers import WRITE_KEY
from support.raw_server import OK, RawServer

#: Each refusal followed, in the same write, by a 200 that must not count.
TWO_ANSWERS = {
    "503 then 200": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy" + OK,
    "400 then 200": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad" + OK,
    "304 then a body": b"HTTP/1.1 304 Not Modified\r\n\r\n" + OK[OK.index(b"\r\n\r\n") + 4:] + OK,
    "401 then garbage": b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n\x00\xffnot http at all",
}
STATUS = {"503 then 200": 503, "400 then 200": 400, "304 then a body": 304, "401 then garbage": 401}


class Errors:
    def __init__(self) -> None:
        self.errors: list[Any] = []

    def __call__(self, error: Any) -> None:
        self.errors.append(error)


@pytest.fixture(params=["lean", "requests"])
def route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RawServer, str]]:
    server = RawServer()
    if request.param == "lean":
        yield server, server.url
    else:
        # Through an HTTP proxy (the raw server itself), batches go through requests.
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, server.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        yield server, "http://cdp.example.test"
    server.stop()


@pytest.mark.parametrize("answers", list(TWO_ANSWERS))
def test_a_second_answer_in_the_same_read_never_replaces_the_first(
    answers: str, route: tuple[RawServer, str]
) -> None:
    server, host = route
    # The next request is answered 418: had the stale 200 answered it instead, it would pass.
    replies = [b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n", TWO_ANSWERS[answers]]
    server.answer = lambda head, body: replies.pop() if replies else OK
    errors = Errors()
    client = cdp_logging.Analytics(WRITE_KEY, host=host, max_retries=0, timeout=5.0, error_handler=errors)
    try:
        client.track(user_id="u1", event="E")
        assert client.flush(timeout=10) is False
        [error] = errors.errors
        assert isinstance(error, cdp_logging.DeliveryError) and error.status == STATUS[answers]
        stats = client.stats()
        assert (stats["delivered"], stats["failed"]) == (0, 1)
        client.track(user_id="u1", event="E2")
        assert client.flush(timeout=10) is False
        assert [error.status for error in errors.errors] == [STATUS[answers], 418]
        assert client.stats()["delivered"] == 0 and len(server.requests) == 2
        if host == server.url:
            # The lean connection closes the connection the extra bytes came on.
            assert server.connections == 2
    finally:
        client.close(timeout=5)
