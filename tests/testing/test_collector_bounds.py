"""LocalCollector is a server anyone on the host can reach: what it keeps, the threads it
holds and the JSON it parses are bounded. The collector runs in a child process whose
memory (VmRSS) and thread count are read from /proc while the test posts to it."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
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
