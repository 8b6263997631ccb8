"""What the tests of the logging fronts, the scope and the middleware share: a LocalCollector,
a client delivering to it, and the messages that arrived, without the fields that differ on
every run (messageId, timestamp) so that a test compares every other field."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import cdp_logging
from cdp_logging.messages import LIBRARY
from cdp_logging.testing import LocalCollector

from support.helpers import DEADLINE, WRITE_KEY, holds_for


@pytest.fixture
def collector() -> Iterator[LocalCollector]:
    with LocalCollector(write_key=WRITE_KEY) as running:
        yield running


@pytest.fixture
def client(collector: LocalCollector) -> Iterator[cdp_logging.Analytics]:
    analytics = cdp_logging.Analytics(write_key=WRITE_KEY, host=collector.url, flush_interval=0.05)
    yield analytics
    analytics.close_and_flush(timeout=DEADLINE)


@pytest.fixture
def cdp_logger(client: cdp_logging.Analytics) -> Iterator[logging.Logger]:
    """A logger whose only handler is a CDPHandler sending through ``client``."""
    handler = cdp_logging.CDPHandler(client=client)
    logger = logging.getLogger(f"fronts.{id(handler):x}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)


def arrived(collector: LocalCollector, client: cdp_logging.Analytics, count: int) -> list[dict[str, Any]]:
    """Exactly ``count`` messages delivered (none lost, none more: a second flush adds none),
    each without messageId and timestamp, in the order sent."""
    assert client.flush(timeout=DEADLINE)
    messages = collector.wait_for(count, timeout=DEADLINE)
    assert holds_for(lambda: len(collector.messages) == count, 0.1), collector.messages
    assert len({message["messageId"] for message in messages}) == count
    return [{key: value for key, value in message.items() if key not in ("messageId", "timestamp")}
            for message in messages]


def context(**fields: Any) -> dict[str, Any]:
    """A message's context: the library's entry and ``fields``."""
    return {"library": dict(LIBRARY), **fields}
