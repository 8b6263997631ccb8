"""cdp_logging.delivery.batcher: when batches go out, how big they are, and the bounded queue."""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import cdp_logging
from cdp_logging.delivery.batcher import Batcher
from cdp_logging.delivery.items import BODY_OVERHEAD, item_bytes
from cdp_logging.constants import MAX_BATCH_BYTES
from support.helpers import (
    DEADLINE,
    batch_requests,
    holds_for,
    raw_body,
    received_batches,
    received_messages,
    wait_for_messages,
    wait_until,
)

Client = Callable[..., cdp_logging.Analytics]


class StuckServer:
    """A /v1/batch handler that holds every request until released, noting arrivals."""

    def __init__(self, server: HTTPServer, released: threading.Event) -> None:
        self.server = server
        self.arrived = threading.Event()
        self.released = released

    def __call__(self, request: Request) -> Response:
        self.arrived.set()
        self.released.wait(DEADLINE)
        return Response("{}", status=200, content_type="application/json")


@pytest.fixture
def stuck(httpserver: HTTPServer, server_release: threading.Event) -> StuckServer:
    handler = StuckServer(httpserver, server_release)
    httpserver.expect_request("/v1/batch").respond_with_handler(handler)
    return handler


def sizes(server: HTTPServer) -> list[int]:
    return [len(batch) for batch in received_batches(server)]


# -- the triggers ----------------------------------------------------------------------------


def test_first_event_is_sent_at_once(api: HTTPServer, make_client: Client) -> None:
    client = make_client(flush_interval=60)
    message_id = client.track(user_id="u1", event="First")
    assert [m["messageId"] for m in wait_for_messages(api, 1)] == [message_id]
    assert sizes(api) == [1]


def test_a_batch_goes_out_every_max_events_in_batch_events(api: HTTPServer, make_client: Client) -> None:
    client = make_client(flush_interval=60)
    client.track(user_id="u1", event="First")
    wait_for_messages(api, 1)
    for i in range(19):
        client.track(user_id="u1", event=f"E{i}")
    assert holds_for(lambda: sizes(api) == [1], 0.3), "19 events must wait for the 20th"
    client.track(user_id="u1", event="E19")
    wait_for_messages(api, 21)
    # Traffic the worker keeps up with: each batch goes out as its 20th event is queued.
    for total in (41, 61):
        for i in range(20):
            client.track(user_id="u1", event=f"F{i}")
        wait_for_messages(api, total)
    assert sizes(api) == [1, 20, 20, 20]


def test_max_events_in_batch_sets_the_batch_size(api: HTTPServer, make_client: Client) -> None:
    client = make_client(flush_interval=60, max_events_in_batch=5)
    client.track(user_id="u1", event="First")
    wait_for_messages(api, 1)
    for total in (6, 11):
        for i in range(5):
            client.track(user_id="u1", event=f"E{i}")
        wait_for_messages(api, total)
    assert sizes(api) == [1, 5, 5]


def test_max_events_in_batch_1_sends_each_call_at_once(api: HTTPServer, make_client: Client) -> None:
    client = make_client(flush_interval=60, max_events_in_batch=1)
    for i in range(10):
        client.track(user_id="u1", event=f"E{i}")
        wait_for_messages(api, i + 1)
    assert sizes(api) == [1] * 10


def test_a_batch_goes_out_every_flush_interval(httpserver: HTTPServer, make_client: Client) -> None:
    arrivals: list[float] = []

    def accept(request: Request) -> Response:
        arrivals.append(time.monotonic())
        return Response("{}", status=200, content_type="application/json")

    httpserver.expect_request("/v1/batch").respond_with_handler(accept)
    client = make_client(flush_interval=0.2)
    client.track(user_id="u1", event="First")
    wait_for_messages(httpserver, 1)
    for i in range(3):
        client.track(user_id="u1", event=f"E{i}")
    wait_for_messages(httpserver, 4, timeout=DEADLINE)
    assert arrivals[1] - arrivals[0] >= 0.18, "the interval batch came before flush_interval passed"
    assert sum(sizes(httpserver)[1:]) == 3 and max(sizes(httpserver)) < 20


def test_flush_sends_what_is_queued_at_once(api: HTTPServer, make_client: Client) -> None:
    client = make_client(flush_interval=60)
    client.track(user_id="u1", event="First")
    wait_for_messages(api, 1)
    ids = [client.track(user_id="u1", event=f"E{i}") for i in range(5)]
    assert client.flush(timeout=DEADLINE) is True
    assert [m["messageId"] for m in received_messages(api)][1:] == ids
    assert sizes(api) == [1, 5]


