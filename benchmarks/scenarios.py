"""One measurement per process: ``python -m benchmarks.scenarios SCENARIO [options]``.

Each scenario builds one subject (see :mod:`benchmarks.clients`), starts its own server when
the subject sends anything, measures, and prints a single line ``BENCH-RESULT {json}``.
A subject that cannot be built here (cdp_logging not written yet, official client missing)
prints ``{"skipped": reason}`` instead and exits 0; an unexpected error prints
``{"error": ...}`` and exits 1.

The process ends with ``os._exit`` after printing: the official client registers an atexit
hook that joins its consumer thread, which can wait for minutes on a hung server, and a
benchmark must not hang on someone else's shutdown.

Scenarios:

- ``call``: microseconds per application-side call, worker delivering concurrently.
- ``pair``: the same, for two subjects alternating chunks in one process (a steadier ratio).
- ``throughput``: a burst of N events from one thread, until the server has counted them.
- ``burst``: a burst with nothing flushed: delivered at all, during the calls, and how fast.
- ``memory``: bytes held per queued event while the server never answers.
- ``soak``: RSS over time while logging at a steady rate into a slow server.
- ``idle``: CPU and thread wake-ups of an idle client.
- ``capacity``: events/s the benchmark server itself accepts from a cheap load generator.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import threading
import time
import traceback
import tracemalloc
from typing import Any
from collections.abc import Callable, Iterator

from .clients import SkipScenario, Subject, make_subject
from .common import (cpu_seconds, median, resource_usage, rss_bytes, silence_library_loggers,
                     thread_switches)
from .server import ServerProcess

RESULT_MARKER = "BENCH-RESULT "
#: Subjects that send events and so need a server.
SENDING_SUBJECTS = frozenset({"official", "ours_client", "ours_handler", "ours_client_spool",
                              "ours_handler_spool"})
#: Seconds allowed for teardown steps (flush, close) that might block on the network.
TEARDOWN_TIMEOUT = 5.0


@contextlib.contextmanager
def server_for(kind: str, **options: Any) -> Iterator[ServerProcess | None]:
    """A running server if ``kind`` sends events, else None."""
    if kind not in SENDING_SUBJECTS:
        yield None
        return
    with ServerProcess(**options) as server:
        yield server


@contextlib.contextmanager
def subject_for(kind: str, server: ServerProcess | None, close_timeout: float = TEARDOWN_TIMEOUT,
                **options: Any) -> Iterator[Subject]:
    """Build a subject and close it (bounded by ``close_timeout``) whatever happens."""
    subject = make_subject(kind, server.url if server else "", **options)
    try:
        yield subject
    finally:
        subject.close(close_timeout)


def _deliver(subject: Subject, server: ServerProcess, expected: int, timeout: float) -> dict[str, Any]:
    """Ask the subject to flush (in the background) and wait at the server for ``expected``."""
    threading.Thread(target=subject.flush, args=(timeout,), name="bench-flush", daemon=True).start()
    return server.wait_events(expected, timeout)


def scenario_call(args: argparse.Namespace) -> dict[str, Any]:
    """Microseconds per ``call()``: median over chunks, after a warm-up.

    The queue is sized to hold every call, so the fast path is measured, never the drop path;
    the worker sends to the local server at the same time, as it would in production.
    """
    total = args.warmup + args.calls
    with server_for(args.subject) as server, subject_for(
            args.subject, server, batch=args.batch, queue_size=total + 1000,
            with_payload=args.payload) as subject:
        call = subject.call
        for _ in range(args.warmup):
            call()
        chunk = max(1, args.calls // args.chunks)
        per_call_us = []
        thread_cpu_us = []
        cpu_before = cpu_seconds()
        for _ in range(args.chunks):
            started = time.perf_counter_ns()
            thread_started = time.thread_time_ns()
            for _ in range(chunk):
                call()
            thread_cpu_us.append((time.thread_time_ns() - thread_started) / chunk / 1000)
            per_call_us.append((time.perf_counter_ns() - started) / chunk / 1000)
        cpu_used = cpu_seconds() - cpu_before
        result: dict[str, Any] = {
            "us_per_call": median(per_call_us),
            "us_per_call_min": min(per_call_us),
            # CPU of the application thread alone: unlike wall time it leaves out time spent
            # descheduled by other processes (a noisy machine) and waiting for the GIL.
            "thread_cpu_us_per_call": median(thread_cpu_us),
            "us_per_call_chunks": per_call_us,
            "calls": chunk * args.chunks,
            "cpu_s_during_calls": cpu_used,
            "dropped": subject.dropped(),
        }
        if server is not None and args.payload:
            sent = args.warmup + chunk * args.chunks - subject.dropped()
            stats = _deliver(subject, server, sent, args.timeout)
            result["delivered"] = stats["events"]
        result["client_stats"] = subject.stats()
        return result


def scenario_pair(args: argparse.Namespace) -> dict[str, Any]:
    """Per-call cost of ``--subject`` over ``--baseline``, alternating chunks in one process.

    Separate processes minutes apart see different machine noise; chunks of a few
    milliseconds taken turn about see nearly the same, so the median of the per-pair ratios
    can resolve a target like 1.10x that separate runs cannot. The order within each pair
    alternates so that a drift favours neither side.

    With payloads (``pair.ours_handler.track``) the subject's worker delivers meanwhile, and
    the time it holds the GIL falls on whichever chunk is running, the baseline's too, so
    this ratio leaves out part of the worker's cost; ``call.*`` (separate processes) keeps
    it, with the noise between processes. Both are reported.

    ``--subject official --baseline ours_handler`` puts the two clients side by side, each
    worker delivering to the one server; either worker's GIL time falls on both subjects'
    chunks, which narrows the ratio rather than widening it.
    """
    total = args.warmup + args.calls
    options = {"batch": args.batch, "queue_size": total + 1000, "with_payload": args.payload}
    with server_for(args.subject) as server, \
            subject_for(args.subject, server, logger_name="bench.subject", **options) as subject, \
            subject_for(args.baseline, server, logger_name="bench.baseline", **options) as baseline:
        calls = {"subject": subject.call, "baseline": baseline.call}
        for call in calls.values():
            for _ in range(args.warmup):
                call()
        chunk = max(1, args.calls // args.chunks)
        wall: dict[str, list[float]] = {"subject": [], "baseline": []}
        cpu: dict[str, list[float]] = {"subject": [], "baseline": []}
        for index in range(args.chunks):
            order = ("subject", "baseline") if index % 2 == 0 else ("baseline", "subject")
            for name in order:
                call = calls[name]
                started = time.perf_counter_ns()
                thread_started = time.thread_time_ns()
                for _ in range(chunk):
                    call()
                cpu[name].append((time.thread_time_ns() - thread_started) / chunk / 1000)
                wall[name].append((time.perf_counter_ns() - started) / chunk / 1000)
        ratios = [s / b for s, b in zip(wall["subject"], wall["baseline"])]
        cpu_ratios = [s / b for s, b in zip(cpu["subject"], cpu["baseline"])]
        return {
            "ratio": median(ratios),
            "thread_cpu_ratio": median(cpu_ratios),
            "us_per_call": median(wall["subject"]),
            "baseline_us_per_call": median(wall["baseline"]),
            "thread_cpu_us_per_call": median(cpu["subject"]),
            "baseline_thread_cpu_us_per_call": median(cpu["baseline"]),
            "calls": chunk * args.chunks,
            "ratios": ratios,
        }


def scenario_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """A burst of ``--events`` calls from one thread, timed until the server counted them.

    A warm-up batch is delivered first (connection open, imports done) and the server's
    counters are reset, so the figure is the steady-state cost of the burst alone. The end
    time is the server's acknowledgement of the last event (same monotonic clock).
    """
    queue_size = args.queue_size or args.events
    with server_for(args.subject) as server, subject_for(
            args.subject, server, batch=args.batch, queue_size=queue_size) as subject:
        assert server is not None, "throughput needs a sending subject"
        for _ in range(args.batch):
            subject.call()
        _deliver(subject, server, args.batch, 30.0)
        server.reset()

        call = subject.call
        cpu_before = cpu_seconds()
        usage_before = resource_usage()
        started = time.monotonic()
        for _ in range(args.events):
            call()
        calls_done = time.monotonic()
        dropped = subject.dropped()
        stats = _deliver(subject, server, args.events - dropped, args.timeout)
        cpu_used = cpu_seconds() - cpu_before
        usage_after = resource_usage()
        complete = stats["events"] >= args.events - dropped
        finished = stats["last_ack_at"] if complete and stats["last_ack_at"] else stats["now"]
        elapsed = finished - started
        delivered = stats["unique_events"] + stats["events_without_id"]
        return {
            "events": args.events,
            "batch": args.batch,
            "queue_size": queue_size,
            "delivered": delivered,
            "dropped": subject.dropped(),
            "complete": complete,
            "seconds": elapsed,
            "calls_seconds": calls_done - started,
            "events_per_s": delivered / elapsed if elapsed > 0 else 0.0,
            "cpu_s": cpu_used,
            "cpu_us_per_event": cpu_used / delivered * 1e6 if delivered else None,
            "user_s": usage_after["user_s"] - usage_before["user_s"],
            "system_s": usage_after["system_s"] - usage_before["system_s"],
            "requests": stats["requests"],
            "duplicates": stats["duplicate_events"],
            "body_bytes_per_event": stats["body_bytes_per_event"],
            "client_stats": subject.stats(),
        }


#: Only a request this close to the API's 500 KB body limit can be full by size (the
#: official client stops a batch at 475,000 bytes of events).
NEAR_FULL_BODY_BYTES = 425_000


def burst_figures(acks: list[list[float]], started: float, calls_done: float,
                  batch: int | None) -> dict[str, Any]:
    """What the server's per-request log (``[acknowledged at, events, body bytes]``) says
    about a burst that ran from ``started`` to ``calls_done``.

    Throughput counts up to the last full batch (``batch`` events or more, as ours sends a
    backlog, or a body near the size limit): what follows is a remainder, a latency rather
    than a rate, reported as the time from the last call to its acknowledgement.
    """
    acks = sorted(acks)
    during = sum(events for at, events, _ in acks if at <= calls_done)
    # Full by size: within two events of the largest body, which the size limit stopped.
    _, largest_events, largest_size = max(acks, key=lambda ack: ack[2], default=(0, 1, 0))
    full_size = max(NEAR_FULL_BODY_BYTES, largest_size - 2 * largest_size / max(1, largest_events))
    full_index = max((index for index, (_, events, size) in enumerate(acks)
                      if (batch and events >= batch) or size >= full_size), default=None)
    full_events = sum(events for _, events, _ in acks[:full_index + 1]) if full_index is not None else 0
    full_seconds = acks[full_index][0] - started if full_index is not None else None
    remainder = sum(events for _, events, _ in acks) - full_events
    return {
        "delivered_during_calls": during,
        "events_per_s_during_calls": during / (calls_done - started) if calls_done > started else None,
        "full_batch_events": full_events,
        "full_batches_seconds": full_seconds,
        "events_per_s": full_events / full_seconds if full_seconds else None,
        "remainder": remainder,
        "remainder_latency_s": acks[-1][0] - calls_done if remainder and acks else 0.0,
        "largest_request_events": max((events for _, events, _ in acks), default=0),
    }


def scenario_burst(args: argparse.Namespace) -> dict[str, Any]:
    """A burst of ``--events`` calls from one thread, nothing flushed: how many are delivered
    at all, how many while the calls still run, and how fast.

    ``--defaults`` gives the client its own default options (queue bound and batch size);
    otherwise ``--queue-size`` and ``--batch`` (0: the client's default batch size) are set.
    ``--overflow wait`` makes our client's calls wait for room instead of dropping.
    ``--rtt S`` makes the server hold each answer S seconds, a round trip over a real network.
    After the calls, the run waits (up to ``--timeout``) for every accepted event to reach
    the server without asking the client to flush, so a remainder shows the latency a user
    would see. Figures come from the server's log of acknowledgements (same clock).
    """
    batch = None if args.defaults or not args.batch else args.batch
    queue_size = None if args.defaults else (args.queue_size or args.events)
    overflow: dict[str, Any] = {"overflow": args.overflow} if args.overflow else {}
    if args.concurrency:
        overflow["concurrency"] = args.concurrency
    with server_for(args.subject, delay=args.rtt) as server, subject_for(
            args.subject, server, batch=batch, queue_size=queue_size, **overflow) as subject:
        assert server is not None, "burst needs a sending subject"
        subject.call()
        _deliver(subject, server, 1, 30.0)
        server.reset()

        call = subject.call
        cpu_before = cpu_seconds()
        started = time.monotonic()
        for _ in range(args.events):
            call()
        calls_done = time.monotonic()
        dropped = subject.dropped()
        stats = server.wait_events(args.events - dropped, args.timeout)
        cpu_used = cpu_seconds() - cpu_before
        stats = server.stats(acks=True)
        delivered = stats["unique_events"] + stats["events_without_id"]
        effective_batch = batch if batch is not None else subject.default_batch()
        return {
            "events": args.events,
            "defaults": args.defaults,
            "overflow": args.overflow,
            "rtt_s": args.rtt,
            "concurrency": args.concurrency or None,
            "batch": effective_batch,
            "queue_size": queue_size,
            "delivered": delivered,
            "delivered_fraction": delivered / args.events,
            "dropped": dropped,
            "calls_seconds": calls_done - started,
            **burst_figures(stats["acks"], started, calls_done, effective_batch),
            "cpu_us_per_event": cpu_used / delivered * 1e6 if delivered else None,
            "requests": stats["requests"],
            "duplicates": stats["duplicate_events"],
            "client_stats": subject.stats(),
        }


def _wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def scenario_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Bytes held per queued event while the server holds the worker's request forever.

    First a warm-up is delivered normally, which also tells the encoded size of one event
    as the client sends it (request body bytes per event). Then the server hangs, one event
    gets the worker stuck in its POST, and ``--events`` more are queued twice: once measured
    by RSS, then once by tracemalloc (which must start after the RSS part, as it inflates
    memory itself).
    """
    queue_size = 2 * args.events + 1000
    # The worker stays stuck in the held request, so closing can only time out: keep it short.
    with server_for(args.subject) as server, subject_for(
            args.subject, server, close_timeout=0.5, batch=args.batch,
            queue_size=queue_size) as subject:
        assert server is not None, "memory needs a sending subject"
        warm = 10 * args.batch
        for _ in range(warm):
            subject.call()
        warm_stats = _deliver(subject, server, warm, 30.0)
        encoded = warm_stats["body_bytes_per_event"]

        server.configure(hang=True)
        subject.call()
        subject.flush(0.2)  # nudges a worker that only sends on a timer or when asked
        stuck = _wait_until(lambda: server.stats()["pending_requests"] >= 1, 15.0)

        call = subject.call
        gc.collect()
        rss_before = rss_bytes()
        for _ in range(args.events):
            call()
        gc.collect()
        rss_per_event = (rss_bytes() - rss_before) / args.events

        tracemalloc.start()
        gc.collect()
        traced_before = tracemalloc.get_traced_memory()[0]
        for _ in range(args.events):
            call()
        gc.collect()
        traced_per_event = (tracemalloc.get_traced_memory()[0] - traced_before) / args.events
        tracemalloc.stop()
        return {
            "events": args.events,
            "worker_blocked": stuck,
            "encoded_bytes_per_event": encoded,
            "traced_bytes_per_event": traced_per_event,
            "rss_bytes_per_event": rss_per_event,
            "traced_over_encoded": traced_per_event / encoded if encoded else None,
            "dropped": subject.dropped(),
            "client_stats": subject.stats(),
        }


def scenario_soak(args: argparse.Namespace) -> dict[str, Any]:
    """RSS over ``--seconds`` while logging ``--rate`` events/s into a server slowed by ``--delay``.

    The queue uses the client's default bound, so the interesting figure is whether RSS
    levels off once the queue is full (bounded) or keeps growing (a leak).
    """
    # At the end the queue holds a backlog the slow server cannot take in time: close briefly.
    with server_for(args.subject, delay=args.delay) as server, subject_for(
            args.subject, server, close_timeout=1.0, batch=args.batch,
            queue_size=args.queue_size or None) as subject:
        assert server is not None, "soak needs a sending subject"
        call = subject.call
        per_tick = max(1, round(args.rate * args.tick))
        samples: list[tuple[float, int, int]] = []
        offered = 0
        started = time.monotonic()
        next_sample = started
        next_tick = started
        end = started + args.seconds
        while True:
            now = time.monotonic()
            if now >= next_sample:
                samples.append((round(now - started, 3), rss_bytes(), subject.dropped()))
                next_sample += args.sample_interval
            if now >= end:
                break
            for _ in range(per_tick):
                call()
            offered += per_tick
            next_tick += args.tick
            time.sleep(max(0.0, next_tick - time.monotonic()))
        stats = server.stats()
        rss_values = [rss for _, rss, _ in samples]
        # Once the client drops, its queue is full: from then on RSS should stay flat, and
        # growth after that point is what a leak would look like.
        full_at = next((i for i, (_, _, dropped) in enumerate(samples) if dropped > 0), None)
        growth_after_full = (
            (rss_values[-1] - rss_values[full_at]) / 2**20 if full_at is not None else None)
        return {
            "seconds": args.seconds,
            "rate": args.rate,
            "server_delay": args.delay,
            "offered": offered,
            "dropped": subject.dropped(),
            "delivered": stats["events"],
            "rss_start_mb": rss_values[0] / 2**20,
            "rss_peak_mb": max(rss_values) / 2**20,
            "rss_end_mb": rss_values[-1] / 2**20,
            "queue_full_after_s": samples[full_at][0] if full_at is not None else None,
            "rss_growth_after_full_mb": growth_after_full,
            "rss_samples": [(t, round(rss / 2**20, 2), dropped) for t, rss, dropped in samples],
            "client_stats": subject.stats(),
        }


def scenario_idle(args: argparse.Namespace) -> dict[str, Any]:
    """CPU % of one core and thread wake-ups of an idle process holding the subject.

    A sending subject first delivers one event (so its worker and connection exist), then
    everything is left alone. Wake-ups are context switches of every thread except the main
    one, which only sleeps; a worker that polls shows up here even when its CPU time rounds
    to nothing.
    """
    with server_for(args.subject) as server, subject_for(args.subject, server, batch=args.batch) as subject:
        if server is not None:
            subject.call()
            _deliver(subject, server, 1, 15.0)
        time.sleep(args.settle)
        main_thread = threading.get_native_id()
        switches_before = thread_switches()
        cpu_before = cpu_seconds()
        time.sleep(args.seconds)
        cpu_used = cpu_seconds() - cpu_before
        switches_after = thread_switches()
        wakeups = 0
        for tid, after in switches_after.items():
            if tid == main_thread:
                continue
            before = switches_before.get(tid)
            if before is None:  # a thread born during the idle period counts from zero
                wakeups += after.voluntary + after.involuntary
            else:
                wakeups += (after.voluntary - before.voluntary) + (after.involuntary - before.involuntary)
        return {
            "seconds": args.seconds,
            "cpu_percent": cpu_used / args.seconds * 100,
            "cpu_ms": cpu_used * 1000,
            "wakeups": wakeups,
            "wakeups_per_s": wakeups / args.seconds,
            "threads": len(switches_after),
        }


def scenario_capacity(args: argparse.Namespace) -> dict[str, Any]:
    """Events/s the server accepts from ``--loaders`` processes of ``--connections`` sockets.

    Counted at the server over a window that starts after a short warm-up, so connection
    setup and process start-up are left out.
    """
    warmup = 0.5
    with ServerProcess() as server:
        loaders = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.loadgen", "--port", str(server.port),
                 "--seconds", str(args.seconds + warmup + 0.5), "--connections",
                 str(args.connections), "--batch", str(args.batch)],
                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
            for _ in range(args.loaders)
        ]
        try:
            time.sleep(warmup)
            first = server.stats()
            time.sleep(args.seconds)
            last = server.stats()
            outputs = [loader.communicate(timeout=args.seconds + 30)[0] for loader in loaders]
        finally:
            for loader in loaders:
                if loader.poll() is None:
                    loader.kill()
                    loader.wait(5)
        window = last["now"] - first["now"]
        errors = sum(json.loads(out or "{}").get("errors", 0) for out in outputs)
        return {
            "batch": args.batch,
            "loaders": args.loaders,
            "connections": args.connections,
            "events_per_s": (last["events"] - first["events"]) / window,
            "requests_per_s": (last["requests"] - first["requests"]) / window,
            "errors": errors,
        }


