"""``cdp-logging run`` and ``cdp-logging check``, in real processes, against a collector on
127.0.0.1: an unchanged application's log lines arrive as typed calls, its console output
stays as it was, and configurations that cannot work stop start-up with a clear message."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

import cdp_logging

from cdp_logging.autoinstall import SITE_DIRECTORY
from cdp_logging.cli import main
from support.legacy import (
    CDP_LOGGING, DEADLINE, GUNICORN, LEGACY_APP, Output, accept_batches, collector_environment,
    environment, legacy_app, received_events, run,
)
from support.helpers import wait_until

#: What the legacy application's log lines make, by rules.json and rules.toml alike.
SHOP_EVENTS = [
    {"type": "identify", "userId": "alice", "traits": {"plan": "pro"}},
    {"type": "track", "event": "Order Placed", "userId": "alice", "properties": {"order_id": 1001}},
    {"type": "track", "event": "Payment Received", "userId": "alice",
     "properties": {"amount": 25.5, "order_id": 1001, "currency": "EUR"}},
    {"type": "track", "event": "Order Placed", "userId": "carla", "properties": {"order_id": 2001}},
    {"type": "track", "event": "Payment Failed", "anonymousId": "order-1003",
     "properties": {"order_id": 1003, "amount": 9.99, "reason": "card declined", "level": "WARNING"}},
]
_KEPT = ("type", "event", "userId", "anonymousId", "properties", "traits")


def essentials(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fields the rules fill, in a stable order; the rest (ids, times) varies."""
    kept = [{key: event[key] for key in _KEPT if key in event} for event in events]
    return sorted(kept, key=lambda event: json.dumps(event, sort_keys=True))


@pytest.fixture
def collector(httpserver: HTTPServer) -> HTTPServer:
    accept_batches(httpserver)
    return httpserver


@pytest.fixture
def cdp_environment(monkeypatch: pytest.MonkeyPatch) -> Any:
    """For commands run in this process: clears every CDP_ variable; call it to set some."""
    for name in [name for name in os.environ if name.startswith("CDP_")]:
        monkeypatch.delenv(name)

    def set_variables(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_variables


# -- run ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, rules, launcher", [
    ("basic", "rules.json", [CDP_LOGGING]),
    ("dict", "rules.toml", [sys.executable, "-m", "cdp_logging"]),
], ids=["basicConfig-json-rules", "dictConfig-later-toml-rules-python-m"])
def test_the_legacy_app_sends_typed_calls_and_prints_what_it_printed(
        collector: HTTPServer, mode: str, rules: str, launcher: list[str]) -> None:
    plain = run(legacy_app(mode), environment())
    instrumented = run([*launcher, "run", "--", *legacy_app(mode)],
                       collector_environment(collector, CDP_RULES=rules))
    assert plain.returncode == instrumented.returncode == 0, instrumented.stderr
    assert instrumented.stdout == plain.stdout
    assert instrumented.stderr == plain.stderr
    # Everything was delivered before the process exited.
    assert essentials(received_events(collector)) == essentials(SHOP_EVENTS)
    event = received_events(collector)[0]
    assert event["context"]["library"]["name"] == "cdp-logging"
    request, _ = collector.log[0]
    assert request.headers["Authorization"].startswith("Basic ")


def test_an_app_that_never_configures_logging_prints_as_before(collector: HTTPServer) -> None:
    # No handler joins the root logger: logging.warning() still configures it, warnings of
    # an unconfigured logger still reach standard error, INFO records are still not made.
    plain = run(legacy_app("none"), environment())
    instrumented = run([CDP_LOGGING, "run", "--", *legacy_app("none")],
                       collector_environment(collector, CDP_RULES="rules.json"))
    assert (instrumented.returncode, instrumented.stdout, instrumented.stderr) == \
        (0, plain.stdout, plain.stderr)
    assert "WARNING:root:Shop closing for the night" in plain.stderr
    assert essentials(received_events(collector)) == essentials(SHOP_EVENTS[-1:])


def test_the_sitecustomize_it_displaces_still_runs(collector: HTTPServer, tmp_path: Path) -> None:
    own = tmp_path / "site"
    own.mkdir()
    (own / "sitecustomize.py").write_text(textwrap.dedent("""
        import os
        with open(os.environ["MARK"], "w") as mark:
            mark.write("the application's own sitecustomize ran")
    """))
    mark = tmp_path / "mark"
    env = collector_environment(collector, CDP_RULES="rules.json", PYTHONPATH=str(own), MARK=str(mark))
    result = run([CDP_LOGGING, "run", "--", *legacy_app("basic")], env)
    assert result.returncode == 0, result.stderr
    assert mark.read_text() == "the application's own sitecustomize ran"
    assert len(received_events(collector)) == len(SHOP_EVENTS)


