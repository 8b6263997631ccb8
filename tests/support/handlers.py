"""Shared pieces of the handler's tests: a collecting server, logging
state that is put back after each test, and running Python in a subprocess.

Imported by ``test_handler.py``, ``test_mapping.py``, ``test_events.py`` and
``test_examples_config.py``; fixtures are re-exported from those modules by name.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from support.helpers import basic_auth, wait_until
import pytest
from pytest_httpserver import HTTPServer

from cdp_logging import CDPHandler

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLES = REPOSITORY / "examples"
TESTS = Path(__file__).resolve().parents[1]

#: Generous bounds: the tests must pass on a loaded two-core machine.
DELIVERY_TIMEOUT = 15.0
SUBPROCESS_TIMEOUT = 60.0


# -- the collecting server ---------------------------------------------------------------------

def new_write_key() -> str:
    """A write key no other test uses: requests are told apart by their Authorization header."""
    return f"test-key-{uuid.uuid4().hex[:12]}"


def accept_batches(server: HTTPServer, status: int = 200) -> HTTPServer:
    """Answer every POST to /v1/batch with ``status``."""
    server.expect_request("/v1/batch", method="POST").respond_with_json({}, status=status)
    return server


def host_of(server: HTTPServer) -> str:
    """The ``host`` option that points a client at ``server``."""
    return server.url_for("").rstrip("/")


def batches(server: HTTPServer, write_key: str) -> list[dict[str, Any]]:
    """The request bodies ``server`` received with ``write_key``, decoded, in arrival order."""
    auth = basic_auth(write_key)
    bodies = []
    for request, _response in list(server.log):
        if request.headers.get("Authorization") != auth:
            continue
        data = request.get_data()
        if request.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        bodies.append(json.loads(data))
    return bodies


def messages(server: HTTPServer, write_key: str) -> list[dict[str, Any]]:
    """Every message ``server`` received with ``write_key``, in arrival order."""
    return [message for body in batches(server, write_key) for message in body["batch"]]


def parse_timestamp(text: str) -> float:
    """Epoch seconds of an API timestamp such as ``2024-05-01T12:00:00.250Z``."""
    assert text.endswith("Z"), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def assert_timestamp_is(text: str, created: float) -> None:
    """The message's timestamp is ``created``, to the millisecond the API format keeps."""
    assert abs(parse_timestamp(text) - created) < 0.0011, (text, created)


# -- what the tests collect ---------------------------------------------------------------------

class RecordCapture(logging.Filter):
    """A filter that keeps every record it sees (to compare timestamps with record.created)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return True


class ListHandler(logging.Handler):
    """Keeps the formatted records it handles."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [record.getMessage() for record in self.records]


#: What :func:`remember_error` was given: an ``error_handler`` a configuration file can name.
REMEMBERED_ERRORS: list[Exception] = []


def remember_error(error: Exception) -> None:
    """An error_handler for configuration tests (``"ext://support.handlers.remember_error"``)."""
    REMEMBERED_ERRORS.append(error)


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture
def write_key() -> str:
    """A write key unique to the test."""
    return new_write_key()


@pytest.fixture
def server(httpserver_ipv4: HTTPServer) -> HTTPServer:
    """pytest-httpserver on 127.0.0.1, answering 200 to every batch."""
    return accept_batches(httpserver_ipv4)


def _cdp_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("cdp-logging")}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put logging back as it was: root and named loggers' handlers, levels, propagate and
    disabled flags; close every handler the test added; then wait for the cdp-logging threads
    the test started to end, so no test sends into the next one's server."""
    REMEMBERED_ERRORS.clear()
    threads_before = _cdp_threads()
    manager = logging.Logger.manager

    def loggers() -> list[logging.Logger]:
        return [logging.getLogger(), *(
            logger for logger in manager.loggerDict.values() if isinstance(logger, logging.Logger))]

    saved = {logger: (logger.handlers[:], logger.level, logger.propagate, logger.disabled)
             for logger in loggers()}
    saved_disable = manager.disable
    try:
        yield
    finally:
        added: list[logging.Handler] = []
        for logger in loggers():
            handlers, level, propagate, disabled = saved.get(logger, ([], logging.NOTSET, True, False))
            added.extend(h for h in logger.handlers if h not in handlers and not _pytests(h))
            # pytest's capture handlers come and go with each test phase: leave them be.
            logger.handlers[:] = [h for h in logger.handlers if _pytests(h)] + [
                h for h in handlers if not _pytests(h)]
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled
        for handler in added:
            handler.close()
        logging.disable(saved_disable)
        wait_until(lambda: not (_cdp_threads() - threads_before), 20.0,
                   message="the cdp-logging threads started by the test to end")


def _pytests(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("_pytest")


# -- subprocesses ---------------------------------------------------------------------------------

def subprocess_env(server: HTTPServer, write_key: str, **extra: str) -> dict[str, str]:
    """The environment of a child that sends to ``server``: CDP_HOST and CDP_WRITE_KEY set,
    the tests directory and the examples importable."""
    env = dict(os.environ)
    env.update(
        CDP_HOST=host_of(server),
        CDP_WRITE_KEY=write_key,
        NO_PROXY="127.0.0.1,localhost",
        PYTHONPATH=os.pathsep.join(filter(None, (str(TESTS), str(EXAMPLES), env.get("PYTHONPATH")))),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_python(args: list[str], env: dict[str, str], timeout: float = SUBPROCESS_TIMEOUT,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python args...`` to completion and return what it did."""
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout,
        cwd=cwd or REPOSITORY,
    )


class CDPHandlerSubclass(CDPHandler):
    """A user's subclass: to the library it is still a handler that ignores plain records."""

    def send(self, call: str, fields: dict[str, Any], record: logging.LogRecord) -> None:
        super().send(call, fields, record)
