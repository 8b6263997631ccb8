"""max_events_in_batch caps every request; a backlog goes out in up to max_concurrent_requests
requests at once, within the rate limit, slowed together by a 429; flush and close wait for
every request in flight. Against real servers on 127.0.0.1 that answer requests side by side."""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import cdp_logging
from cdp_logging import compat
from cdp_logging.delivery.pacing import NoSlot, Pacer
from support.helpers import DEADLINE, WRITE_KEY, received_batches, wait_for_messages, wait_until

Client = Callable[..., cdp_logging.Analytics]


class Recorder:
    """A /v1/batch handler for a threaded server: answers after ``delay`` seconds (``hold``
    keeps requests until released), with ``status(n)`` for the n-th request (from 0), noting
    each request's arrival, answer, status, events and how many were in flight at once."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        #: (arrived, answered, status, messageIds) for each request, in order of answer.
        self.requests: list[tuple[float, float, int, list[str]]] = []
        self.status: Callable[[int], int] = lambda n: 200
        self.retry_after = ""
        self.answered = threading.Event()
        self.hold = threading.Event()
        self.hold.set()
        self.count = 0

    def __call__(self, request: Request) -> Response:
        arrived = time.monotonic()
        ids = [m["messageId"] for m in json.loads(request.get_data())["batch"]]
        with self.lock:
            number = self.count
            self.count += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.hold.wait(DEADLINE)
        if self.delay:
            time.sleep(self.delay)  # a slow answer, as over a real network
        status = self.status(number)
        with self.lock:
            self.in_flight -= 1
            self.requests.append((arrived, time.monotonic(), status, ids))
        self.answered.set()
        headers = {"Retry-After": self.retry_after} if status == 429 and self.retry_after else {}
        return Response('{"success": true}', status=status, headers=headers, content_type="application/json")

    def events(self, status: int = 200) -> list[str]:
        with self.lock:
            return [i for _, _, answered, ids in self.requests if answered == status for i in ids]

    def sizes(self) -> list[int]:
        with self.lock:
            return [len(ids) for _, _, _, ids in self.requests]


@pytest.fixture
def threaded() -> Iterator[HTTPServer]:
    """A local API that answers requests side by side, one thread each."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def recorder(threaded: HTTPServer) -> Iterator[Recorder]:
    handler = Recorder()
    threaded.expect_request("/v1/batch").respond_with_handler(handler)
    yield handler
    handler.hold.set()


@pytest.fixture
def make_threaded_client(threaded: HTTPServer, recorder: Recorder) -> Iterator[Client]:
    clients: list[cdp_logging.Analytics] = []

    def make(**options: Any) -> cdp_logging.Analytics:
        options.setdefault("write_key", WRITE_KEY)
        options.setdefault("host", threaded.url_for("").rstrip("/"))
        options.setdefault("flush_interval", 60)
        client = cdp_logging.Analytics(**options)
        clients.append(client)
        return client

    yield make
    recorder.hold.set()
    for client in clients:
        client.close_and_flush(timeout=5.0)


# -- the cap, as the issue tried it ------------------------------------------------------------


def test_the_defaults_are_20_events_a_request_and_8_requests_at_once() -> None:
    parameters = inspect.signature(cdp_logging.Analytics).parameters
    assert parameters["max_events_in_batch"].default == 20
    assert parameters["max_concurrent_requests"].default == 8
    with pytest.raises(ValueError, match="max_concurrent_requests"):
        cdp_logging.Analytics("key", max_concurrent_requests=0)


def test_max_events_in_batch_1_turns_batching_off_even_for_a_backlog_and_flush(
    api: HTTPServer, make_client: Client,
) -> None:
    client = make_client(flush_interval=60, max_events_in_batch=1)
    ids = [client.track(user_id="u1", event=f"E{i}") for i in range(200)]
    assert client.flush(timeout=DEADLINE) is True
    batches = received_batches(api)
    assert [len(batch) for batch in batches] == [1] * 200
    assert sorted(batch[0]["messageId"] for batch in batches) == sorted(ids)


def test_max_events_in_batch_10_never_sends_more_than_10_after_the_first(api: HTTPServer, make_client: Client) -> None:
    client = make_client(flush_interval=60, max_events_in_batch=10)
    client.track(user_id="u1", event="First")
    wait_for_messages(api, 1)
    for i in range(23):
        client.track(user_id="u1", event=f"E{i}")
    assert client.flush(timeout=DEADLINE) is True
    sizes = [len(batch) for batch in received_batches(api)]
    assert sum(sizes) == 24 and max(sizes) <= 10, sizes


