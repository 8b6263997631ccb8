"""Shutdown: close() and the exit-time flush are bounded, say what they could not deliver,
and work on Python 3.12+, where no thread may start during interpreter shutdown.

Exit tests run a real interpreter (tests/apps/exit_app.py) and time it from the moment its
script ends to the moment the process is gone.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from cdp_logging import Analytics, CDPHandler, DeliveryError, EventDroppedError
from support.reliability import (
    BATCH_PATH,
    WRITE_KEY,
    Errors,
    Gate,
    Recorder,
    SilentServer,
    free_port,
    json_lines,
    run_python,
    start_api,
    stop_api,
    url,
)
from support.helpers import wait_until

#: What an exit may take beyond shutdown_timeout on a loaded 2-core machine: interpreter
#: teardown and the last attempt. A hung request (timeout 10 s) would still show.
EXIT_MARGIN = 2.5
SHUTDOWN_TIMEOUT = 2.0


@pytest.fixture
def api() -> Iterator[HTTPServer]:
    server = start_api()
    yield server
    stop_api(server)


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


def run_exit_app(host: str, run_id: str, events: int, *flags: str, **options: Any) -> dict[str, Any]:
    """Run exit_app.py; return its reports, stderr and how long its exit took."""
    result = run_python(
        "exit_app.py", run_id, str(events), *flags, "--options", json.dumps(options),
        CDP_HOST=host, CDP_WRITE_KEY=WRITE_KEY,
    )
    gone_at = time.time()
    assert result.returncode == 0, result.stderr
    reports = json_lines(result.stdout)
    exiting_at = next(r["exiting_at"] for r in reports if "exiting_at" in r)
    closed = next(r for r in reports if "stats" in r)
    return {
        "stats": closed["stats"],
        "stderr": result.stderr,
        "exit_took": gone_at - exiting_at,
    }


def undelivered_reported(stderr: str) -> list[int]:
    """The counts in the one-line summaries close() logs."""
    return [int(n) for n in re.findall(r"(\d+) event\(s\) could not be delivered (?:before|while) closing", stderr)]


# -- at interpreter exit --------------------------------------------------------------------


def test_the_exit_time_flush_delivers_what_is_queued(api: HTTPServer) -> None:
    recorder = Recorder()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)

    run = run_exit_app(url(api), "queued", 250, flush_interval=60)

    recorder.assert_each_once(f"queued-app0-{i}" for i in range(250))
    assert run["stats"][0]["delivered"] == 250
    assert WRITE_KEY not in run["stderr"]


def test_exit_is_bounded_when_the_api_is_unreachable() -> None:
    run = run_exit_app(
        f"http://127.0.0.1:{free_port()}", "refused", 500, shutdown_timeout=SHUTDOWN_TIMEOUT
    )

    assert run["exit_took"] < SHUTDOWN_TIMEOUT + EXIT_MARGIN, run
    [stats] = run["stats"]
    assert (stats["delivered"], stats["failed"], stats["pending"]) == (0, 500, 0)
    [during_close] = undelivered_reported(run["stderr"])
    assert 0 < during_close <= 500
    assert "since start: 0 delivered, 500 failed" in run["stderr"]


def test_exit_is_bounded_when_the_api_never_answers(silent: SilentServer) -> None:
    run = run_exit_app(silent.url, "silent", 300, shutdown_timeout=SHUTDOWN_TIMEOUT, timeout=10)

    assert run["exit_took"] < SHUTDOWN_TIMEOUT + EXIT_MARGIN, run
    [stats] = run["stats"]
    # The request in flight went out and got no answer: unconfirmed; the rest never left.
    assert (stats["delivered"], stats["failed"] + stats["unconfirmed"], stats["pending"]) == (0, 300, 0)
    assert stats["unconfirmed"] >= 1
    assert undelivered_reported(run["stderr"]) == [300]
    assert "not confirmed" in run["stderr"]
    assert silent.connections >= 1


def test_clients_close_side_by_side_so_exit_takes_one_shutdown_timeout(silent: SilentServer) -> None:
    run = run_exit_app(
        silent.url, "two", 50, "--clients", "2", shutdown_timeout=SHUTDOWN_TIMEOUT, timeout=10
    )

    assert run["exit_took"] < SHUTDOWN_TIMEOUT + EXIT_MARGIN, run
    assert [s["failed"] + s["unconfirmed"] for s in run["stats"]] == [50, 50]
    assert sorted(undelivered_reported(run["stderr"])) == [50, 50], run


def test_events_first_logged_during_interpreter_exit_are_delivered(api: HTTPServer) -> None:
    # Python 3.12 refuses to start the worker thread at that point (3.13 allows it again):
    # close() then delivers on its own thread.
    recorder = Recorder()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)

    run = run_exit_app(url(api), "late", 45, "--log-at-exit")

    recorder.assert_each_once(f"late-app0-{i}" for i in range(45))
    assert run["stats"][0]["delivered"] == 45
    assert "Traceback" not in run["stderr"]


def test_events_first_logged_during_exit_to_an_api_that_never_answers_are_bounded(
    silent: SilentServer,
) -> None:
    run = run_exit_app(
        silent.url, "late-silent", 45, "--log-at-exit", shutdown_timeout=SHUTDOWN_TIMEOUT, timeout=10
    )

    assert run["exit_took"] < SHUTDOWN_TIMEOUT + EXIT_MARGIN, run
    assert run["stats"][0]["failed"] + run["stats"][0]["unconfirmed"] == 45
    assert undelivered_reported(run["stderr"]) == [45]
    assert "Traceback" not in run["stderr"]


# -- close() in a running process -----------------------------------------------------------


def test_close_is_bounded_when_a_request_hangs_and_reports_every_event_once(api: HTTPServer) -> None:
    recorder = Recorder()
    gate = Gate(recorder)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(gate)
    errors = Errors()
    calls: list[Any] = []
    client = Analytics(WRITE_KEY, host=url(api), timeout=30, error_handler=errors)
    ids = [
        client.track(user_id="u1", event="Hung", callback=lambda e, b: calls.append(e))
        for _ in range(5)
    ]
    assert gate.arrived.wait(10)

    started = time.monotonic()
    assert client.close(timeout=1) is False
    took = time.monotonic() - started

    assert 0.9 <= took < 1 + EXIT_MARGIN
    assert sorted(m for e in errors for m in e.message_ids) == sorted(ids)
    assert any("delivery not confirmed" in str(e) for e in errors)
    # The request in flight is unconfirmed (the API may have it); what stayed queued failed.
    assert any(e.unconfirmed for e in errors)
    stats = client.stats()
    assert (stats["failed"] + stats["unconfirmed"], stats["pending"]) == (5, 0) and stats["unconfirmed"] >= 1
    given_up = (stats["failed"], stats["unconfirmed"])

    # The hung request now succeeds: the events were already reported, nothing counts twice.
    gate.open.set()
    wait_until(lambda: recorder.count() >= 1, message="the held request completed")
    worker = f"cdp-logging-{id(client):x}"  # the client's threads, by the name they show
    wait_until(lambda: not any(t.name.startswith(worker) for t in threading.enumerate()),
               message="the client's worker to finish")
    stats = client.stats()
    assert (stats["delivered"], (stats["failed"], stats["unconfirmed"])) == (0, given_up)
    assert len(calls) == 5 and all(isinstance(e, DeliveryError) for e in calls)
    assert len(errors) == len({id(e) for e in errors})


def test_close_and_flush_waits_at_most_shutdown_timeout_by_default(silent: SilentServer) -> None:
    errors = Errors()
    client = Analytics(WRITE_KEY, host=silent.url, shutdown_timeout=1, error_handler=errors)
    client.track(user_id="u1", event="Hung")
    wait_until(lambda: silent.connections >= 1, message="the request is in flight")

    started = time.monotonic()
    assert client.close_and_flush() is False

    assert time.monotonic() - started < 1 + EXIT_MARGIN
    assert [type(e) for e in errors] == [DeliveryError]


def test_a_batch_that_fails_while_another_client_closes_counts_against_this_close(
    silent: SilentServer, caplog: pytest.LogCaptureFixture
) -> None:
    # At exit clients close side by side: each begins closing, then each is waited for in
    # turn. A batch of the second that gives up while the first is waited for is still a
    # failure of the second's close: close_and_flush says so and returns False.
    client = Analytics(WRITE_KEY, host=silent.url, shutdown_timeout=1, error_handler=Errors())
    client.track(user_id="u1", event="Hung")
    wait_until(lambda: silent.connections >= 1, message="the request is in flight")
    client._begin_close(0.5)
    wait_until(lambda: client.stats()["unconfirmed"] == 1, message="the batch to give up at the deadline")

    with caplog.at_level(logging.WARNING, logger="cdp_logging"):
        assert client.close_and_flush(0.5) is False
        assert client.close_and_flush(0.5) is True  # a second close has nothing new to report

    summaries = [r.getMessage() for r in caplog.records if "could not be delivered" in r.getMessage()]
    assert len(summaries) == 1 and summaries[0].startswith("cdp-logging: 1 event(s) could not be delivered")


def test_flush_with_a_timeout_returns_false_in_time(silent: SilentServer) -> None:
    client = Analytics(WRITE_KEY, host=silent.url, error_handler=Errors())
    try:
        client.track(user_id="u1", event="Hung")
        started = time.monotonic()
        assert client.flush(timeout=0.5) is False
        assert time.monotonic() - started < 0.5 + EXIT_MARGIN
    finally:
        client.close(timeout=0)


def test_close_is_idempotent(api: HTTPServer) -> None:
    recorder = Recorder()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    client = Analytics(WRITE_KEY, host=url(api), flush_interval=60)
    ids = [client.track(user_id="u1", event="Once") for _ in range(7)]

    assert client.close() is True
    started = time.monotonic()
    assert client.close() is True and client.close_and_flush(timeout=0) is True
    assert time.monotonic() - started < 0.5
    recorder.assert_each_once(ids)


def test_records_logged_after_close_are_counted_and_reported_not_raised(api: HTTPServer) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(Recorder())
    errors = Errors()
    handler = CDPHandler(write_key=WRITE_KEY, host=url(api), error_handler=errors)
    log = logging.getLogger("tests.shutdown.after_close")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        handler.close()
        for i in range(3):
            log.info("late", extra={"track": {"user_id": "u1", "event": "Late", "message_id": f"late-{i}"}})
        direct = handler.client.track(user_id="u1", event="Late too")
    finally:
        log.removeHandler(handler)

    assert handler.client.stats()["dropped"] == 4
    assert [e.message_id for e in errors] == ["late-0", "late-1", "late-2", direct]
    assert all(isinstance(e, EventDroppedError) and "closed" in str(e) for e in errors)
