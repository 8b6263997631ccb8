"""Run the benchmark suite: ``python -m benchmarks [--quick] [--repeats N] [--only NAME] [--json PATH]``.

Every measurement runs in a fresh process (``python -m benchmarks.scenarios ...``) with its
own server, so one scenario's threads, caches or leftover queue never colour the next. The
measurements are interleaved round by round (all scenarios once, then all again), so that a
noisy minute on a shared machine hurts the baseline and cdp_logging alike, and each figure
is the median over its rounds. The table prints each figure beside the baseline measured in
the same run, with the ratio; the JSON file keeps every run's raw result.

Each child runs in its own session and is killed with its whole process group on timeout,
on error and on Ctrl-C, so no scenario process or server outlives the run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/run.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.clients import official_import_error, ours_import_error
from benchmarks.common import median
from benchmarks.scenarios import RESULT_MARKER

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(REPO_ROOT, "benchmarks", "results", "latest.json")

LABELS = {
    "null": "NullHandler",
    "queue": "QueueHandler+QueueListener(NullHandler)",
    "official": "official Client.track()",
    "ours_client": "ours: Analytics.track()",
    "ours_handler": "ours: CDPHandler",
    "ours_client_spool": "ours: Analytics.track(), spool on",
    "ours_handler_spool": "ours: CDPHandler, spool on",
}


@dataclass(frozen=True)
class Spec:
    """One measurement to repeat: the scenario's arguments and how often/long to run it."""

    id: str
    group: str
    label: str
    args: tuple[str, ...]
    repeats: int
    timeout: float


@dataclass
class Outcome:
    """What the runs of one spec gave."""

    spec: Spec
    runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None

    def median(self, key: str) -> float | None:
        """Median of ``key`` over the successful runs that reported a number for it."""
        values = [run[key] for run in self.runs if isinstance(run.get(key), (int, float))
                  and not isinstance(run.get(key), bool)]
        return median(values) if values else None


@dataclass(frozen=True)
class Settings:
    """Sizes of the workloads, full or quick."""

    repeats: int
    calls: int
    warmup: int
    pair_chunks: int
    events: int
    batch_sizes: tuple[int, ...]
    memory_events: int
    soak_seconds: float
    soak_rate: float
    soak_delay: float
    soak_sample: float
    idle_seconds: float
    capacity_seconds: float
    burst_events: tuple[int, int]
    backfill_events: int


def settings_from(args: argparse.Namespace) -> Settings:
    """Workload sizes: ``--quick`` shrinks everything to a smoke test of about a minute."""
    quick = args.quick
    batch_sizes = tuple(int(b) for b in args.batch_sizes.split(",")) if args.batch_sizes else (20,)
    return Settings(
        repeats=args.repeats or (1 if quick else 3),
        calls=2_000 if quick else 20_000,
        warmup=200 if quick else 1_000,
        # Pairs of ~100-call chunks (a millisecond or less) mostly fall between preemptions.
        pair_chunks=20 if quick else 200,
        events=args.events or (3_000 if quick else 100_000),
        batch_sizes=batch_sizes,
        memory_events=1_000 if quick else 10_000,
        soak_seconds=args.soak_seconds or (2.0 if quick else 60.0),
        soak_rate=2_000.0,
        soak_delay=0.2,
        soak_sample=0.5 if quick else 1.0,
        idle_seconds=args.idle_seconds or (1.0 if quick else 10.0),
        capacity_seconds=1.0 if quick else 4.0,
        # At default options: a burst the default queue should hold, and one twice that.
        burst_events=(3_000, 6_000) if quick else (50_000, 100_000),
        backfill_events=6_000 if quick else 200_000,
    )


