"""Retries, 413 splitting and overload, against a real HTTP server on 127.0.0.1.

Every test checks at the server that each messageId it accepted arrived exactly once.
"""

from __future__ import annotations

import email.utils
import gc
import logging
import threading
import time
import tracemalloc
from typing import Any
from collections.abc import Callable, Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cdp_logging import Analytics, CDPError, CDPHandler, ConnectError, DeliveryError, EventDroppedError
from cdp_logging.delivery.transport import Response as TransportResponse
from cdp_logging.delivery.retry import RetryPolicy, retry_after_seconds
from support.reliability import (
    BATCH_PATH,
    FAST_RETRIES,
    WRITE_KEY,
    Errors,
    Gate,
    Recorder,
    batch_of,
    free_port,
    start_api,
    stop_api,
    url,
)
from support.helpers import wait_until


@pytest.fixture
def api() -> Iterator[HTTPServer]:
    server = start_api()
    yield server
    stop_api(server)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def errors() -> Errors:
    return Errors()


@pytest.fixture
def make_client(errors: Errors) -> Iterator[Callable[..., Analytics]]:
    """Clients with small retry waits and the test's error_handler; closed at the end."""
    made: list[Analytics] = []

    def make(host: str, **options: Any) -> Analytics:
        options = {"error_handler": errors, **FAST_RETRIES, **options}
        client = Analytics(WRITE_KEY, host=host, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=0)


def track(client: Analytics, count: int, prefix: str = "event", **fields: Any) -> list[str]:
    return [
        client.track(user_id="u1", event="Reliability", message_id=f"{prefix}-{i}", **fields)
        for i in range(count)
    ]


def answer(status: int, **headers: str) -> Callable[[Request], Response]:
    return lambda request: Response("{}", status=status, headers=headers)


def ids_of_requests(server: HTTPServer, status: int) -> list[list[str]]:
    """The messageIds of each request the server answered with ``status``."""
    return [
        [m["messageId"] for m in batch_of(request)]
        for request, response in server.log
        if response.status_code == status
    ]


# -- retries ------------------------------------------------------------------------------


def test_503s_are_retried_with_the_same_messageids_and_each_event_arrives_once(
    api: HTTPServer, recorder: Recorder, make_client: Callable[..., Analytics]
) -> None:
    for _ in range(3):
        api.expect_oneshot_request(BATCH_PATH, method="POST").respond_with_data("busy", status=503)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    client = make_client(url(api), max_events_in_batch=10)

    sent = track(client, 50)

    assert client.flush(timeout=15)
    recorder.assert_each_once(sent)
    refused = ids_of_requests(api, 503)
    assert len(refused) == 3
    # Batches may be in flight side by side: each refused one went again, the same events.
    assert all(ids in [request["ids"] for request in recorder.requests] for ids in refused), \
        "each retry resends the same batch"
    stats = client.stats()
    assert (stats["delivered"], stats["failed"], stats["retries"]) == (50, 0, 3)


def test_429_with_retry_after_waits_the_seconds_the_server_asks(
    api: HTTPServer, recorder: Recorder, make_client: Callable[..., Analytics]
) -> None:
    arrivals: list[float] = []

    def too_many(request: Request) -> Response:
        arrivals.append(time.monotonic())
        return Response("slow down", status=429, headers={"Retry-After": "1"})

    for _ in range(2):
        api.expect_oneshot_request(BATCH_PATH, method="POST").respond_with_handler(too_many)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    client = make_client(url(api))

    sent = track(client, 5)
    assert client.flush(timeout=15)
    accepted_at = time.monotonic()

    recorder.assert_each_once(sent)
    # Without Retry-After the fast backoff would retry within 0.1 s.
    assert arrivals[1] - arrivals[0] >= 0.9
    assert accepted_at - arrivals[1] >= 0.9


