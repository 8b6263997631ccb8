"""The durable spool: nothing lost across kill -9, outages longer than the retry budget, and
processes sharing one file; a damaged file never breaks the application.

Real processes (tests/apps/spool_app.py), real SIGKILL, a real HTTP server on 127.0.0.1.
Every test checks at the server that each messageId arrived exactly once.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cdp_logging import Analytics, DeliveryError, EventDroppedError, SpoolError
from cdp_logging.config import read_environment
from cdp_logging.delivery.spool import APPLICATION_ID
from cdp_logging.delivery.spool.file import SpoolFile
from support.reliability import (
    BATCH_PATH,
    FAST_RETRIES,
    WRITE_KEY,
    Errors,
    Recorder,
    SilentServer,
    batch_of,
    free_port,
    json_lines,
    python_env,
    run_python,
    start_api,
    stop_api,
    url,
)
from support.helpers import wait_until
from support.spool import HoldOnce, finish, index_of, kill, logged, run_spool_app, start_spool_app

#: The kill -9 test's pace, and the default spool_sync_interval: what it may lose is the events
#: of one interval, plus what the machine's scheduling adds (SCHEDULING_SLACK seconds' worth).
RATE = 1000
SYNC_INTERVAL = inspect.signature(Analytics).parameters["spool_sync_interval"].default
SCHEDULING_SLACK = 0.1


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
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "events.db"


@pytest.fixture
def make_client(errors: Errors, spool: Path) -> Iterator[Callable[..., Analytics]]:
    """Clients with a spool, small retry waits and the test's error_handler; closed at the end."""
    made: list[Analytics] = []

    def make(host: str, **options: Any) -> Analytics:
        options = {"error_handler": errors, "spool_path": spool, **FAST_RETRIES, **options}
        client = Analytics(WRITE_KEY, host=host, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=0)


def track(client: Analytics, count: int, prefix: str = "event", start: int = 0) -> list[str]:
    return [
        client.track(user_id="u1", event="Spooled", message_id=f"{prefix}-{i}",
                     properties={"text": "p" * 200})
        for i in range(start, start + count)
    ]


def kept_reports(errors: Errors) -> list[DeliveryError]:
    return [e for e in errors.of(DeliveryError) if "stay in the spool" in str(e)]


# -- crashes --------------------------------------------------------------------------------


def test_a_process_killed_with_sigkill_loses_at_most_its_last_sync_interval_and_the_next_delivers_the_rest(
    api: HTTPServer, recorder: Recorder, spool: Path, tmp_path: Path
) -> None:
    hold = HoldOnce(recorder)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(hold)
    progress = tmp_path / "progress"
    app = start_spool_app(
        "killed", spool, host=url(api), events=-1, rate=RATE, progress=progress,
        max_events_in_batch=50, flush_interval=0.5,
    )
    try:
        wait_until(lambda: recorder.count() >= 300, timeout=30, message="the first process delivering")
        # Its sender now waits on a request that will never be accepted; its worker keeps
        # writing to the spool. Killed then, it has no batch the API took but it did not delete.
        hold.hold_next()
        assert hold.held.wait(30)
        # Killed at a moment unrelated to the worker's writing (the hold began right after one).
        kill_at = logged(progress) + 500 + random.randrange(int(RATE * SYNC_INTERVAL))
        wait_until(lambda: logged(progress) >= kill_at, timeout=30, message="logging on")
    finally:
        kill(app)
        hold.release()
    calls = logged(progress)
    delivered_by_the_first = recorder.count()

    recovery = run_spool_app("recovery", spool, host=url(api), flush=20)

    assert recovery["flushed"] is True
    assert not recorder.duplicates()
    delivered = sorted(index_of(m) for m in recorder.accepted)
    assert delivered == list(range(len(delivered))), "what arrived is what was logged first, no gaps"
    lost = calls - len(delivered)
    window = RATE * (SYNC_INTERVAL + SCHEDULING_SLACK)
    print(f"\nkill -9 at {RATE} events/s, spool_sync_interval={SYNC_INTERVAL}s: "
          f"{lost} of {calls} events lost ({lost / RATE * 1000:.0f} ms of logging)")
    assert 0 <= lost <= window, f"{lost} events lost; the window is {window:.0f}"
    assert recovery["stats"]["delivered"] == len(delivered) - delivered_by_the_first