def build_specs(s: Settings) -> list[Spec]:
    """Every measurement of the suite, baselines first within each group."""
    specs: list[Spec] = []
    call = ("--calls", str(s.calls), "--warmup", str(s.warmup))
    for subject, payload in [("null", True), ("queue", True), ("official", True),
                             ("ours_handler", True), ("ours_client", True),
                             ("ours_handler_spool", True), ("ours_client_spool", True),
                             ("null", False), ("ours_handler", False)]:
        form = "extra=track" if payload else "no payload"
        if subject in ("official", "ours_client", "ours_client_spool"):
            form = ""
        label = f"{LABELS[subject]}{', ' + form if form else ''}"
        args = ("call", "--subject", subject, *call) + (() if payload else ("--no-payload",))
        specs.append(Spec(f"call.{subject}.{'track' if payload else 'plain'}", "call", label,
                          args, s.repeats, 180.0))
    # Paired runs (both subjects in one process, chunks taken in turn) resolve small ratios;
    # NullHandler against itself shows how much of a ratio is noise.
    for subject, payload, label in [
            ("ours_handler", False, "ours: CDPHandler / NullHandler, no payload (target <= 1.10x)"),
            ("null", False, "NullHandler / NullHandler, no payload (A/A noise control)"),
            ("ours_handler", True, "ours: CDPHandler / NullHandler, extra=track, worker delivering (target <= 2x)"),
            ("null", True, "NullHandler / NullHandler, extra=track (A/A noise control)"),
            ("official", True, "official Client.track() / ours: CDPHandler, extra=track, both delivering (target >= 4x)")]:
        baseline = "ours_handler" if subject == "official" else "null"
        specs.append(Spec(f"pair.{subject}.{'track' if payload else 'plain'}", "pair", label,
                          ("pair", "--subject", subject, "--baseline", baseline,
                           *(() if payload else ("--no-payload",)), *call,
                           "--chunks", str(s.pair_chunks)), s.repeats, 180.0))
    for batch in s.batch_sizes:
        # The official client manages ~2-3k events/s on a slow 2-core machine: allow for it.
        deadline = 60.0 + s.events / 400
        for subject in ("official", "ours_client", "ours_handler", "ours_client_spool",
                        "ours_handler_spool"):
            specs.append(Spec(
                f"throughput.{subject}.b{batch}", "throughput", f"{LABELS[subject]}, batch {batch}",
                ("throughput", "--subject", subject, "--events", str(s.events), "--batch", str(batch),
                 "--timeout", str(deadline)),
                s.repeats if batch == s.batch_sizes[0] else 1, deadline + 60))
    specs.extend(burst_specs(s))
    for subject in ("official", "ours_client"):
        specs.append(Spec(
            f"memory.{subject}", "memory", LABELS[subject],
            ("memory", "--subject", subject, "--events", str(s.memory_events)),
            min(s.repeats, 2), 120.0))
    for subject in ("official", "ours_handler"):
        specs.append(Spec(
            f"soak.{subject}", "soak", LABELS[subject],
            ("soak", "--subject", subject, "--seconds", str(s.soak_seconds), "--rate",
             str(s.soak_rate), "--delay", str(s.soak_delay), "--sample-interval", str(s.soak_sample)),
            1, s.soak_seconds + 60))
    for subject in ("null", "queue", "official", "ours_handler"):
        specs.append(Spec(
            f"idle.{subject}", "idle", LABELS[subject],
            ("idle", "--subject", subject, "--seconds", str(s.idle_seconds)),
            1, s.idle_seconds + 60))
    for batch in s.batch_sizes:
        specs.append(Spec(
            f"capacity.b{batch}", "capacity", f"benchmark server, batch {batch}",
            ("capacity", "--batch", str(batch), "--seconds", str(s.capacity_seconds)),
            s.repeats if batch == s.batch_sizes[0] else 1, s.capacity_seconds + 60))
    return specs


#: The largest batch each client allows: both stop a request at the API's 500 KB body
#: limit long before 5,000 events of these (the official client at 475,000 bytes).
BURST_MAX_BATCH = 5_000
BURST_SUBJECTS = ("official", "ours_client", "ours_handler")


def burst_ids(s: Settings, subject: str) -> dict[str, str]:
    """The ids of one subject's burst measurements, by role."""
    small, large = s.burst_events
    return {"defaults_small": f"burst.{subject}.defaults.n{small}",
            "defaults_large": f"burst.{subject}.defaults.n{large}",
            "default_batch": f"burst.{subject}.big_queue.default_batch",
            "max_batch": f"burst.{subject}.big_queue.b{BURST_MAX_BATCH}",
            "backfill": f"burst.{subject}.backfill.n{s.backfill_events}"}


