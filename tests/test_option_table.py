"""The option table: each ``CDP_*`` variable is the default of its option wherever a client is
made, a bad value is one warning and the default, every number is finite and in range, and
docs/configuration.md is what the table generates."""

from __future__ import annotations

import inspect
import logging
import uuid
import logging.config
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer

import cdp_logging
from cdp_logging import Analytics, ConfigurationError, Response
from cdp_logging.cli import main
from cdp_logging.cli.reference import markdown
from cdp_logging.testing import LocalCollector
from cdp_logging.option_table import CLIENT_OPTIONS, OPTIONS
from support.helpers import DEADLINE, wait_for_messages, wait_until

ROOT = Path(__file__).resolve().parent.parent


class HeldTransport:
    """Takes each request and answers 200 only once released: what is queued meanwhile stays queued."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.bodies: list[bytes] = []

    def post(self, path: str, body: bytes) -> Response:
        self.bodies.append(body)
        self.release.wait(DEADLINE)
        return Response(200)

    def close(self) -> None:
        self.release.set()


@pytest.fixture
def lenient(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """As in production: a bad variable warns (the plugin makes it an error); nothing said yet."""
    for name in list(os.environ):
        if name.startswith("CDP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CDP_STRICT", "false")
    monkeypatch.setenv("_CDP_LOGGING_SAID", "")  # restored (unset) after the test
    return monkeypatch


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cdp_logging" and r.levelno >= logging.WARNING]


# -- the table is the options ---------------------------------------------------------------

def test_the_table_has_one_row_per_option_of_the_client_with_its_default() -> None:
    parameters = [p for p in inspect.signature(Analytics.__init__).parameters.values() if p.name != "self"]
    assert [option.name for option in CLIENT_OPTIONS] == [p.name for p in parameters]
    assert {option.name: option.default for option in CLIENT_OPTIONS} == {p.name: p.default for p in parameters}
    for option in OPTIONS:
        assert option.description and option.default_text
        if option.kind in ("int", "float", "timeout"):
            assert option.minimum is not None and option.maximum is not None, option.name


def test_the_python_blocks_of_docs_configuration_md_run(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    blocks = re.findall(r"(?<!<!-- fragment -->\n)```python\n(.*?)```", text, re.DOTALL)
    assert blocks
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CDP_", "_CDP_"))}
    with LocalCollector() as collector:
        environ.update(CDP_WRITE_KEY="key", CDP_HOST=collector.url)
        for block in blocks:
            result = subprocess.run([sys.executable, "-c", block], env=environ, capture_output=True,
                                    text=True, timeout=60, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            assert result.stdout == "code\nCDP_WRITE_KEY\ndefault\n"


def test_check_reports_a_bad_variable_as_an_error(lenient: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    lenient.setenv("CDP_ENABLE", "false")
    lenient.setenv("CDP_FLUSH_INTERVAL", "ten")
    assert main(["check"]) == 2
    assert "CDP_FLUSH_INTERVAL='ten': must be a number of seconds from 0.001 to 3600" in capsys.readouterr().err


def test_docs_configuration_md_is_what_the_table_generates() -> None:
    # Regenerate with: python -m cdp_logging.cli.reference > docs/configuration.md
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == markdown()
    for option in OPTIONS:
        assert f"| `{option.name}` |" in markdown()


# -- every variable is the default wherever a client is made --------------------------------

def test_a_variable_is_the_default_for_a_client_made_in_code(lenient: pytest.MonkeyPatch) -> None:
    lenient.setenv("CDP_MAX_QUEUE_SIZE", "1")
    lenient.setenv("CDP_FLUSH_INTERVAL", "0.5")
    held = HeldTransport()
    client = Analytics("key", transport=held)
    try:
        client.track(user_id="1", event="first")        # taken at once, held by the transport
        wait_until(lambda: held.bodies, message="the first request")
        client.track(user_id="1", event="queued")       # the one event the queue may hold
        client.track(user_id="1", event="no room")
        assert client.stats()["dropped"] == 1
        assert client.option_sources["max_queue_size"] == "CDP_MAX_QUEUE_SIZE"
        assert client.option_sources["flush_interval"] == "CDP_FLUSH_INTERVAL"
        assert client.option_sources["max_events_in_batch"] == "default"
        assert client.option_sources["transport"] == "code"
    finally:
        held.release.set()
        client.close_and_flush(timeout=DEADLINE)


def test_an_argument_given_in_code_wins_over_the_variable(lenient: pytest.MonkeyPatch) -> None:
    lenient.setenv("CDP_MAX_QUEUE_SIZE", "1")
    held = HeldTransport()
    client = Analytics("key", transport=held, max_queue_size=10)
    try:
        client.track(user_id="1", event="first")
        wait_until(lambda: held.bodies, message="the first request")
        for _ in range(3):
            client.track(user_id="1", event="queued")
        assert client.stats()["dropped"] == 0
        assert client.option_sources["max_queue_size"] == "code"
    finally:
        held.release.set()
        client.close_and_flush(timeout=DEADLINE)


def test_a_handler_made_by_dict_config_takes_the_variables(lenient: pytest.MonkeyPatch) -> None:
    lenient.setenv("CDP_MAX_EVENTS_IN_BATCH", "7")
    lenient.setenv("CDP_GZIP", "true")
    held = HeldTransport()
    held.release.set()
    logging.config.dictConfig({
        "version": 1, "disable_existing_loggers": False,
        "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "transport": held, "gzip": False}},
        "loggers": {"test_option_table.dict_config": {"handlers": ["cdp"], "level": "INFO"}},
    })
    logger = logging.getLogger("test_option_table.dict_config")
    handler = logger.handlers[0]
    try:
        assert isinstance(handler, cdp_logging.CDPHandler)
        sources = handler.client.option_sources
        assert (sources["max_events_in_batch"], sources["gzip"], sources["transport"]) == \
            ("CDP_MAX_EVENTS_IN_BATCH", "code", "code")
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_one_debug_line_names_where_each_option_given_came_from(
    lenient: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    lenient.setenv("CDP_FLUSH_INTERVAL", "2.5")
    lenient.setenv("CDP_HOST", "https://cdp.example.test")
    with caplog.at_level(logging.DEBUG, logger="cdp_logging"):
        client = Analytics("secret-key-1234", enable=False, max_retries=2)
    client.close_and_flush(timeout=0)
    lines = [r.getMessage() for r in caplog.records if "client options" in r.getMessage()]
    assert lines == ["cdp-logging: client options: write_key='(set)' (code), "
                     "host='https://cdp.example.test' (CDP_HOST), "
                     "flush_interval=2.5 (CDP_FLUSH_INTERVAL), enable=False (code), max_retries=2 (code); "
                     "the rest are defaults"]
    assert "secret-key-1234" not in caplog.text


def test_a_password_in_cdp_host_is_one_warning_that_never_shows_it(
    lenient: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    lenient.setenv("CDP_HOST", f"https://user:hunter2-{uuid.uuid4().hex[:6]}@cdp.example.test")
    with caplog.at_level(logging.DEBUG, logger="cdp_logging"):
        client = Analytics("secret-key-1234", enable=False)
    client.close_and_flush(timeout=0)
    assert client.host == "https://cdp.customer.io" and client.option_sources["host"] == "default"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("cdp-logging: CDP_HOST='https://***@cdp.example.test': must not hold a user name")
    assert "hunter2" not in caplog.text


# -- a bad variable is one warning and the default -------------------------------------------

@pytest.mark.parametrize("variable, value, problem, default", [
    ("CDP_FLUSH_INTERVAL", "ten", "must be a number of seconds from 0.001 to 3600", "10.0"),
    ("CDP_FLUSH_INTERVAL", "inf", "must be a number of seconds from 0.001 to 3600", "10.0"),
    ("CDP_FLUSH_INTERVAL", "nan", "must be a number of seconds from 0.001 to 3600", "10.0"),
    ("CDP_TIMEOUT", "1e12", "must be a number of seconds from 0.001 to 600", "10.0"),
    ("CDP_MAX_RETRIES", "-1", "must be a whole number from 0 to 10000", "5"),
    ("CDP_GZIP", "maybe", "must be true or false (1/true/yes/on or 0/false/no/off)", "false"),
    ("CDP_OVERFLOW", "block", "must be 'drop' or 'wait'", "drop"),
    ("CDP_HOST", "127.0.0.1:8711", "must be an http(s) URL",
     "the write key's region's: https://cdp-eu.customer.io for a pk_eu_/sk_eu_ key, else https://cdp.customer.io"),
], ids=["word", "inf", "nan", "huge", "negative", "flag", "choice", "no-scheme"])
def test_a_bad_variable_is_one_warning_naming_it_and_the_default_is_used(
    lenient: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    variable: str, value: str, problem: str, default: str,
) -> None:
    lenient.setenv(variable, value)
    with caplog.at_level(logging.WARNING, logger="cdp_logging"):
        first = Analytics("key", enable=False)
        second = Analytics("key", enable=False)   # said once, not for each client
    option = variable.removeprefix("CDP_").lower()
    assert warnings_of(caplog) == [f"cdp-logging: {variable}={value!r}: {problem}; using the default, {default}"]
    assert first.option_sources[option] == second.option_sources[option] == "default"
    for client in (first, second):
        client.close_and_flush(timeout=0)


def test_a_bad_variable_shows_no_password_it_holds(
    lenient: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    lenient.setenv("CDP_HOST", "ftp://user:hunter2@127.0.0.1:8711")
    with caplog.at_level(logging.WARNING, logger="cdp_logging"):
        Analytics("key", enable=False).close_and_flush(timeout=0)
    [line] = warnings_of(caplog)
    assert line.startswith("cdp-logging: CDP_HOST='ftp://***@127.0.0.1:8711': must be an http(s) URL")
    assert "hunter2" not in caplog.text


def test_a_bad_variable_is_an_error_naming_it_when_strict(lenient: pytest.MonkeyPatch) -> None:
    lenient.setenv("CDP_STRICT", "true")
    lenient.setenv("CDP_FLUSH_INTERVAL", "ten")
    with pytest.raises(ConfigurationError, match=r"^CDP_FLUSH_INTERVAL='ten': must be a number of seconds"):
        Analytics("key", enable=False)


def test_endless_intervals_from_the_environment_take_the_default_and_events_are_delivered(
    lenient: pytest.MonkeyPatch, api: HTTPServer, make_client: Callable[..., Analytics],
) -> None:
    # flush_interval=inf killed the worker (1 of 21 delivered); timeout=1e12 failed every batch.
    lenient.setenv("CDP_FLUSH_INTERVAL", "inf")
    lenient.setenv("CDP_TIMEOUT", "1e12")
    client = make_client()
    for number in range(21):
        client.track(user_id="1", event=f"event {number}")
    assert client.flush(timeout=DEADLINE)
    assert len(wait_for_messages(api, 21)) == 21
    assert client.stats()["failed"] == 0


def test_an_application_with_a_host_without_scheme_starts_and_says_it_once_for_its_tree() -> None:
    # CDP_HOST=127.0.0.1:8711 ended `flask run` with a traceback naming `host`.
    app = textwrap.dedent("""
        import logging.config, subprocess, sys
        logging.config.dictConfig({
            "version": 1,
            "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "level": "INFO"}},
            "root": {"handlers": ["cdp"], "level": "INFO"},
        })
        logging.getLogger("shop").info("signed up", extra={"track": {"user_id": "42", "event": "Signed Up"}})
        print("started", sys.argv[1])
        if sys.argv[1] == "parent":
            sys.exit(subprocess.call([sys.executable, "-c", sys.argv[2], "child"]))
    """)
    result = subprocess.run(
        [sys.executable, "-c", app, "parent", app], capture_output=True, text=True, timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("CDP_", "_CDP_"))},
             "CDP_WRITE_KEY": "key", "CDP_HOST": "127.0.0.1:8711", "CDP_ENABLE": "false"},
    )
    assert (result.returncode, result.stdout) == (0, "started parent\nstarted child\n"), result.stderr
    assert result.stderr.splitlines() == [
        "cdp-logging: CDP_HOST='127.0.0.1:8711': must be an http(s) URL; using the default, the write "
        "key's region's: https://cdp-eu.customer.io for a pk_eu_/sk_eu_ key, else https://cdp.customer.io"
    ]


# -- numbers given in code: finite and in range ----------------------------------------------

@pytest.mark.parametrize("option, value, message", [
    ("flush_interval", float("inf"), "'flush_interval' must be a number of seconds from 0.001 to 3600, got inf"),
    ("flush_interval", float("nan"), "'flush_interval' must be a number of seconds from 0.001 to 3600, got nan"),
    ("timeout", float("inf"), "'timeout' must be a number of seconds from 0.001 to 600, got inf"),
    ("timeout", float("nan"), "'timeout' must be a number of seconds from 0.001 to 600, got nan"),
    ("timeout", 1e12, "'timeout' must be a number of seconds from 0.001 to 600, got 1000000000000.0"),
    ("timeout", (1.0, float("inf")), "'timeout (read)' must be a number of seconds from 0.001 to 600, got inf"),
    ("max_retry_time", float("inf"), "'max_retry_time' must be a number of seconds from 0 to 86400, got inf"),
    ("shutdown_timeout", -1, "'shutdown_timeout' must be a number of seconds from 0 to 3600, got -1"),
    ("max_queue_size", 10**400, "'max_queue_size' must be a whole number from 1 to 10000000, got 1000"),
    ("max_events_in_batch", 0, "'max_events_in_batch' must be a whole number from 1 to 10000, got 0"),
], ids=["inf", "nan", "timeout-inf", "timeout-nan", "timeout-huge", "read-inf", "retry-time-inf",
        "negative", "huge-integer", "zero"])
def test_a_number_given_in_code_out_of_range_raises_naming_the_option(option: str, value: Any,
                                                                      message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Analytics("key", enable=False, **{option: value})
    assert str(raised.value).startswith(f"cdp_logging option {message}")
