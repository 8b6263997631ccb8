"""What mapping rules cost per log record: 500 rules against a handler without rules.

    python benchmarks/rules_bench.py [--number 20000] [--repeat 5]

Handlers run with ``enable=False``: a matched record is matched, built, checked and encoded
as when sending, and only the queue append (a short lock) is left out. Times are the best of
``--repeat`` runs, per record, in CPU time of the measuring thread (``time.thread_time``), so
that other processes on a busy machine do not count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import timeit
from typing import Any, Callable

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


def record(name: str, msg: str, *args: Any, **extra: Any) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(name, logging.INFO, __file__, 1, msg, args, None,
                                              extra=extra or None)


def best(statement: Callable[[], Any], number: int, repeat: int) -> float:
    """Seconds per call, best of ``repeat``."""
    return min(timeit.repeat(statement, number=number, repeat=repeat, timer=time.thread_time)) / number


def line(label: str, seconds: float, baseline: float | None) -> str:
    ratio = "" if baseline is None else f"{seconds / baseline:6.2f}x"
    return f"  {label:<62} {seconds * 1e9:9.0f} ns {ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    number, repeat = options.number, options.repeat

    plain = CDPHandler(enable=False)
    ruled = CDPHandler(enable=False, rules=five_hundred_rules())
    message_only = CDPHandler(enable=False, rules=[r for r in five_hundred_rules() if "message" in r])

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

    print(f"CDPHandler.handle(record), {number} records x best of {repeat}; "
          "ratios against the same record and a handler without rules\n")
    print("unmatched record")
    base = best(lambda: plain.handle(unmatched_quiet_logger), number, repeat)
    print(line("no rules", base, None))
    print(line("500 rules, logger without regex rules", best(
        lambda: ruled.handle(unmatched_quiet_logger), number, repeat), base))
    print(line("400 message rules only, any logger", best(
        lambda: message_only.handle(unmatched_regex_logger), number, repeat), base))
    print(line("500 rules, logger with 4 regex rules (4 regex searches)", best(
        lambda: ruled.handle(unmatched_regex_logger), number, repeat), base))

    print("\nmatched record, against the same call given explicitly in extra without rules")
    base = best(lambda: plain.handle(explicit), number, repeat)
    print(line("no rules, explicit extra={'track': ...}", base, None))
    print(line("500 rules, message template rule", best(
        lambda: ruled.handle(matched_template), number, repeat), base))
    print(line("500 rules, regex rule", best(
        lambda: ruled.handle(matched_regex), number, repeat), base))

    print("\nwhat the application pays: logger.info(...) of an unmatched line")
    logger = logging.getLogger("web.requests")
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def log_line() -> None:
        logger.info("GET %s took %s ms", "/", 3)

    for label, handler in (("no rules", plain), ("500 rules", ruled)):
        logger.handlers[:] = [handler]
        seconds = best(log_line, number, repeat)
        if handler is plain:
            base = seconds
        print(line(f"handler on the logger, {label}", seconds, None if handler is plain else base))
    logger.handlers[:] = []
    logger.addHandler(logging.NullHandler())
    untouched = best(log_line, number, repeat)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(five_hundred_rules(), file)
    try:
        install({"CDP_ENABLE": "false", "CDP_RULES": file.name})
        hooked = best(log_line, number, repeat)
    finally:
        uninstall()
        os.unlink(file.name)
    print(line("NullHandler only (the application without cdp-logging)", untouched, None))
    print(line("NullHandler + cdp-logging run's hook, 500 rules", hooked, untouched))

    for handler in (plain, ruled, message_only):
        handler.close()


if __name__ == "__main__":
    main()
