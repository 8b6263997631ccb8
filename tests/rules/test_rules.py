"""Mapping rules: checked at configuration, matched cheaply, filling typed fields."""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
from pathlib import Path
from typing import Any

import pytest

from cdp_logging import CDPHandler, InvalidEventError, RuleSet, RulesError
from cdp_logging.rules import Rule, load_rules
from support.legacy import CapturingTransport

ISSUE_EXAMPLE = {
    "logger": "shop.orders", "message": "Order %s placed by %s",
    "track": {"event": "Order Placed", "user_id": "{args[1]}",
              "properties": {"order_id": "{args[0]}"}},
}
_names = itertools.count()


def record(name: str = "shop.orders", msg: Any = "Order %s placed by %s", args: Any = (1001, "alice"),
           level: int = logging.INFO, **extra: Any) -> logging.LogRecord:
    made = logging.getLogger(name).makeRecord(name, level, __file__, 42, msg, args, None,
                                              extra=extra or None)
    return made


def call(rules: RuleSet, made: logging.LogRecord) -> tuple[str, dict[str, Any]] | None:
    calls = rules.calls(made)
    assert len(calls) <= 1
    if not calls:
        return None
    name, fields = calls[0]
    fields.pop("timestamp")
    return name, fields


@pytest.fixture
def sent() -> Any:
    """A handler factory; the test reads what its handlers sent from ``sent.messages``."""

    class Sent:
        def __init__(self) -> None:
            self.transport = CapturingTransport()
            self.handlers: list[CDPHandler] = []
            self.errors: list[Exception] = []

        def handler(self, rules: Any) -> CDPHandler:
            made = CDPHandler(rules=rules, transport=self.transport, error_handler=self.errors.append)
            self.handlers.append(made)
            return made

        def logger(self, rules: Any, name: str = "shop.orders") -> logging.Logger:
            """A fresh logger below ``name`` (so tests do not share loggers) with a handler."""
            logger = logging.getLogger(f"{name}.t{next(_names)}")
            logger.setLevel(logging.DEBUG)
            logger.propagate = False
            logger.addHandler(self.handler(rules))
            return logger

        @property
        def messages(self) -> list[dict[str, Any]]:
            for made in self.handlers:
                assert made.client.flush(timeout=10)
            return self.transport.messages

    made = Sent()
    yield made
    for handler in made.handlers:
        handler.close()


# -- matching and fields --------------------------------------------------------------------

def test_the_issue_example_makes_a_track_call_and_keeps_argument_types(sent: Any) -> None:
    log = sent.logger([ISSUE_EXAMPLE])
    log.info("Order %s placed by %s", 1001, "alice")
    [message] = sent.messages
    assert message["type"] == "track"
    assert message["event"] == "Order Placed"
    assert message["userId"] == "alice"
    assert message["properties"] == {"order_id": 1001}


def test_a_rule_covers_its_logger_and_its_children_only() -> None:
    rules = RuleSet([ISSUE_EXAMPLE])
    assert call(rules, record("shop.orders")) is not None
    assert call(rules, record("shop.orders.eu.web")) is not None
    assert call(rules, record("shop")) is None
    assert call(rules, record("shop.ordersarchive")) is None


@pytest.mark.parametrize("logger", [None, "", "root"])
def test_a_rule_without_a_logger_covers_every_logger(logger: str | None) -> None:
    rule = {**ISSUE_EXAMPLE, "logger": logger}
    rules = RuleSet([rule])
    assert call(rules, record("anything.at.all")) is not None
    assert call(rules, record("root")) is not None


def test_a_rule_matches_from_its_minimum_level_up() -> None:
    rules = RuleSet([{**ISSUE_EXAMPLE, "level": "warning"}])
    assert call(rules, record(level=logging.INFO)) is None
    assert call(rules, record(level=logging.WARNING)) is not None
    assert call(rules, record(level=logging.ERROR)) is not None
    assert RuleSet([{**ISSUE_EXAMPLE, "level": 35}]).rules[0].level == 35


def test_the_message_must_be_the_template_exactly() -> None:
    rules = RuleSet([ISSUE_EXAMPLE])
    assert call(rules, record(msg="Order %s placed by %s ")) is None
    assert call(rules, record(msg="Order 1001 placed by alice", args=())) is None


