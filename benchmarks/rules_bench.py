"""What mapping rules cost per log record: 500 rules against a handler without rules.

    python benchmarks/rules_bench.py [--number 5000] [--rounds 20]

Handlers run with ``enable=False``: a matched record is matched, built, checked and encoded
as when sending, and only the queue append (a short lock) is left out. Scenarios are timed in
turns for ``--rounds`` rounds and each keeps its best, per record, in CPU time of the
measuring thread (``time.thread_time``), so that other processes on a busy machine count
as little as they can.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import timeit
from typing import Any
from collections.abc import Callable

from cdp_logging import CDPHandler
from cdp_logging.autoinstall import install, uninstall

LOGGERS = 25


def five_hundred_rules() -> list[dict[str, Any]]:
    """400 message rules and 100 regex rules over 25 loggers."""
    rules: list[dict[str, Any]] = []
    for n in range(500):
        logger = f"app{n % LOGGERS}"
        if n % 5 == 0:
            rules.append({"logger": logger, "regex": rf"^Thing {n} done by (?P<user>\w+)$",
                          "track": {"event": f"Thing {n}", "user_id": "{groups[user]}"}})
        else:
            rules.append({"logger": logger, "message": f"Event {n} for %s",
                          "track": {"event": f"Event {n}", "user_id": "{args[0]}",
                                    "properties": {"n": n, "source": "rules"}}})
    return rules


#: The issue's rule whose nested quantifier made Python's re take minutes on a 40-character line.
NESTED = {"logger": "app3", "regex": r"^user (?P<u>(\w+\s?)+)$",
          "identify": {"user_id": "{groups[u]}"}}
#: A template of many placeholders: backtracking tries every way of cutting a line in ten.
MANY = {"logger": "app3", "message": "%s %s %s %s %s %s %s %s %s %s!",
        "track": {"event": "Many", "user_id": "{args[0]}"}}


def hostile_rules() -> list[dict[str, Any]]:
    """The 500 rules, and the two above for the logger of 4 regex rules."""
    return [*five_hundred_rules(), NESTED, MANY]


def record(name: str, msg: str, *args: Any, **extra: Any) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(name, logging.INFO, __file__, 1, msg, args, None,
                                              extra=extra or None)


class Measurements:
    """Scenarios timed in turns, round after round, each keeping its best round: a busy
    machine then slows every scenario alike instead of whichever ran at the wrong moment."""

    def __init__(self, number: int, rounds: int) -> None:
        self.number = number
        self.rounds = rounds
        self.scenarios: list[tuple[str, str, Callable[[], Any], str | None]] = []

    def add(self, section: str, label: str, statement: Callable[[], Any],
            baseline: str | None = None) -> None:
        self.scenarios.append((section, label, statement, baseline))

    def run(self) -> dict[str, float]:
        """Seconds per call of each scenario, by label."""
        best = {label: float("inf") for _, label, _, _ in self.scenarios}
        for _ in range(self.rounds):
            for _, label, statement, _ in self.scenarios:
                seconds = timeit.timeit(statement, number=self.number, timer=time.thread_time)
                best[label] = min(best[label], seconds / self.number)
        return best

    def report(self, best: dict[str, float]) -> None:
        section_shown = None
        for section, label, _, baseline in self.scenarios:
            if section != section_shown:
                print(f"\n{section}")
                section_shown = section
            ratio = "" if baseline is None else f"{best[label] / best[baseline]:6.2f}x"
            print(f"  {label:<62} {best[label] * 1e9:9.0f} ns {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=5_000, help="records a round")
    parser.add_argument("--rounds", type=int, default=20)
    options = parser.parse_args()
    number, rounds = options.number, options.rounds

    plain = CDPHandler(enable=False)
    ruled = CDPHandler(enable=False, rules=five_hundred_rules())
    message_only = CDPHandler(enable=False, rules=[r for r in five_hundred_rules() if "message" in r])
    hostile = CDPHandler(enable=False, rules=hostile_rules())

    unmatched_quiet_logger = record("web.requests", "GET %s took %s ms", "/", 3)
    unmatched_regex_logger = record("app3", "Cache warmed in %s ms", 12)
    matched_template = record("app7", "Event 257 for %s", "ann")
    matched_regex = record("app5", "Thing 255 done by bob")
    explicit = record("app7", "Event 257 for %s", "ann",
                      track={"event": "Event 257", "user_id": "ann",
                             "properties": {"n": 257, "source": "rules"}})
    assert ruled.rules is not None
    assert ruled.rules.find(matched_template) and ruled.rules.find(matched_regex)
    assert ruled.rules.find(unmatched_regex_logger) is None

    logger = logging.getLogger("web.requests")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    quiet = logging.getLogger("web.quiet")
    quiet.setLevel(logging.INFO)
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    logger.addHandler(plain)
    ruled_logger = logging.getLogger("web.ruled")
    ruled_logger.setLevel(logging.INFO)
    ruled_logger.propagate = False
    ruled_logger.addHandler(ruled)

    measure = Measurements(number, rounds)
    section = "unmatched record: CDPHandler.handle(record)"
    measure.add(section, "no rules", lambda: plain.handle(unmatched_quiet_logger))
    measure.add(section, "500 rules, logger without regex rules",
                lambda: ruled.handle(unmatched_quiet_logger), "no rules")
    measure.add(section, "400 message rules only, any logger",
                lambda: message_only.handle(unmatched_regex_logger), "no rules")
    measure.add(section, "500 rules, logger with 4 regex rules (one RE2 set search)",
                lambda: ruled.handle(unmatched_regex_logger), "no rules")
    section = "matched record: CDPHandler.handle(record), against the same call in extra"
    measure.add(section, "no rules, explicit extra={'track': ...}", lambda: plain.handle(explicit))
    measure.add(section, "500 rules, message template rule", lambda: ruled.handle(matched_template),
                "no rules, explicit extra={'track': ...}")
    measure.add(section, "500 rules, regex rule", lambda: ruled.handle(matched_regex),
                "no rules, explicit extra={'track': ...}")
    # The worst lines we could construct: as long as a log line gets (2,000 characters), each a
    # near miss of the nested rule or of every regex rule's prefix, against an ordinary line.
    ordinary = record("app3", "Cache warmed in %s ms", 12)
    near_nested = record("app3", "user " + "ab " * 665 + "!")
    near_prefixes = record("app3", "Thing 3 done by " + "a" * 1984 + "!")
    assert hostile.rules is not None
    assert hostile.rules.find(near_nested) is None and hostile.rules.find(ordinary) is None
    section = "hostile lines: CDPHandler.handle(record), 502 rules, logger with 5 regex rules"
    measure.add(section, "ordinary line (21 characters)", lambda: hostile.handle(ordinary))
    measure.add(section, "2,000 characters, near miss of ^user (?P<u>(\\w+\\s?)+)$",
                lambda: hostile.handle(near_nested), "ordinary line (21 characters)")
    measure.add(section, "2,000 characters, near miss of every regex rule's prefix",
                lambda: hostile.handle(near_prefixes), "ordinary line (21 characters)")
    rules = hostile.rules
    ordinary_text = "1 2 3 4 5 6 7 8 9 10!"
    hostile_text = ("a " * 60)[:110]
    section = "cdp-logging check: a line read back against 502 rules (find_in_text)"
    measure.add(section, "ordinary line, template of 10 placeholders",
                lambda: rules.find_in_text("app3", logging.INFO, ordinary_text))
    measure.add(section, "110 characters cut ten ways, no match",
                lambda: rules.find_in_text("app3", logging.INFO, hostile_text),
                "ordinary line, template of 10 placeholders")
    section = "what the application pays: logger.info(...) of an unmatched line"
    measure.add(section, "handler on the logger, no rules",
                lambda: logger.info("GET %s took %s ms", "/", 3))
    measure.add(section, "handler on the logger, 500 rules",
                lambda: ruled_logger.info("GET %s took %s ms", "/", 3), "handler on the logger, no rules")

    print(f"{number} records a round, best of {rounds} rounds, CPU time per record; ratios against "
          "the same record without rules")
    results = measure.run()

    # The zero-code hook changes every logger in the process: it is installed and removed
    # around its own turn in each round.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(five_hundred_rules(), file)
    untouched = hooked = float("inf")

    def log_quietly() -> None:
        quiet.info("GET %s took %s ms", "/", 3)

    try:
        for _ in range(rounds):
            seconds = timeit.timeit(log_quietly, number=number, timer=time.thread_time)
            untouched = min(untouched, seconds / number)
            install({"CDP_ENABLE": "false", "CDP_RULES": file.name})
            try:
                seconds = timeit.timeit(log_quietly, number=number, timer=time.thread_time)
                hooked = min(hooked, seconds / number)
            finally:
                uninstall()
    finally:
        os.unlink(file.name)
    measure.report(results)
    print("\nwhat `cdp-logging run` costs an application: logger.info(...) of an unmatched line")
    print(f"  {'NullHandler only (no cdp-logging)':<62} {untouched * 1e9:9.0f} ns")
    print(f"  {'NullHandler + the hook of cdp-logging run, 500 rules':<62} {hooked * 1e9:9.0f} ns "
          f"{hooked / untouched:6.2f}x")

    for handler in (plain, ruled, message_only, hostile):
        handler.close()


if __name__ == "__main__":
    main()
