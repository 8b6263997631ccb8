"""Rules run on text an attacker may write: matching costs time linear in the message, for
user regexes (RE2) and for the patterns `cdp-logging check` builds from templates and line
formats. Each hostile case runs in a child process, so that an engine that backtracks fails
the test at its deadline rather than stalling the suite."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cdp_logging import RulesError
from cdp_logging.rules import RuleSet
from support.legacy import CDP_LOGGING
from support.reliability import python_env

#: Far more than the linear engines take (milliseconds), far less than a backtracking one
#: (minutes for these inputs): a loaded machine cannot blur the two.
BOUND = 1.0
#: A child still running after this has backtracked.
DEADLINE = 60

#: The issue's rule: Python's re took 4.8 s on a 32-character message, 4x more per 2 characters.
NESTED = r"^user (?P<u>(\w+\s?)+)$"


def run_child(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=DEADLINE, **kwargs)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still matching after {DEADLINE} s: the engine backtracks")


def test_a_nested_quantifier_rule_does_not_stall_the_logging_call() -> None:
    script = (
        "import json, logging, time, cdp_logging\n"
        f"handler = cdp_logging.CDPHandler(enable=False, rules=[{{'regex': {NESTED!r}, "
        "'identify': {'user_id': '{groups[u]}'}}])\n"
        "log = logging.getLogger('app')\n"
        "log.addHandler(handler)\n"
        "log.setLevel(logging.INFO)\n"
        "hostile = 'user ' + 'a' * 40 + '!'\n"
        "started = time.monotonic()\n"
        "log.info(hostile)\n"
        "took = time.monotonic() - started\n"
        "matched = handler.rules.find(logging.makeLogRecord({'name': 'app', 'levelno': 20, 'msg': 'user ann b'}))\n"
        "print(json.dumps({'took': took, 'groups': matched.groups}))\n"
    )
    result = run_child([sys.executable, "-c", script], env=python_env())

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["took"] < BOUND, f"log.info() of a 46-character line took {report['took']:.2f} s"
    assert report["groups"] == {"u": "ann b"}, "the named group still fills the field"


def test_check_reads_hostile_lines_against_a_template_of_many_placeholders_quickly(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"message": "%s %s %s %s %s %s %s %s %s %s!",
                                  "track": {"event": "Many", "user_id": "{args[0]}"}}]))
    hostile = ("a " * 60)[:110]
    lines = "".join(f"INFO:app:{hostile}\n" for _ in range(20)) + "INFO:app:1 2 3 4 5 6 7 8 9 10!\n"

    started = time.monotonic()
    result = run_child([CDP_LOGGING, "check", "--json"], input=lines,
                       env=python_env(CDP_ENABLE="false", CDP_RULES=str(rules)))
    took = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    outcomes = [json.loads(line)["outcome"] for line in result.stdout.splitlines()]
    assert outcomes == ["unmatched"] * 20 + ["sent"]
    # The whole command, interpreter start-up included.
    assert took < 10 * BOUND, f"check took {took:.1f} s for 21 lines"


def test_a_line_format_of_many_fields_is_read_in_linear_time(tmp_path: Path) -> None:
    line_format = "%(asctime)s %(process)s %(thread)s %(filename)s %(funcName)s %(lineno)s %(module)s: %(message)s"
    hostile = ("a " * 60)[:110]

    started = time.monotonic()
    result = run_child([CDP_LOGGING, "check", "--json", "--format", line_format],
                       input=f"{hostile}\n" * 20, env=python_env(CDP_ENABLE="false"))
    took = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["outcome"] for line in result.stdout.splitlines()] == ["unreadable"] * 20
    assert took < 10 * BOUND, f"check took {took:.1f} s for 20 lines"


@pytest.mark.parametrize(("pattern", "construct"), [
    (r"(?P<a>\w+) and (?P=a)", "(?P"),
    (r"(\w+) and \1", r"\1"),
    (r"user (?=admin)\w+", "(?="),
    (r"(?<!not )paid", "(?<!"),
])
def test_what_re2_lacks_is_a_configuration_error_that_says_why(pattern: str, construct: str) -> None:
    with pytest.raises(RulesError) as raised:
        RuleSet([{"regex": pattern, "track": {"event": "E", "user_id": "u"}}])
    text = str(raised.value)
    assert f"rule 1 (regex {pattern!r}): the regex {pattern!r} cannot run on RE2" in text
    assert construct in text and "no backreferences" in text and "no lookaround" in text


def test_a_repeated_named_placeholder_must_hold_the_same_text() -> None:
    rules = RuleSet([{"message": "%(user)s paid; thanks %(user)s",
                      "track": {"event": "Paid", "user_id": "{args[user]}"}}])
    found = rules.find_in_text("app", 20, "ann paid; thanks ann")
    assert found is not None and found[1].args == {"user": "ann"}
    assert rules.find_in_text("app", 20, "ann paid; thanks bob") is None