def test_a_regex_rule_fills_fields_from_named_groups_and_converts_them() -> None:
    rules = RuleSet([{
        "logger": "shop.payments",
        "regex": r"^Payment of (?P<amount>[\d.]+) EUR from (?P<user>\w+) for order (?P<order>\d+)",
        "track": {"event": "Payment Received", "user_id": "{groups[user]}",
                  "properties": {"amount": "{groups[amount]|float}", "order_id": "{groups[order]|int}",
                                 "raw": "{groups[order]}", "currency": "EUR"}},
    }])
    made = record("shop.payments", msg="Payment of %.2f EUR from %s for order %d", args=(25.5, "bob", 7))
    assert call(rules, made) == ("track", {
        "event": "Payment Received", "user_id": "bob",
        "properties": {"amount": 25.5, "order_id": 7, "raw": "7", "currency": "EUR"},
    })
    # An f-string message (the template changes with every call) matches as well.
    assert call(rules, record("shop.payments", msg="Payment of 3.00 EUR from ann for order 9", args=())) \
        is not None
    assert call(rules, record("shop.payments", msg="Refund of 3.00 EUR", args=())) is None


def test_references_to_extra_record_attributes_and_constants() -> None:
    rules = RuleSet([{
        "message": "Plan changed for %s",
        "identify": {
            "user_id": "{args[0]}",
            "anonymous_id": "{extra[session]}",
            "traits": {"plan": "{extra[plan]}", "source": "logs", "vip": True, "score": 1.5,
                       "seen_at": "{record[levelname]} in {record[name]} line {record[lineno]}",
                       "line": "{record[lineno]}", "text": "{record[message]}",
                       "tags": ["{extra[plan]}", "fixed"], "nothing": None},
        },
    }])
    made = record("billing", msg="Plan changed for %s", args=(42,), session="s-1", plan="pro")
    assert call(rules, made) == ("identify", {
        "user_id": 42, "anonymous_id": "s-1",
        "traits": {"plan": "pro", "source": "logs", "vip": True, "score": 1.5,
                   "seen_at": "INFO in billing line 42", "line": 42, "text": "Plan changed for 42",
                   "tags": ["pro", "fixed"], "nothing": None},
    })


def test_text_around_references_is_interpolated_and_double_braces_are_literal() -> None:
    rules = RuleSet([{
        "message": "Order %s placed by %s",
        "track": {"event": "Order {{{args[0]}}}", "user_id": "user-{args[1]}",
                  "properties": {"literal": "{{not a reference}}"}},
    }])
    assert call(rules, record()) == ("track", {
        "event": "Order {1001}", "user_id": "user-alice", "properties": {"literal": "{not a reference}"},
    })


def test_named_placeholders_are_referenced_by_name() -> None:
    rules = RuleSet([{
        "message": "%(user)s bought %(count)d items",
        "track": {"event": "Bought", "user_id": "{args[user]}", "properties": {"count": "{args[count]}"}},
    }])
    made = record("x", msg="%(user)s bought %(count)d items", args=({"user": "zoe", "count": 3},))
    assert call(rules, made) == ("track", {"event": "Bought", "user_id": "zoe", "properties": {"count": 3}})


def test_a_reference_the_record_cannot_fill_leaves_its_field_out() -> None:
    rules = RuleSet([{
        "regex": r"Signed in (?P<user>\w+)(?: with coupon (?P<coupon>\w+))?",
        "track": {"event": "Signed In", "user_id": "{groups[user]}",
                  "anonymous_id": "{extra[session]}",
                  "properties": {"coupon": "{groups[coupon]}", "note": "coupon {groups[coupon]}",
                                 "arg": "{args[3]}"}},
    }])
    assert call(rules, record("web", msg="Signed in ann", args=())) == (
        "track", {"event": "Signed In", "user_id": "ann", "properties": {}})