def test_the_next_process_sends_what_was_left_oldest_first_without_waiting_out_the_lease(
    api: HTTPServer, recorder: Recorder, spool: Path, tmp_path: Path
) -> None:
    hold = HoldOnce(recorder)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(hold)
    hold.hold_next()  # the first process's first request never returns
    progress = tmp_path / "progress"
    app = start_spool_app("left", spool, host=url(api), events=300, progress=progress,
                          max_events_in_batch=40)
    try:
        assert hold.held.wait(30)
        wait_until(lambda: _rows(spool) == 300, timeout=30, message="all 300 written")
    finally:
        kill(app)
        hold.release()

    started = time.monotonic()
    # The killed process still holds a lease of ~100 s on its first batch: seen to be gone, it
    # is taken back at once.
    recovery = run_spool_app("recovery", spool, host=url(api), flush=20)

    assert recovery["flushed"] is True and time.monotonic() - started < 20
    recorder.assert_each_once(f"left-{i}" for i in range(300))
    assert [index_of(m) for m in recorder.accepted] == list(range(300)), "oldest first"
    assert _rows(spool) == 0


# -- outages --------------------------------------------------------------------------------


def test_an_outage_longer_than_the_whole_retry_budget_loses_nothing(
    errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    port = free_port()
    client = make_client(f"http://127.0.0.1:{port}", max_retries=1, max_retry_time=0.2,
                         max_events_in_batch=25)
    sent = track(client, 200)
    wait_until(lambda: len(kept_reports(errors)) >= 3, message="the retry budget spent three times")
    assert client.stats()["failed"] == 0

    server = start_api(port)
    try:
        recorder = Recorder()
        server.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
        wait_until(lambda: recorder.count() >= 200, timeout=20, message="everything delivered")
        assert client.flush(timeout=10)
        recorder.assert_each_once(sent)
    finally:
        stop_api(server)
    stats = client.stats()
    assert (stats["delivered"], stats["failed"], stats["dropped"], stats["spooled"]) == (200, 0, 0, 0)
    assert "not delivered after" in str(kept_reports(errors)[0])


def test_what_close_could_not_deliver_is_kept_for_the_next_process(spool: Path) -> None:
    port = free_port()
    host = f"http://127.0.0.1:{port}"

    closed = run_spool_app("kept", spool, host=host, events=150, shutdown_timeout=0.5,
                           max_retries=0, **FAST_RETRIES)

    assert closed["stats"]["failed"] == 0 and closed["stats"]["delivered"] == 0
    assert "150 event(s) not delivered before closing" in closed["stderr"]
    assert f"kept in the spool {spool}" in closed["stderr"]
    assert "could not be delivered" not in closed["stderr"]

    server = start_api(port)
    try:
        recorder = Recorder()
        server.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
        recovery = run_spool_app("recovery", spool, host=host, flush=20)
        assert recovery["flushed"] is True
        recorder.assert_each_once(f"kept-{i}" for i in range(150))
    finally:
        stop_api(server)


def test_exit_is_bounded_when_the_api_never_answers_and_the_next_process_delivers_everything(
    api: HTTPServer, recorder: Recorder, spool: Path
) -> None:
    with SilentServer() as silent:
        started = time.monotonic()
        stuck = run_spool_app("silent", spool, host=silent.url, events=100, shutdown_timeout=1.0,
                              timeout=10)
        took = time.monotonic() - started
        assert silent.connections >= 1

    assert took < 6, f"the exit took {took:.1f}s: a request's timeout is 10 s, shutdown_timeout 1 s"
    assert "100 event(s) not delivered before closing" in stuck["stderr"]
    assert stuck["stats"]["failed"] == 0
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    recovery = run_spool_app("recovery", spool, host=url(api), flush=20)
    assert recovery["flushed"] is True
    recorder.assert_each_once(f"silent-{i}" for i in range(100))


def test_closing_twice_says_the_same_and_reports_what_was_kept_once(
    errors: Errors, make_client: Callable[..., Analytics], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}", max_retries=0)
    track(client, 3)
    wait_until(lambda: client.stats()["spooled"] == 3, message="all three written")

    with caplog.at_level(logging.WARNING, logger="cdp_logging"):
        assert client.close(timeout=1) is False
        assert client.close(timeout=1) is False

    kept = [r for r in caplog.records if "kept in the spool" in r.getMessage()]
    assert len(kept) == 1 and "3 event(s) not delivered before closing" in kept[0].getMessage()
    assert client.stats()["failed"] == 0


def test_events_first_logged_during_interpreter_exit_go_through_the_spool(
    api: HTTPServer, recorder: Recorder, spool: Path
) -> None:
    # Python 3.12 refuses to start the worker then: the closing thread writes and sends.
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)

    result = run_python("exit_app.py", "late", "45", "--log-at-exit",
                        "--options", json.dumps({"spool_path": str(spool)}),
                        CDP_HOST=url(api), CDP_WRITE_KEY=WRITE_KEY)

    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    recorder.assert_each_once(f"late-app0-{i}" for i in range(45))
    [closed] = [r for r in json_lines(result.stdout) if "stats" in r]
    assert closed["stats"][0]["delivered"] == 45 and _rows(spool) == 0


