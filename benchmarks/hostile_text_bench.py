"""What hostile text and many rules cost the logging call (issue 20): a 10 MB line, a lone
surrogate, 40 access-log regex rules and 1,000 simple rules for one logger, each beside a
baseline measured in the same run.

    python benchmarks/hostile_text_bench.py [--number 200] [--rounds 5]

Handlers run with ``enable=False``, as in ``rules_bench.py``: a matched record is matched,
built, checked and encoded as when sending. Times are CPU time of the measuring thread, the
best of ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from cdp_logging import CDPHandler
from rules_bench import Measurements, record

#: An ordinary access-log regex (bounded repeats); past a dozen of them RE2 cannot put them
#: in one set.
ACCESS = (r'(?P<ip>\S+) \S+ (?P<user>\S{1,64}) \[(?P<when>[^\]]{1,64})\] "(?P<method>[A-Z]{3,7}) '
          r'(?P<path>/shop%d/[^ "]{0,256}) HTTP/1\.[01]" (?P<status>\d{3}) (?P<size>\d+) '
          r'"(?P<ref>[^"]{0,256})" "(?P<ua>[^"]{0,256})"')


def access_rules(count: int) -> list[dict[str, Any]]:
    return [{"logger": "web", "regex": ACCESS % i,
             "track": {"event": f"Shop {i}", "user_id": "{groups[user]}"}} for i in range(count)]


def simple_rules(count: int) -> list[dict[str, Any]]:
    return [{"logger": "web", "regex": f"order{i} (?P<u>\\w+)",
             "track": {"event": f"Order {i}", "user_id": "{groups[u]}"}} for i in range(count)]


def access_line(shop: int) -> str:
    return f'10.0.0.1 - ann [07/Dec/2026:10:00:00 +0000] "GET /shop{shop}/cart HTTP/1.1" 200 512 "-" "curl/8"'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200, help="records a round")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()

    one = CDPHandler(enable=False, rules=[{"logger": "web", "regex": r"(?P<u>[a-z]+)=(?P<v>[^;]*);",
                                           "track": {"event": "Set", "user_id": "{groups[u]}"}}])
    measure = Measurements(options.number, options.rounds)
    section = "a long line, one regex rule (it matches at the start)"
    short = record("web", "a=" + "b" * 1000 + ";")
    long = record("web", "a=" + "b" * 10_000_000 + ";")
    measure.add(section, "1 KB line", lambda: one.handle(short))
    measure.add(section, "10 MB line (matched: its first 32 KiB)", lambda: one.handle(long), "1 KB line")

    section = "a lone surrogate (an undecodable file name) in a matched line"
    plain = record("web", "f=report.csv;")
    undecodable = record("web", "f=" + os.fsdecode(b"report-\xff.csv") + ";")
    measure.add(section, "valid text", lambda: one.handle(plain))
    measure.add(section, "with a lone surrogate (sent as U+FFFD, reported)",
                lambda: one.handle(undecodable), "valid text")

    section = "many regex rules for one logger, matched record"
    logging.getLogger("cdp_logging").setLevel(logging.CRITICAL)  # the substitution reports
    ten = CDPHandler(enable=False, rules=access_rules(10))
    forty = CDPHandler(enable=False, rules=access_rules(40))
    simple_ten = CDPHandler(enable=False, rules=simple_rules(10))
    thousand = CDPHandler(enable=False, rules=simple_rules(1000))
    line = record("web", access_line(7))
    measure.add(section, "10 access-log rules (one RE2 set)", lambda: ten.handle(line))
    measure.add(section, "40 access-log rules (sets split at configuration)",
                lambda: forty.handle(line), "10 access-log rules (one RE2 set)")
    order = record("web", "paid order7 ann")
    measure.add(section, "10 simple rules", lambda: simple_ten.handle(order))
    measure.add(section, "1,000 simple rules (16 sets)", lambda: thousand.handle(order), "10 simple rules")

    print(f"{options.number} records a round, best of {options.rounds} rounds, CPU time per record")
    measure.report(measure.run())


if __name__ == "__main__":
    main()