def test_the_cap_holds_under_concurrent_callers_from_several_threads(
    make_threaded_client: Client, recorder: Recorder,
) -> None:
    recorder.delay = 0.01
    client = make_threaded_client(max_events_in_batch=7, max_queue_size=10_000)
    sent: list[str] = []
    lock = threading.Lock()

    def caller(number: int) -> None:
        ids = [client.track(user_id=f"u{number}", event=f"E{i}") for i in range(300)]
        with lock:
            sent.extend(ids)

    callers = [threading.Thread(target=caller, args=(n,)) for n in range(6)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(DEADLINE)
    assert client.flush(timeout=DEADLINE) is True
    assert max(recorder.sizes()) <= 7
    assert sorted(recorder.events()) == sorted(sent)  # each once: no event lost or sent twice
    assert 2 <= recorder.most_in_flight <= 8  # the default max_concurrent_requests


# -- a backlog, side by side ---------------------------------------------------------------------


def test_a_backlog_goes_out_in_up_to_max_concurrent_requests_at_once(
    make_threaded_client: Client, recorder: Recorder,
) -> None:
    recorder.hold.clear()
    client = make_threaded_client(max_events_in_batch=20, max_concurrent_requests=4)
    first = client.track(user_id="u1", event="First")
    wait_until(lambda: recorder.in_flight == 1, message="the first request")
    ids = [client.track(user_id="u1", event=f"E{i}") for i in range(400)]
    # The first request in flight and a full batch due: helpers take the next batches.
    wait_until(lambda: recorder.in_flight == 4, message="four requests in flight")
    assert client.stats()["pending"] == 401
    recorder.hold.set()
    assert client.flush(timeout=DEADLINE) is True
    assert recorder.most_in_flight == 4
    assert max(recorder.sizes()) == 20
    assert sorted(recorder.events()) == sorted([first, *ids])


def test_max_concurrent_requests_1_sends_one_request_at_a_time(
    make_threaded_client: Client, recorder: Recorder,
) -> None:
    recorder.delay = 0.02
    client = make_threaded_client(max_events_in_batch=5, max_concurrent_requests=1)
    ids = [client.track(user_id="u1", event=f"E{i}") for i in range(60)]
    assert client.flush(timeout=DEADLINE) is True
    assert recorder.most_in_flight == 1
    assert max(recorder.sizes()) <= 5 and sorted(recorder.events()) == sorted(ids)


def test_a_429_slows_every_request_then_they_pick_up_one_more_at_a_time(
    make_threaded_client: Client, recorder: Recorder,
) -> None:
    recorder.status = lambda n: 429 if n == 0 else 200
    recorder.retry_after = "1.0"
    recorder.delay = 0.05
    client = make_threaded_client(max_events_in_batch=5)
    first = client.track(user_id="u1", event="First")
    assert recorder.answered.wait(DEADLINE), "the first request"
    refused_at = recorder.requests[0][1]
    # Time for the client to read the answer (it pauses from then on).
    wait_until(lambda: time.monotonic() > refused_at + 0.3, message="a moment")
    ids = [client.track(user_id="u1", event=f"E{i}") for i in range(40)]
    assert client.flush(timeout=DEADLINE) is True
    later = sorted(recorder.requests[1:])
    # Nothing started before the Retry-After passed, the new batches included.
    assert all(arrived >= refused_at + 0.95 for arrived, _, _, _ in later), [r[0] - refused_at for r in later]
    # Then one request at a time, one more allowed after each success.
    assert later[1][0] >= later[0][1], "the second request after the 429 did not wait for the first"
    assert [first] in [ids for _, _, _, ids in later], "the refused batch was retried with its messageId"
    assert sorted(recorder.events()) == sorted([first, *ids])
    assert client.stats()["retries"] == 1


# -- flush and close wait for every request in flight -----------------------------------------------


def test_flush_waits_for_every_request_in_flight(make_threaded_client: Client, recorder: Recorder) -> None:
    recorder.delay = 0.2
    client = make_threaded_client(max_events_in_batch=10)
    ids = [client.track(user_id="u1", event=f"E{i}") for i in range(61)]
    wait_until(lambda: recorder.in_flight >= 2, message="requests side by side")
    assert client.flush(timeout=DEADLINE) is True
    # Every request was answered when flush returned, those sent side by side included.
    assert sorted(recorder.events()) == sorted(ids)
    assert client.stats()["delivered"] == 61


def test_close_waits_for_every_request_in_flight_and_reports_what_its_deadline_cut(
    make_threaded_client: Client, recorder: Recorder,
) -> None:
    errors: list[cdp_logging.CDPError] = []
    recorder.hold.clear()
    client = make_threaded_client(max_events_in_batch=10, max_concurrent_requests=4, error_handler=errors.append)
    ids = [client.track(user_id="u1", event=f"E{i}") for i in range(41)]
    wait_until(lambda: recorder.in_flight == 4, message="four requests in flight")
    started = time.monotonic()
    assert client.close_and_flush(timeout=0.5) is False
    assert time.monotonic() - started < DEADLINE / 2
    # Every event was reported: those of each request in flight as unconfirmed (sent, the
    # answer never read), the rest as failed.
    reported = [i for error in errors if isinstance(error, cdp_logging.DeliveryError) for i in error.message_ids]
    assert sorted(reported) == sorted(ids)
    in_flight = [i for error in errors if isinstance(error, cdp_logging.DeliveryError) and error.unconfirmed
                 for i in error.message_ids]
    stats = client.stats()
    assert stats["unconfirmed"] == len(in_flight) >= 4 * 1  # four requests were held unanswered
    assert stats["failed"] + stats["unconfirmed"] == 41 and stats["delivered"] == 0


def test_close_delivers_a_backlog_sent_side_by_side(make_threaded_client: Client, recorder: Recorder) -> None:
    recorder.delay = 0.1
    client = make_threaded_client(max_events_in_batch=10)
    ids = [client.track(user_id="u1", event=f"E{i}") for i in range(81)]
    assert client.close_and_flush(timeout=DEADLINE) is True
    assert sorted(recorder.events()) == sorted(ids)
    assert recorder.most_in_flight >= 2


# -- the spool and compat -------------------------------------------------------------------------


def test_the_spool_sends_within_the_cap(api: HTTPServer, make_client: Client, tmp_path: Path) -> None:
    client = make_client(flush_interval=60, max_events_in_batch=3, spool_path=tmp_path / "events.db")
    ids = [client.track(user_id="u1", event=f"E{i}") for i in range(20)]
    assert client.flush(timeout=DEADLINE) is True
    sizes = [len(batch) for batch in received_batches(api)]
    assert max(sizes) <= 3 and sum(sizes) == 20
    assert sorted(m["messageId"] for batch in received_batches(api) for m in batch) == sorted(ids)


@pytest.mark.parametrize(("thread", "most"), [(1, 1), (3, 3)])
def test_compat_upload_size_is_the_cap_and_thread_the_requests_at_once(
    threaded: HTTPServer, recorder: Recorder, thread: int, most: int,
) -> None:
    recorder.hold.clear()
    client = compat.Client("key", host=threaded.url_for("").rstrip("/"), upload_size=4, thread=thread,
                           upload_interval=60.0)
    try:
        for i in range(40):
            client.track("u1", f"E{i}")
        wait_until(lambda: recorder.in_flight == most, message=f"{most} requests in flight")
        recorder.hold.set()
        client.flush()
        assert recorder.most_in_flight == most
        assert max(recorder.sizes()) <= 4 and len(recorder.events()) == 40
    finally:
        recorder.hold.set()
        client.shutdown()


# -- the rate limit ---------------------------------------------------------------------------------


def test_no_more_requests_start_in_any_window_than_the_rate_limit_allows() -> None:
    pacer = Pacer(4, deadline=lambda: None, requests=5, per=0.5)
    starts = []
    for _ in range(11):
        pacer.acquire(None)
        starts.append(time.monotonic())
        pacer.release(200)
    # Any 6 consecutive starts span at least the window: at most 5 in any 0.5 s.
    assert all(later - earlier >= 0.5 for earlier, later in zip(starts, starts[5:]))


def test_waiting_for_a_slot_ends_at_the_closing_deadline() -> None:
    closing = time.monotonic() + 0.2
    pacer = Pacer(1, deadline=lambda: closing)
    pacer.acquire(None)
    started = time.monotonic()
    with pytest.raises(NoSlot):
        pacer.acquire(None)  # the one slot is taken: wait until the deadline, no longer
    assert 0.15 <= time.monotonic() - started < DEADLINE / 2
