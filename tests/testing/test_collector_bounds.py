"""LocalCollector is a server anyone on the host can reach: what it keeps, the threads it
holds and the JSON it parses are bounded. The collector runs in a child process whose
memory (VmRSS) and thread count are read from /proc while the test posts to it."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from support.helpers import wait_until
from support.reliability import python_env

WRITE_KEY = "right-key"
MB = 1024 * 1024

#: The child: a collector, then one JSON line of its state for each line read on stdin.
CHILD = """
import json, sys
from cdp_logging.testing.collector import LocalCollector
options = json.loads(sys.argv[1])
collector = LocalCollector(write_key=%r, **options).start()
print(collector.port, flush=True)
for _ in sys.stdin:
    requests = collector.requests
    print(json.dumps({
        "messages": [m.get("messageId") for m in collector.messages],
        "let_go": getattr(collector, "let_go", None),  # None: a collector without the ring
        "statuses": [r.status for r in requests],
        "kept_body_bytes": sum(len(r.body) for r in requests),
    }), flush=True)
""" % WRITE_KEY


class Child:
    def __init__(self, **options: Any) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(options)], env=python_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"
        self.session = requests.Session()
        self.session.trust_env = False

    def state(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def status(self, field: str) -> int:
        """A number from /proc/PID/status (VmRSS in kB, Threads)."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.process.pid}/status")

    def rss(self) -> int:
        return self.status("VmRSS") * 1024

    def post(self, body: bytes, *, key: str = WRITE_KEY, path: str = "/v1/batch") -> requests.Response:
        return self.session.post(self.url + path, data=body, auth=(key, ""),
                                 headers={"Content-Type": "application/json"}, timeout=60)

    def close(self) -> None:
        self.session.close()
        self.process.kill()
        self.process.communicate(timeout=30)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for child in made:
        child.close()


def start(children: list[Child], **options: Any) -> Child:
    child = Child(**options)
    children.append(child)
    return child


def batch(first: int, count: int, text: str = "") -> bytes:
    return json.dumps({"batch": [
        {"type": "track", "event": "E", "userId": "u", "messageId": f"m-{i}", "properties": {"t": text}}
        for i in range(first, first + count)
    ]}).encode()


def test_bodies_refused_for_a_wrong_key_or_path_are_not_kept(children: list[Child]) -> None:
    child = start(children)
    child.post(batch(0, 1))
    before = child.rss()
    garbage = b"x" * (50 * MB)

    statuses = [child.post(garbage, key="wrong-key").status_code for _ in range(6)]
    statuses += [child.post(garbage, path="/v1/nowhere").status_code for _ in range(2)]
    grown = child.rss() - before

    assert statuses == [401] * 6 + [404] * 2
    state = child.state()
    assert state["statuses"] == [200, *statuses] and state["kept_body_bytes"] < 1000
    # Kept, the eight bodies would be 400 MB; what is left is the allocator's slack.
    assert grown < 100 * MB, f"memory grew by {grown / MB:.0f} MB after eight refused 50 MB posts"


def test_what_is_kept_is_a_ring_of_the_newest_with_a_count_of_what_was_let_go(children: list[Child]) -> None:
    child = start(children, max_kept=100)
    child.post(batch(0, 25, "p" * 15_000))  # ~400 KB a batch
    before = child.rss()

    for first in range(25, 5000, 25):
        assert child.post(batch(first, 25, "p" * 15_000)).status_code == 200
    grown = child.rss() - before

    state = child.state()
    assert state["messages"] == [f"m-{i}" for i in range(4900, 5000)], "the newest 100, in order"
    # The requests kept hold at most 100 messages between them: the newest four batches.
    assert state["let_go"] == {"messages": 4900, "requests": 196, "rejected": 0}
    assert len(state["statuses"]) == 4
    # 5,000 events of 15 KB were posted (75 MB): 100 events and four bodies stay.
    assert grown < 40 * MB, f"memory grew by {grown / MB:.0f} MB"


def test_idle_connections_time_out_and_give_their_threads_back(children: list[Child]) -> None:
    child = start(children, idle_timeout=5.0, max_connections=400)
    baseline = child.status("Threads")
    connections = [socket.create_connection(("127.0.0.1", int(child.url.rsplit(":", 1)[1])))
                   for _ in range(300)]
    try:
        wait_until(lambda: child.status("Threads") >= baseline + 250, timeout=20,
                   message="a thread for each idle connection")
        wait_until(lambda: child.status("Threads") <= baseline + 5, timeout=20,
                   message="the idle connections' threads gone")
        connections[0].settimeout(10)
        assert connections[0].recv(1) == b"", "the server closed the idle connection"
    finally:
        for connection in connections:
            connection.close()
    assert child.post(batch(0, 1)).status_code == 200, "still serving"


@pytest.mark.parametrize("depth", [65, 100_000])
def test_json_nested_beyond_the_bound_is_a_400_that_says_so(children: list[Child], depth: int) -> None:
    child = start(children)
    nested = "[" * depth + "]" * depth
    body = ('{"batch": [{"type": "track", "event": "E", "userId": "u", "properties": {"deep": '
            + nested + "}}]}").encode()

    response = child.post(body)

    assert response.status_code == 400
    assert response.json() == {"code": "invalid_request", "message": "body is JSON nested more than 64 levels deep",
                               "meta": {"errors": ["body is JSON nested more than 64 levels deep"]}}
    assert child.post(batch(0, 1)).status_code == 200, "still serving"
    assert child.status("Threads") < 10


