"""flush_after and flush_all_clients: delivery at the end of each unit of work (a Lambda
invocation), against a LocalCollector over real HTTP on 127.0.0.1.

Clients here batch every 60 s, so an event that arrives before a call returns was flushed.
"""

from __future__ import annotations

import asyncio
import socket
import time
import weakref
from collections.abc import Callable, Iterator

import pytest

import cdp_logging
from cdp_logging import registry
from cdp_logging.testing import LocalCollector

WRITE_KEY = "test-write-key"


@pytest.fixture(autouse=True)
def only_this_tests_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """flush_all_clients acts on every live client: let it see this test's alone, not those
    other test modules left open."""
    monkeypatch.setattr(registry, "live_clients", weakref.WeakSet())


@pytest.fixture
def collector() -> Iterator[LocalCollector]:
    with LocalCollector(write_key=WRITE_KEY) as collector:
        yield collector


@pytest.fixture
def make_client(collector: LocalCollector) -> Iterator[Callable[..., cdp_logging.Analytics]]:
    clients: list[cdp_logging.Analytics] = []

    def make(**options: object) -> cdp_logging.Analytics:
        options = {"host": collector.url, "flush_interval": 60.0, **options}
        client = cdp_logging.Analytics(WRITE_KEY, **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close_and_flush(timeout=2.0)


def events(collector: LocalCollector) -> list[str]:
    return [message["event"] for message in collector.messages]


def unreachable_host() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_the_decorator_delivers_every_clients_events_before_the_function_returns(
    collector, make_client
):
    first, second = make_client(), make_client()

    @cdp_logging.flush_after
    def handler(number: int) -> str:
        for client in (first, second):
            client.track(user_id="42", event=f"{number}a")
            client.track(user_id="42", event=f"{number}b")
        return "done"

    assert handler(1) == "done"
    assert sorted(events(collector)) == ["1a", "1a", "1b", "1b"]
    # The clients stay open for the next invocation.
    assert not first.closed and not second.closed
    handler(2)
    assert sorted(events(collector))[4:] == ["2a", "2a", "2b", "2b"]


def test_the_decorator_delivers_when_the_function_raises(collector, make_client):
    client = make_client()

    @cdp_logging.flush_after(timeout=5.0)
    def handler() -> None:
        client.track(user_id="42", event="Started")
        client.track(user_id="42", event="Failed")
        raise KeyError("order")

    with pytest.raises(KeyError):
        handler()
    assert events(collector) == ["Started", "Failed"]


def test_the_decorator_keeps_the_functions_name_and_docstring():
    @cdp_logging.flush_after(timeout=1.0)
    def handler() -> None:
        """Handle one invocation."""

    assert handler.__name__ == "handler" and handler.__doc__ == "Handle one invocation."


def test_an_async_function_is_awaited_then_flushed(collector, make_client):
    client = make_client()

    @cdp_logging.flush_after
    async def handler() -> str:
        await asyncio.sleep(0)
        client.track(user_id="42", event="One")
        client.track(user_id="42", event="Two")
        return "done"

    assert asyncio.run(handler()) == "done"
    assert events(collector) == ["One", "Two"]


def test_the_block_form_says_whether_everything_was_delivered(collector, make_client):
    client = make_client()
    with cdp_logging.flush_after() as flushed:
        assert flushed.delivered is None
        client.track(user_id="42", event="One")
        client.track(user_id="42", event="Two")
    assert flushed.delivered is True
    assert events(collector) == ["One", "Two"]


def test_a_delivery_failure_is_reported_and_not_raised(make_client):
    reported: list[cdp_logging.CDPError] = []
    client = make_client(host=unreachable_host(), max_retries=0, error_handler=reported.append)
    with cdp_logging.flush_after(timeout=5.0) as flushed:
        client.track(user_id="42", event="Lost")
    assert flushed.delivered is False
    assert [type(error) for error in reported] == [cdp_logging.DeliveryError]


def test_the_timeout_bounds_the_wait(collector, make_client):
    # Unbounded, the flush would wait for the answer, 10 s away.
    client = make_client(timeout=10.0, max_retries=0, shutdown_timeout=10.0)
    collector.set_delay(10.0)
    started = time.monotonic()
    with cdp_logging.flush_after(timeout=0.2) as flushed:
        client.track(user_id="42", event="Slow")
    assert flushed.delivered is False
    # Generous, for a loaded machine: that the wait is bounded is what matters here.
    assert time.monotonic() - started < 3.0
    collector.stop()  # drops the held request, so the client closes at once


def test_flush_all_clients_skips_closed_clients_and_is_true_when_nothing_is_queued(
    collector, make_client
):
    open_client, closed_client = make_client(), make_client()
    closed_client.close_and_flush()
    assert cdp_logging.flush_all_clients(timeout=2.0) is True
    open_client.track(user_id="42", event="One")
    open_client.track(user_id="42", event="Two")
    assert cdp_logging.flush_all_clients() is True
    assert events(collector) == ["One", "Two"]
