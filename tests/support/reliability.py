"""Real servers and real processes for the reliability tests.

* :class:`Recorder` is a pytest-httpserver handler that accepts batches and keeps every
  messageId it accepted, so a test can check that each arrived exactly once.
* :func:`start_api` starts a threaded pytest-httpserver on 127.0.0.1 (several processes may
  post at once); :func:`free_port` reserves a port on which one can be started later.
* :class:`SilentServer` accepts connections and never answers: pytest-httpserver cannot.
* :func:`run_python` runs a script from ``tests/apps`` in its own interpreter.

Every wait is on a condition with a deadline (``support.helpers.wait_until``), never a bare sleep.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from collections.abc import Iterable

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cdp_logging import CDPError

#: Distinctive, so a leak into a log line is easy to spot.
WRITE_KEY = "wk-reliability-5b1f0c9e"
BATCH_PATH = "/v1/batch"
APPS = Path(__file__).resolve().parents[1] / "apps"
ROOT = Path(__file__).resolve().parents[2]

#: Small retry waits so that retry tests take a fraction of a second.
FAST_RETRIES = {"initial_backoff": 0.02, "max_backoff": 0.1}


def batch_of(request: Request) -> list[dict[str, Any]]:
    """The messages of a batch request, whether gzipped or not."""
    body = request.get_data()
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return json.loads(body)["batch"]


class Recorder:
    """A pytest-httpserver handler that answers 200 and remembers what it accepted.

    ``accepted`` lists the messageIds of every accepted batch in arrival order; ``requests``
    one entry per accepted request: its messageIds and the client's port (a connection).

    Example::

        recorder = Recorder()
        server.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted: list[str] = []
        self.messages: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        batch = batch_of(request)
        with self._lock:
            self.messages.extend(batch)
            self.accepted.extend(message["messageId"] for message in batch)
            self.requests.append({
                "ids": [message["messageId"] for message in batch],
                "port": request.environ.get("REMOTE_PORT"),
                "size": len(request.get_data()),
            })
        return Response("{}", status=200, content_type="application/json")

    def count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def duplicates(self) -> dict[str, int]:
        with self._lock:
            counts = collections.Counter(self.accepted)
        return {message_id: n for message_id, n in counts.items() if n > 1}

    def assert_each_once(self, expected: Iterable[str]) -> None:
        """Every expected messageId arrived exactly once, and nothing else did."""
        expected = list(expected)
        assert len(set(expected)) == len(expected), "the test's own ids repeat"
        with self._lock:
            counts = collections.Counter(self.accepted)
        missing = [m for m in expected if m not in counts]
        duplicated = {m: n for m, n in counts.items() if n > 1}
        unexpected = set(counts) - set(expected)
        assert not missing, f"{len(missing)} of {len(expected)} never arrived, e.g. {missing[:3]}"
        assert not duplicated, f"{len(duplicated)} arrived more than once, e.g. {list(duplicated.items())[:3]}"
        assert not unexpected, f"{len(unexpected)} arrived that were not expected, e.g. {list(unexpected)[:3]}"


class LocalAPI(HTTPServer):
    """pytest-httpserver, threaded (several processes post at once), quick to stop."""

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.02)


class Gate:
    """A handler that holds every request until opened, then records it."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.open = threading.Event()
        self.arrived = threading.Event()

    def __call__(self, request: Request) -> Response:
        self.arrived.set()
        self.open.wait(30)
        return self.recorder(request)


class Errors(list):
    """An error_handler that keeps what it is given (thread-safe enough: list.append)."""

    def __call__(self, error: CDPError) -> None:
        self.append(error)

    def of(self, kind: type) -> list:
        return [e for e in self if isinstance(e, kind)]


def start_api(port: int = 0) -> HTTPServer:
    """A :class:`LocalAPI` on 127.0.0.1 (``port`` 0: any free port)."""
    server = LocalAPI(host="127.0.0.1", port=port, threaded=True)
    server.start()
    return server


def stop_api(server: HTTPServer) -> None:
    if server.is_running():
        server.clear()
        server.stop()


def url(server: HTTPServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def free_port() -> int:
    """A port nothing listens on right now (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SilentServer:
    """Accepts connections, reads what it is sent, and never answers.

    Example::

        with SilentServer() as silent:
            analytics = Analytics(host=silent.url, ...)   # every request times out
    """

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._held: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._listener.settimeout(0.05)
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                pass
            except OSError:
                return
            else:
                connection.setblocking(False)
                self._held.append(connection)
                self.connections += 1
            for held in self._held:
                try:
                    held.recv(65536)  # drain, so the client's send never blocks
                except OSError:
                    pass

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        for connection in self._held:
            connection.close()
        self._listener.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def python_env(**variables: str) -> dict[str, str]:
    """The environment for a child interpreter: this one's, with the package importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(APPS), env.get("PYTHONPATH")]))
    env.pop("CDP_WRITE_KEY", None)
    env.pop("CDP_HOST", None)
    env.update(variables)
    return env


def run_python(script: str, *args: str, timeout: float = 60.0, **variables: str) -> subprocess.CompletedProcess:
    """Run ``tests/apps/<script>`` with this interpreter; output is captured as text."""
    return subprocess.run(
        [sys.executable, str(APPS / script), *args],
        env=python_env(**variables),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """The lines of a child's stdout that are JSON objects (what the apps report)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            found.append(json.loads(line))
    return found
