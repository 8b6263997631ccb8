"""Small helpers shared by the tests: waiting on conditions, reading what a server received."""

from __future__ import annotations

import base64
import gzip
import inspect
import json
import threading
import time
from typing import Any
from collections.abc import Callable

from pytest_httpserver import HTTPServer

#: A write key distinctive enough that a leak into a log line or message is easy to find.
WRITE_KEY = "wk-test-5e3b9d71c0a4"

#: Deadlines are generous so a loaded 2-core machine does not make the suite flaky; a passing
#: test returns as soon as its condition holds, so they cost nothing when all is well.
DEADLINE = 15.0


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = DEADLINE,
    *,
    message: str | Callable[[], str] | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that.

    The tests' one way to wait: on a condition, with a deadline, never a bare sleep. The
    predicate is tried once more after the deadline, so a test descheduled on a busy machine
    past its deadline still passes when the condition holds. Fails the test with ``message``
    (a string, or a function giving one at the time of failure; say what was waited for), or
    else the predicate's source, when ``timeout`` passes first.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        late = time.monotonic() >= deadline
        result = predicate()
        if result:
            return result
        if late:
            what = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:g}s waiting for: {what or _describe(predicate)}")
        pause.wait(0.01)


def _describe(predicate: Callable[[], Any]) -> str:
    name = getattr(predicate, "__name__", repr(predicate))
    if name != "<lambda>":
        return name
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return name


def closed_by_peer(port: int) -> bool:
    """True once a TCP connection of this process to ``port`` on 127.0.0.1 was closed by the
    server and not yet by us (CLOSE_WAIT, as the operating system reports it)."""
    import psutil

    return any(
        connection.status == psutil.CONN_CLOSE_WAIT and connection.raddr and connection.raddr.port == port
        for connection in psutil.Process().net_connections(kind="tcp")
    )


def holds_for(predicate: Callable[[], Any], duration: float) -> bool:
    """True when ``predicate`` stays truthy for ``duration`` seconds (to check that something
    does *not* happen yet)."""
    deadline = time.monotonic() + duration
    pause = threading.Event()
    while time.monotonic() < deadline:
        if not predicate():
            return False
        pause.wait(0.01)
    return bool(predicate())


def batch_requests(server: HTTPServer) -> list[Any]:
    """The requests that reached ``/v1/batch``, in order of arrival."""
    return [request for request, _ in list(server.log) if request.path == "/v1/batch"]


def raw_body(request: Any) -> bytes:
    """A request's JSON body as sent before compression."""
    data = request.get_data()
    if request.headers.get("Content-Encoding") == "gzip":
        data = gzip.decompress(data)
    return data


def received_bodies(server: HTTPServer) -> list[dict[str, Any]]:
    """Every request body that reached ``/v1/batch``, parsed."""
    return [json.loads(raw_body(request)) for request in batch_requests(server)]


def received_batches(server: HTTPServer) -> list[list[dict[str, Any]]]:
    """The ``batch`` list of every request, in order of arrival."""
    return [body["batch"] for body in received_bodies(server)]


def basic_auth(write_key: str) -> str:
    """The Authorization header the API expects for ``write_key`` (empty password)."""
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def received_messages(server: HTTPServer, write_key: str | None = None) -> list[dict[str, Any]]:
    """Every message the server received (with ``write_key``, only those sent with it), in order."""
    requests = batch_requests(server)
    if write_key is not None:
        requests = [r for r in requests if r.headers.get("Authorization") == basic_auth(write_key)]
    return [message for request in requests for message in json.loads(raw_body(request))["batch"]]


def wait_for_messages(
    server: HTTPServer, count: int, timeout: float = DEADLINE, *, write_key: str | None = None
) -> list[dict[str, Any]]:
    """Wait until the server holds at least ``count`` messages (sent with ``write_key``, if
    given); return them all."""
    def described() -> str:
        found = received_messages(server, write_key)
        return f"{count} messages at the server, got {len(found)}: {[m.get('event') or m['type'] for m in found]}"

    wait_until(lambda: len(received_messages(server, write_key)) >= count, timeout, message=described)
    return received_messages(server, write_key)