def test_rows_leased_by_a_process_on_another_host_wait_for_the_lease_to_run_out(
    api: HTTPServer, recorder: Recorder, errors: Errors, spool: Path,
    make_client: Callable[..., Analytics],
) -> None:
    first = make_client(f"http://127.0.0.1:{free_port()}", max_retries=0)
    sent = track(first, 5)
    wait_until(lambda: first.stats()["spooled"] == 5, message="all five written")
    assert first.close(timeout=1) is False
    with sqlite3.connect(spool) as db:  # as a process on another host would claim them
        db.execute("INSERT INTO claims SELECT 'elsewhere|pid:[1]|1|1|ffff', min(id), max(id), ? FROM events",
                   (time.time() + 1.5,))
    db.close()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)

    started = time.monotonic()
    second = make_client(url(api))
    assert second.flush(timeout=15)

    assert time.monotonic() - started >= 1.0, "sent before the other host's lease ran out"
    recorder.assert_each_once(sent)


# -- processes sharing one spool --------------------------------------------------------------


def test_two_processes_sharing_one_spool_under_load_deliver_every_event_exactly_once(
    api: HTTPServer, recorder: Recorder, spool: Path
) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.005)  # the server's pace: a backlog builds up that both senders draw on
        return recorder(request)

    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(slow)
    apps = [
        start_spool_app(name, spool, host=url(api), events=3000, flush=30, max_events_in_batch=50)
        for name in ("first", "second")
    ]
    try:
        reports = [finish(app) for app in apps]
    finally:
        for app in apps:
            kill(app)

    recorder.assert_each_once([f"{name}-{i}" for name in ("first", "second") for i in range(3000)])
    assert all(report["flushed"] for report in reports)
    assert sum(report["stats"]["delivered"] for report in reports) == 6000
    assert all(report["stats"]["failed"] == 0 for report in reports)
    assert _rows(spool) == 0


def test_a_forked_child_writes_and_sends_through_a_connection_of_its_own(
    api: HTTPServer, recorder: Recorder, spool: Path
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)

    run = run_spool_app("forked", spool, host=url(api), events=200, fork=True, flush=20)

    assert run["child_exit_code"] == 0 and run["flushed"] is True
    recorder.assert_each_once(
        [f"forked-{i}" for i in range(100)] + [f"forked-child-{i}" for i in range(200)]
        + [f"forked-late-{i}" for i in range(100)]
    )
    assert "Traceback" not in run["stderr"]


# -- events the API refuses; a full spool ---------------------------------------------------------