def test_retry_after_given_as_an_http_date_is_honoured(
    api: HTTPServer, recorder: Recorder, make_client: Callable[..., Analytics]
) -> None:
    arrivals: list[float] = []

    def unavailable(request: Request) -> Response:
        arrivals.append(time.monotonic())
        later = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1-2 s away
        return Response("maintenance", status=503, headers={"Retry-After": later})

    api.expect_oneshot_request(BATCH_PATH, method="POST").respond_with_handler(unavailable)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    client = make_client(url(api))

    sent = track(client, 3)
    assert client.flush(timeout=15)

    recorder.assert_each_once(sent)
    assert time.monotonic() - arrivals[0] >= 0.9


def test_retry_after_dates_and_seconds_are_read_for_429_and_503_only() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert retry_after_seconds(TransportResponse(503, headers={"Retry-After": date}), now=now) == 7
    assert retry_after_seconds(TransportResponse(429, headers={"retry-after": "3"})) == 3
    assert retry_after_seconds(TransportResponse(500, headers={"Retry-After": "3"})) is None
    assert retry_after_seconds(TransportResponse(429, headers={"Retry-After": "soon"})) is None
    assert retry_after_seconds(TransportResponse(429, headers={"Retry-After": "-1"})) is None


def test_a_long_retry_after_is_capped_by_max_retry_after(
    api: HTTPServer, recorder: Recorder, make_client: Callable[..., Analytics]
) -> None:
    api.expect_oneshot_request(BATCH_PATH, method="POST").respond_with_handler(
        answer(429, **{"Retry-After": "3600"})
    )
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    client = make_client(url(api), max_retry_after=0.2)

    sent = track(client, 3)
    started = time.monotonic()
    assert client.flush(timeout=10)

    recorder.assert_each_once(sent)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_statuses_worth_retrying_are_retried(
    status: int, api: HTTPServer, recorder: Recorder, make_client: Callable[..., Analytics]
) -> None:
    api.expect_oneshot_request(BATCH_PATH, method="POST").respond_with_handler(answer(status))
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    client = make_client(url(api))

    sent = track(client, 4)

    assert client.flush(timeout=10)
    recorder.assert_each_once(sent)
    assert client.stats()["retries"] == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 501, 505])