def test_the_first_matching_rule_wins_across_message_and_regex_rules() -> None:
    template = {**ISSUE_EXAMPLE, "track": {**ISSUE_EXAMPLE["track"], "event": "By template"}}
    regex = {"logger": "shop", "regex": "placed by", "track": {"event": "By regex", "user_id": "x"}}
    catch_all = {"logger": "shop.orders", "track": {"event": "Anything", "user_id": "x"}}
    assert call(RuleSet([template, regex]), record())[1]["event"] == "By template"
    assert call(RuleSet([regex, template]), record())[1]["event"] == "By regex"
    assert call(RuleSet([catch_all, template]), record())[1]["event"] == "Anything"
    later_level = {**template, "level": "ERROR"}
    assert call(RuleSet([later_level, regex]), record())[1]["event"] == "By regex"
    assert call(RuleSet([later_level, template]), record())[1]["event"] == "By template"


def test_a_message_that_is_not_a_string_or_cannot_be_formatted_matches_no_regex() -> None:
    rules = RuleSet([ISSUE_EXAMPLE, {"regex": "x", "track": {"event": "X", "user_id": "1"}}])
    assert call(rules, record(msg={"a": "dict"}, args=())) is None
    assert call(rules, record(msg="%d things", args=("not a number",))) is None


# -- the handler with rules -----------------------------------------------------------------

def test_records_with_an_explicit_payload_are_handled_as_before(sent: Any) -> None:
    log = sent.logger([{"track": {"event": "From a rule", "user_id": "rule"}}])
    log.info("Order %s placed by %s", 1, "ann",
             extra={"track": {"event": "From extra", "user_id": "ann"}})
    log.info("anything", extra={"event": "Short form", "user_id": "bob", "qty": 2})
    assert [(m["event"], m["userId"]) for m in sent.messages] == [
        ("From extra", "ann"), ("Short form", "bob")]


def test_unmatched_records_are_not_handled(sent: Any) -> None:
    handler = sent.handler([ISSUE_EXAMPLE])
    assert handler.handle(record(msg="Inventory synced", args=())) is False
    assert handler.handle(record("shop.other")) is False
    assert handler.handle(record())
    assert len(sent.messages) == 1


def test_the_handler_reads_rules_from_a_file(sent: Any, tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps([ISSUE_EXAMPLE]))
    log = sent.logger(str(path))
    log.info("Order %s placed by %s", 5, "eve")
    assert sent.messages[0]["properties"] == {"order_id": 5}


def test_invalid_fields_are_reported_with_the_log_call_and_the_rule(sent: Any) -> None:
    log = sent.logger([{"logger": "shop", "message": "Order %s cancelled",
                        "track": {"event": "Order Cancelled", "user_id": "{extra[customer]}"}}],
                      name="shop")
    log.info("Order %s cancelled", 7)
    log.info("Order %s cancelled", 8, extra={"customer": "kim"})
    assert [m["userId"] for m in sent.messages] == ["kim"]
    [error] = sent.errors
    assert isinstance(error, InvalidEventError)
    assert error.call == "track" and error.field == "user_id"
    assert "test_rules.py:" in str(error)
    assert "rule 1 (logger 'shop', message 'Order %s cancelled')" in str(error)
    assert sent.handlers[0].client.stats()["invalid"] == 1


def test_a_failed_conversion_is_reported_as_an_invalid_event(sent: Any) -> None:
    log = sent.logger([{"regex": r"took (?P<seconds>\S+) s",
                        "track": {"event": "Took", "user_id": "1",
                                  "properties": {"seconds": "{groups[seconds]|float}"}}}])
    log.info("took fast s")
    log.info("took 1.5 s")
    assert [m["properties"] for m in sent.messages] == [{"seconds": 1.5}]
    [error] = sent.errors
    assert "track.properties" in str(error) and "|float" in str(error) and "'fast'" in str(error)


