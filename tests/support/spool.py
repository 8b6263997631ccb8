"""Processes, servers and files for the spool's tests (tests/delivery/test_spool.py).

* :func:`start_spool_app` starts ``tests/apps/spool_app.py`` without waiting;
  :func:`run_spool_app` runs it to its end; :func:`kill` ends one with SIGKILL and reaps it.
* :func:`logged` reads how many calls a running app has made (its progress file).
* :class:`SpoolConsole` drives ``tests/apps/spool_console.py``, a client with a spool in a
  process of its own (a file size limit, a mount or user namespace), one command at a time.
* :class:`HoldOnce` answers batches until told to hold one; the held request is never
  accepted, so a test can kill its sender while a request is in flight and unanswered.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from werkzeug import Request, Response

from support.reliability import APPS, WRITE_KEY, Recorder, json_lines, python_env


def spool_app_command(run_id: str, spool: Path, *, events: int = 0, rate: float = 0.0,
                      progress: Path | None = None, flush: float | None = None,
                      fork: bool = False, **options: Any) -> list[str]:
    command = [sys.executable, str(APPS / "spool_app.py"), run_id, str(spool),
               "--events", str(events), "--rate", str(rate), "--options", json.dumps(options)]
    if progress is not None:
        command += ["--progress", str(progress)]
    if flush is not None:
        command += ["--flush", str(flush)]
    if fork:
        command.append("--fork")
    return command


def start_spool_app(run_id: str, spool: Path, *, host: str, **arguments: Any) -> subprocess.Popen:
    """Start spool_app.py (see its docstring for the arguments); its output is piped as text."""
    return subprocess.Popen(
        spool_app_command(run_id, spool, **arguments),
        env=python_env(CDP_HOST=host, CDP_WRITE_KEY=WRITE_KEY),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def run_spool_app(run_id: str, spool: Path, *, host: str, timeout: float = 60.0,
                  **arguments: Any) -> dict[str, Any]:
    """Run spool_app.py to its end; its reports merged in one dict, and its stderr."""
    process = start_spool_app(run_id, spool, host=host, **arguments)
    return finish(process, timeout)


def finish(process: subprocess.Popen, timeout: float = 60.0) -> dict[str, Any]:
    """Wait for a spool_app.py; fail unless it exited cleanly. Its reports and stderr."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(process)
        raise
    assert process.returncode == 0, stderr
    reports: dict[str, Any] = {"stderr": stderr}
    for line in json_lines(stdout):
        reports.update(line)
    return reports


def kill(process: subprocess.Popen) -> None:
    """SIGKILL, then reap (a zombie's pid would still look alive)."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)


def logged(progress: Path) -> int:
    """How many logging calls a spool_app.py has made (0 before its first)."""
    try:
        return int.from_bytes(progress.read_bytes()[:8], "little")
    except FileNotFoundError:
        return 0


class HoldOnce:
    """Records batches like :class:`Recorder` until :meth:`hold_next` is called; then holds the
    next request until :meth:`release`, and answers it 503 without accepting it."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._lock = threading.Lock()
        self._hold = False
        self.held = threading.Event()
        self._released = threading.Event()

    def hold_next(self) -> None:
        with self._lock:
            self._hold = True

    def release(self) -> None:
        self._released.set()

    def __call__(self, request: Request) -> Response:
        with self._lock:
            hold, self._hold = self._hold, False
        if not hold:
            return self.recorder(request)
        self.held.set()
        self._released.wait(60)
        return Response("held, never accepted", status=503)


def index_of(message_id: str) -> int:
    """The number at the end of ``RUN-I``."""
    return int(message_id.rsplit("-", 1)[1])


class SpoolConsole:
    """A client with a spool in a process of its own, started under ``prefix`` (say
    ``["unshare", "-Ur"]``); calling it runs one command there (see tests/apps/spool_console.py)
    and returns the answer. A context manager: the process ends on exit.

    Example::

        with SpoolConsole(url(api), spool) as app:
            app("limit", 100_000); ids = app("track", 10, "full", 2000); app("flush", 15)
    """

    def __init__(self, host: str, spool: Path | str, *, prefix: list[str] | None = None,
                 **options: Any) -> None:
        self.process = subprocess.Popen(
            [*(prefix or []), sys.executable, str(APPS / "spool_console.py"), host, str(spool),
             json.dumps(options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=python_env())

    def __call__(self, *command: Any, timeout: float = 60.0) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGKILL)
            _, stderr = self.process.communicate(timeout=30)
            raise AssertionError(f"no answer to {command} within {timeout}s: {stderr[-3000:]}")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"{command} failed in the console: {answer['error']}")
        return answer["ok"]

    def __enter__(self) -> SpoolConsole:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.returncode is not None:
            return
        try:
            self.process.communicate(timeout=30)  # stdin closed: the console closes its client
        except subprocess.TimeoutExpired:
            kill(self.process)
