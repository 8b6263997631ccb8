"""A spool batch in flight when close's time runs out is not sent twice.

A closing sender starts no request in the last second of the close's budget (at most half of
it), so the request in flight has that long to be answered and its rows deleted before the
process exits. Before, requests went out until the very deadline; the process exited without
reading their answers, the rows stayed, and the next process sent them again (60 duplicates
in the fault soak of issue 25). Where an answer still comes too late, the events are counted
"unconfirmed" and the close says they will be sent again with the same messageIds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from support.reliability import BATCH_PATH, Recorder, start_api, stop_api, url
from support.helpers import wait_until
from support.spool import run_spool_app

#: How long the API takes to answer each request (it has the events from the start).
ANSWER_DELAY = 0.3


@pytest.fixture
def api() -> Iterator[HTTPServer]:
    server = start_api()
    yield server
    stop_api(server)


def test_a_request_in_flight_at_the_close_deadline_is_answered_and_never_sent_again(
    api: HTTPServer, tmp_path: Path,
) -> None:
    recorder = Recorder()
    stop = threading.Event()

    def slow(request: Request) -> Response:
        answer = recorder(request)  # taken: a second copy would be a duplicate
        stop.wait(ANSWER_DELAY)
        return answer

    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(slow)
    spool = tmp_path / "events.spool"
    # 600 events in batches of 20 take 9 s at 0.3 s an answer: the 2 s close cuts them short.
    first = run_spool_app("closing", spool, host=url(api), events=600, shutdown_timeout=2.0,
                          flush_interval=60)
    sent_by_first = recorder.count()
    assert 0 < sent_by_first < 600, first
    assert first["stats"].get("unconfirmed", 0) == 0, first
    assert "may get them twice" not in first["stderr"]

    second = run_spool_app("next", spool, host=url(api), flush=30)

    assert second["flushed"] is True, second
    stop.set()
    recorder.assert_each_once(f"closing-{i}" for i in range(600))


def test_an_answer_slower_than_the_close_budget_is_counted_unconfirmed_and_sent_again_by_the_next(
    api: HTTPServer, tmp_path: Path,
) -> None:
    recorder = Recorder()
    stop = threading.Event()

    def slower_than_the_close(request: Request) -> Response:
        answer = recorder(request)
        stop.wait(4.0)
        return answer

    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(slower_than_the_close)
    spool = tmp_path / "events.spool"
    try:
        first = run_spool_app("cut", spool, host=url(api), events=20, shutdown_timeout=1.0,
                              flush_interval=60, timeout=10)
        cut = first["stats"]["unconfirmed"]  # the first request: the first event alone, or all 20
        assert cut >= 1 and first["stats"]["failed"] == 0, first
        wait_until(lambda: recorder.count() == cut, message="the server to have the request that was cut")
        assert (f"{cut} event(s) were in a request still unanswered when the shutdown timeout (1s) ran out"
                in first["stderr"]), first["stderr"]
        assert "the next process sends them again, with the same messageIds" in first["stderr"]
    finally:
        stop.set()

    second = run_spool_app("next", spool, host=url(api), flush=30)

    assert second["flushed"] is True, second
    # The resend the close announced, and only it: those events arrived twice, under the
    # same messageIds; every other event once.
    duplicates = recorder.duplicates()
    assert len(duplicates) == cut and set(duplicates.values()) == {2}
    assert set(recorder.accepted) == {f"cut-{i}" for i in range(20)}