def test_a_client_that_stalls_mid_body_is_cut_off_after_the_idle_timeout(children: list[Child]) -> None:
    child = start(children, idle_timeout=1.0)
    baseline = child.status("Threads")
    stalled = socket.create_connection(("127.0.0.1", int(child.url.rsplit(":", 1)[1])))
    try:
        # With the right key: a wrong one is answered before the body is read.
        auth = base64.b64encode(f"{WRITE_KEY}:".encode())
        stalled.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth
                        + b"\r\nContent-Length: 1000\r\n\r\n{\"batch\": [")
        stalled.settimeout(20)
        assert stalled.recv(1) == b"", "the server closed the stalled connection"
    finally:
        stalled.close()
    wait_until(lambda: child.status("Threads") <= baseline, timeout=20, message="its thread gone")
    assert child.post(batch(0, 1)).status_code == 200, "still serving"


def _port(child: Child) -> int:
    return int(child.url.rsplit(":", 1)[1])


def _head(length: int, key: str = WRITE_KEY, path: str = "/v1/batch") -> bytes:
    auth = base64.b64encode(f"{key}:".encode()).decode()
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


@pytest.mark.parametrize(("key", "length", "status"), [("wrong-key", 60 * MB, 401), (WRITE_KEY, 60 * MB, 413),
                                                       (WRITE_KEY, 500_001, 413)])
def test_the_key_and_the_length_are_checked_before_a_byte_of_the_body_is_read(
    children: list[Child], key: str, length: int, status: int
) -> None:
    child = start(children)
    with socket.create_connection(("127.0.0.1", _port(child))) as connection:
        connection.sendall(_head(length, key))  # the head alone: the body never comes
        connection.settimeout(20)
        answer = connection.recv(65536)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:100]


def test_sixteen_60_mb_bodies_at_once_are_refused_unread(children: list[Child]) -> None:
    child = start(children)
    child.post(batch(0, 1))
    before = child.rss()
    body = b"x" * (60 * MB)
    statuses: list[int] = []

    def send(key: str) -> None:
        with requests.Session() as session:
            session.trust_env = False
            statuses.append(session.post(child.url + "/v1/batch", data=body, auth=(key, ""), timeout=120).status_code)

    threads = [threading.Thread(target=send, args=(WRITE_KEY if n % 2 else "wrong-key",)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    grown = child.status("VmHWM") * 1024 - before  # the peak, not what is left after
    print(f"sixteen 60 MB bodies: peak RSS {grown / MB:.0f} MB over the start")
    # The clients see the answers (the bodies are read and thrown away, not reset under them).
    assert sorted(statuses) == [401] * 8 + [413] * 8
    assert grown < 64 * MB, f"memory grew by {grown / MB:.0f} MB for sixteen 60 MB bodies"
    assert child.post(batch(1, 1)).status_code == 200, "still serving"


def test_a_thousand_idle_connections_hold_at_most_max_connections_threads(children: list[Child]) -> None:
    child = start(children, idle_timeout=60.0)
    baseline = child.status("Threads")
    connections = [socket.create_connection(("127.0.0.1", _port(child))) for _ in range(1000)]
    try:
        # Each connection past the cap is answered 503 at once and closed.
        connections[-1].settimeout(20)
        assert connections[-1].recv(12) == b"HTTP/1.1 503"
        most = child.status("Threads")
        print(f"1,000 idle connections: {most} threads ({baseline} before)")
        assert most <= baseline + 128 + 2, f"{most - baseline} threads for 1,000 idle connections"
    finally:
        for connection in connections:
            connection.close()
    wait_until(lambda: child.post(batch(0, 1)).status_code == 200, timeout=30, message="serving again")


def test_a_client_trickling_a_byte_at_a_time_is_cut_off_at_the_request_deadline(children: list[Child]) -> None:
    child = start(children, idle_timeout=2.0)
    request = _head(1000) + b"x" * 1000
    started = time.monotonic()
    closed_after = None
    with socket.create_connection(("127.0.0.1", _port(child))) as connection:
        try:
            for byte in request:  # a byte every 0.5 s: each read well within the idle timeout
                connection.sendall(bytes([byte]))
                time.sleep(0.5)  # the pace of the attack itself, not a wait for a condition
                if time.monotonic() - started > 12:
                    break
        except OSError:  # reset or broken pipe: the server closed it
            closed_after = time.monotonic() - started
        if closed_after is None:
            connection.settimeout(5)
            try:
                if connection.recv(100) == b"":
                    closed_after = time.monotonic() - started
            except TimeoutError:
                pass  # still open
            except OSError:
                closed_after = time.monotonic() - started
    print(f"trickling connection closed after {closed_after} s (idle_timeout 2 s)")
    assert closed_after is not None and closed_after < 10, "the trickling connection was held past the deadline"