def burst_specs(s: Settings) -> list[Spec]:
    """Bursts from one thread with nothing flushed: at each client's default options (does
    the default queue hold them?), and with both queues big enough, at each client's default
    batch size and at the largest batch each allows (how fast?)."""
    small, large = s.burst_events
    specs = []
    for subject in BURST_SUBJECTS:
        ids = burst_ids(s, subject)
        for role, events, options, what in [
                ("defaults_small", small, ("--defaults",), f"{small:,} events, default options"),
                ("defaults_large", large, ("--defaults",), f"{large:,} events, default options"),
                ("default_batch", large, ("--batch", "0"), f"{large:,} events, queue holds them, default batch"),
                ("max_batch", large, ("--batch", str(BURST_MAX_BATCH)),
                 f"{large:,} events, queue holds them, batch up to {BURST_MAX_BATCH:,}"),
                # A backfill: ours waits for room (overflow="wait"); the official client
                # has no such option, so it runs at its defaults.
                ("backfill", s.backfill_events,
                 ("--defaults",) + (() if subject == "official" else ("--overflow", "wait")),
                 f"{s.backfill_events:,} events, default options"
                 + ("" if subject == "official" else ', overflow="wait"'))]:
            deadline = 60.0 + events / 2_000
            specs.append(Spec(
                ids[role], "burst", f"{LABELS[subject]}, {what}",
                ("burst", "--subject", subject, "--events", str(events), *options,
                 "--timeout", str(deadline)),
                s.repeats, deadline + 60))
    specs.extend(rtt_specs(s))
    return specs


#: Simulated round trips (the server holds each answer this long) and batch sizes of the
#: "burst.*.rtt*" runs: each client at its default batch size (and concurrency), and both at 100.
BURST_RTTS_MS = (0, 20)
RTT_BATCHES = ("default_batch", "b100")
RTT_SUBJECTS = ("official", "ours_client")


def rtt_id(subject: str, rtt_ms: int, batch: str) -> str:
    return f"burst.{subject}.rtt{rtt_ms}.{batch}"


def rtt_specs(s: Settings) -> list[Spec]:
    """A 100,000-event burst (queues hold it) into a server answering at once or after a
    20 ms round trip: the official client (one request at a time) beside ours (up to
    ``max_concurrent_requests`` at once while a backlog lasts)."""
    _, large = s.burst_events
    specs = []
    for rtt_ms in BURST_RTTS_MS:
        for batch in RTT_BATCHES:
            for subject in RTT_SUBJECTS:
                size = "0" if batch == "default_batch" else batch[1:]
                what = "default batch" if batch == "default_batch" else f"batch {size}"
                deadline = 60.0 + large / 1_000
                specs.append(Spec(
                    rtt_id(subject, rtt_ms, batch), "burst",
                    f"{LABELS[subject]}, {large:,} events, {rtt_ms} ms round trip, {what}",
                    ("burst", "--subject", subject, "--events", str(large), "--batch", size,
                     "--rtt", str(rtt_ms / 1000), "--timeout", str(deadline)),
                    s.repeats, deadline + 60))
    # Why the default is 8: at 4 (80 events a round trip against the official client's 100)
    # the default batch ties the official client over a 20 ms round trip.
    deadline = 60.0 + large / 1_000
    specs.append(Spec(
        rtt_id("ours_client", 20, "default_batch") + ".c4", "burst",
        f"{LABELS['ours_client']}, {large:,} events, 20 ms round trip, default batch, max_concurrent_requests=4",
        ("burst", "--subject", "ours_client", "--events", str(large), "--batch", "0", "--rtt", "0.02",
         "--concurrency", "4", "--timeout", str(deadline)),
        s.repeats, deadline + 60))
    return specs