def test_an_event_the_api_refuses_is_removed_and_reported_not_retried_forever(
    api: HTTPServer, recorder: Recorder, errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    def refuses_poison(request: Request) -> Response:
        if any(message["messageId"] == "poison" for message in batch_of(request)):
            return Response('{"error": "bad event"}', status=400)
        return recorder(request)

    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(refuses_poison)
    client = make_client(url(api), max_events_in_batch=20, flush_interval=60)
    client.track(user_id="u1", event="Warm-up", message_id="warm-up")
    wait_until(lambda: recorder.count() == 1, message="first event sent alone")

    good = track(client, 9, prefix="good")
    client.track(user_id="u1", event="Refused", message_id="poison")
    good += track(client, 9, prefix="good", start=9)
    assert client.flush(timeout=10) is False

    recorder.assert_each_once(["warm-up", *good])
    [error] = errors.of(DeliveryError)
    assert (error.message_ids, error.status) == (["poison"], 400)
    stats = client.stats()
    assert (stats["delivered"], stats["failed"], stats["spooled"]) == (19, 1, 0)
    assert client.flush(timeout=10) is True


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_a_full_spool_drops_by_its_policy_and_counts_and_reports_what_it_dropped(
    policy: str, errors: Errors, make_client: Callable[..., Analytics]
) -> None:
    port = free_port()
    # A long pause after the first batch is given up: nothing is claimed while the spool fills.
    client = make_client(f"http://127.0.0.1:{port}", spool_max_bytes=12_000, spool_full=policy,
                         max_retries=0, initial_backoff=60, max_backoff=60)
    sent = track(client, 1)
    wait_until(lambda: kept_reports(errors), message="the first batch given up")
    sent += track(client, 99, start=1)
    wait_until(lambda: client.stats()["dropped"] >= 50, message="the spool full")

    server = start_api(port)
    try:
        recorder = Recorder()
        server.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
        assert client.close(timeout=10) is True  # closing cuts the pause short
    finally:
        stop_api(server)

    delivered = sorted(index_of(m) for m in recorder.accepted)
    stats = client.stats()
    assert not recorder.duplicates() and len(delivered) + stats["dropped"] == 100
    assert 20 <= len(delivered) <= 40, "12,000 bytes hold about 30 of these events"
    if policy == "drop_oldest":
        assert delivered == list(range(100 - len(delivered), 100)), "the newest kept"
    else:
        assert delivered == list(range(len(delivered))), "the oldest kept"
    dropped = errors.of(EventDroppedError)
    assert sum(e.count for e in dropped) == stats["dropped"]
    assert all("spool is full (spool_max_bytes=12000)" in str(e) for e in dropped)
    assert all(("oldest" in str(e)) == (policy == "drop_oldest") for e in dropped)


def test_the_spool_file_stays_within_spool_max_bytes_on_disk(
    errors: Errors, spool: Path, make_client: Callable[..., Analytics]
) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}", spool_max_bytes=1_000_000,
                         max_retries=0, initial_backoff=60, max_backoff=60)
    # About 2 KB each: two do not fit a 4 KB page, the worst case for space left unused.
    for i in range(1500):
        client.track(user_id="u1", event="Large", message_id=f"large-{i}", properties={"text": "l" * 1900})
    wait_until(lambda: client.stats()["pending"] == 0, message="everything written")

    assert os.path.getsize(spool) <= 1_000_000 + 64 * 1024, "the events' pages, the schema's, a page or two"
    assert _rows(spool) == 1500 - client.stats()["dropped"] >= 200


@pytest.mark.parametrize("first", [1, 19, 38, 60])
def test_a_large_write_into_a_nearly_empty_spool_stays_within_spool_max_bytes(spool: Path, first: int) -> None:
    """What a loaded machine does to the test above, made certain: the writer, starved, takes
    a few events first, then a backlog of a batch's worth in one transaction. While the spool
    holds less than a tenth of the bound, its pages understate what a 2 KB row takes (a page);
    the backlog's rows are measured by their own size, so the file never grows past the bound."""
    spool.parent.mkdir(mode=0o700)
    file = SpoolFile(spool, max_bytes=1_000_000, full="drop_oldest", lease=100.0)
    message = json.dumps({"type": "track", "text": "l" * 2070}).encode()  # 2098 bytes, as above
    try:
        file.append([message] * first)
        for _ in range(3):
            file.append([message] * 238)  # max_batch_bytes' worth
        assert file.look()[2] >= 200
    finally:
        file.close()
    assert os.path.getsize(spool) <= 1_000_000 + 64 * 1024  # the WAL is checkpointed on close


# -- a damaged or unusable spool ------------------------------------------------------------------


