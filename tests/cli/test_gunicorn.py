"""gunicorn --preload with 2 workers, logging through the CDPHandler that --log-config sets up:
every event, from the master and from both workers, reaches the API exactly once after the
master is stopped with SIGTERM.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import requests
from pytest_httpserver import HTTPServer

from support.reliability import (
    APPS,
    BATCH_PATH,
    WRITE_KEY,
    Recorder,
    free_port,
    python_env,
    start_api,
    stop_api,
    url,
)
from support.helpers import wait_until

pytest.importorskip("gunicorn")

PRELOAD = 5  # as in apps/wsgi_app.py


@pytest.fixture
def api() -> Iterator[HTTPServer]:
    server = start_api()
    yield server
    stop_api(server)


def start_gunicorn(api_url: str, port: int, run_id: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "gunicorn", "--preload", "--workers", "2",
        "--bind", f"127.0.0.1:{port}", "--log-config", str(APPS / "gunicorn_logging.ini"),
        "--chdir", str(APPS), "--graceful-timeout", "20", "wsgi_app:app",
    ]
    env = python_env(CDP_HOST=api_url, CDP_WRITE_KEY=WRITE_KEY, CDP_TEST_RUN=run_id)
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_gunicorn_preload_workers_deliver_every_event_once_after_sigterm(api: HTTPServer) -> None:
    recorder = Recorder()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    run_id = uuid.uuid4().hex[:8]
    port = free_port()
    gunicorn = start_gunicorn(url(api), port, run_id)
    answers: list[dict] = []
    arrived_before_sigterm = 0
    try:
        def ask() -> bool:
            try:
                reply = requests.get(f"http://127.0.0.1:{port}/hello", timeout=5)
            except requests.ConnectionError:
                assert gunicorn.poll() is None, "gunicorn exited early"
                return False
            answers.append(reply.json())
            pids = collections.Counter(answer["pid"] for answer in answers)
            return len(pids) == 2 and len(answers) >= 20

        wait_until(ask, timeout=60, message="both workers answered")
    finally:
        arrived_before_sigterm = recorder.count()
        gunicorn.send_signal(signal.SIGTERM)
        try:
            _, stderr = gunicorn.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            gunicorn.kill()
            _, stderr = gunicorn.communicate()
            pytest.fail(f"gunicorn did not stop within 40 s of SIGTERM:\n{stderr[-3000:]}")

    assert gunicorn.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    workers = {answer["pid"] for answer in answers}
    assert len(workers) == 2 and gunicorn.pid not in workers
    expected = [f"{run_id}-preload-{i}" for i in range(PRELOAD)] + [a["message_id"] for a in answers]
    recorder.assert_each_once(expected)
    # flush_interval is 60 s: the rest were still queued when SIGTERM came.
    assert arrived_before_sigterm < len(expected)

    # Each worker sent its own events on its own connections, none of the master's.
    ports_by_process = collections.defaultdict(set)
    for request in recorder.requests:
        senders = {message_id.split("-")[1] for message_id in request["ids"]}
        assert len(senders) == 1, f"one request carried events of several processes: {request}"
        ports_by_process[senders.pop()].add(request["port"])
    assert set(ports_by_process) == {"preload", *map(str, workers)}
    all_ports = [port for ports in ports_by_process.values() for port in ports]
    assert len(all_ports) == len(set(all_ports)), "a worker wrote on a connection of another process"