def rtt_comparisons() -> list[Comparison]:
    """Ours against the official client at each round trip and batch size."""
    targets = {(20, "default_batch"): ">= 1x", (20, "b100"): ">= 3x", (0, "b100"): ">= 5x"}
    return [Comparison(f"burst ({rtt_ms} ms round trip, {batch.replace('_', ' ')})", "events_per_s",
                       rtt_id("ours_client", rtt_ms, batch), rtt_id("official", rtt_ms, batch),
                       "events/s to the last full batch", "higher", targets.get((rtt_ms, batch), ""))
            for rtt_ms in BURST_RTTS_MS for batch in RTT_BATCHES] + [
        Comparison("burst (20 ms round trip, default batch, 4 requests at once)", "events_per_s",
                   rtt_id("ours_client", 20, "default_batch") + ".c4", rtt_id("official", 20, "default_batch"),
                   "events/s to the last full batch", "higher", "")]


def burst_comparisons(s: Settings) -> list[Comparison]:
    """Ours against the official client, burst by burst (same run, medians)."""
    official = burst_ids(s, "official")
    result = []
    for subject in ("ours_client", "ours_handler"):
        ours = burst_ids(s, subject)
        for role, metric, unit, better, target in [
                ("defaults_small", "delivered", "events delivered", "higher", "all"),
                ("defaults_large", "delivered", "events delivered", "higher", "> official and >= 90%"),
                ("default_batch", "events_per_s", "events/s to the last full batch", "higher", ">= 5x"),
                ("default_batch", "events_per_s_during_calls", "events/s delivered during the calls", "higher", ""),
                ("max_batch", "events_per_s", "events/s to the last full batch", "higher", ">= 5x"),
                ("max_batch", "events_per_s_during_calls", "events/s delivered during the calls", "higher", ""),
                ("max_batch", "remainder_latency_s", "s from the last call to the remainder's delivery",
                 "lower", ""),
                ("backfill", "delivered", "events delivered", "higher", "all"),
                ("backfill", "events_per_s", "events/s to the last full batch", "higher", "")]:
            result.append(Comparison(f"burst ({role.replace('_', ' ')})", metric, ours[role],
                                     official[role], unit, better, target))
    return result


def select(specs: list[Spec], patterns: list[str]) -> list[Spec]:
    """Specs whose id or group matches any pattern (fnmatch, or an id prefix)."""
    if not patterns:
        return specs
    return [spec for spec in specs if any(
        fnmatch.fnmatch(spec.id, p) or spec.group == p or spec.id.startswith(p) for p in patterns)]


