"""Messages that say what to do: a refused write key, a key sent to the other region, a missing
key said once for a whole tree of processes (uvicorn's workers included)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

import cdp_logging
from support.helpers import DEADLINE, WRITE_KEY, wait_until


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cdp_logging" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_write_key_is_one_line_saying_what_to_check(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture, status: int,
) -> None:
    httpserver.expect_request("/v1/batch", method="POST").respond_with_json(
        {"meta": {"errors": ["unauthorized"]}}, status=status)
    client = cdp_logging.Analytics(WRITE_KEY, host=httpserver.url_for("").rstrip("/"), flush_interval=60)
    with caplog.at_level(logging.WARNING, logger="cdp_logging"):
        client.track(user_id="1", event="Signed Up")
        assert not client.close_and_flush(timeout=DEADLINE)
    [line] = warnings_of(caplog)   # one batch, one line: no summary repeating it at close
    assert line.startswith(
        f"cdp-logging: 1 event not delivered after 1 attempt: the API refused the write key (HTTP {status}): "
        "check CDP_WRITE_KEY / write_key for this source; the API said: unauthorized; messageIds ")
    # The status once (messageIds, random UUIDs, may hold the same digits by chance).
    assert line.partition("; messageIds ")[0].count(str(status)) == 1
    assert WRITE_KEY not in line


def test_a_batch_the_api_refused_says_the_status_once_and_what_it_said(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture,
) -> None:
    httpserver.expect_request("/v1/batch", method="POST").respond_with_json(
        {"code": "invalid_request", "message": "batch is malformed"}, status=400)
    client = cdp_logging.Analytics(WRITE_KEY, host=httpserver.url_for("").rstrip("/"), flush_interval=60)
    with caplog.at_level(logging.WARNING, logger="cdp_logging"):
        client.track(user_id="1", event="Signed Up")
        assert not client.close_and_flush(timeout=DEADLINE)
    [line] = warnings_of(caplog)
    assert "the API answered HTTP 400; the API said: batch is malformed; messageIds " in line
    assert line.partition("; messageIds ")[0].count("400") == 1


def test_a_deadline_cut_short_still_gets_its_summary_at_close(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture,
) -> None:
    httpserver.expect_request("/v1/batch", method="POST").respond_with_data("busy", status=503)
    client = cdp_logging.Analytics(WRITE_KEY, host=httpserver.url_for("").rstrip("/"), flush_interval=60,
                                   initial_backoff=5, max_backoff=5)
    with caplog.at_level(logging.WARNING, logger="cdp_logging"):
        client.track(user_id="1", event="Signed Up")
        assert not client.close_and_flush(timeout=0.5)
    assert any("could not be delivered before closing (shutdown timeout 0.5s)" in line
               for line in warnings_of(caplog))


@pytest.mark.parametrize("key, host, fix", [
    ("pk_eu_123", "https://cdp.customer.io", "set host=https://cdp-eu.customer.io"),
    ("sk_us_123", "https://cdp-eu.customer.io", "set host=https://cdp.customer.io"),
])
def test_a_key_sent_to_the_other_region_says_how_to_fix_it(
    caplog: pytest.LogCaptureFixture, key: str, host: str, fix: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="cdp_logging"):
        client = cdp_logging.Analytics(key, host=host, enable=False)
    client.close_and_flush(timeout=0)
    [line] = warnings_of(caplog)
    assert "which refuses it: drop host (and CDP_HOST) to use the key's region, or " + fix in line
    assert key not in line


ASGI_APP = """
    import os, sys
    import cdp_logging

    client = cdp_logging.Analytics()          # no CDP_WRITE_KEY: sends nothing, says so
    sys.stderr.write(f"app imported in {os.getpid()}\\n")
    sys.stderr.flush()

    async def app(scope, receive, send):
        pass
"""


def test_the_missing_key_warning_is_said_once_by_uvicorn_workers(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    (tmp_path / "asgi_app.py").write_text(textwrap.dedent(ASGI_APP))
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CDP_", "_CDP_"))}
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--workers", "2", "--port", "0", "--host", "127.0.0.1",
             "--app-dir", str(tmp_path), "asgi_app:app"],
            stdout=subprocess.DEVNULL, stderr=stderr, env=environ, cwd=tmp_path,
        )
        try:
            wait_until(lambda: log.read_text().count("app imported in") >= 2, timeout=60,
                       message=lambda: f"both workers to import the app; stderr: {log.read_text()}")
        finally:
            server.terminate()
            server.wait(timeout=60)
    said = [line for line in log.read_text().splitlines() if "CDP_WRITE_KEY is not set" in line]
    assert len(said) == 1, log.read_text()


def test_the_missing_key_warning_is_said_again_by_a_new_process_tree(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CDP_", "_CDP_"))}
    code = "import cdp_logging; cdp_logging.Analytics()"
    for _ in range(2):   # two separate runs of the application: each says it
        result = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                                text=True, timeout=60)
        assert result.stderr.count("CDP_WRITE_KEY is not set") == 1, result.stderr
