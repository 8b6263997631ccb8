"""Support for the tests of mapping rules and zero-code activation (test_rules, test_cli)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer

from cdp_logging.delivery.transport import Response

TESTS = Path(__file__).resolve().parents[1]
LEGACY_APP = TESTS / "legacy_app"
#: The console scripts installed next to the interpreter running the tests.
BIN = Path(sys.executable).parent
CDP_LOGGING = str(BIN / "cdp-logging")
GUNICORN = str(BIN / "gunicorn")
#: Generous for a loaded 2-core machine; conditions are polled, so passing runs are fast.
DEADLINE = 20.0


class CapturingTransport:
    """A transport that accepts every batch and keeps its messages."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def post(self, path: str, body: bytes) -> Response:
        with self._lock:
            self.messages.extend(json.loads(body)["batch"])
        return Response(200)

    def close(self) -> None:
        pass


# -- processes against a collector ----------------------------------------------------------

def accept_batches(httpserver: HTTPServer) -> None:
    """Make the test server answer the batch endpoint the way the API does."""
    httpserver.expect_request("/v1/batch", method="POST").respond_with_json({"success": True})


def received_events(httpserver: HTTPServer) -> list[dict[str, Any]]:
    """Every message the server received, in arrival order."""
    events = []
    for request, _response in list(httpserver.log):
        events.extend(json.loads(request.get_data())["batch"])
    return events


def collector_url(httpserver: HTTPServer) -> str:
    return f"http://127.0.0.1:{httpserver.port}"


def environment(**variables: str) -> dict[str, str]:
    """This process's environment without any CDP_ variable or PYTHONPATH, plus ``variables``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("CDP_", "_CDP_")) and key != "PYTHONPATH"}
    env.update(variables)
    return env


def collector_environment(httpserver: HTTPServer, **variables: str) -> dict[str, str]:
    """The environment of an application run that sends to ``httpserver``."""
    return environment(**{
        "CDP_WRITE_KEY": "test-write-key",
        "CDP_HOST": collector_url(httpserver),
        "CDP_FLUSH_INTERVAL": "0.1",
        **variables,
    })


def run(args: list[str], env: dict[str, str], *, stdin: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, input=stdin, capture_output=True, text=True, timeout=60,
        cwd=cwd or LEGACY_APP,
    )


def legacy_app(*args: str) -> list[str]:
    """The command line of the legacy application."""
    return [sys.executable, str(LEGACY_APP / "app.py"), *args]


class Output:
    """Lines a running process writes to a pipe, read on a thread so the process never blocks."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)

    def find(self, text: str) -> str | None:
        return next((line for line in list(self.lines) if text in line), None)

    @property
    def text(self) -> str:
        return "".join(self.lines)