def test_gunicorn_with_two_workers_sends_from_each_worker(collector: HTTPServer) -> None:
    env = collector_environment(collector, CDP_RULES="rules.json")
    server = subprocess.Popen(
        [CDP_LOGGING, "run", "--", GUNICORN, "--workers", "2", "--bind", "127.0.0.1:0",
         "--graceful-timeout", "5", "wsgi:application"],
        cwd=LEGACY_APP, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    errors = Output(server.stderr)
    Output(server.stdout)
    try:
        listening = wait_until(lambda: errors.find("Listening at: "), DEADLINE, message="gunicorn to listen")
        url = re.search(r"Listening at: (http://\S+)", listening).group(1)

        def ready_workers() -> set[int]:
            return {event["properties"]["pid"] for event in received_events(collector)
                    if event.get("event") == "Worker Ready"}

        workers = wait_until(lambda: len(ready_workers()) == 2 and ready_workers(),
                             timeout=DEADLINE,
                             message=lambda: f"both workers to report ready; gunicorn said:\n{errors.text}")
        assert all(isinstance(pid, int) for pid in workers) and server.pid not in workers
        for order in (5001, 5002, 5003, 5004):
            with urllib.request.urlopen(f"{url}/?order={order}&customer=c{order}", timeout=20) as answer:
                assert answer.status == 200

        def orders() -> dict[int, str]:
            return {event["properties"]["order_id"]: event["userId"]
                    for event in received_events(collector) if event.get("event") == "Order Placed"}

        wait_until(lambda: len(orders()) == 4, DEADLINE, message="the four orders")
        assert orders() == {5001: "c5001", 5002: "c5002", 5003: "c5003", 5004: "c5004"}
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "cdp-logging:" not in errors.text


# -- configurations that cannot work --------------------------------------------------------

BAD_REGEX_RULES = [
    {"logger": "shop.accounts", "message": "User %s signed up with plan %s",
     "identify": {"user_id": "{args[0]}"}},
    {"logger": "shop.orders", "regex": "Order (?P<order>\\d+ placed",
     "track": {"event": "Order Placed", "user_id": "{groups[order]}"}},
]


def test_a_bad_rule_is_skipped_with_one_error_and_the_program_runs_on(
        collector: HTTPServer, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(BAD_REGEX_RULES))
    plain = run(legacy_app("basic"), environment())
    # A parent that starts a child: the error is said once for both.
    parent = [sys.executable, "-c",
              f"import subprocess, sys; sys.exit(subprocess.call({legacy_app('basic')!r}))"]
    result = run([CDP_LOGGING, "run", "--", *parent],
                 collector_environment(collector, CDP_RULES=str(rules)))
    assert (result.returncode, result.stdout) == (0, plain.stdout), result.stderr
    reports = [line for line in result.stderr.splitlines() if line.startswith("cdp-logging:")]
    assert reports == [
        f"cdp-logging: {rules}: rule 2 (logger 'shop.orders', regex 'Order (?P<order>\\\\d+ "
        "placed'): invalid regex 'Order (?P<order>\\\\d+ placed': missing ), unterminated subpattern "
        "at position 6; this rule is skipped, the other rules are used",
    ]
    # Rule 1 works in the child (the parent logs nothing); rule 2 makes nothing.
    wait_until(lambda: received_events(collector), DEADLINE, message="rule 1's event")
    assert essentials(received_events(collector)) == [{"type": "identify", "userId": "alice"}]


def test_a_bad_rules_file_stops_start_up_when_strict(collector: HTTPServer, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(BAD_REGEX_RULES))
    result = run([CDP_LOGGING, "run", "--", *legacy_app("basic")],
                 collector_environment(collector, CDP_RULES=str(rules), CDP_STRICT="true"))
    assert result.returncode == 2
    assert result.stdout == ""   # the application never started
    assert result.stderr.splitlines() == [
        f"cdp-logging: CDP_RULES={rules}: rule 2 (logger 'shop.orders', regex 'Order (?P<order>\\\\d+ "
        "placed'): invalid regex 'Order (?P<order>\\\\d+ placed': missing ), unterminated subpattern "
        "at position 6",
        f"cdp-logging: {sys.executable} was not started",
    ]
    assert received_events(collector) == []


def test_without_a_write_key_the_program_runs_and_it_is_said_once() -> None:
    # A parent that starts a child: both run as usual, neither sends, one warning for both.
    parent = [sys.executable, "-c",
              f"import subprocess, sys; sys.exit(subprocess.call({legacy_app('basic')!r}))"]
    plain = run(parent, environment())
    result = run([CDP_LOGGING, "run", "--", *parent], environment(CDP_RULES="rules.json"))
    assert (result.returncode, result.stdout) == (0, plain.stdout)
    warnings = [line for line in result.stderr.splitlines() if "CDP_WRITE_KEY" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("cdp-logging: CDP_WRITE_KEY is not set: sending nothing.")
    assert [line for line in result.stderr.splitlines() if line not in warnings] == plain.stderr.splitlines()


def test_a_required_write_key_that_is_missing_stops_start_up() -> None:
    result = run([CDP_LOGGING, "run", "--", *legacy_app("basic")],
                 environment(CDP_RULES="rules.json", CDP_REQUIRE_WRITE_KEY="true"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("cdp-logging: CDP_WRITE_KEY is not set: set it to the write key")


def test_a_bad_variable_is_one_warning_and_the_program_runs_with_the_default(collector: HTTPServer) -> None:
    plain = run(legacy_app("basic"), environment())
    result = run([CDP_LOGGING, "run", "--", *legacy_app("basic")],
                 collector_environment(collector, CDP_MAX_EVENTS_IN_BATCH="ten", CDP_RULES="rules.json"))
    assert (result.returncode, result.stdout) == (0, plain.stdout), result.stderr
    # Said once by `run`, not again by the program's process.
    assert [line for line in result.stderr.splitlines() if "CDP_MAX_EVENTS_IN_BATCH" in line] == [
        "cdp-logging: CDP_MAX_EVENTS_IN_BATCH='ten': must be a whole number from 1 to 10000; "
        "using the default, 20"]
    wait_until(lambda: received_events(collector), DEADLINE, message="the program's events")


def test_a_bad_variable_stops_start_up_naming_it_when_strict(collector: HTTPServer) -> None:
    result = run([CDP_LOGGING, "run", "--", *legacy_app("basic")],
                 collector_environment(collector, CDP_MAX_EVENTS_IN_BATCH="ten", CDP_STRICT="true"))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("cdp-logging: CDP_MAX_EVENTS_IN_BATCH='ten': must be a whole number")


def test_run_needs_a_command_it_can_find(cdp_environment: Any, capsys: Any) -> None:
    cdp_environment(CDP_ENABLE="false")
    assert main(["run"]) == 2
    assert "give the command to run after --" in capsys.readouterr().err
    assert main(["run", "--", "no-such-command-here"]) == 127
    assert "command not found: no-such-command-here" in capsys.readouterr().err


def test_a_process_that_cannot_install_says_so_once_and_runs_on() -> None:
    # PYTHONPATH set by hand, with a value `run` would have refused (strict: a bad value is an
    # error, not a warning and the default): the program and the
    # child it starts run as usual; the reason is written once for both.
    parent = [sys.executable, "-c",
              f"import subprocess, sys; sys.exit(subprocess.call({legacy_app('basic')!r}))"]
    plain = run(parent, environment())
    broken = run(parent, environment(PYTHONPATH=SITE_DIRECTORY, CDP_RULES="rules.json",
                                     CDP_WRITE_KEY="k", CDP_MAX_EVENTS_IN_BATCH="ten",
                                     CDP_STRICT="true"))
    assert (broken.returncode, broken.stdout) == (0, plain.stdout)
    reports = [line for line in broken.stderr.splitlines() if line.startswith("cdp-logging:")]
    assert len(reports) == 1
    assert "not sending events from this process" in reports[0] and "CDP_MAX_EVENTS_IN_BATCH" in reports[0]
    assert [line for line in broken.stderr.splitlines() if line not in reports] == plain.stderr.splitlines()


# -- check ----------------------------------------------------------------------------------

APP_FORMAT = "%(levelname)s %(name)s: %(message)s"


def test_check_shows_what_each_line_would_send_and_sends_nothing(collector: HTTPServer) -> None:
    lines = run(legacy_app("basic"), environment()).stderr + "not a log line\n"
    env = collector_environment(collector, CDP_RULES="rules.json")
    result = run([CDP_LOGGING, "check", "--format", APP_FORMAT, "--json"], env, stdin=lines)
    assert result.returncode == 0, result.stderr
    outcomes = [json.loads(line) for line in result.stdout.splitlines()]
    assert [outcome["outcome"] for outcome in outcomes] == [
        "sent", "sent", "sent", "unmatched", "sent", "sent", "unmatched", "unreadable"]
    assert [outcome.get("rule") for outcome in outcomes[:3]] == [1, 2, 3]
    sent = [outcome["message"] for outcome in outcomes if outcome["outcome"] == "sent"]
    assert sent[2]["properties"] == {"amount": 25.5, "order_id": 1001, "currency": "EUR"}
    assert sent[1]["properties"] == {"order_id": "1001"}   # %s read back from text
    assert sent[1]["messageId"] and sent[1]["context"]["library"]["name"] == "cdp-logging"
    human = run([CDP_LOGGING, "check", "--format", APP_FORMAT], env, stdin=lines)
    assert human.returncode == 0
    assert "the configuration is valid; nothing is sent" in human.stdout
    assert "test-write-key" not in human.stdout
    assert ("-> rule 2 (logger 'shop.orders', message 'Order %s placed by %s') sends track "
            '{"userId": "alice", "event": "Order Placed", "properties": {"order_id": "1001"}}'
            ) in human.stdout
    assert "8 lines: 5 would send an event, 0 would be refused, 2 match no rule, 1 could not be read." \
        in human.stdout
    assert collector.log == []


def test_check_reads_the_default_basic_config_format_and_a_file(
        cdp_environment: Any, capsys: Any, tmp_path: Path) -> None:
    cdp_environment(CDP_ENABLE="false", CDP_RULES=str(LEGACY_APP / "rules.json"), CDP_LEVEL="INFO")
    sample = tmp_path / "sample.log"
    sample.write_text("INFO:shop.orders:Order 7 placed by ann\nDEBUG:shop.orders:Order 8 placed by bo\n")
    assert main(["check", "--json", str(sample)]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["message"]["userId"] == "ann" and second["outcome"] == "unmatched"


def test_check_exits_1_when_a_line_would_be_refused(
        cdp_environment: Any, capsys: Any, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nmessage = "Order %s cancelled"\n'
                     'track = { event = "Order Cancelled", user_id = "{extra[customer]}" }\n')
    sample = tmp_path / "sample.log"
    sample.write_text("INFO:shop:Order 7 cancelled\n")
    cdp_environment(CDP_ENABLE="false", CDP_RULES=str(rules))
    assert main(["check", str(sample)]) == 1
    assert "rule 1 (logger (any), message 'Order %s cancelled') makes an event the API would " \
           "refuse: track.user_id: user_id or anonymous_id is required" in capsys.readouterr().out


def test_check_exits_2_for_a_configuration_that_cannot_work(
        cdp_environment: Any, capsys: Any, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('[{"message": "Hi %s", "page": {"user_id": "{args[1]}"}}]')
    cdp_environment(CDP_WRITE_KEY="k", CDP_RULES=str(rules))
    assert main(["check", "--format", "%(message)s"]) == 2
    assert capsys.readouterr().err == (
        f"cdp-logging: CDP_RULES={rules}: rule 1 (message 'Hi %s'): page.user_id: "
        "{args[1]} is argument 2, but the message 'Hi %s' has 1 placeholder\n")
    cdp_environment(CDP_ENABLE="false", CDP_RULES="")
    assert main(["check", "--format", "%(levelname)s %(name)s"]) == 2
    assert "has no %(message)s" in capsys.readouterr().err


def test_help_lists_every_environment_variable_with_its_default(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for line in ("CDP_WRITE_KEY", "CDP_RULES", "CDP_LEVEL",
                 "CDP_MAX_EVENTS_IN_BATCH  integer, 1 to 10000; default 20",
                 "CDP_FLUSH_INTERVAL       seconds, 0.001 to 3600; default 10.0",
                 "CDP_GZIP                 true/false; default false",
                 "CDP_HOST                 URL; default the write key's region's: https://cdp-eu.customer.io "
                 "for a pk_eu_/sk_eu_ key, else https://cdp.customer.io"):
        # Aligned to the longest name (CDP_MAX_CONCURRENT_REQUESTS): compare words, not columns.
        assert " ".join(line.split()) in " ".join(shown.split())


def test_collect_prints_each_event_it_receives_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "cdp_logging", "collect", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = process.stderr.readline()  # type: ignore[union-attr]
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner)
        assert url, f"no address in {banner!r}"
        with cdp_logging.Analytics("dev-key", host=url[1]) as analytics:
            analytics.track(user_id="42", event="Order Completed", properties={"order_id": 7})
            analytics.identify(user_id="42", traits={"plan": "pro"})
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.extend(process.stdout.readline() for _ in range(2)),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(30)
        assert len(lines) == 2, f"printed so far: {lines!r}"
        assert 'track  "Order Completed"  user=42  order_id=7' in lines[0]
        assert "identify  user=42  plan=pro" in lines[1]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert "received 2 events" in process.stderr.read()  # type: ignore[union-attr]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_collect_says_when_it_cannot_listen() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "cdp_logging", "collect", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
