"""Rules and text an application really produces never make a log call raise: many regex rules
(more than one RE2 set holds), lone surrogates, very long lines, rules copying a group many
times. Issue 20, "text and rules"."""

from __future__ import annotations

import itertools
import logging
import os
import json
import time
from pathlib import Path
from typing import Any

import pytest

from cdp_logging import CDPHandler, RuleSet
from cdp_logging.cli import main
from cdp_logging.rules.patterns import PatternSets
from support.legacy import CapturingTransport

_names = itertools.count()

#: An ordinary access-log regex, its path told apart by %d: past a dozen or so of them, RE2
#: cannot put them in one set ("failed to compile Set", raised by every log call on main).
ACCESS = (r'(?P<ip>\S+) \S+ (?P<user>\S{1,64}) \[(?P<when>[^\]]{1,64})\] "(?P<method>[A-Z]{3,7}) '
          r'(?P<path>/shop%d/[^ "]{0,256}) HTTP/1\.[01]" (?P<status>\d{3}) (?P<size>\d+) '
          r'"(?P<ref>[^"]{0,256})" "(?P<ua>[^"]{0,256})"')


def access_rules(count: int, logger: str = "web") -> list[dict[str, Any]]:
    return [{"logger": logger, "regex": ACCESS % i,
             "track": {"event": f"Shop {i}", "user_id": "{groups[user]}",
                       "properties": {"path": "{groups[path]}"}}} for i in range(count)]


def access_line(shop: int, user: str = "ann") -> str:
    return f'10.0.0.1 - {user} [07/Dec/2026:10:00:00 +0000] "GET /shop{shop}/cart HTTP/1.1" 200 512 "-" "curl/8"'


class Logged:
    """A fresh logger with a CDPHandler over ``rules``; what it sent, and what it reported."""

    def __init__(self, rules: Any, name: str = "web") -> None:
        self.transport = CapturingTransport()
        self.errors: list[Exception] = []
        self.handler = CDPHandler(rules=rules, transport=self.transport, error_handler=self.errors.append)
        self.logger = logging.getLogger(f"{name}.t{next(_names)}")
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False
        self.logger.addHandler(self.handler)

    def sent(self) -> list[dict[str, Any]]:
        assert self.handler.client.flush(timeout=10)
        return self.transport.messages

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()


@pytest.fixture
def logged() -> Any:
    made: list[Logged] = []

    def make(rules: Any, name: str = "web") -> Logged:
        made.append(Logged(rules, name))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_forty_access_log_rules_for_one_logger_match_without_raising(logged: Any) -> None:
    # On main: re2.Error: failed to compile Set, raised by every log call on the logger.
    app = logged(RuleSet(access_rules(40)))
    for shop in (0, 17, 39):
        app.logger.info(access_line(shop, user=f"u{shop}"))
    app.logger.info("not an access line")
    sent = app.sent()
    assert [(m["event"], m["userId"], m["properties"]["path"]) for m in sent] == [
        ("Shop 0", "u0", "/shop0/cart"), ("Shop 17", "u17", "/shop17/cart"),
        ("Shop 39", "u39", "/shop39/cart")]
    assert app.errors == []


def test_ten_thousand_simple_rules_for_one_logger_match_without_raising(logged: Any) -> None:
    # On main: "failed to compile Set" from every log call.
    rules = [{"logger": "web", "regex": f".*order{i} (?P<u>\\w+)",
              "track": {"event": f"Order {i}", "user_id": "{groups[u]}"}} for i in range(10_000)]
    app = logged(RuleSet(rules))
    app.logger.info("paid order9999 ann")
    app.logger.info("paid order12 bo")
    assert [(m["event"], m["userId"]) for m in app.sent()] == [("Order 9999", "ann"), ("Order 12", "bo")]


def test_the_first_matching_rule_wins_across_sets_and_logger_levels(logged: Any) -> None:
    # Rules for the root, the parent and the child logger, more than one set each: order kept.
    rules = (access_rules(70, logger="")[:3] + access_rules(70, logger="web")
             + [{"logger": "web", "regex": "/shop5/", "track": {"event": "late", "user_id": "x"}}])
    app = logged(RuleSet(rules))
    app.logger.info(access_line(5))    # rule 6 of the "web" rules, before the "/shop5/" rule
    app.logger.info(access_line(1))    # the root's rule 2 comes first
    assert [m["event"] for m in app.sent()] == ["Shop 5", "Shop 1"]


def test_sets_are_split_at_configuration_and_patterns_no_set_holds_are_matched_alone() -> None:
    started = time.monotonic()
    sets = PatternSets([ACCESS % i for i in range(40)])
    assert len(sets.sets) >= 2 and sets.search(access_line(33)) == {33}
    assert sets.search("nothing") == set()
    assert time.monotonic() - started < 30