def test_other_client_errors_and_501_505_are_not_retried(
    status: int, api: HTTPServer, errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(answer(status))
    calls: list[tuple[Any, list]] = []
    client = make_client(url(api))

    message_id = client.track(user_id="u1", event="Once", callback=lambda e, b: calls.append((e, b)))

    assert not client.flush(timeout=10)
    assert len(api.log) == 1
    [error] = errors.of(DeliveryError)
    assert (error.status, error.attempts, error.message_ids) == (status, 1, [message_id])
    [(called_with, batch)] = calls
    assert called_with is error and [m["messageId"] for m in batch] == [message_id]
    assert client.stats()["retries"] == 0


def test_events_wait_out_a_server_that_is_not_listening_yet(
    errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    port = free_port()
    client = make_client(
        f"http://127.0.0.1:{port}", max_retries=100, max_retry_time=60,
        initial_backoff=0.05, max_backoff=0.2, max_events_in_batch=10,
    )
    sent = track(client, 30)
    wait_until(lambda: client.stats()["retries"] >= 3, message="connection refused, retried")

    server = start_api(port)
    try:
        recorder = Recorder()
        server.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
        assert client.flush(timeout=20)
        recorder.assert_each_once(sent)
    finally:
        stop_api(server)
    assert errors == []


def test_a_request_that_times_out_is_retried(
    api: HTTPServer, recorder: Recorder, make_client: Callable[..., Analytics]
) -> None:
    release = threading.Event()

    def stalls(request: Request) -> Response:
        release.wait(10)
        return Response("too late", status=500)  # the client gave up on this one: not accepted

    api.expect_oneshot_request(BATCH_PATH, method="POST").respond_with_handler(stalls)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    client = make_client(url(api), timeout=0.3)

    sent = track(client, 3)
    try:
        assert client.flush(timeout=10)
    finally:
        release.set()
    recorder.assert_each_once(sent)
    assert client.stats()["retries"] == 1


def test_a_batch_that_finally_fails_reports_attempts_and_the_last_failure(
    api: HTTPServer, errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_data("down for maintenance", status=503)
    calls: list[tuple[Any, list]] = []
    client = make_client(url(api), max_retries=2)

    ids = [
        client.track(user_id="u1", event="Fails", callback=lambda e, b: calls.append((e, b)))
        for _ in range(3)
    ]
    assert not client.flush(timeout=10)

    failures = errors.of(DeliveryError)
    assert sorted(m for e in failures for m in e.message_ids) == sorted(ids)
    for error in failures:
        assert error.attempts == 3 and error.status == 503
        assert "3 attempts" in str(error) and "retries exhausted" in str(error)
        assert "down for maintenance" in str(error)
    assert len(calls) == 3 and all(isinstance(error, DeliveryError) for error, _ in calls)
    assert len(api.log) == 3 * len(failures)
    assert client.stats()["failed"] == 3


def test_a_batch_that_cannot_connect_reports_the_connection_error(
    errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}", max_retries=1)

    message_id = client.track(user_id="u1", event="Nowhere")
    assert not client.flush(timeout=10)

    [error] = errors.of(DeliveryError)
    assert error.message_ids == [message_id] and error.attempts == 2 and error.status is None
    assert "could not connect" in str(error)
    assert isinstance(error.cause, ConnectError)
    assert WRITE_KEY not in str(error)


def test_max_retry_time_bounds_the_time_spent_on_one_batch(
    api: HTTPServer, errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_data("", status=500)
    client = make_client(url(api), max_retries=1000, max_retry_time=0.5,
                         initial_backoff=0.05, max_backoff=0.1)

    client.track(user_id="u1", event="Bounded")
    started = time.monotonic()
    assert not client.flush(timeout=10)

    assert time.monotonic() - started < 3
    [error] = errors.of(DeliveryError)
    assert "max_retry_time" in str(error) and 2 <= error.attempts < 1000


def test_backoff_grows_exponentially_with_jitter_up_to_a_cap() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=5.0)
    for retry, (low, high) in {1: (0.5, 1), 2: (1, 2), 3: (2, 4), 4: (2.5, 5), 30: (2.5, 5)}.items():
        waits = [policy.backoff(retry) for _ in range(200)]
        assert all(low <= wait <= high for wait in waits)
        assert len(set(waits)) > 1, "jittered"


def test_close_cuts_a_retry_wait_short(
    api: HTTPServer, errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_data("", status=503)
    client = make_client(url(api), initial_backoff=60, max_backoff=60, max_retry_time=600)
    client.track(user_id="u1", event="Waiting")
    wait_until(lambda: len(api.log) == 1, message="first attempt made")

    started = time.monotonic()
    assert not client.close(timeout=5)

    assert time.monotonic() - started < 4, "close waited out the close timeout instead of the retry"
    [error] = errors.of(DeliveryError)
    assert error.status == 503 and "closing" in str(error)


def test_waiting_to_retry_never_delays_the_application(
    api: HTTPServer, make_client: Callable[..., Analytics]
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_data("", status=503)
    client = make_client(url(api), initial_backoff=30, max_backoff=30, max_retry_time=600)
    client.track(user_id="u1", event="First")
    wait_until(lambda: len(api.log) == 1, message="worker waiting to retry")

    slowest = 0.0
    for i in range(2000):
        started = time.perf_counter()
        client.track(user_id="u1", event="During the wait")
        slowest = max(slowest, time.perf_counter() - started)

    assert slowest < 1.0, f"a call took {slowest:.3f}s while the worker waited to retry"
    assert client.stats()["queued"] == 2001


# -- 413 ------------------------------------------------------------------------------------


def test_413_splits_the_batch_and_only_the_message_too_large_fails(
    api: HTTPServer, recorder: Recorder, errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    body_limit = 4000

    def limited(request: Request) -> Response:
        if len(request.get_data()) > body_limit:
            return Response("request entity too large", status=413)
        return recorder(request)

    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(limited)
    client = make_client(url(api), max_events_in_batch=40, flush_interval=60)
    client.track(user_id="u1", event="Warm-up", message_id="warm-up")
    wait_until(lambda: recorder.count() == 1, message="first event sent alone")

    small = track(client, 20, prefix="small-a", properties={"n": "x" * 100})
    big = client.track(user_id="u1", event="Big", message_id="big", properties={"blob": "y" * 6000})
    small += track(client, 19, prefix="small-b", properties={"n": "x" * 100})
    assert not client.flush(timeout=10)

    recorder.assert_each_once(["warm-up", *small])
    [error] = errors.of(DeliveryError)
    assert error.message_ids == [big] and error.status == 413 and "too large" in str(error)
    assert max(r["size"] for r in recorder.requests) <= body_limit
    stats = client.stats()
    assert (stats["delivered"], stats["failed"]) == (40, 1)


# -- many threads ---------------------------------------------------------------------------


def test_eight_threads_logging_5000_events_each_are_delivered_exactly_once(
    api: HTTPServer, recorder: Recorder, errors: Errors
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    handler = CDPHandler(
        write_key=WRITE_KEY, host=url(api), error_handler=errors,
        max_events_in_batch=100, flush_interval=0.5, max_queue_size=50_000,
    )
    log = logging.getLogger("tests.reliability.threads")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)

    def log_events(thread: int) -> None:
        for i in range(5000):
            log.info("tick", extra={"track": {
                "user_id": f"user-{thread}", "event": "Tick", "message_id": f"t{thread}-{i}",
                "properties": {"i": i},
            }})

    threads = [threading.Thread(target=log_events, args=(n,)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert handler.client.flush(timeout=60)
    finally:
        log.removeHandler(handler)
        handler.close()

    recorder.assert_each_once(f"t{thread}-{i}" for thread in range(8) for i in range(5000))
    assert errors == []
    assert handler.client.stats()["delivered"] == 40_000


# -- overload -------------------------------------------------------------------------------


def test_a_burst_larger_than_the_queue_is_delivered_or_dropped_and_the_counts_add_up(
    api: HTTPServer, recorder: Recorder, errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    gate = Gate(recorder)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(gate)
    client = make_client(url(api), max_queue_size=100)
    logged = track(client, 1)
    assert gate.arrived.wait(10)

    logged += track(client, 999, prefix="burst")
    gate.open.set()
    assert client.flush(timeout=15)

    stats = client.stats()
    assert stats["delivered"] + stats["dropped"] == len(logged) == 1000
    # The queue holds 100; the helpers' requests in flight (7 more of 20 events) hold more.
    assert stats["dropped"] >= 1000 - 1 - 100 - 7 * 20
    assert stats["failed"] == 0 and stats["pending"] == 0
    dropped = errors.of(EventDroppedError)
    assert len(dropped) == stats["dropped"] and all("queue full" in str(e) for e in dropped)
    assert recorder.count() == stats["delivered"] and not recorder.duplicates()
    assert {e.message_id for e in dropped} | set(recorder.accepted) == set(logged)


def test_the_queue_is_bounded_by_bytes_too(
    api: HTTPServer, recorder: Recorder, errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    gate = Gate(recorder)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(gate)
    client = make_client(url(api), max_queue_bytes=10_000)
    logged = track(client, 1)
    assert gate.arrived.wait(10)

    logged += track(client, 100, prefix="heavy", properties={"text": "z" * 1000})
    assert client.stats()["pending"] <= 10
    gate.open.set()
    assert client.flush(timeout=15)

    stats = client.stats()
    assert stats["delivered"] + stats["dropped"] == 101 and stats["dropped"] >= 90
    assert all("byte limit" in str(e) for e in errors.of(EventDroppedError))
    recorder.assert_each_once(set(logged) - {e.message_id for e in errors.of(EventDroppedError)})


def test_overflow_wait_blocks_a_caller_at_most_overflow_timeout_then_drops(
    api: HTTPServer, recorder: Recorder, errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    gate = Gate(recorder)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(gate)
    client = make_client(url(api), max_queue_size=5, overflow="wait", overflow_timeout=0.3)
    logged = track(client, 1)
    assert gate.arrived.wait(10)
    logged += track(client, 5, prefix="fills")

    started = time.monotonic()
    logged.append(client.track(user_id="u1", event="No room", message_id="no-room"))
    waited = time.monotonic() - started
    gate.open.set()
    assert client.flush(timeout=10)

    assert 0.25 <= waited < 2.0
    assert [e.message_id for e in errors.of(EventDroppedError)] == ["no-room"]
    recorder.assert_each_once(set(logged) - {"no-room"})


def test_overflow_wait_loses_nothing_when_the_api_keeps_up(
    api: HTTPServer, recorder: Recorder, errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    client = make_client(url(api), max_queue_size=20, overflow="wait", overflow_timeout=10)

    sent = track(client, 2000)
    assert client.flush(timeout=30)

    recorder.assert_each_once(sent)
    assert client.stats()["dropped"] == 0 and errors == []


def test_dropped_events_are_counted_and_warned_about_at_a_limited_rate(
    api: HTTPServer, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate(recorder)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(gate)
    client = Analytics(WRITE_KEY, host=url(api), max_queue_size=10)
    try:
        track(client, 1)
        assert gate.arrived.wait(10)
        with caplog.at_level(logging.WARNING, logger="cdp_logging"):
            track(client, 500, prefix="flood")
        gate.open.set()
        assert client.flush(timeout=10)
    finally:
        client.close(timeout=0)

    stats = client.stats()
    assert stats["dropped"] >= 480 and stats["delivered"] + stats["dropped"] == 501
    warnings = [r for r in caplog.records if r.name == "cdp_logging" and "dropped" in r.getMessage()]
    assert 1 <= len(warnings) <= 10


def test_memory_stays_flat_while_the_api_is_down_under_steady_logging(
    make_client: Callable[..., Analytics]
) -> None:
    reports = [0]

    def count_only(error: CDPError) -> None:
        reports[0] += 1

    properties = {"text": "m" * 200}  # about 330 bytes encoded

    def log(count: int) -> int:
        for _ in range(count):
            client.track(user_id="u1", event="Steady", properties=properties)
        return count

    tracemalloc.start()
    try:
        client = make_client(
            f"http://127.0.0.1:{free_port()}", max_queue_size=500, max_retries=1,
            initial_backoff=0.001, max_backoff=0.002, error_handler=count_only,
        )
        log(3000)  # the queue fills, batches fail, the worker settles into its cycle
        samples = []
        logged = 0
        for _ in range(6):
            logged += log(2000)
            # What is retained, not garbage waiting for the cycle collector (failed requests'
            # exceptions and tracebacks form cycles): that would move with the collector's timing.
            gc.collect()
            samples.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()

    # The queue's own filling and draining moves memory by up to its size (~200 KB); an
    # unbounded queue would grow by the 4 MB logged.
    growth = max(samples) - min(samples)
    assert growth < 1_000_000, f"memory grew by {growth} bytes while {logged} events were logged: {samples}"
    stats = client.stats()
    # The queue's bound, and the request in flight: from a backlog, as many as the queue held.
    assert stats["pending"] <= 500 + 500 and stats["failed"] > 0
    assert reports[0] > 0


def test_a_queued_event_takes_about_its_encoded_size_in_memory(
    make_client: Callable[..., Analytics]
) -> None:
    client = make_client(
        f"http://127.0.0.1:{free_port()}", max_retries=0, flush_interval=60, max_events_in_batch=5000
    )
    client.track(user_id="u1", event="First")  # taken by the worker at once
    # Its failure's first report imports modules: done before measuring, not during.
    wait_until(lambda: client.stats()["failed"] == 1, message="the first event's failure")
    properties = {"text": "q" * 200}

    # Only what this thread's calls allocated and still hold: every other thread (the
    # worker failing to connect, other tests' servers and clients, log capture) allocates
    # meanwhile too, which a count of all traced memory took for the queue's.
    tracemalloc.start(64)
    try:
        track(client, 1000, prefix="queued", properties=properties)
        retained = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, __file__, all_frames=True)]
        )
    finally:
        tracemalloc.stop()
    held = sum(stat.size for stat in retained.statistics("filename"))

    queued = client.stats()["pending"]
    assert queued >= 500
    # Encoded, each is about 330 bytes; the bound allows the bytes object and deque slot.
    assert held / queued < 700, f"{held / queued:.0f} bytes held per queued event"
