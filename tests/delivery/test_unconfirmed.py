"""A lost answer is "unconfirmed", not "failed": the request went out in full and the
connection was cut (or the answer timed out) before its answer came, so the API may have the
events. The report says so, and ``stats()`` counts them apart from the events known not to
have arrived (a refused connection, a 400)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import cdp_logging
from cdp_logging.errors import UNCONFIRMED
from support.helpers import WRITE_KEY
from support.raw_server import RawServer
from support.reliability import free_port

FAST = {"initial_backoff": 0.01, "max_backoff": 0.02, "flush_interval": 60, "timeout": 2.0}
SERVICE_UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture
def cutting() -> Iterator[RawServer]:
    """Reads every request in full, then closes the connection without answering."""
    server = RawServer(answer=lambda head, body: None)
    yield server
    server.stop()


def sent_ids(server: RawServer) -> list[list[str]]:
    return [[m["messageId"] for m in json.loads(body)["batch"]] for _, body in server.requests]


def test_a_lost_answer_is_reported_unconfirmed_with_the_same_message_ids(cutting: RawServer) -> None:
    errors: list[cdp_logging.CDPError] = []
    client = cdp_logging.Analytics(WRITE_KEY, host=cutting.url, max_retries=2, error_handler=errors.append, **FAST)
    ids = [client.track(user_id="u1", event="Lost answer") for _ in range(5)]

    assert client.flush(timeout=10) is False

    # One batch, or two when the worker took the first event alone (it goes at once).
    assert 1 <= len(errors) <= 2
    assert [m for error in errors for m in error.message_ids] == ids
    for error in errors:
        assert isinstance(error, cdp_logging.DeliveryError) and error.unconfirmed and error.attempts == 3
        noun = "event" if error.count == 1 else "events"
        assert str(error).startswith(f"{error.count} {noun} {UNCONFIRMED}")
        assert "not delivered" not in str(error)
    stats = client.stats()
    assert (stats["delivered"], stats["failed"], stats["unconfirmed"]) == (0, 0, 5)
    # Every attempt the server received carried the same messageIds: the API can tell copies.
    assert sent_ids(cutting) == [error.message_ids for error in errors for _ in range(3)]
    client.close(timeout=1)


def test_a_refused_connection_is_failed_not_unconfirmed() -> None:
    errors: list[cdp_logging.CDPError] = []
    client = cdp_logging.Analytics(WRITE_KEY, host=f"http://127.0.0.1:{free_port()}", max_retries=1,
                                   error_handler=errors.append, **FAST)
    client.track(user_id="u1", event="Refused")

    assert client.flush(timeout=10) is False

    [error] = errors
    assert isinstance(error, cdp_logging.DeliveryError) and not error.unconfirmed
    assert "1 event not delivered after 2 attempts" in str(error)
    stats = client.stats()
    assert (stats["failed"], stats["unconfirmed"]) == (1, 0)
    client.close(timeout=1)


@pytest.mark.parametrize(("later", "unconfirmed"), [(SERVICE_UNAVAILABLE, True), (BAD_REQUEST, False)],
                         ids=["then 503: still unconfirmed", "then 400: refused for good"])
def test_a_lost_answer_followed_by_another_answer(later: bytes, unconfirmed: bool) -> None:
    # The first attempt's answer is lost: the API may have the events. A 503 afterwards says
    # nothing of that attempt; a 400 says the batch is refused as it is, whoever sent it.
    answers = iter([None])
    server = RawServer(answer=lambda head, body: next(answers, later))
    try:
        errors: list[cdp_logging.CDPError] = []
        client = cdp_logging.Analytics(WRITE_KEY, host=server.url, max_retries=1, error_handler=errors.append, **FAST)
        client.track(user_id="u1", event="Mixed")

        assert client.flush(timeout=10) is False

        [error] = errors
        assert isinstance(error, cdp_logging.DeliveryError) and error.unconfirmed is unconfirmed
        stats = client.stats()
        assert (stats["failed"], stats["unconfirmed"]) == ((0, 1) if unconfirmed else (1, 0))
        client.close(timeout=1)
    finally:
        server.stop()
