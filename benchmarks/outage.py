"""An outage, measured: one process logs at a steady rate through a CDPHandler into an API
that refuses every connection, and prints its RSS over time beside the queue's size.

Through an outage the queue fills and stays full (new events are dropped, batches are given
up after their retries); what matters is that memory stays flat once the queue is full. Each
line is JSON: seconds since start, RSS in MB, and the client's stats.

Run the five-minute outage of issue 25 (``make soak``)::

    python -m benchmarks.outage --seconds 300 --rate 2000

and a short one with quick retries (what tests/delivery/test_outage_memory.py runs)::

    python -m benchmarks.outage --seconds 25 --rate 2000 --every 1 \\
        --options '{"max_queue_size": 5000, "initial_backoff": 0.05, "max_backoff": 0.2}'

The last line (``"summary"``) gives RSS when the queue first filled, at the end, its peak
after that, and the slope (MB per minute, least squares) from a few seconds after the queue
filled to the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
from typing import Any

import cdp_logging


def rss_mb() -> float:
    """The process's resident set size in MB (Linux /proc; psutil elsewhere, if installed)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        import psutil  # only where /proc is missing

        return float(psutil.Process().memory_info().rss) / 1e6


def refused_host() -> str:
    """An address on 127.0.0.1 where nothing listens: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, value) points, per second."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread if spread else 0.0


def run(seconds: float, rate: int, every: float, options: dict[str, Any], settle: float) -> dict[str, Any]:
    handler = cdp_logging.CDPHandler(write_key="outage-benchmark", host=refused_host(), **options)
    log = logging.getLogger("outage")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # The reports (one per batch given up, rate-limited) go nowhere: the library's default
    # path is what is measured, without a terminal in the way.
    logging.getLogger("cdp_logging").addHandler(logging.NullHandler())
    logging.getLogger("cdp_logging").propagate = False
    queue_size = options.get("max_queue_size", 50_000)
    started = time.monotonic()
    next_report = started
    full_at: float | None = None
    samples: list[tuple[float, float]] = []
    sent = 0
    chunk = max(1, rate // 100)
    while True:
        now = time.monotonic()
        elapsed = now - started
        if elapsed >= seconds:
            break
        for _ in range(chunk):
            log.info("order paid", extra={"track": {
                "user_id": f"user-{sent % 5000}", "event": "Order Paid",
                "properties": {"order": sent, "total": 12.5, "currency": "EUR", "sku": "SKU-1234"},
            }})
            sent += 1
        stats = handler.client.stats()
        if full_at is None and stats["pending"] >= queue_size:
            full_at = elapsed
        if now >= next_report:
            next_report += every
            rss = rss_mb()
            if full_at is not None:
                samples.append((elapsed, rss))
            # Python's allocated blocks beside RSS: flat blocks with RSS rising is the allocator.
            print(json.dumps({"t": round(elapsed, 2), "rss_mb": round(rss, 2), "py_blocks": sys.getallocatedblocks(),
                              "queue_full": full_at is not None,
                              **{k: stats.get(k) for k in ("pending", "failed", "unconfirmed", "dropped", "retries")}}),
                  flush=True)
        pause = started + sent / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    steady = [(t, v) for t, v in samples if full_at is not None and t >= full_at + settle]
    summary = {
        "summary": True,
        "queue_full_at": full_at,
        "rss_when_full_mb": samples[0][1] if samples else None,
        "rss_steady_start_mb": steady[0][1] if steady else None,
        "rss_end_mb": samples[-1][1] if samples else None,
        "rss_peak_after_full_mb": max(v for _, v in samples) if samples else None,
        "slope_mb_per_min": round(slope(steady) * 60, 3),
        "samples": len(steady),
        "events": sent,
    }
    print(json.dumps(summary), flush=True)
    handler.client.close(timeout=0)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the outage (default 300)")
    parser.add_argument("--rate", type=int, default=2000, help="events logged per second (default 2000)")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between lines (default 15)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds after the queue filled before the slope is measured (default 5)")
    parser.add_argument("--options", default="{}", help="CDPHandler options as JSON")
    args = parser.parse_args(argv)
    run(args.seconds, args.rate, args.every, json.loads(args.options), args.settle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
