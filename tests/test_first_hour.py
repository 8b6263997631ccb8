"""What a new user meets in the first hour: configuration that must never stop the
application (no write key, CDP_ENABLE, misspelt settings), helpers that never raise in
production, one event per record under ``cdp-logging run``, and messages that say what
really happened."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

import cdp_logging
from cdp_logging import environment, events, options
from cdp_logging.testing import CapturedEvents
from support.helpers import WRITE_KEY, batch_requests, wait_until

TESTS = Path(__file__).resolve().parent


def python(code: str, env: dict[str, str] | None = None, *, cwd: Path | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with this environment minus every CDP_ variable,
    plus ``env``."""
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CDP_", "_CDP_"))}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environ, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def production(monkeypatch: pytest.MonkeyPatch) -> None:
    """As outside pytest: the plugin's leniency about the key and its strictness are off."""
    monkeypatch.setattr(environment, "pytest_plugin_active", lambda: False)
    monkeypatch.setattr(options, "_warned_missing_write_key", False)
    monkeypatch.setenv("_CDP_LOGGING_SAID", "")  # nothing said yet in this process tree
    for name in ("CDP_WRITE_KEY", "CDP_ENABLE", "CDP_STRICT", "CDP_REQUIRE_WRITE_KEY"):
        monkeypatch.delenv(name, raising=False)


# -- 1. a missing write key never stops the application ------------------------------------

DICT_CONFIG_APP = """
    import logging, logging.config
    logging.config.dictConfig({
        "version": 1,
        "handlers": {
            "console": {"class": "logging.StreamHandler", "level": "WARNING"},
            "cdp": {"class": "cdp_logging.CDPHandler", "level": "INFO"},
            "audit": {"class": "cdp_logging.CDPHandler", "level": "INFO"},
        },
        "root": {"handlers": ["console", "cdp", "audit"], "level": "INFO"},
    })
    logging.getLogger("shop").info("signed up", extra={"track": {"user_id": "42", "event": "Signed Up"}})
    handler = logging.getLogger().handlers[1]
    print("started", handler.client.enable, handler.client.stats()["skipped"])
"""


def test_a_dict_config_without_a_write_key_starts_and_warns_once_naming_the_variable() -> None:
    result = python(DICT_CONFIG_APP)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "started False 1\n"
    warnings = [line for line in result.stderr.splitlines() if "CDP_WRITE_KEY" in line]
    assert len(warnings) == 1, result.stderr     # two handlers, one warning
    assert "is not set: sending nothing" in warnings[0]
    assert "Unable to configure" not in result.stderr


def test_a_required_write_key_makes_its_absence_an_error() -> None:
    result = python(DICT_CONFIG_APP, {"CDP_REQUIRE_WRITE_KEY": "true"})
    assert result.returncode == 1
    assert "Unable to configure handler 'audit'" in result.stderr or \
        "Unable to configure handler 'cdp'" in result.stderr
    assert "CDP_WRITE_KEY" in result.stderr


