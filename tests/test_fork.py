"""Fork: a child starts with a working, empty pipeline and its own connections; the parent's
queued events are sent once, by the parent.

A real parent process (tests/apps/fork_app.py) forks while its first request is held open by
the server and more events wait in its queue; the children log their own events.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from support.reliability import (
    BATCH_PATH,
    WRITE_KEY,
    Recorder,
    batch_of,
    json_lines,
    run_python,
    start_api,
    stop_api,
    url,
)

BEFORE, AFTER, CHILD, TASKS = 15, 10, 25, 40  # as in fork_app.py


@pytest.fixture
def api() -> Iterator[HTTPServer]:
    server = start_api()
    yield server
    stop_api(server)


def hold_parents_first_request_until_a_child_posts(
    server: HTTPServer, recorder: Recorder, run_id: str
) -> None:
    """So that the parent forks with a request in flight and events queued behind it."""
    child_posted = threading.Event()
    held = threading.Event()
    first = f"{run_id}-parent-before-0"

    def handle(request: Request) -> Response:
        ids = [message["messageId"] for message in batch_of(request)]
        if first in ids:
            held.set()
            child_posted.wait(30)
        elif not any("-parent-" in message_id for message_id in ids):
            child_posted.set()
        return recorder(request)

    server.expect_request(BATCH_PATH, method="POST").respond_with_handler(handle)
    # The parent asks, before it logs the rest and forks.
    server.expect_request("/held").respond_with_handler(lambda request: Response(b"yes" if held.is_set() else b"no"))


def assert_forked_with_events_in_flight_and_queued(parent: dict[str, Any], recorder: Recorder, run_id: str) -> None:
    # The first request held only the first event, and every one was still pending: the
    # others were queued behind it.
    assert parent["at_fork"]["first_held"] and parent["at_fork"]["pending"] == BEFORE, parent
    assert [f"{run_id}-parent-before-0"] in [request["ids"] for request in recorder.requests]


def run_fork_app(server: HTTPServer, mode: str, run_id: str) -> list[dict[str, Any]]:
    result = run_python(
        "fork_app.py", mode, run_id, CDP_HOST=url(server), CDP_WRITE_KEY=WRITE_KEY, timeout=90
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return json_lines(result.stdout)


def parent_ids(run_id: str) -> list[str]:
    return [f"{run_id}-parent-before-{i}" for i in range(BEFORE)] + [
        f"{run_id}-parent-after-{i}" for i in range(AFTER)
    ]


def assert_each_process_used_its_own_connections(recorder: Recorder) -> None:
    parent_ports, child_ports = set(), set()
    for request in recorder.requests:
        from_parent = ["-parent-" in message_id for message_id in request["ids"]]
        assert all(from_parent) or not any(from_parent), f"one request mixed processes: {request}"
        (parent_ports if all(from_parent) else child_ports).add(request["port"])
    assert parent_ports and child_ports
    assert parent_ports.isdisjoint(child_ports), "a child wrote on a connection of its parent"


@pytest.mark.parametrize("mode", ["os-fork", "mp-process"])
def test_forked_children_and_their_parent_each_deliver_their_own_events_once(
    mode: str, api: HTTPServer
) -> None:
    recorder = Recorder()
    run_id = uuid.uuid4().hex[:8]
    hold_parents_first_request_until_a_child_posts(api, recorder, run_id)

    reports = run_fork_app(api, mode, run_id)

    [parent] = [r for r in reports if r["role"] == "parent"]
    children = [r for r in reports if r["role"].startswith("child")]
    assert parent["child_exit_codes"] == [0, 0]
    assert_forked_with_events_in_flight_and_queued(parent, recorder, run_id)
    assert len(children) == 2
    for child in children:
        assert child["pid"] != parent["pid"]
        assert (child["at_start"]["queued"], child["at_start"]["pending"]) == (0, 0)
    children_ids = [f"{run_id}-child{k}-{i}" for k in range(2) for i in range(CHILD)]
    recorder.assert_each_once(parent_ids(run_id) + children_ids)
    assert_each_process_used_its_own_connections(recorder)


@pytest.mark.parametrize("pool", ["mp-pool", "billiard-pool"])
def test_a_forked_worker_pool_delivers_every_task_event_once(pool: str, api: HTTPServer) -> None:
    if pool == "billiard-pool":
        pytest.importorskip("billiard")  # Celery's prefork pool
    recorder = Recorder()
    run_id = uuid.uuid4().hex[:8]
    hold_parents_first_request_until_a_child_posts(api, recorder, run_id)

    reports = run_fork_app(api, pool, run_id)

    [parent] = [r for r in reports if r["role"] == "parent"]
    assert_forked_with_events_in_flight_and_queued(parent, recorder, run_id)
    tasks = [f"{run_id}-task-{i}" for i in range(TASKS)]
    recorder.assert_each_once(parent_ids(run_id) + tasks)
    assert_each_process_used_its_own_connections(recorder)