def test_the_handler_never_handles_what_its_own_reports_log() -> None:
    # A rule for every record, and no error_handler: the invalid event is reported as a
    # warning on the cdp_logging logger, which this handler also sees but must not send.
    transport = CapturingTransport()
    handler = CDPHandler(rules=[{"track": {"event": "Logged", "user_id": "{record[name]}"}}],
                         transport=transport)
    library = logging.getLogger("cdp_logging")
    logger = logging.getLogger(f"app.t{next(_names)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for target in (library, logger):
        target.addHandler(handler)
    try:
        logger.info("no user", extra={"track": {"event": "Bad"}})
        logger.info("plain line")
        assert handler.client.flush(timeout=10)
    finally:
        for target in (library, logger):
            target.removeHandler(handler)
        handler.close()
    assert [m["userId"] for m in transport.messages] == [logger.name]
    assert handler.client.stats()["invalid"] == 1


# -- checked when logging is configured -----------------------------------------------------

BAD_RULES = [
    pytest.param({"logger": "shop", "message": "Hi %s", "trak": {"event": "x"}},
                 ["logger 'shop'", "message 'Hi %s'", "unknown key 'trak'"], id="unknown-call"),
    pytest.param({"message": "Hi"}, ["no call"], id="no-call"),
    pytest.param({"message": "Hi", "track": {"event": "x", "user_id": 1}, "identify": {"user_id": 1}},
                 ["2 calls"], id="two-calls"),
    pytest.param({"message": "Order %s placed by %s", "track": {"event": "x", "user_id": "{args[2]}"}},
                 ["track.user_id", "{args[2]} is argument 3", "has 2 placeholders"],
                 id="args-beyond-template"),
    pytest.param({"message": "%(user)s left", "track": {"event": "x", "user_id": "{args[0]}"}},
                 ["no placeholder %(0)s", "%(user)s"], id="args-index-for-named-template"),
    pytest.param({"message": "Hi", "track": {"event": "x", "user_id": "{user[0]}"}},
                 ["refers to 'user', which is unknown"], id="unknown-root"),
    pytest.param({"message": "Hi", "track": {"event": "x", "user_id": "{args}"}},
                 ["{args} is not a reference"], id="no-key"),
    pytest.param({"message": "Hi", "track": {"event": "x", "user_id": "{extra['id']}"}},
                 ["without quotes"], id="quoted-key"),
    pytest.param({"message": "Hi", "track": {"event": "x", "user_id": "{extra[id]|number}"}},
                 ["unknown conversion |number"], id="unknown-conversion"),
    pytest.param({"message": "Hi", "track": {"event": "x", "user_id": "{groups[id]}"}},
                 ["needs a rule with a regex"], id="groups-without-regex"),
    pytest.param({"regex": "(?P<user>\\w+) in", "track": {"event": "x", "user_id": "{groups[usr]}"}},
                 ["no group named 'usr'", "its named groups: user"], id="unknown-group"),
    pytest.param({"message": "Hi", "track": {"event": "x", "user_id": "{record[user]}"}},
                 ["records have no attribute 'user'"], id="unknown-record-attribute"),
    pytest.param({"message": "Hi", "track": {"event": "x", "user_id": "{extra[lineno]}"}},
                 ["write {record[lineno]}"], id="extra-naming-a-record-attribute"),
    pytest.param({"message": "Hi", "track": {"event": "x", "user_id": "{args[0]"}},
                 ["unmatched '{'"], id="unclosed-brace"),
    pytest.param({"regex": "Order (\\d+", "track": {"event": "x", "user_id": "1"}},
                 ["regex 'Order (\\\\d+'", "invalid regex", "missing )"], id="invalid-regex"),
    pytest.param({"message": "Hi", "regex": "Hi", "track": {"event": "x", "user_id": "1"}},
                 ["not both"], id="message-and-regex"),
    pytest.param({"message": "Hi", "track": {"event": "x", "userid": "1"}},
                 ["track.userid is not a field of track"], id="unknown-field"),
    pytest.param({"message": "Hi", "track": {"user_id": "1"}}, ["track needs 'event'"], id="no-event"),
    pytest.param({"message": "Hi", "track": {"event": "x"}},
                 ["track needs 'user_id' or 'anonymous_id'"], id="no-user"),
    pytest.param({"message": "Hi", "alias": {"user_id": "1"}}, ["alias needs 'previous_id'"], id="alias"),
    pytest.param({"message": "Hi", "track": {"event": "", "user_id": "1"}},
                 ["track.event must be a non-empty string"], id="empty-event"),
    pytest.param({"message": "Hi", "level": "LOUD", "track": {"event": "x", "user_id": "1"}},
                 ["'level' must be a level name"], id="bad-level"),
    pytest.param({"logger": 3, "track": {"event": "x", "user_id": "1"}},
                 ["'logger' must be a logger name"], id="bad-logger"),
    pytest.param("track everything", ["a rule is a table"], id="not-a-table"),
]


@pytest.mark.parametrize("bad, expected", BAD_RULES)
def test_a_bad_rule_fails_configuration_naming_the_rule_and_the_fault(bad: Any, expected: list[str]) -> None:
    good = {"message": "fine", "identify": {"user_id": "1"}}
    with pytest.raises(RulesError) as raised:
        CDPHandler(rules=[good, bad], transport=CapturingTransport())
    text = str(raised.value)
    assert text.startswith("rule 2")
    assert raised.value.rule == 2
    for part in expected:
        assert part in text


def test_a_rule_number_counts_from_one_in_the_order_given() -> None:
    rules = RuleSet([ISSUE_EXAMPLE, ISSUE_EXAMPLE])
    assert [rule.number for rule in rules.rules] == [1, 2]
    assert "rule 1" in repr(rules.rules[0]) or "Rule 1" in repr(rules.rules[0])


# -- rules files ----------------------------------------------------------------------------

TOML_RULES = '''
[[rules]]
logger = "shop.orders"
message = "Order %s placed by %s"

[rules.track]
event = "Order Placed"
user_id = "{args[1]}"
properties = { order_id = "{args[0]}" }
'''


@pytest.mark.parametrize("name, text", [
    ("rules.json", json.dumps([ISSUE_EXAMPLE])),
    ("rules.json", json.dumps({"rules": [ISSUE_EXAMPLE]})),
    ("rules.toml", TOML_RULES),
    ("RULES.TOML", TOML_RULES),
], ids=["json-list", "json-object", "toml", "toml-upper-case"])
def test_rules_files_in_json_and_toml_mean_the_same(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    rules = load_rules(path)
    assert rules is not None and rules.source == str(path)
    assert call(rules, record()) == call(RuleSet([ISSUE_EXAMPLE]), record())


@pytest.mark.parametrize("name, text, expected", [
    ("rules.json", '[{"message": "x",\n "track": }]', "not valid JSON: Expecting value at line 2"),
    ("rules.toml", "[[rules]\nmessage = 1", "not valid TOML"),
    ("rules.yaml", "- message: x", "must end in .json or .toml"),
    ("rules.json", '{"rule": []}', "must hold the rules under 'rules'"),
    ("rules.json", '"track"', "'rules' must be a list"),
    ("rules.toml", '[[rules]]\nmessage = "Hi %s"\n[rules.track]\nevent = "x"\nuser_id = "{args[1]}"\n',
     "rule 1 (message 'Hi %s'): track.user_id"),
], ids=["bad-json", "bad-toml", "extension", "top-level-key", "top-level-type", "bad-rule"])
def test_a_bad_rules_file_fails_naming_the_file(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RulesError) as raised:
        load_rules(str(path))
    assert str(raised.value).startswith(f"{path}: ")
    assert expected in str(raised.value)


def test_a_missing_rules_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read the rules file: No such file"):
        CDPHandler(rules=str(tmp_path / "nowhere.toml"), transport=CapturingTransport())


# -- many rules -----------------------------------------------------------------------------

def _many_rules(count: int = 500) -> list[dict[str, Any]]:
    """Rules over 25 loggers: mostly message templates (some shared between loggers and
    levels), one in five a regex, a few that match any message at ERROR."""
    rules: list[dict[str, Any]] = []
    for n in range(count):
        logger = f"app{n % 25}" if n % 7 else f"app{n % 25}.sub"
        fields = {"event": f"Event {n}", "user_id": "{args[0]}" if n % 5 else "{groups[user]}"}
        if n % 5 == 0:
            rules.append({"logger": logger, "regex": rf"^Thing {n} done by (?P<user>\w+)$",
                          "track": fields})
        elif n % 50 == 1:
            rules.append({"logger": logger, "level": "ERROR", "track": {**fields, "user_id": "any"}})
        else:
            template = f"Step {n % 40} by %s"    # 40 templates shared by many loggers
            rule = {"logger": logger, "message": template, "track": fields}
            if n % 3 == 0:
                rule["level"] = "WARNING"
            rules.append(rule)
    return rules


def _first_match_by_brute_force(specs: list[dict[str, Any]], made: logging.LogRecord) -> int | None:
    """The specification, spelled out: try each rule in turn."""
    for number, spec in enumerate(specs, 1):
        logger = spec["logger"]
        if not (made.name == logger or made.name.startswith(logger + ".")):
            continue
        if made.levelno < logging.getLevelName(spec.get("level", "NOTSET")):
            continue
        if "message" in spec:
            if made.msg == spec["message"]:
                return number
        elif "regex" in spec:
            if re.search(spec["regex"], made.getMessage()):
                return number
        else:
            return number
    return None


def test_five_hundred_rules_give_the_same_first_match_as_trying_each_in_turn() -> None:
    specs = _many_rules()
    rules = RuleSet(specs)
    generator = random.Random(20240601)
    levels = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
    records = []
    for spec in specs:   # one record aimed at every rule
        level = logging.ERROR if spec.get("level") == "ERROR" else logging.WARNING
        if "regex" in spec:
            n = int(spec["track"]["event"].split()[1])
            records.append(record(spec["logger"], msg=f"Thing {n} done by u{n}", args=(), level=level))
        else:
            records.append(record(spec["logger"], msg=spec.get("message", "x %s"), args=("u",), level=level))
    for _ in range(1500):   # and many at random: children, unknown loggers, near misses
        logger = generator.choice([f"app{generator.randrange(27)}", f"app{generator.randrange(25)}.sub",
                                   f"app{generator.randrange(25)}.sub.deeper", "other", "app1x"])
        msg = generator.choice([f"Step {generator.randrange(45)} by %s",
                                f"Thing {generator.randrange(520)} done by", "Unrelated %s"])
        if msg.startswith("Thing"):
            msg, args = f"{msg} u{generator.randrange(9)}", ()
        else:
            args = ("u",)
        records.append(record(logger, msg=msg, args=args, level=generator.choice(levels)))
    outcomes = []
    for made in records:
        expected = _first_match_by_brute_force(specs, made)
        found = rules.find(made)
        assert (None if found is None else found.rule.number) == expected, (made.name, made.msg, made.levelno)
        outcomes.append(expected is not None)
    assert all(outcomes[:500])
    # The random sample exercises near misses as well as matches.
    assert 30 < sum(outcomes[500:]) < 1400
    # The one aimed at each rule reaches that rule unless an earlier one shadows it.
    assert sum(rules.find(made) is not None and rules.find(made).rule.number == n
               for n, made in enumerate(records[:500], 1)) > 250


def test_many_rules_fill_each_matched_call_from_its_own_rule() -> None:
    rules = RuleSet(_many_rules())
    name, fields = call(rules, record("app5", msg="Thing 255 done by zed", args=(), level=logging.INFO))
    assert (name, fields["event"], fields["user_id"]) == ("track", "Event 255", "zed")


# -- dry runs (cdp-logging check) -----------------------------------------------------------

def test_a_formatted_line_is_matched_with_its_arguments_recovered() -> None:
    rules = RuleSet([
        {"message": "Order %d placed by %s for %.2f", "track": {
            "event": "Order Placed", "user_id": "{args[1]}",
            "properties": {"order_id": "{args[0]}", "total": "{args[2]}"}}},
        {"regex": "Paid (?P<amount>\\d+)", "track": {"event": "Paid", "user_id": "1"}},
    ])
    found, made = rules.find_in_text("shop", logging.INFO, "Order 17 placed by ann b for 9.50")
    assert found.rule.number == 1
    assert found.call(made)[1]["properties"] == {"order_id": 17, "total": 9.5}
    assert found.call(made)[1]["user_id"] == "ann b"
    found, made = rules.find_in_text("shop", logging.INFO, "Paid 20")
    assert found.rule.number == 2 and found.groups == {"amount": "20"}
    assert rules.find_in_text("shop", logging.INFO, "Order x placed by ann for 1") is None


def test_rule_objects_describe_themselves() -> None:
    rule = Rule(3, {"regex": "x", "track": {"event": "e", "user_id": "1"}})
    assert rule.describe() == "logger (any), regex 'x'"
    assert repr(rule) == "<Rule 3: logger (any), regex 'x' -> track>"