def test_flush_with_nothing_queued_returns_true_at_once(api: HTTPServer, make_client: Client) -> None:
    client = make_client()
    assert client.flush(timeout=DEADLINE) is True
    assert batch_requests(api) == []


def test_flush_returns_false_when_its_timeout_passes_first(stuck: StuckServer, make_client: Client) -> None:
    client = make_client(flush_interval=60)
    client.track(user_id="u1", event="E")
    started = time.monotonic()
    assert client.flush(timeout=0.3) is False
    assert time.monotonic() - started < DEADLINE / 2
    stuck.released.set()
    assert client.flush(timeout=DEADLINE) is True


# -- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("gzip", [False, True])
def test_no_request_body_exceeds_500_kb(api: HTTPServer, make_client: Client, gzip: bool) -> None:
    client = make_client(flush_interval=60, max_events_in_batch=100, gzip=gzip)
    client.track(user_id="u1", event="First")
    wait_for_messages(api, 1)
    blob = "x" * 30_000
    ids = [client.track(user_id="u1", event="Big", properties={"i": i, "blob": blob}) for i in range(60)]
    assert client.flush(timeout=DEADLINE) is True
    bodies = [raw_body(request) for request in batch_requests(api)][1:]
    assert all(len(body) <= MAX_BATCH_BYTES == 500_000 for body in bodies), [len(b) for b in bodies]
    # Requests sent side by side may arrive in any order; each holds a run of the calls.
    assert sorted(m["messageId"] for body in bodies for m in json.loads(body)["batch"]) == sorted(ids)
    assert sorted(len(body) > 400_000 for body in bodies).count(False) <= 1, "batches were split more than needed"


def test_a_backlog_goes_out_in_batches_of_at_most_max_events_in_batch(
    stuck: StuckServer, make_client: Client,
) -> None:
    # max_events_in_batch is a cap: events that queued up while a request was in flight go
    # out in full batches, and the rest at once, not a flush interval later.
    client = make_client(flush_interval=60, max_events_in_batch=7)
    first = client.track(user_id="u1", event="First")
    assert stuck.arrived.wait(DEADLINE), "the first event was not sent"
    ids = [client.track(user_id="u1", event=f"E{i}") for i in range(30)]
    stuck.released.set()
    wait_for_messages(stuck.server, 31)
    # Requests side by side take what is queued as they start: none over the cap.
    assert max(sizes(stuck.server)) == 7 and sum(sizes(stuck.server)) == 31
    assert sorted(m["messageId"] for m in received_messages(stuck.server)) == sorted([first, *ids])


def test_a_retried_backlog_batch_keeps_its_events_and_message_ids(
    httpserver: HTTPServer, server_release: threading.Event, make_client: Client,
) -> None:
    refused: list[list[str]] = []
    arrived = threading.Event()

    def answer(request: Request) -> Response:
        batch = json.loads(raw_body(request))["batch"]
        if len(batch) == 1:
            arrived.set()
            server_release.wait(DEADLINE)  # the first event's request: the backlog builds up
        elif not refused:
            refused.append([m["messageId"] for m in batch])
            return Response("{}", status=503, content_type="application/json")
        return Response("{}", status=200, content_type="application/json")

    httpserver.expect_request("/v1/batch").respond_with_handler(answer)
    client = make_client(flush_interval=60, max_events_in_batch=5, initial_backoff=0.05, max_backoff=0.2)
    client.track(user_id="u1", event="First")
    assert arrived.wait(DEADLINE), "the first event was not sent"
    ids = [client.track(user_id="u1", event=f"E{i}") for i in range(40)]
    server_release.set()
    assert client.flush(timeout=DEADLINE) is True
    batches = [[m["messageId"] for m in batch] for batch in received_batches(httpserver)]
    # Every request within the cap; the refused one (503) was sent again with the same ids.
    assert all(len(batch) <= 5 for batch in batches)
    assert sum(map(len, batches)) == 1 + 40 + 5
    assert batches.count(refused[0]) == 2
    assert sorted({i for batch in batches[1:] for i in batch}) == sorted(ids)
    assert client.stats()["retries"] == 1


