"""What the scope and the structlog front cost per log call, each paired in one process with its
baseline (chunks of calls taken in turn, the median of the per-pair ratios of the measuring
thread's CPU time), as ``pair`` does for the handler.

    python -m benchmarks.fronts_bench [--calls 20000] [--chunks 200] [--baseline-src DIR]

- ``scope``: ``logger.info(msg, extra={"track": {user_id, event, 6 properties}})`` into a
  CDPHandler inside ``cdp_logging.scope`` (a request's: user_id, anonymous_id and context with
  ip, userAgent, page; and a bare one: user_id only) against the same record with no scope open.
- ``no payload, no rules``: a record without payload into a CDPHandler without rules (and a
  track record with no scope open), against the same into the CDPHandler of another checkout (``--baseline-src``, a folder holding its ``cdp_logging``
  package, e.g. ``git archive 7ce1686 cdp_logging | tar -x -C /tmp/main``), loaded beside
  this one under another name.
- ``structlog``: ``log.info("added to cart", track={...})`` through structlog's chain
  ``[send_to_cdp, JSONRenderer()]`` against ``[JSONRenderer()]`` alone
  (``ReturnLoggerFactory``: the rendered line is returned, no I/O).

Events go to a local server process (benchmarks/server.py); each client's worker delivers
meanwhile, on whichever chunk is running, baselines' too.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import cdp_logging

from .common import silence_library_loggers
from .server import ServerProcess

PROPERTIES = {"product": "shoes", "revenue": 39.95, "qty": 1, "currency": "EUR", "coupon": None, "gift": False}
TRACK = {"track": {"user_id": "019mr8mf4r", "event": "Added To Cart", "properties": PROPERTIES}}
REQUEST = {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0",
           "page": {"url": "https://shop.example/cart?ref=mail", "path": "/cart"}}


def paired(subject: Callable[[int], Any], baseline: Callable[[int], Any], calls: int,
           chunks: int) -> dict[str, float]:
    """Median per-pair ratio of thread CPU per call, subject over baseline, and each's µs;
    ``subject(n)`` and ``baseline(n)`` make n calls each."""
    for function in (subject, baseline):
        function(max(1000, calls // 20))
    chunk = max(1, calls // chunks)
    times: dict[str, list[float]] = {"subject": [], "baseline": []}
    for index in range(chunks):
        order = (("subject", subject), ("baseline", baseline))
        for name, function in order if index % 2 == 0 else order[::-1]:
            started = time.thread_time_ns()
            function(chunk)
            times[name].append((time.thread_time_ns() - started) / chunk / 1000)
    ratios = [s / b for s, b in zip(times["subject"], times["baseline"]) if b > 0]
    return {"ratio": round(median(ratios), 3), "us_per_call": round(median(times["subject"]), 3),
            "baseline_us_per_call": round(median(times["baseline"]), 3)}


def repeat(call: Callable[[], Any]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            call()
    return run


def logger_with(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def client(url: str) -> cdp_logging.Analytics:
    return cdp_logging.Analytics(write_key="bench-key", host=url, max_queue_size=2_000_000,
                                 max_queue_bytes=2_000_000_000, max_events_in_batch=100)


def scope_rows(url: str, calls: int, chunks: int) -> dict[str, dict[str, float]]:
    log = logger_with(cdp_logging.CDPHandler(client=client(url)), "bench.scope")
    extra = {"track": {"user_id": "019mr8mf4r", "event": "Added To Cart", "properties": PROPERTIES}}
    without_id = {"track": {"event": "Added To Cart", "properties": PROPERTIES}}

    def inside(scope: dict[str, Any], record_extra: dict[str, Any]) -> Callable[[int], None]:
        def run(n: int) -> None:
            with cdp_logging.scope(**scope):   # once per chunk: the calls are what is measured
                for _ in range(n):
                    log.info("added to cart", extra=record_extra)
        return run

    no_scope = repeat(lambda: log.info("added to cart", extra=extra))
    return {
        "request scope (user_id, anonymous_id, ip, userAgent, page)": paired(
            inside({"user_id": "019mr8mf4r", "anonymous_id": "visitor-7", "context": REQUEST}, extra),
            no_scope, calls, chunks),
        "user_id scope, the record without user_id": paired(
            inside({"user_id": "019mr8mf4r"}, without_id), no_scope, calls, chunks),
    }


def plain_rows(url: str, calls: int, chunks: int, baseline_src: Path) -> dict[str, dict[str, float]]:
    spec = importlib.util.spec_from_file_location(
        "cdp_logging_baseline", baseline_src / "cdp_logging" / "__init__.py",
        submodule_search_locations=[str(baseline_src / "cdp_logging")])
    assert spec is not None and spec.loader is not None
    baseline = importlib.util.module_from_spec(spec)
    sys.modules["cdp_logging_baseline"] = baseline
    spec.loader.exec_module(baseline)
    ours = logger_with(cdp_logging.CDPHandler(client=client(url)), "bench.plain.ours")
    again = logger_with(cdp_logging.CDPHandler(client=client(url)), "bench.plain.again")
    theirs = logger_with(baseline.CDPHandler(write_key="bench-key", host=url), "bench.plain.baseline")
    return {
        "this checkout over --baseline-src": paired(
            repeat(lambda: ours.info("an ordinary line %s", 7)),
            repeat(lambda: theirs.info("an ordinary line %s", 7)), calls, chunks),
        "track record, no scope: this checkout over --baseline-src": paired(
            repeat(lambda: ours.info("added to cart", extra=TRACK)),
            repeat(lambda: theirs.info("added to cart", extra=TRACK)), calls, chunks),
        "A/A control: this checkout over itself": paired(
            repeat(lambda: ours.info("an ordinary line %s", 7)),
            repeat(lambda: again.info("an ordinary line %s", 7)), calls, chunks),
    }


def structlog_row(url: str, calls: int, chunks: int) -> dict[str, float]:
    import structlog

    from cdp_logging.structlog import CDPProcessor

    with_cdp = structlog.wrap_logger(structlog.ReturnLogger(), processors=[
        CDPProcessor(client=client(url)), structlog.processors.JSONRenderer()])
    renderer_only = structlog.wrap_logger(structlog.ReturnLogger(), processors=[structlog.processors.JSONRenderer()])
    track = {"user_id": "019mr8mf4r", "event": "Added To Cart", "properties": PROPERTIES}
    return paired(repeat(lambda: with_cdp.info("added to cart", track=track)),
                  repeat(lambda: renderer_only.info("added to cart", track=track)), calls, chunks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--baseline-src", type=Path, help="a folder holding another checkout's cdp_logging")
    args = parser.parse_args(argv)
    silence_library_loggers()
    results: dict[str, Any] = {}
    with ServerProcess() as server:
        results["scope"] = scope_rows(server.url, args.calls, args.chunks)
        if args.baseline_src:
            results["no payload, no rules"] = plain_rows(server.url, args.calls, args.chunks, args.baseline_src)
        results["structlog: [send_to_cdp, JSONRenderer] over [JSONRenderer]"] = structlog_row(
            server.url, args.calls, args.chunks)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
