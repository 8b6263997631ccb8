"""loguru as a front, real loguru: cdp_logging.loguru.CDPSink, CDPHandler added to loguru directly,
and loguru's recipe that propagates to the standard library; checked at the local collector."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

loguru = pytest.importorskip("loguru")

import cdp_logging  # noqa: E402 - after the skip
from cdp_logging.loguru import CDPSink  # noqa: E402
from cdp_logging.testing import LocalCollector  # noqa: E402

from support.fronts import arrived, client, collector, context  # noqa: E402, F401 - fixtures
from support.helpers import WRITE_KEY  # noqa: E402

logger = loguru.logger


class PropagateHandler(logging.Handler):
    """loguru's documented recipe: its messages handed on to the standard library's loggers."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


@pytest.fixture
def sink_added(client: cdp_logging.Analytics) -> Iterator[Callable[[str], None]]:
    """Adds the sink a test names to loguru (and only it); removes it afterwards."""
    logger.remove()
    added: list[int] = []
    stdlib = logging.getLogger(__name__)
    handler = cdp_logging.CDPHandler(client=client)

    def add(kind: str) -> None:
        if kind == "sink":
            added.append(logger.add(CDPSink(client=client), level="INFO"))
        elif kind == "handler":
            added.append(logger.add(cdp_logging.CDPHandler(client=client), level="INFO"))
        else:  # loguru -> PropagateHandler -> the standard library's logger -> CDPHandler
            stdlib.addHandler(handler)
            stdlib.setLevel(logging.INFO)
            added.append(logger.add(PropagateHandler(), format="{message}", level="INFO"))

    yield add
    for sink_id in added:
        logger.remove(sink_id)
    stdlib.removeHandler(handler)


def log_calls() -> None:
    with logger.contextualize(user_id="ctx-user", context={"ip": "203.0.113.7"}):
        logger.bind(track={"event": "Added To Cart", "properties": {"sku": "s1"}}).info("added to cart")
        logger.info("signed up {plan}", plan="pro", identify={"user_id": "7", "traits": {"plan": "pro"}})
        logger.bind(user_id="bound-user").info("viewed", page={"name": "Cart", "context": {"locale": "fr"}})
        logger.info("an ordinary line", order_id=3)
        logger.bind(event="Order Completed").info("an event key alone makes no call")


EXPECTED: list[dict[str, Any]] = [
    {"type": "track", "userId": "ctx-user", "event": "Added To Cart", "properties": {"sku": "s1"},
     "context": context(ip="203.0.113.7")},
    {"type": "identify", "userId": "7", "traits": {"plan": "pro"}, "context": context(ip="203.0.113.7")},
    {"type": "page", "userId": "bound-user", "name": "Cart", "context": context(ip="203.0.113.7", locale="fr")},
]


@pytest.mark.parametrize("kind", ["sink", "handler", "propagate"])
def test_bound_and_keyword_calls_arrive_with_bound_and_contextualized_fields(
        collector: LocalCollector, client: cdp_logging.Analytics, sink_added: Callable[[str], None],
        kind: str) -> None:
    sink_added(kind)
    log_calls()
    assert arrived(collector, client, 3) == EXPECTED


def test_the_scope_fills_what_loguru_leaves_unset(
        collector: LocalCollector, client: cdp_logging.Analytics, sink_added: Callable[[str], None]) -> None:
    sink_added("sink")
    with cdp_logging.scope(user_id="scope-user", anonymous_id="scope-visitor"):
        logger.bind(user_id="bound-user").info("a", track={"event": "A"})
        logger.info("b", track={"event": "B"})
    logger.info("c", track={"event": "C", "anonymous_id": "after"})
    assert arrived(collector, client, 3) == [
        {"type": "track", "userId": "bound-user", "anonymousId": "scope-visitor", "event": "A", "context": context()},
        {"type": "track", "userId": "scope-user", "anonymousId": "scope-visitor", "event": "B", "context": context()},
        {"type": "track", "anonymousId": "after", "event": "C", "context": context()},
    ]


def test_a_bad_payload_is_counted_and_reported_naming_the_line() -> None:
    errors: list[cdp_logging.CDPError] = []
    analytics = cdp_logging.Analytics(write_key="k", host="http://127.0.0.1:9", error_handler=errors.append,
                                      enable=False)
    logger.remove()
    sink_id = logger.add(CDPSink(client=analytics))
    try:
        logger.info("bad", track=["not", "a", "dict"])
        logger.info("no id", track={"event": "A"})
    finally:
        logger.remove(sink_id)
    assert analytics.stats()["invalid"] == 2
    assert "extra['track'] must be a dict of the call's fields, got list" in str(errors[0])
    assert "user_id or anonymous_id is required" in str(errors[1])
    assert all("test_loguru.py:" in str(error) for error in errors)
    analytics.close_and_flush(timeout=1)


def test_a_sink_that_made_its_client_delivers_when_loguru_removes_it(collector: LocalCollector) -> None:
    logger.remove()
    sink = CDPSink(write_key=WRITE_KEY, host=collector.url, flush_interval=60)
    sink_id = logger.add(sink)
    logger.info("added", track={"user_id": "42", "event": "Added"})
    logger.remove(sink_id)   # loguru calls sink.stop(): the queue is delivered, the client closed
    assert [message["event"] for message in collector.wait_for(1)] == ["Added"]
    assert sink.client.closed
