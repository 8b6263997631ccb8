"""The workload every scenario sends, and small measurements of the running process.

Keeping the payload in one place makes every client send exactly the same event, so the
figures compare the clients and not the data.
"""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

#: The write key given to every client; the local server accepts anything.
WRITE_KEY = "bench-write-key"
USER_ID = "42"
EVENT = "Added to cart"
MESSAGE = "Added to cart"
#: Six properties, a realistic mix of types (the issue's "6 properties").
PROPERTIES: dict[str, Any] = {
    "sku": "SKU-12345",
    "name": "Blue cotton T-shirt",
    "price": 19.99,
    "quantity": 2,
    "currency": "USD",
    "in_stock": True,
}
#: What the application passes to ``logger.info`` for a track call.
TRACK_EXTRA: dict[str, Any] = {
    "track": {"user_id": USER_ID, "event": EVENT, "properties": PROPERTIES},
}
#: Name of the application's logger; not propagating, so only the handler under test runs.
APP_LOGGER = "bench.app"
#: Loggers the clients report through (drops, errors); given a NullHandler so a full queue
#: costs the record but never prints through logging's last-resort handler.
LIBRARY_LOGGERS = ("customerio", "cdp_logging", "urllib3", "requests")


def silence_library_loggers() -> None:
    """Give the clients' own loggers a NullHandler and stop them propagating."""
    import logging

    for name in LIBRARY_LOGGERS:
        log = logging.getLogger(name)
        log.addHandler(logging.NullHandler())
        log.propagate = False


def rss_bytes() -> int:
    """Resident set size of this process now (not the peak), from /proc."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    """CPU time (user + system) of this process, all threads, excluding children."""
    return time.process_time()


@dataclass(frozen=True)
class ThreadSwitches:
    """Context switches of one thread: voluntary ones are wake-ups after a wait."""

    voluntary: int
    involuntary: int


def thread_switches() -> dict[int, ThreadSwitches]:
    """Context switch counts of every thread of this process, by thread id."""
    result: dict[int, ThreadSwitches] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except FileNotFoundError:  # the thread ended between listdir and open
            continue
        result[int(tid)] = ThreadSwitches(
            int(fields["voluntary_ctxt_switches"]), int(fields["nonvoluntary_ctxt_switches"]))
    return result


def resource_usage() -> dict[str, float]:
    """getrusage of this process (all threads): CPU seconds and peak RSS."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"user_s": usage.ru_utime, "system_s": usage.ru_stime,
            "max_rss_bytes": usage.ru_maxrss * 1024}


def median(values: list[float]) -> float:
    """Median, for readability at call sites."""
    return statistics.median(values)


def run_bounded(function: Callable[[], Any], timeout: float) -> tuple[bool, Any]:
    """Run ``function`` in a daemon thread; give up waiting after ``timeout`` seconds.

    Clients' shutdown methods may block on the network (the official client's ``flush`` has
    no timeout at all); a benchmark must never hang on them. Returns (finished, result).
    """
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(function())
        except Exception as err:  # reported, not raised: this runs at teardown
            outcome.append(err)

    thread = threading.Thread(target=target, name="bench-bounded", daemon=True)
    thread.start()
    thread.join(timeout)
    return (not thread.is_alive(), outcome[0] if outcome else None)


def sample_message(index: int = 0) -> dict[str, Any]:
    """One CDP track message as a client would put it in a batch (fixed id and time)."""
    return {
        "type": "track",
        "userId": USER_ID,
        "event": EVENT,
        "properties": PROPERTIES,
        "messageId": f"00000000-0000-4000-8000-{index:012d}",
        "timestamp": "2024-01-01T00:00:00.000Z",
        "context": {"library": {"name": "bench", "version": "0"}},
    }


def sample_batch_body(events: int) -> bytes:
    """A pre-encoded ``/v1/batch`` body of ``events`` messages, for the capacity test."""
    import json

    body = {"batch": [sample_message(i) for i in range(events)],
            "sentAt": "2024-01-01T00:00:00.000Z"}
    return json.dumps(body, separators=(",", ":")).encode()