def test_cdp_enable_false_turns_off_a_handler_made_in_code_with_a_key(
    api: HTTPServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    production(monkeypatch)
    monkeypatch.setenv("CDP_ENABLE", "false")
    handler = cdp_logging.CDPHandler(write_key=WRITE_KEY, host=api.url_for("").rstrip("/"),
                                     enable=True, flush_interval=0.01)
    logger = logging.getLogger("first_hour.enable")
    logger.addHandler(handler)
    try:
        with caplog.at_level(logging.WARNING, logger="cdp_logging"):
            logger.warning("x", extra={"track": {"user_id": "1", "event": "E"}})
            assert handler.client.flush(timeout=5)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert handler.client.stats()["skipped"] == 1
    assert batch_requests(api) == []
    # Switched off on purpose: nothing to warn about.
    assert [r for r in caplog.records if r.name == "cdp_logging"] == []


def test_without_a_key_in_production_one_warning_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    production(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="cdp_logging"):
        first, second = cdp_logging.Analytics(), cdp_logging.Analytics()
    assert not first.enable and not second.enable
    assert [r.getMessage().split(":")[1].strip() for r in caplog.records] == ["CDP_WRITE_KEY is not set"]
    assert first.track(user_id="1", event="E")
    assert first.stats()["skipped"] == 1


def test_under_the_pytest_plugin_no_key_is_needed(
    cdp_events: CapturedEvents, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("CDP_WRITE_KEY", raising=False)
    monkeypatch.setattr(options, "_warned_missing_write_key", False)
    logger = logging.getLogger("first_hour.plugin")
    with caplog.at_level(logging.WARNING, logger="cdp_logging"):
        handler = cdp_logging.CDPHandler()
    logger.addHandler(handler)
    try:
        logger.warning("signed up", extra={"track": {"user_id": "42", "event": "Signed Up"}})
    finally:
        logger.removeHandler(handler)
        handler.close()
    cdp_events.assert_tracked("Signed Up", user_id="42")
    assert [r for r in caplog.records if r.name == "cdp_logging"] == []


# -- 2. the events helpers never raise in production ----------------------------------------

BAD_PAYLOADS = {
    "missing id": lambda: events.page(name="Pricing"),
    "wrong type": lambda: events.track(user_id="1", event="E", properties=["not", "a", "dict"]),
    "empty event": lambda: events.track(user_id="1", event=""),
    "too large": lambda: events.track(user_id="1", event="E", properties={"text": "x" * 40_000}),
}


@pytest.mark.parametrize("kind", BAD_PAYLOADS)
def test_in_production_a_bad_payload_is_returned_and_counted_by_the_handler(
    kind: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    production(monkeypatch)
    extra = BAD_PAYLOADS[kind]()     # no exception: the view goes on
    handler = cdp_logging.CDPHandler(write_key=WRITE_KEY, enable=False)
    logger = logging.getLogger("first_hour.helpers")
    logger.addHandler(handler)
    try:
        with caplog.at_level(logging.WARNING, logger="cdp_logging"):
            logger.warning("viewed", extra=extra)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert handler.client.stats()["invalid"] == 1
    [warning] = [r.getMessage() for r in caplog.records if r.name == "cdp_logging"]
    assert "[from logger 'first_hour.helpers' at" in warning and "test_first_hour.py" in warning


@pytest.mark.parametrize("switch", ["environment", "attribute"])
def test_a_strict_switch_makes_the_helpers_raise_in_production(
    switch: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch)
    assert not events.is_strict()
    if switch == "environment":
        monkeypatch.setenv("CDP_STRICT", "true")
    else:
        monkeypatch.setattr(events, "strict", True)
    with pytest.raises(cdp_logging.InvalidEventError, match="user_id or anonymous_id is required"):
        events.page(name="Pricing")


def test_under_the_pytest_plugin_the_helpers_raise_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CDP_STRICT", raising=False)
    assert environment.pytest_plugin_active() and events.is_strict()
    with pytest.raises(cdp_logging.EventTooLargeError):
        BAD_PAYLOADS["too large"]()
    monkeypatch.setenv("CDP_STRICT", "false")
    assert events.page(name="Pricing") == {"page": {"name": "Pricing"}}


def test_a_helper_in_a_process_without_pytest_does_not_raise() -> None:
    result = python("""
        import cdp_logging
        print(cdp_logging.events.page(name="Pricing"), cdp_logging.events.is_strict())
    """)
    assert (result.returncode, result.stdout) == (0, "{'page': {'name': 'Pricing'}} False\n"), result.stderr


# -- 4. the framework pages' snippets -------------------------------------------------------

FRAMEWORKS = TESTS.parent / "docs" / "frameworks"
EXAMPLES = TESTS.parent / "examples"


def docs_block(page: str, after: str) -> str:
    """The first ```python block of docs/frameworks/``page`` after the text ``after``."""
    text = (FRAMEWORKS / page).read_text(encoding="utf-8")
    start = text.index("```python\n", text.index(after)) + len("```python\n")
    return text[start:text.index("```", start)]


def test_the_flask_page_snippet_is_the_examples_code() -> None:
    snippet = docs_block("flask.md", "# Flask")
    assert snippet.startswith("# examples/flask_app.py\n")
    example = {line.strip() for line in (EXAMPLES / "flask_app.py").read_text().splitlines()}
    missing = [line for line in snippet.splitlines()[1:] if line.strip() and line.strip() not in example]
    assert missing == []


@pytest.mark.skipif(sys.platform == "win32", reason="signals a POSIX server")
def test_flask_run_still_prints_flasks_own_output_with_the_readme_configuration() -> None:
    import os
    import urllib.error
    import urllib.request

    from support.legacy import Output

    flask = Path(sys.executable).parent / "flask"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDP_")}
    process = subprocess.Popen(
        [str(flask), "--app", "examples/flask_app", "run", "--port", "0"], cwd=TESTS.parent,
        env={**env, "CDP_ENABLE": "false", "NO_COLOR": "1"}, stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL, text=True,
    )
    try:
        output = Output(process.stderr)
        running = wait_until(lambda: output.find("Running on http://"), message=lambda: output.text)
        url = running.split("Running on ")[1].split()[0]
        request = urllib.request.Request(f"{url}/signup", data=b'{"user_id": 1}', method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as failed:  # no "email": the view fails
            urllib.request.urlopen(request, timeout=15)
        assert failed.value.code == 500
        wait_until(lambda: output.find("KeyError: 'email'"), message=lambda: output.text)
        assert output.find("Exception on /signup [POST]") and output.find("Traceback")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_django_page_view_tracks_signed_in_and_anonymous_visitors(
    cdp_events: CapturedEvents, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    snippet = docs_block("django.md", "Then, in a view")
    docstring = (EXAMPLES / "django_settings.py").read_text()
    assert textwrap.indent(snippet, "    ").replace("\n    \n", "\n\n") in docstring

    class Session:
        session_key: str | None = None

        def save(self) -> None:
            self.session_key = "session-9"

    signed_in = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=7), session=Session())
    anonymous = SimpleNamespace(user=SimpleNamespace(is_authenticated=False, pk=None), session=Session())
    namespace: dict[str, Any] = {"logging": logging, "__name__": "first_hour.django_views"}
    exec(compile(snippet, "docs/frameworks/django.md", "exec"), namespace)
    logger = logging.getLogger("first_hour.django_views")
    monkeypatch.setattr(logger, "level", logging.INFO)
    handler = cdp_logging.CDPHandler(enable=False)
    logger.addHandler(handler)
    try:
        namespace["checkout"](signed_in)
        namespace["checkout"](anonymous)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert [(m.get("userId"), m.get("anonymousId")) for m in cdp_events.tracks("Checkout Started")] == [
        ("7", None), (None, "session-9"),
    ]
    assert handler.client.stats()["invalid"] == 0


# -- 3. one event per record under `cdp-logging run` ---------------------------------------

APP_WITH_ITS_OWN_HANDLER = """
import logging, logging.config
logging.config.dictConfig({
    "version": 1,
    "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "level": "INFO", "flush_interval": 0.1}},
    "root": {"handlers": ["cdp"], "level": "INFO"},
})
shop = logging.getLogger("shop")
shop.info("signed up", extra={"event": "Signed Up", "user_id": "42"})
shop.info("User %s upgraded", "42")
"""


def test_run_on_an_app_with_its_own_handler_sends_each_record_once(
    httpserver: HTTPServer, tmp_path: Path,
) -> None:
    from support.legacy import CDP_LOGGING, accept_batches, collector_environment, received_events

    accept_batches(httpserver)
    (tmp_path / "app.py").write_text(APP_WITH_ITS_OWN_HANDLER)
    (tmp_path / "rules.json").write_text(
        '[{"logger": "shop", "message": "User %s upgraded", "track": {"user_id": "{args[0]}", "event": "Upgraded"}}]'
    )
    result = subprocess.run(
        [CDP_LOGGING, "run", "--", sys.executable, "app.py"], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, env=collector_environment(httpserver, CDP_RULES="rules.json"),
    )
    assert result.returncode == 0, result.stderr
    # The payload record: by the application's handler only; the rule's: by run's handler.
    assert sorted(event["event"] for event in received_events(httpserver)) == ["Signed Up", "Upgraded"]


#: gunicorn's default --access-logformat, which shows neither %(m)s nor %(U)s.
GUNICORN_ACCESS_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
GUNICORN_ACCESS_RULES = [{
    "logger": "gunicorn.access", "message": GUNICORN_ACCESS_FORMAT,
    "page": {"anonymous_id": "{args[h]}", "name": "{args[U]}",
             "properties": {"method": "{args[m]}", "status": "{args[s]}"}},
}]


def test_gunicorn_access_rules_may_use_every_atom_gunicorn_passes(
    httpserver: HTTPServer, tmp_path: Path,
) -> None:
    import json
    import re
    import urllib.request

    from support.legacy import (
        CDP_LOGGING, GUNICORN, LEGACY_APP, Output, accept_batches, collector_environment,
        received_events,
    )

    accept_batches(httpserver)
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(GUNICORN_ACCESS_RULES))
    server = subprocess.Popen(
        [CDP_LOGGING, "run", "--", GUNICORN, "--workers", "1", "--bind", "127.0.0.1:0",
         "--access-logfile", "-", "wsgi:application"],
        cwd=LEGACY_APP, env=collector_environment(httpserver, CDP_RULES=str(rules)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    errors = Output(server.stderr)
    Output(server.stdout)
    try:
        listening = wait_until(lambda: errors.find("Listening at: "), message=lambda: errors.text)
        url = re.search(r"Listening at: (http://\S+)", listening).group(1)  # type: ignore[union-attr]
        with urllib.request.urlopen(f"{url}/pricing?order=1&customer=c1", timeout=20) as answer:
            assert answer.status == 200
        pages = wait_until(lambda: [e for e in received_events(httpserver) if e["type"] == "page"],
                           message=lambda: errors.text)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert [(p["name"], p["properties"]) for p in pages] == [("/pricing", {"method": "GET", "status": "200"})]
    assert "cdp-logging:" not in errors.text


def test_check_reads_gunicorn_atoms_back_from_the_request_line(tmp_path: Path) -> None:
    import json

    from support.legacy import CDP_LOGGING, environment, run

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(GUNICORN_ACCESS_RULES))
    line = '127.0.0.1 - - [05/Dec/2026:06:00:00 +0000] "GET /pricing?plan=pro HTTP/1.1" 200 2 "-" "curl/8"'
    result = run([CDP_LOGGING, "check", "--json", "--format", "%(message)s", "--logger", "gunicorn.access"],
                 environment(CDP_RULES=str(rules)), stdin=line + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    [shown] = [json.loads(text) for text in result.stdout.splitlines()]
    assert shown["message"]["name"] == "/pricing"
    assert shown["message"]["properties"] == {"method": "GET", "status": "200"}


UVICORN_RULES = [{
    "logger": "uvicorn.access", "message": '%s - "%s %s HTTP/%s" %d',
    "page": {"anonymous_id": "{args[0]}", "name": "{args[2]}", "properties": {"status": "{args[4]}"}},
}]


def test_check_matches_uvicorn_lines_pasted_from_the_console_or_read_from_a_log_file(
    tmp_path: Path,
) -> None:
    import json

    from support.legacy import CDP_LOGGING, environment, run

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(UVICORN_RULES))
    lines = [
        'INFO:     127.0.0.1:54321 - "GET /items HTTP/1.1" 200 OK',            # uvicorn's console
        'INFO:     127.0.0.1:54321 - "GET /gone HTTP/1.1" 404 Not Found',
        'INFO: 127.0.0.1:54321 - "GET /logged HTTP/1.1" 200',                # as logged
    ]
    result = run([CDP_LOGGING, "check", "--json", "--format", "%(levelname)s: %(message)s",
                  "--logger", "uvicorn.access"], environment(CDP_RULES=str(rules)),
                 stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    shown = [json.loads(text) for text in result.stdout.splitlines()]
    assert [(s["outcome"], s["message"]["name"], s["message"]["properties"]) for s in shown] == [
        ("sent", "/items", {"status": 200}), ("sent", "/gone", {"status": 404}),
        ("sent", "/logged", {"status": 200}),
    ]


# -- 5. misspelt settings ------------------------------------------------------------------

def test_unknown_cdp_variables_get_one_warning_with_the_variable_meant() -> None:
    result = python("""
        import logging, cdp_logging
        cdp_logging.Analytics(enable=False)
        cdp_logging.Analytics(enable=False)
        logging.getLogger("x").addHandler(cdp_logging.CDPHandler(enable=False))
    """, {"CDP_RULE": "rules.toml", "CDP_FLUSH_INTERVALL": "5", "CDP_WRITE_KEY": "k"})
    assert result.returncode == 0, result.stderr
    [warning] = [line for line in result.stderr.splitlines() if "CDP_" in line]
    assert warning.startswith(
        "cdp-logging: ignoring unknown environment variable(s) CDP_FLUSH_INTERVALL (did you mean "
        "CDP_FLUSH_INTERVAL?), CDP_RULE (did you mean CDP_RULES?); cdp-logging reads CDP_WRITE_KEY, "
    )


def test_run_warns_of_an_unknown_variable_once_for_all_its_processes() -> None:
    from support.legacy import CDP_LOGGING, environment, legacy_app, run

    parent = [sys.executable, "-c",
              f"import subprocess, sys; sys.exit(subprocess.call({legacy_app('basic')!r}))"]
    result = run([CDP_LOGGING, "run", "--", *parent],
                 environment(CDP_RULES="rules.json", CDP_ENABLE="false", CDP_LEVLE="INFO"))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "CDP_LEVLE" in line]
    assert len(warnings) == 1 and "(did you mean CDP_LEVEL?)" in warnings[0]


def test_a_misspelt_rule_key_is_named_with_the_key_meant() -> None:
    with pytest.raises(cdp_logging.RulesError, match=r"unknown key 'mesage' \(did you mean 'message'\?\)"):
        cdp_logging.RuleSet([{"mesage": "Hi %s", "identify": {"user_id": "{args[0]}"}}])


#: An application configured by dictConfig, its rules given as RULES (JSON) or a file; it
#: logs what each rule would match, and a record with a payload.
RULES_APP = """
    import json, logging, logging.config, os, sys
    rules = os.environ.get("RULES_FILE") or json.loads(os.environ["RULES"])
    logging.config.dictConfig({
        "version": 1,
        "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "level": "INFO",
                             "host": os.environ["HOST"], "rules": rules}},
        "root": {"handlers": ["cdp"], "level": "INFO"},
    })
    shop = logging.getLogger("shop")
    shop.info("User %s signed up", "42")
    shop.info("User %s upgraded", "42")
    shop.info("User %s paid %s", "42", 9.5)
    shop.info("User %s is browsing", "42")
    shop.info("checked out", extra={"event": "Checked Out", "user_id": "42"})
    print("started")
"""
THREE_RULES = [
    {"logger": "shop", "message": "User %s signed up", "identify": {"user_id": "{args[0]}"}},
    # Misspelt: were it read as a rule without a message, it would take every line of "shop".
    {"logger": "shop", "mesage": "User %s upgraded", "track": {"event": "Upgraded", "user_id": "{args[0]}"}},
    {"logger": "shop", "message": "User %s paid %s",
     "track": {"event": "Paid", "user_id": "{args[0]}", "properties": {"amount": "{args[1]}"}}},
]


def _rules_app(api: HTTPServer, **env: str) -> subprocess.CompletedProcess[str]:
    import json

    return python(RULES_APP, {"CDP_WRITE_KEY": WRITE_KEY, "HOST": api.url_for("").rstrip("/"),
                              "RULES": json.dumps(THREE_RULES), **env})


def _sent(api: HTTPServer) -> list[tuple[str, str]]:
    from support.helpers import received_messages

    return [(message["type"], message.get("event", "")) for message in received_messages(api)]


def test_a_misspelt_rule_key_skips_that_rule_with_one_warning_and_the_app_starts(api: HTTPServer) -> None:
    result = _rules_app(api)
    assert (result.returncode, result.stdout) == (0, "started\n"), result.stderr
    assert result.stderr.splitlines() == [
        "cdp-logging: rule 2 (logger 'shop'): unknown key 'mesage' (did you mean 'message'?); a rule "
        "has logger, level, message, regex and one call: identify, track, page, screen, group, alias; "
        "this rule is skipped, the other rules are used",
    ]
    # The two good rules and the payload make events (delivered at exit); the bad rule none.
    assert _sent(api) == [("identify", ""), ("track", "Paid"), ("track", "Checked Out")]


def test_a_misspelt_rule_key_stops_configuration_when_strict(api: HTTPServer) -> None:
    result = _rules_app(api, CDP_STRICT="true")
    assert result.returncode == 1 and result.stdout == ""
    assert "Unable to configure handler 'cdp'" in result.stderr
    assert "rule 2 (logger 'shop'): unknown key 'mesage' (did you mean 'message'?)" in result.stderr
    assert _sent(api) == []


@pytest.mark.parametrize("name, text, problem", [
    ("rules.json", '[{"message": "x",\n "track": }]', "not valid JSON: Expecting value at line 2, column 11"),
    ("absent.toml", None, "cannot read the rules file: No such file or directory"),
], ids=["malformed", "unreadable"])
def test_a_rules_file_that_cannot_be_read_leaves_the_handler_without_rules_with_one_error(
    api: HTTPServer, tmp_path: Path, name: str, text: str | None, problem: str,
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    result = _rules_app(api, RULES_FILE=str(path))
    assert (result.returncode, result.stdout) == (0, "started\n"), result.stderr
    assert result.stderr.splitlines() == [
        f"cdp-logging: {path}: {problem}; using no rules: only records with a payload in extra "
        "are sent",
    ]
    assert _sent(api) == [("track", "Checked Out")]


def test_invalid_rules_are_reported_at_their_levels_and_kept_in_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    production(monkeypatch)
    monkeypatch.setenv("_CDP_LOGGING_RULES_REPORTED", "")   # unset again afterwards
    bad_regex = {"regex": "(a", "track": {"event": "E", "user_id": "1"}}
    with caplog.at_level(logging.WARNING, logger="cdp_logging"):
        rules = cdp_logging.RuleSet([*THREE_RULES, bad_regex], source="rules.json")
        cdp_logging.RuleSet([*THREE_RULES, bad_regex], source="rules.json")   # said once
    assert [rule.number for rule in rules.rules] == [1, 3]
    assert [fault.rule for fault in rules.skipped] == [2, 4]
    assert [(record.levelname, record.getMessage().split(": ")[2]) for record in caplog.records] == [
        ("WARNING", "rule 2 (logger 'shop')"), ("ERROR", "rule 4 (regex '(a')")]
    with pytest.raises(cdp_logging.RulesError, match="rule 2"):
        cdp_logging.RuleSet(THREE_RULES, strict=True)


def test_check_lists_every_bad_rule_and_exits_2(tmp_path: Path) -> None:
    import json

    from support.legacy import CDP_LOGGING, environment

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([*THREE_RULES, {"regex": "(a", "track": {"event": "E", "user_id": "1"}}]))
    result = subprocess.run([CDP_LOGGING, "check"], env=environment(CDP_RULES=str(rules)),
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert [line.split(": ")[2] for line in lines] == ["rule 2 (logger 'shop')", "rule 4 (regex '(a')"]
    assert all(line.startswith(f"cdp-logging: CDP_RULES={rules}: ") for line in lines)
    assert "did you mean 'message'" in lines[0] and "invalid regex" in lines[1]


def test_the_unknown_option_error_lists_every_option() -> None:
    import inspect

    with pytest.raises(TypeError) as raised:
        cdp_logging.CDPHandler(write_key="k", rulez=[])
    text = str(raised.value)
    assert "(did you mean 'rules'?)" in text
    listed = text.split("Known options: ")[1].rstrip(".").split(", ")
    options = [name for name in inspect.signature(cdp_logging.Analytics).parameters]
    assert sorted(listed) == sorted(["level", "client", "rules", *options])


# -- 6. messages that say what happened ----------------------------------------------------

def test_collect_prints_each_refused_request_as_it_happens() -> None:
    import re

    import requests

    from support.legacy import Output

    process = subprocess.Popen(
        [sys.executable, "-m", "cdp_logging", "collect", "--port", "0", "--write-key", "right-key"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        errors = Output(process.stderr)
        Output(process.stdout)
        banner = wait_until(lambda: errors.find("listening on"), message=lambda: errors.text)
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner)[1]  # type: ignore[index]
        batch = {"batch": [{"type": "track", "userId": "42", "event": "Ok"}]}
        assert requests.post(f"{url}/v1/batch", json=batch, auth=("wrong-key", ""), timeout=15).status_code == 401
        wait_until(lambda: errors.find("refused POST /v1/batch (HTTP 401): the write key is not"),
                   message=lambda: errors.text)
        assert requests.post(f"{url}/v1/v1/batch", json=batch, auth=("right-key", ""), timeout=15).status_code == 404
        wait_until(lambda: errors.find("refused POST /v1/v1/batch (HTTP 404): no endpoint"),
                   message=lambda: errors.text)
        invalid = {"batch": [{"type": "track", "userId": "42"}]}
        assert requests.post(f"{url}/v1/batch", json=invalid, auth=("right-key", ""), timeout=15).status_code == 200
        line = wait_until(lambda: errors.find("refused a track event of POST /v1/batch: "),
                          message=lambda: errors.text)
        assert "event" in line
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("suffix", ["/v1", "/v1/", "/v1/batch", "/v1/batch/"])
def test_a_host_given_with_the_api_path_is_normalised(api: HTTPServer, suffix: str) -> None:
    root = api.url_for("").rstrip("/")
    client = cdp_logging.Analytics(WRITE_KEY, host=root + suffix, flush_interval=0.01)
    try:
        assert client.host == root
        client.track(user_id="1", event="E")
        assert client.flush(timeout=10)
    finally:
        client.close()
    assert [request.path for request in batch_requests(api)] == ["/v1/batch"]


def test_after_http_401_the_closing_warning_says_why_not_a_timeout(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture,
) -> None:
    httpserver.expect_request("/v1/batch", method="POST").respond_with_json(
        {"meta": {"errors": ["unauthorized"]}}, status=401)
    client = cdp_logging.Analytics(WRITE_KEY, host=httpserver.url_for("").rstrip("/"),
                                   flush_interval=60, shutdown_timeout=5)
    client.track(user_id="1", event="E")
    with caplog.at_level(logging.WARNING, logger="cdp_logging"):
        assert not client.close_and_flush()
    # One line for the one batch, saying why; no summary repeating it at close.
    [line] = [r.getMessage() for r in caplog.records if r.name == "cdp_logging"]
    assert line.startswith("cdp-logging: 1 event not delivered after 1 attempt: the API refused the "
                           "write key (HTTP 401): check CDP_WRITE_KEY / write_key for this source")
    assert "timeout" not in line


# -- 7. the fresh clone --------------------------------------------------------------------

@pytest.mark.skipif(__import__("shutil").which("make") is None, reason="make is not installed")
def test_make_demo_installs_the_package_alone(tmp_path: Path) -> None:
    import os

    # As from a shell, not from the make that may be running this suite (`make test`).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(["make", "-n", "--no-print-directory", "demo", f"VENV={tmp_path / 'venv'}"],
                            cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    installs = [line for line in lines if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [f"{tmp_path / 'venv'}/bin/python -m pip install --quiet -e ."]
    assert lines[-1] == f"{tmp_path / 'venv'}/bin/python examples/quickstart.py"


def test_the_api_description_the_tests_check_against_is_the_projects_own() -> None:
    import json

    description = json.loads((TESTS / "data" / "customerio-pipelines-openapi.json").read_text())
    assert "/v1/batch" in json.dumps(description["paths"])