class BodyCounter:
    """A /v1/batch handler that holds the first request until released, then answers at once,
    keeping each body's size and event count (counted as it arrives, so waiting for a total
    does not parse every body again)."""

    def __init__(self, released: threading.Event) -> None:
        self.released = released
        self.arrived = threading.Event()
        self.bodies: list[tuple[int, int]] = []

    def __call__(self, request: Request) -> Response:
        if not self.arrived.is_set():
            self.arrived.set()
            self.released.wait(DEADLINE)
        body = raw_body(request)
        self.bodies.append((len(body), len(json.loads(body)["batch"])))
        return Response("{}", status=200, content_type="application/json")

    def events(self) -> int:
        return sum(count for _, count in self.bodies)


@pytest.mark.parametrize(("events", "size", "batch"), [(6_000, 1_000, 5000), (3_000, 300, 20)])
def test_a_backlog_goes_out_in_back_to_back_full_batches(
    httpserver: HTTPServer, server_release: threading.Event, make_client: Client, events: int, size: int,
    batch: int,
) -> None:
    # A backlog goes out in batches full by count (max_events_in_batch) or by size (the
    # 500 KB body limit), never fuller, never waiting for the flush interval.
    counter = BodyCounter(server_release)
    httpserver.expect_request("/v1/batch").respond_with_handler(counter)
    client = make_client(flush_interval=60, max_events_in_batch=batch, max_queue_size=events + 1)
    client.track(user_id="u1", event="First")
    assert counter.arrived.wait(DEADLINE), "the first event was not sent"
    pad = "x" * (size - len(cdp_logging.messages.encode_message(
        cdp_logging.messages.build_message("track", user_id="u1", event="Backlog", properties={"i": 0, "pad": ""}))))
    ids = [client.track(user_id="u1", event="Backlog", properties={"i": i % 10, "pad": pad})
           for i in range(events)]
    assert client.stats()["queued"] == events + 1
    server_release.set()
    per_body = min(batch, MAX_BATCH_BYTES // (size + 1))
    # Everything arrives well before the 60 s interval, the remainder included.
    wait_until(lambda: counter.events() == 1 + events, timeout=DEADLINE,
               message=lambda: f"the backlog at the server (got {counter.events() - 1} of {events})")
    counts = sorted(count for _, count in counter.bodies[1:])
    # Full batches, but for what a worker found queued when it caught up with the calls.
    assert counts[-1] == per_body and len(counts) <= -(-events // per_body) + 2, counts
    assert all(length <= MAX_BATCH_BYTES for length, _ in counter.bodies)
    assert client.flush(timeout=DEADLINE) is True
    assert sorted(m["messageId"] for m in received_messages(httpserver)[1:]) == sorted(ids)


# -- the caller's side -----------------------------------------------------------------------


def test_the_calling_thread_never_touches_the_network(stuck: StuckServer, make_client: Client) -> None:
    threads: list[threading.Thread] = []
    client = make_client(flush_interval=60)
    started = time.monotonic()
    for i in range(50):
        client.track(user_id="u1", event=f"E{i}", callback=lambda error, batch: threads.append(threading.current_thread()))
    assert time.monotonic() - started < 2.0, "calls waited for a server that does not answer"
    assert stuck.arrived.wait(DEADLINE), "the first event was not sent"
    stuck.released.set()
    assert client.flush(timeout=DEADLINE) is True
    wait_until(lambda: len(threads) == 50, message="all callbacks")
    assert threading.current_thread() not in threads
    assert all(thread.name.startswith("cdp-logging-") for thread in threads)


def test_a_full_queue_drops_counts_and_reports_without_blocking(stuck: StuckServer, make_client: Client) -> None:
    errors: list[cdp_logging.CDPError] = []
    dropped_callbacks: list[Any] = []
    client = make_client(flush_interval=60, max_queue_size=5, error_handler=errors.append)
    client.track(user_id="u1", event="in flight")
    assert stuck.arrived.wait(DEADLINE)
    kept = [client.track(user_id="u1", event=f"kept {i}") for i in range(5)]
    started = time.monotonic()
    lost = [client.track(user_id="u1", event=f"lost {i}", callback=lambda e, b: dropped_callbacks.append((e, b)))
            for i in range(2)]
    assert time.monotonic() - started < 2.0, "a full queue blocked the caller"
    assert [type(e) for e in errors] == [cdp_logging.EventDroppedError] * 2
    assert [e.message_id for e in errors] == lost
    assert all("queue full" in str(e) for e in errors)
    assert [(type(e), b) for e, b in dropped_callbacks] == [(cdp_logging.EventDroppedError, [])] * 2
    stats = client.stats()
    assert (stats["dropped"], stats["queued"]) == (2, 6)
    stuck.released.set()
    assert client.flush(timeout=DEADLINE) is True
    delivered = [m["messageId"] for m in received_messages(stuck.server)]
    assert delivered[1:] == kept and not set(lost) & set(delivered)


# -- the Batcher on its own ------------------------------------------------------------------


class Recorded:
    """A deliver function that records each batch (and can be told to hold or fail)."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.entered = threading.Event()
        self.hold = threading.Event()
        self.hold.set()
        self.fail_next = False

    def __call__(self, items: list[Any]) -> None:
        self.entered.set()
        self.hold.wait(DEADLINE)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("deliver failed")
        self.batches.append([item_bytes(item) for item in items])


def event(index: int, size: int = 50) -> bytes:
    text = json.dumps({"i": index, "pad": ""}).encode()
    return json.dumps({"i": index, "pad": "p" * (size - len(text))}).encode()


def test_batcher_fills_each_body_up_to_its_byte_budget_in_order() -> None:
    deliver = Recorded()
    batcher = Batcher(deliver, max_events_in_batch=100, flush_interval=60, max_batch_bytes=1000)
    try:
        items = [event(i, 300) for i in range(10)]
        for item in items:
            assert batcher.put(item, len(item)) is None
        assert batcher.flush(timeout=DEADLINE) is True
    finally:
        batcher.close(timeout=DEADLINE)
    assert [item for batch in deliver.batches for item in batch] == items
    for batch in deliver.batches:
        assert sum(len(item) + 1 for item in batch) <= 1000 - BODY_OVERHEAD


def test_batcher_worker_survives_a_deliver_that_raises(caplog: pytest.LogCaptureFixture) -> None:
    deliver = Recorded()
    deliver.fail_next = True
    batcher = Batcher(deliver, flush_interval=60)
    try:
        batcher.put(event(1), 50)
        wait_until(lambda: not deliver.fail_next, message="the failing delivery")
        batcher.put(event(2), 50)
        assert batcher.flush(timeout=DEADLINE) is True
    finally:
        batcher.close(timeout=DEADLINE)
    assert deliver.batches == [[event(2)]]
    assert "unexpected error" in caplog.text


def test_batcher_close_hands_what_it_could_not_deliver_to_on_abandoned() -> None:
    deliver = Recorded()
    deliver.hold.clear()
    abandoned: list[tuple[list[Any], str]] = []
    batcher = Batcher(deliver, flush_interval=60, on_abandoned=lambda items, why: abandoned.append((items, why)))
    try:
        batcher.put(event(0), 50)
        assert deliver.entered.wait(DEADLINE), "the first batch was not taken"
        for i in range(1, 4):
            batcher.put(event(i), 50)
        started = time.monotonic()
        assert batcher.close(timeout=0.3) is False
        assert time.monotonic() - started < DEADLINE / 2
    finally:
        deliver.hold.set()
    # First what was still queued, then the batch whose request had not finished.
    assert [item_bytes(item) for item in abandoned[0][0]] == [event(i) for i in range(1, 4)]
    assert "close timeout" in abandoned[0][1]
    assert [item_bytes(item) for item in abandoned[1][0]] == [event(0)]
    assert batcher.put(event(9), 50) == "client is closed"
    batcher.close(timeout=0.3)
    assert len(abandoned) == 2, "closing twice must not report the same events twice"


def test_batches_with_and_without_callbacks_keep_order_and_the_byte_budget() -> None:
    # A backlog of plain events and events with callbacks, over the body's budget: taken a
    # body at a time, in order, within budget, nothing lost.
    deliver = Recorded()
    batcher = Batcher(deliver, max_events_in_batch=4, flush_interval=60, max_batch_bytes=700)
    try:
        items: list[Any] = []
        for i in range(13):
            data = event(i, 250 if i % 5 == 0 else 40)
            items.append((data, print) if i % 3 == 0 else data)
        for item in items:
            assert batcher.put(item, len(item_bytes(item))) is None
        assert batcher.flush(timeout=DEADLINE) is True
    finally:
        batcher.close(timeout=DEADLINE)
    assert [item for batch in deliver.batches for item in batch] == [item_bytes(item) for item in items]
    assert all(len(batch) <= 4 for batch in deliver.batches), "a batch went over max_events_in_batch"
    for batch in deliver.batches:
        assert batch and sum(len(item) + 1 for item in batch) <= 700 - BODY_OVERHEAD
    assert batcher.queued_bytes == 0