def run_once(spec: Spec) -> dict[str, Any]:
    """Run one scenario process; returns its result, or ``{"error": ...}``. Never hangs."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.scenarios", *spec.args],
        cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=spec.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        stdout, stderr = process.communicate(timeout=10)
        return {"error": f"timed out after {spec.timeout:.0f}s", "stderr": stderr[-2000:]}
    finally:
        # Whatever the scenario left running (its server, a load generator) goes with it.
        _kill_group(process)
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARKER):])
            if "error" in result:
                result["stderr"] = stderr[-2000:]
            return result
    return {"error": f"no result line (exit code {process.returncode})", "stderr": stderr[-2000:]}


def _kill_group(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait(10)


def run_all(specs: list[Spec], progress: bool = True) -> dict[str, Outcome]:
    """Run every spec its number of times, round by round."""
    outcomes = {spec.id: Outcome(spec) for spec in specs}
    rounds = max((spec.repeats for spec in specs), default=0)
    for round_index in range(rounds):
        for spec in specs:
            outcome = outcomes[spec.id]
            if round_index >= spec.repeats or outcome.skipped:
                continue
            started = time.monotonic()
            result = run_once(spec)
            took = time.monotonic() - started
            if "skipped" in result:
                outcome.skipped = result["skipped"]
                note = "skipped"
            elif "error" in result:
                outcome.errors.append(result["error"] + "\n" + result.get("stderr", ""))
                note = "ERROR " + result["error"]
            else:
                outcome.runs.append(result)
                note = "ok"
            if progress:
                print(f"  [{round_index + 1}/{spec.repeats}] {spec.id:<32} {took:6.1f}s  {note}",
                      file=sys.stderr, flush=True)
    return outcomes


# -- report ---------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100_000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base in (None, 0):
        return None
    return value / base


def _status(outcome: Outcome | None) -> str | None:
    """Why an outcome has no figure, or None if it has one."""
    if outcome is None:
        return "not run"
    if outcome.skipped:
        return "skipped"
    if not outcome.runs:
        return "failed"
    return None


@dataclass(frozen=True)
class Comparison:
    """A figure, its baseline from the same run, and how they compare."""

    title: str
    metric: str
    subject: str
    baseline: str
    unit: str
    better: str  # "lower" or "higher"
    target: str = ""


_PER_CALL_PAIRS = [
    ("call.queue.track", "call.null.track", ""),
    ("call.official.track", "call.null.track", ""),
    ("call.ours_handler.track", "call.null.track", "<= 2x (judged paired)"),
    ("call.ours_handler.plain", "call.null.plain", "<= 1.10x (judged paired)"),
    ("call.official.track", "call.ours_handler.track", ">= 4x (judged paired)"),
    ("call.ours_handler.track", "call.official.track", ""),
    ("call.ours_client.track", "call.official.track", ""),
    ("call.ours_handler_spool.track", "call.ours_handler.track", ""),
    ("call.ours_client_spool.track", "call.ours_client.track", ""),
]
#: Wall time is what the application waits; its thread's CPU time is the steadier figure on
#: a noisy machine (it leaves out time descheduled), so both are compared.
COMPARISONS = [
    Comparison(title, metric, subject, baseline, unit, "lower", target)
    for title, metric, unit in [("per call (wall, separate processes)", "us_per_call", "us"),
                                ("per call (thread CPU, separate processes)", "thread_cpu_us_per_call", "us")]
    for subject, baseline, target in _PER_CALL_PAIRS
]


def _throughput_comparisons(batch_sizes: list[int]) -> list[Comparison]:
    result = []
    for batch in batch_sizes:
        for subject in ("ours_client", "ours_handler"):
            result.append(Comparison("throughput", "events_per_s", f"throughput.{subject}.b{batch}",
                                     f"throughput.official.b{batch}", "events/s", "higher"))
            result.append(Comparison("throughput", "cpu_us_per_event", f"throughput.{subject}.b{batch}",
                                     f"throughput.official.b{batch}", "CPU us/event", "lower"))
        for subject in ("ours_client", "ours_handler"):
            # The spool's cost: the same client with the spool on, against it off.
            spooled, plain = f"throughput.{subject}_spool.b{batch}", f"throughput.{subject}.b{batch}"
            result.append(Comparison("throughput", "events_per_s", spooled, plain, "events/s", "higher"))
            result.append(Comparison("throughput", "cpu_us_per_event", spooled, plain, "CPU us/event", "lower"))
    return result


OTHER_COMPARISONS = [
    Comparison("memory", "traced_bytes_per_event", "memory.ours_client", "memory.official",
               "B/queued event", "lower"),
    Comparison("idle", "cpu_percent", "idle.ours_handler", "idle.official", "% of a core", "lower"),
    Comparison("idle", "wakeups_per_s", "idle.ours_handler", "idle.official", "wakeups/s", "lower"),
]


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"\n{title}", "  " + "  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                                            for i, (h, w) in enumerate(zip(header, widths)))]
    for row in rows:
        lines.append("  " + "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                      for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def _figures(outcomes: dict[str, Outcome], group: str, columns: list[tuple[str, str, int]]) -> str | None:
    rows = []
    for outcome in outcomes.values():
        if outcome.spec.group != group:
            continue
        status = _status(outcome)
        runs = f"{len(outcome.runs)}/{outcome.spec.repeats}"
        if status:
            rows.append([outcome.spec.label, *(["-"] * len(columns)), runs, status])
        else:
            rows.append([outcome.spec.label, *(_fmt(outcome.median(key), digits) for _, key, digits in columns),
                         runs, ""])
    if not rows:
        return None
    return _table(group, ["subject", *(name for name, _, _ in columns), "runs", ""], rows)


def comparison_rows(outcomes: dict[str, Outcome], comparisons: list[Comparison]) -> list[dict[str, Any]]:
    """Each comparison whose two sides were selected, with both medians and the ratio."""
    rows = []
    for c in comparisons:
        subject, baseline = outcomes.get(c.subject), outcomes.get(c.baseline)
        if subject is None or baseline is None:
            continue
        value = subject.median(c.metric) if not _status(subject) else None
        base = baseline.median(c.metric) if not _status(baseline) else None
        rows.append({"title": c.title, "metric": c.metric, "unit": c.unit, "better": c.better,
                     "subject": c.subject, "subject_label": subject.spec.label, "value": value,
                     "subject_status": _status(subject), "baseline": c.baseline,
                     "baseline_label": baseline.spec.label, "baseline_value": base,
                     "ratio": _ratio(value, base), "target": c.target})
    return rows


def report(outcomes: dict[str, Outcome], comparisons: list[dict[str, Any]]) -> str:
    """The human-readable tables: raw figures per group, then figure-vs-baseline ratios."""
    parts = []
    sections = {
        "call": [("us/call", "us_per_call", 2), ("min us/call", "us_per_call_min", 2),
                 ("thread CPU us/call", "thread_cpu_us_per_call", 2),
                 ("dropped", "dropped", 0), ("delivered", "delivered", 0)],
        "pair": [("ratio (wall)", "ratio", 3), ("ratio (thread CPU)", "thread_cpu_ratio", 3),
                 ("us/call", "us_per_call", 2), ("baseline us/call", "baseline_us_per_call", 2)],
        "burst": [("delivered", "delivered", 0), ("dropped", "dropped", 0),
                  ("events/s during calls", "events_per_s_during_calls", 0),
                  ("events/s to last full batch", "events_per_s", 0), ("calls s", "calls_seconds", 2),
                  ("remainder", "remainder", 0), ("remainder latency s", "remainder_latency_s", 2),
                  ("largest request", "largest_request_events", 0)],
        "throughput": [("events/s", "events_per_s", 0), ("CPU us/event", "cpu_us_per_event", 1),
                       ("seconds", "seconds", 2), ("calls s", "calls_seconds", 2),
                       ("delivered", "delivered", 0), ("dropped", "dropped", 0)],
        "memory": [("held B/event (tracemalloc)", "traced_bytes_per_event", 0),
                   ("RSS B/event", "rss_bytes_per_event", 0),
                   ("encoded B/event", "encoded_bytes_per_event", 0),
                   ("held/encoded", "traced_over_encoded", 2)],
        "soak": [("RSS start MB", "rss_start_mb", 1), ("peak MB", "rss_peak_mb", 1),
                 ("end MB", "rss_end_mb", 1), ("full after s", "queue_full_after_s", 1),
                 ("growth after full MB", "rss_growth_after_full_mb", 2),
                 ("offered", "offered", 0), ("delivered", "delivered", 0), ("dropped", "dropped", 0)],
        "idle": [("CPU % of a core", "cpu_percent", 3), ("wakeups/s", "wakeups_per_s", 2),
                 ("threads", "threads", 0)],
        "capacity": [("events/s", "events_per_s", 0), ("requests/s", "requests_per_s", 0),
                     ("errors", "errors", 0)],
    }
    for group, columns in sections.items():
        table = _figures(outcomes, group, columns)
        if table:
            parts.append(table)
    if comparisons:
        rows = []
        for c in comparisons:
            value = _fmt(c["value"], 2) if c["subject_status"] is None else c["subject_status"]
            rows.append([f"{c['title']}: {c['subject_label']}", value, c["baseline_label"],
                         _fmt(c["baseline_value"], 2), f"{_fmt(c['ratio'], 2)}x" if c["ratio"] is not None else "-",
                         c["unit"], f"{c['better']} is better", c["target"]])
        parts.append(_table("figure vs baseline (same run, medians)",
                            ["figure", "value", "baseline", "baseline value", "ratio", "unit", "", "target"],
                            rows))
    headroom = server_headroom(outcomes)
    if headroom:
        parts.append(f"\nserver headroom: capacity {_fmt(headroom['capacity_events_per_s'], 0)} events/s "
                     f"vs fastest client {_fmt(headroom['fastest_client_events_per_s'], 0)} events/s "
                     f"({headroom['fastest_client']}): {headroom['ratio']:.1f}x")
    skipped = sorted({o.skipped for o in outcomes.values() if o.skipped})
    for reason in skipped:
        parts.append(f"\nskipped: {reason}")
    for outcome in outcomes.values():
        for error in outcome.errors:
            parts.append(f"\nERROR in {outcome.spec.id}: {error.strip()[:1500]}")
    return "\n".join(parts)


def server_headroom(outcomes: dict[str, Outcome]) -> dict[str, Any] | None:
    """How far the server's capacity exceeds the fastest client throughput measured."""
    capacity = [o.median("events_per_s") for o in outcomes.values()
                if o.spec.group == "capacity" and o.runs]
    clients = [(o.median("events_per_s"), o.spec.id) for o in outcomes.values()
               if o.spec.group == "throughput" and o.runs]
    if not capacity or not clients:
        return None
    fastest, name = max(clients, key=lambda pair: pair[0] or 0)
    cap = min(c for c in capacity if c)
    return {"capacity_events_per_s": cap, "fastest_client_events_per_s": fastest,
            "fastest_client": name, "ratio": cap / fastest if fastest else float("inf")}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def metadata_block(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Where and how the figures were made."""
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "quick": args.quick,
        "settings": settings.__dict__,
        "packages": {name: _version(name) for name in (
            "customerio-cdp-analytics", "cdp-logging", "requests", "orjson", "python-json-logger")},
        "ours_available": ours_import_error() is None,
        "official_available": official_import_error() is None,
    }


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns 1 if any measurement failed (skips are fine)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (about a minute)")
    parser.add_argument("--repeats", type=int, default=0, help="runs per measurement (default 3, quick 1)")
    parser.add_argument("--json", default=DEFAULT_JSON, help="where to write the results")
    parser.add_argument("--only", action="append", default=[],
                        help="run only these ids/groups (comma-separated, fnmatch patterns, repeatable)")
    parser.add_argument("--batch-sizes", default="", help="throughput batch sizes, e.g. 20,100 (default 20)")
    parser.add_argument("--events", type=int, default=0, help="throughput burst size (default 100000)")
    parser.add_argument("--soak-seconds", type=float, default=0.0, help="soak duration (default 60, quick 2)")
    parser.add_argument("--idle-seconds", type=float, default=0.0, help="idle duration (default 10, quick 1)")
    parser.add_argument("--list", action="store_true", help="list the measurement ids and exit")
    args = parser.parse_args(argv)

    settings = settings_from(args)
    patterns = [p for item in args.only for p in item.split(",") if p]
    specs = select(build_specs(settings), patterns)
    if args.list or not specs:
        for spec in specs:
            print(f"{spec.id:<32} x{spec.repeats}  {spec.label}")
        if not specs:
            print(f"no measurement matches {patterns}", file=sys.stderr)
            return 2
        return 0

    # SIGTERM unwinds like Ctrl-C, so the running child's process group is still killed.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    started = time.monotonic()
    print(f"running {len(specs)} measurements ({'quick' if args.quick else 'full'}), "
          f"up to {settings.repeats} rounds", file=sys.stderr, flush=True)
    outcomes = run_all(specs)
    comparisons = comparison_rows(
        outcomes, COMPARISONS + _throughput_comparisons(list(settings.batch_sizes))
        + burst_comparisons(settings) + rtt_comparisons() + OTHER_COMPARISONS)
    print(report(outcomes, comparisons))
    elapsed = time.monotonic() - started
    print(f"\ntotal {elapsed:.0f}s; results in {args.json}")

    data = {
        "meta": {**metadata_block(args, settings), "elapsed_s": elapsed},
        "results": {
            spec_id: {"label": o.spec.label, "group": o.spec.group, "args": list(o.spec.args),
                      "repeats": o.spec.repeats, "skipped": o.skipped, "errors": o.errors,
                      "median": {key: o.median(key) for key in sorted({k for run in o.runs for k in run})
                                 if o.median(key) is not None},
                      "runs": o.runs}
            for spec_id, o in outcomes.items()
        },
        "comparisons": comparisons,
        "server_headroom": server_headroom(outcomes),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as out:
        json.dump(data, out, indent=2)
    return 1 if any(o.errors for o in outcomes.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