def test_a_spool_file_of_garbage_is_moved_aside_and_the_application_keeps_logging(
    api: HTTPServer, recorder: Recorder, spool: Path
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    spool.parent.mkdir(parents=True)
    garbage = os.urandom(64 * 1024)
    spool.write_bytes(garbage)

    run = run_spool_app("garbage", spool, host=url(api), events=300, flush=20)

    assert run["flushed"] is True
    recorder.assert_each_once(f"garbage-{i}" for i in range(300))
    [aside] = list(spool.parent.glob("events.db.corrupt-*"))
    assert aside.read_bytes() == garbage and _mode(aside) == 0o600
    assert f"spool {spool} is not a SQLite database" in run["stderr"]
    assert f"moved aside to {aside}; a fresh spool was made in its place" in run["stderr"]
    assert "kept in memory only" not in run["stderr"] and "Traceback" not in run["stderr"]
    # Durability goes on: the events went through a fresh spool at the same path.
    assert _application_id(spool) == APPLICATION_ID and _mode(spool) == 0o600 and _rows(spool) == 0


def test_a_spool_with_damaged_pages_is_moved_aside_and_reported_once(
    api: HTTPServer, recorder: Recorder, errors: Errors, spool: Path,
    make_client: Callable[..., Analytics],
) -> None:
    first = make_client(f"http://127.0.0.1:{free_port()}", max_retries=0)
    track(first, 400, prefix="lost")
    wait_until(lambda: first.stats()["spooled"] == 400, message="written")
    assert first.close(timeout=5) is False
    with open(spool, "r+b") as file:  # every page after the first: the schema survives
        file.seek(4096)
        file.write(os.urandom(os.path.getsize(spool) - 4096))
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)

    second = make_client(url(api))
    sent = track(second, 50, prefix="after")
    wait_until(lambda: errors.of(SpoolError), message="the damage found")
    assert second.flush(timeout=10)

    recorder.assert_each_once(sent)
    [error] = errors.of(SpoolError)
    assert error.path == str(spool) and error.moved_to and Path(error.moved_to).exists()
    assert _mode(Path(error.moved_to)) == 0o600
    assert "malformed" in str(error) or "not a database" in str(error)
    assert error.fresh and "a fresh spool was made in its place" in str(error)
    # The fresh spool keeps what the API does not take, as the first file did.
    second.close(timeout=0)
    third = make_client(f"http://127.0.0.1:{free_port()}", max_retries=0)
    track(third, 7, prefix="kept")
    wait_until(lambda: third.stats()["spooled"] == 7, message="written to the fresh spool")
    assert third.close(timeout=1) is False and _rows(spool) == 7


