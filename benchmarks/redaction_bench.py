"""What redaction and ``before_send`` cost the application's thread, paired in one process.

    python -m benchmarks.redaction_bench [--baseline-src DIR] [--chunks 400] [--chunk 100]

Each subject is a ``CDPHandler`` on its own non-propagating logger, sending to the benchmark
server (its own process, on 127.0.0.1) while the calls run; the call is the issue's
``logger.info("Added to cart", extra={"track": {...6 flat properties...}})``. Chunks of calls
are taken in turn, in an order that alternates, so every subject sees the same minutes of a
noisy machine; for each subject it prints the median per chunk of the calling thread's CPU
microseconds per call (``time.thread_time``) and wall microseconds, and the median of the
per-chunk ratios against "redaction off" (``redact_keys=()``, today's path without the step)
and, with ``--baseline-src``, against the handler of another checkout (main's, exported with
``git archive 7ce1686 cdp_logging | tar -x -C DIR``), loaded beside this one as
``cdp_logging_baseline``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from cdp_logging import CDPHandler

from .common import MESSAGE, PROPERTIES, TRACK_EXTRA, WRITE_KEY, silence_library_loggers
from .http_path import load_baseline
from .server import ServerProcess

#: The same payload with a secret beside the six properties, and one nested in a list of dicts.
SECRET_EXTRA: dict[str, Any] = {"track": {
    **TRACK_EXTRA["track"],
    "properties": {**PROPERTIES, "password": "hunter2", "items": [{"sku": "a", "cvv": "123"}]},
}}


def _keep(message: dict[str, Any]) -> dict[str, Any]:
    return message


def subjects(url: str, baseline_source: str | None, calls: int) -> dict[str, tuple[Callable[[], None], Any]]:
    """name -> (one logging call, its handler)."""
    options: dict[str, Any] = {"host": url, "max_queue_size": calls * 2, "max_queue_bytes": calls * 2000}
    handlers: dict[str, tuple[Any, dict[str, Any]]] = {
        "redaction off (redact_keys=())": (CDPHandler(write_key=WRITE_KEY, redact_keys=(), **options), TRACK_EXTRA),
        "default redaction": (CDPHandler(write_key=WRITE_KEY, **options), TRACK_EXTRA),
        "default redaction + before_send": (CDPHandler(write_key=WRITE_KEY, before_send=_keep, **options), TRACK_EXTRA),
        "default redaction, 2 secrets found": (CDPHandler(write_key=WRITE_KEY, **options), SECRET_EXTRA),
    }
    if baseline_source is not None:
        baseline = load_baseline(baseline_source)
        handlers["main (7ce1686)"] = (baseline.CDPHandler(write_key=WRITE_KEY, **options), TRACK_EXTRA)
    made = {}
    for index, (name, (handler, extra)) in enumerate(handlers.items()):
        logger = logging.getLogger(f"bench.redaction.{index}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(handler)

        def call(logger: logging.Logger = logger, extra: dict[str, Any] = extra) -> None:
            logger.info(MESSAGE, extra=extra)

        made[name] = (call, handler)
    return made


def measure(made: dict[str, tuple[Callable[[], None], Any]], chunks: int, chunk: int) -> dict[str, Any]:
    cpu: dict[str, list[float]] = {name: [] for name in made}
    wall: dict[str, list[float]] = {name: [] for name in made}
    for call, _ in made.values():
        for _ in range(2000):
            call()
    for index in range(chunks):
        order = list(made) if index % 2 == 0 else list(reversed(made))
        for name in order:
            call = made[name][0]
            started_cpu, started = time.thread_time(), time.perf_counter()
            for _ in range(chunk):
                call()
            wall[name].append((time.perf_counter() - started) / chunk * 1e6)
            cpu[name].append((time.thread_time() - started_cpu) / chunk * 1e6)
    return {"cpu": cpu, "wall": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redaction_bench",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-src", help="a folder holding the cdp_logging package to compare with")
    parser.add_argument("--chunks", type=int, default=400)
    parser.add_argument("--chunk", type=int, default=100, help="calls per chunk")
    args = parser.parse_args(argv)
    silence_library_loggers()
    with ServerProcess() as server:
        made = subjects(server.url, args.baseline_src, (args.chunks * args.chunk + 2000))
        try:
            figures = measure(made, args.chunks, args.chunk)
        finally:
            for _, handler in made.values():
                handler.close()
    cpu, wall = figures["cpu"], figures["wall"]
    references = ["redaction off (redact_keys=())"] + (["main (7ce1686)"] if args.baseline_src else [])
    print(f"logger.info(..., extra={{'track': ...6 flat properties}}), {args.chunks} chunks of "
          f"{args.chunk} calls per subject, taken in turn; medians")
    header = f"{'':38} {'CPU us/call':>11} {'wall us/call':>12}"
    for reference in references:
        header += f"  {'vs ' + reference.split(' (')[0]:>22}"
    print(header + "  (ratio of CPU, wall)")
    for name in made:
        line = f"{name:38} {statistics.median(cpu[name]):11.2f} {statistics.median(wall[name]):12.2f}"
        for reference in references:
            ratio_cpu = statistics.median([a / b for a, b in zip(cpu[name], cpu[reference])])
            ratio_wall = statistics.median([a / b for a, b in zip(wall[name], wall[reference])])
            line += f"  {ratio_cpu:10.3f}x {ratio_wall:9.3f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