SCENARIOS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "call": scenario_call,
    "pair": scenario_pair,
    "throughput": scenario_throughput,
    "burst": scenario_burst,
    "memory": scenario_memory,
    "soak": scenario_soak,
    "idle": scenario_idle,
    "capacity": scenario_capacity,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options shared by all scenarios; each uses the ones it needs."""
    parser = argparse.ArgumentParser(description="run one benchmark measurement")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--subject", default="null",
                        choices=["null", "queue", "official", "ours_client", "ours_handler",
                                 "ours_client_spool", "ours_handler_spool"])
    parser.add_argument("--baseline", default="null", choices=["null", "queue", "ours_handler"],
                        help="pair: the subject to compare against")
    parser.add_argument("--no-payload", dest="payload", action="store_false",
                        help="log records without an analytics payload")
    parser.add_argument("--batch", type=int, default=20, help="events per batch request")
    parser.add_argument("--defaults", action="store_true",
                        help="burst: each client's own default options (queue bound, batch size)")
    parser.add_argument("--overflow", choices=["drop", "wait"], default=None,
                        help="burst: our client's overflow option (the official client has none)")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="burst: our client's max_concurrent_requests (0: its default)")
    parser.add_argument("--rtt", type=float, default=0.0,
                        help="burst: seconds the server holds each answer (a network round trip)")
    parser.add_argument("--queue-size", type=int, default=0, help="client queue bound (0: scenario default)")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--settle", type=float, default=0.5, help="idle: pause before measuring")
    parser.add_argument("--rate", type=float, default=2_000.0, help="soak: events per second")
    parser.add_argument("--tick", type=float, default=0.01, help="soak: pacing interval")
    parser.add_argument("--delay", type=float, default=0.2, help="soak: server delay per request")
    parser.add_argument("--sample-interval", type=float, default=1.0, help="soak: RSS sampling")
    parser.add_argument("--loaders", type=int, default=2, help="capacity: load processes")
    parser.add_argument("--connections", type=int, default=2, help="capacity: sockets per loader")
    parser.add_argument("--timeout", type=float, default=120.0, help="delivery deadline, seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run one scenario, print its result line, and leave without running atexit hooks."""
    args = parse_args(argv)
    silence_library_loggers()
    code = 0
    try:
        result = SCENARIOS[args.scenario](args)
    except SkipScenario as skip:
        result = {"skipped": str(skip)}
    except Exception as err:
        traceback.print_exc()
        result = {"error": f"{type(err).__name__}: {err}"}
        code = 1
    print(RESULT_MARKER + json.dumps(result), flush=True)
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