def test_a_spool_that_cannot_be_created_is_reported_and_events_are_sent_from_memory(
    api: HTTPServer, recorder: Recorder, errors: Errors, tmp_path: Path,
    make_client: Callable[..., Analytics],
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    (tmp_path / "a-file").write_text("not a directory")
    client = make_client(url(api), spool_path=tmp_path / "a-file" / "events.db", max_events_in_batch=10)

    sent = track(client, 35)
    assert client.flush(timeout=10)

    recorder.assert_each_once(sent)
    [error] = errors.of(SpoolError)
    assert "cannot be used" in str(error) and error.moved_to is None
    assert max(len(r["ids"]) for r in recorder.requests) <= 10, "batched as without a spool"


def test_another_programs_database_is_left_as_it_is(
    api: HTTPServer, recorder: Recorder, errors: Errors, spool: Path,
    make_client: Callable[..., Analytics],
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    spool.parent.mkdir(parents=True)
    with sqlite3.connect(spool) as db:
        db.execute("CREATE TABLE users (name TEXT)")
        db.execute("INSERT INTO users VALUES ('ada')")
    db.close()
    before = spool.read_bytes()
    client = make_client(url(api))

    sent = track(client, 5)
    assert client.flush(timeout=10)

    recorder.assert_each_once(sent)
    [error] = errors.of(SpoolError)
    assert "another program's database" in str(error) and error.moved_to is None
    # Not switched to WAL, nor anything else, before being refused.
    assert spool.read_bytes() == before
    assert sorted(p.name for p in spool.parent.iterdir()) == ["events.db"]
    with sqlite3.connect(spool) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("users",)]
    db.close()


def test_rows_that_are_not_what_the_spool_wrote_are_quarantined_reported_once_and_block_nothing(
    api: HTTPServer, recorder: Recorder, errors: Errors, spool: Path,
    make_client: Callable[..., Analytics],
) -> None:
    first = make_client(f"http://127.0.0.1:{free_port()}", max_retries=0)
    sent = track(first, 5, prefix="before")
    wait_until(lambda: first.stats()["spooled"] == 5, message="all five written")
    assert first.close(timeout=1) is False
    with sqlite3.connect(spool) as db:  # as a damaged disk or another program would leave them
        db.executemany("INSERT INTO events (data) VALUES (?)",
                       [(42,), ("text, not bytes",), (b"\xff\xfe junk",), (b"[1, 2]",)])
    db.close()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)

    second = make_client(url(api))
    sent += track(second, 5, prefix="behind")
    assert second.flush(timeout=15)
    assert second.flush(timeout=5)

    recorder.assert_each_once(sent)
    [error] = errors.of(EventDroppedError)
    assert error.count == 4 and "4 row(s) of the spool" in str(error)
    assert "could not be read (row 6: its data is int" in str(error)
    assert "moved to its quarantine table" in str(error)
    assert second.stats()["dropped"] == 4 and _rows(spool) == 0
    with sqlite3.connect(spool) as db:
        kept = db.execute("SELECT id, data FROM quarantine ORDER BY id").fetchall()
    db.close()
    assert kept == [(6, 42), (7, "text, not bytes"), (8, b"\xff\xfe junk"), (9, b"[1, 2]")]


# -- a spool others could read, plant or link ----------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_the_spool_its_wal_and_shm_are_0600_and_its_folders_0700_whatever_the_umask(
    api: HTTPServer, recorder: Recorder, tmp_path: Path, umask: int
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    spool = tmp_path / "made" / "for" / "events.db"
    script = (
        "import json, os, sys, cdp_logging\n"
        f"os.umask({umask})\n"
        f"client = cdp_logging.Analytics({WRITE_KEY!r}, host={url(api)!r}, spool_path={str(spool)!r})\n"
        "client.track(user_id='u1', event='Private', message_id='private', properties={'ssn': '078-05-1120'})\n"
        "assert client.flush(timeout=20)\n"
        "paths = [sys.argv[1] + s for s in ('', '-wal', '-shm')]\n"
        "print(json.dumps({p: os.stat(p).st_mode & 0o777 for p in paths}))\n"
        "assert client.close()\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(spool)], env=python_env(),
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    modes = json.loads(result.stdout)
    assert modes == {str(spool) + suffix: 0o600 for suffix in ("", "-wal", "-shm")}
    assert (_mode(tmp_path / "made"), _mode(tmp_path / "made" / "for")) == (0o700, 0o700)
    recorder.assert_each_once(["private"])


@pytest.mark.parametrize("planted", ["owned by another user", "writable by others"])
def test_a_spool_file_planted_in_a_shared_folder_is_refused_left_as_it_is_and_events_go_from_memory(
    api: HTTPServer, recorder: Recorder, errors: Errors, tmp_path: Path,
    make_client: Callable[..., Analytics], planted: str,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp
    spool = shared / "events.db"
    with sqlite3.connect(spool) as db:  # another user's spool, ready for the victim's events
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    db.close()
    if planted == "owned by another user":
        os.chown(spool, NOBODY, NOBODY)
        spool.chmod(0o644)
    else:
        spool.chmod(0o666)
    before = spool.read_bytes()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)

    client = make_client(url(api), spool_path=spool)
    sent = track(client, 5)
    assert client.flush(timeout=10)

    recorder.assert_each_once(sent)
    [error] = errors.of(SpoolError)
    assert error.moved_to is None and "kept in memory only" in str(error)
    if planted == "owned by another user":
        assert f"owned by another user (uid {NOBODY}" in str(error)
    else:
        assert "that other users may write (mode 666)" in str(error)
    assert spool.read_bytes() == before and sorted(p.name for p in shared.iterdir()) == ["events.db"]


@pytest.mark.parametrize("name", ["events.db", "events.db-wal", "events.db-shm"])
def test_a_link_planted_at_the_spool_or_its_companions_is_not_followed(
    api: HTTPServer, recorder: Recorder, errors: Errors, tmp_path: Path,
    make_client: Callable[..., Analytics], name: str,
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("the victim's own file")
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / name).symlink_to(precious)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)

    client = make_client(url(api), spool_path=folder / "events.db")
    sent = track(client, 5)
    assert client.flush(timeout=10)

    recorder.assert_each_once(sent)
    [error] = errors.of(SpoolError)
    assert f"has a symbolic link at {folder / name}; left as it is" in str(error)
    assert precious.read_text() == "the victim's own file"


