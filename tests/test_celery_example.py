"""examples/celery_app.py's default broker carries a task from the process that sends it to a
worker process (memory://, its earlier default, cannot): real processes, a local collector."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cdp_logging.testing import LocalCollector
from support.helpers import wait_until

ROOT = Path(__file__).resolve().parents[1]


def test_a_task_sent_by_one_process_is_run_by_a_worker_and_its_event_delivered(tmp_path: Path) -> None:
    pytest.importorskip("celery")
    with LocalCollector() as collector:
        environ = {
            **{k: v for k, v in os.environ.items()
               if not k.startswith(("CDP_", "_CDP_", "CELERY_"))},
            "CDP_WRITE_KEY": "example-write-key", "CDP_HOST": collector.url,
            "CELERY_BROKER_FOLDER": str(tmp_path / "broker"),
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        }
        sender = subprocess.run([sys.executable, "examples/celery_app.py", "--send"], cwd=ROOT,
                                env=environ, capture_output=True, text=True, timeout=120)
        assert sender.returncode == 0, sender.stderr
        assert sender.stdout.startswith("queued task ")
        assert collector.messages == []   # nothing ran in the sender
        log = tmp_path / "worker.txt"
        with log.open("w") as output:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "--app", "examples.celery_app", "worker",
                 "--pool", "solo", "--loglevel", "INFO", "--without-heartbeat",
                 "--without-gossip", "--without-mingle"],
                cwd=ROOT, env=environ, stdout=output, stderr=subprocess.STDOUT,
            )
            try:
                wait_until(lambda: collector.events("track", event="Welcome Email Sent", user_id="42"),
                           timeout=90, message=lambda: f"the worker's event; its output:\n{log.read_text()}")
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
        [welcome] = collector.events("track", event="Welcome Email Sent", user_id="42")
        assert welcome["properties"] == {"email": "ada@example.com"}