def test_check_describes_how_the_rules_are_searched(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(access_rules(40)))
    for name in [name for name in os.environ if name.startswith("CDP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CDP_ENABLE", "false")
    monkeypatch.setenv("CDP_RULES", str(rules))
    sample = tmp_path / "sample.log"
    sample.write_text(f"INFO:web:{access_line(38)}\n")
    assert main(["check", str(sample)]) == 0
    out = capsys.readouterr().out
    assert "logger 'web': 40 regex rules in" in out and "RE2 sets" in out
    assert "rule 39 (logger 'web', regex" in out


# -- text that is not valid Unicode -----------------------------------------------------------

def test_a_lone_surrogate_in_a_message_matches_a_regex_rule_without_raising(logged: Any, tmp_path: Path) -> None:
    # A file name that is not UTF-8, as os.listdir returns it. On main: UnicodeEncodeError.
    name = os.fsdecode(b"report-\xff.csv")
    assert "\udcff" in name
    app = logged(RuleSet([{"logger": "web", "regex": r"uploaded (?P<file>\S+) by (?P<user>\w+)",
                           "track": {"event": "Uploaded", "user_id": "{groups[user]}",
                                     "properties": {"file": "{groups[file]}"}}}]))
    app.logger.info("uploaded %s by %s", name, "ann")
    sent = app.sent()
    assert [(m["userId"], m["properties"]["file"]) for m in sent] == [("ann", "report-\ufffd.csv")]


def test_check_reads_a_line_with_byte_0xff(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    # On main: exit 1 with a UnicodeDecodeError traceback.
    rules = tmp_path / "rules.json"
    rules.write_text('[{"regex": "uploaded (?P<f>\\\\S+)", "track": {"event": "Up", "user_id": "{groups[f]}"}}]')
    for name in [name for name in os.environ if name.startswith("CDP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CDP_ENABLE", "false")
    monkeypatch.setenv("CDP_RULES", str(rules))
    sample = tmp_path / "sample.log"
    sample.write_bytes(b"INFO:root:uploaded r\xff.csv\n")
    assert main(["check", "--json", str(sample)]) == 0
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert line["outcome"] == "sent" and line["message"]["userId"] == "r\ufffd.csv"


# -- the cost of a line ---------------------------------------------------------------------------

def test_only_the_first_32_kib_of_a_message_are_matched(logged: Any) -> None:
    # The cost of a line is bounded: a 10 MB line is matched as its first 32 KiB (what it
    # costs is in benchmarks/hostile_text_bench.py).
    app = logged(RuleSet([
        {"logger": "web", "regex": r"^begin (?P<u>\w+)", "track": {"event": "Begin", "user_id": "{groups[u]}"}},
        {"logger": "web", "regex": r"the end (?P<u>\w+)$", "track": {"event": "End", "user_id": "{groups[u]}"}},
    ]))
    app.logger.info("begin ann " + "x" * 10_000_000 + " the end bo")
    app.logger.info("the end cy")
    assert [m["event"] for m in app.sent()] == ["Begin", "End"]


def test_a_rule_with_more_references_than_the_bound_is_refused_at_configuration() -> None:
    # On main 10,000 references to one group of a 100 KB line took seconds and GBs per call.
    too_many = "{groups[u]}" * 65
    rules = RuleSet([{"regex": "(?P<u>.*)", "track": {"event": "x", "user_id": "1",
                                                      "properties": {"p": too_many}}}], strict=False)
    assert len(rules) == 0
    assert "more than 64 references in one rule" in str(rules.skipped[0])


def test_text_made_by_a_rule_stops_at_the_api_event_limit(logged: Any) -> None:
    app = logged(RuleSet([{"logger": "web", "regex": "(?P<u>.*)",
                           "track": {"event": "x", "user_id": "1",
                                     "properties": {"p": "{groups[u]}-" * 60}}}]))
    started = time.perf_counter()
    app.logger.info("y" * 1_000_000)
    assert time.perf_counter() - started < 2
    assert app.sent() == []
    assert "more than the API takes in a whole event" in str(app.errors[0])


# -- a rules file others may write --------------------------------------------------------------

RULES = '[{"regex": "paid (?P<u>\\\\w+)", "track": {"event": "Paid", "user_id": "{groups[u]}"}}]'


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
@pytest.mark.parametrize("owner, mode", [(65534, 0o666), (os.geteuid(), 0o646), (65534, 0o664)],
                         ids=["other-users-0666", "own-0646", "other-users-0664"])
def test_a_rules_file_others_may_write_is_refused_as_the_spool_refuses_its_file(
        tmp_path: Path, monkeypatch: Any, capsys: Any, owner: int, mode: int) -> None:
    # On main it was used without a word.
    path = tmp_path / "rules.json"
    path.write_text(RULES)
    os.chown(path, owner, owner)
    path.chmod(mode)
    rules = RuleSet.from_file(path, strict=False)
    assert len(rules) == 0
    assert "refused" in str(rules.skipped[0]) and f"mode {mode:o}" in str(rules.skipped[0])
    for name in [name for name in os.environ if name.startswith("CDP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CDP_ENABLE", "false")
    monkeypatch.setenv("CDP_RULES", str(path))
    assert main(["check"]) == 2
    assert f"CDP_RULES={path}: refused: " in capsys.readouterr().err


@pytest.mark.parametrize("owner, mode", [(os.geteuid(), 0o644), (os.geteuid(), 0o664), (0, 0o644)])
def test_a_rules_file_only_trusted_users_write_is_used(tmp_path: Path, owner: int, mode: int) -> None:
    path = tmp_path / "rules.json"
    path.write_text(RULES)
    if owner != os.geteuid():
        if os.geteuid() != 0:
            pytest.skip("giving a file to root needs root")
        os.chown(path, owner, owner)
    path.chmod(mode)
    assert len(RuleSet.from_file(path, strict=False)) == 1