# -- the client's side ----------------------------------------------------------------------------


def test_callbacks_run_once_the_api_acknowledged_the_event(
    api: HTTPServer, recorder: Recorder, make_client: Callable[..., Analytics]
) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    client = make_client(url(api))
    calls: list[tuple[Any, list]] = []

    message_id = client.track(user_id="u1", event="Called back", callback=lambda e, b: calls.append((e, b)))
    assert client.flush(timeout=10)

    [(error, batch)] = calls
    assert error is None and [m["messageId"] for m in batch] == [message_id]


def test_logging_from_the_spools_sender_is_not_fed_back_into_the_handler(
    api: HTTPServer, recorder: Recorder, spool: Path
) -> None:
    from cdp_logging import CDPHandler

    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    handler = CDPHandler(write_key=WRITE_KEY, host=url(api), spool_path=spool)
    log = logging.getLogger("tests.spool.callbacks")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)

    def logs_from_callback(error: Any, batch: list) -> None:
        log.info("from the sender", extra={"track": {"user_id": "u1", "event": "Loop"}})

    try:
        handler.client.track(user_id="u1", event="Once", message_id="once", callback=logs_from_callback)
        assert handler.client.flush(timeout=10)
    finally:
        log.removeHandler(handler)
        handler.close()
    recorder.assert_each_once(["once"])


def test_without_a_spool_sqlite3_is_never_imported(api: HTTPServer) -> None:
    api.expect_request(BATCH_PATH, method="POST").respond_with_data("{}")
    script = (
        "import sys, cdp_logging\n"
        f"client = cdp_logging.Analytics({WRITE_KEY!r}, host={url(api)!r})\n"
        "client.track(user_id='u1', event='No spool')\n"
        "assert client.close()\n"
        "print('sqlite3' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=python_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_spool_options_are_checked_and_read_from_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'spool_full' must be 'drop_oldest' or 'drop_newest'"):
        Analytics(WRITE_KEY, spool_path=tmp_path / "s.db", spool_full="drop_all")
    with pytest.raises(ValueError, match="'spool_sync_interval' must be a number of seconds from 0.001 to 60"):
        Analytics(WRITE_KEY, spool_path=tmp_path / "s.db", spool_sync_interval=0)
    with pytest.raises(TypeError, match="'spool_path' must be a path"):
        Analytics(WRITE_KEY, spool_path=42)  # type: ignore[arg-type]
    assert read_environment({
        "CDP_WRITE_KEY": "k", "CDP_SPOOL_PATH": " /var/lib/app/events.db ",
        "CDP_SPOOL_MAX_BYTES": "5000000", "CDP_SPOOL_FULL": "drop_newest",
        "CDP_SPOOL_SYNC_INTERVAL": "0.05",
    }) == {
        "write_key": "k", "spool_path": "/var/lib/app/events.db", "spool_max_bytes": 5_000_000,
        "spool_full": "drop_newest", "spool_sync_interval": 0.05,
    }


#: A user other than this process's (the tests run as root here, which may give files away).
NOBODY = 65534


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def _application_id(spool: Path) -> int:
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("PRAGMA application_id").fetchone()[0]
    finally:
        db.close()


def _rows(spool: Path) -> int:
    """Events in the spool file, read as another process would; -1 before there is one."""
    try:
        db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=10)
    except sqlite3.OperationalError:
        return -1
    try:
        return db.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.OperationalError:
        return -1
    finally:
        db.close()
