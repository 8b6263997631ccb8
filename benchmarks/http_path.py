"""The HTTP path alone: the worker's CPU per request, this checkout against another one.

``python -m benchmarks.http_path --baseline-src DIR`` posts pre-encoded 20-event batches
through :class:`cdp_logging.delivery.transport.HTTPTransport` to the benchmark server (its own
process, on 127.0.0.1), with this checkout's ``cdp_logging`` and with the one under ``DIR``
(for instance ``main``'s, exported with ``git archive main cdp_logging | tar -x -C DIR``),
loaded side by side in one process as ``cdp_logging_baseline``. Chunks of requests are taken
in turn, so both see the same minutes of a noisy machine; it prints the median per chunk of
the sending thread's CPU microseconds per request (``time.thread_time``: what the worker
spends on a batch's request and answer), the wall microseconds, and the median of the
per-pair ratios.

``--throughput`` adds the end-to-end burst of :mod:`benchmarks.scenarios` (100,000 events
through ``Analytics``, until the server acknowledged the last) for both checkouts, each in
its own process, rounds interleaved.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from types import ModuleType
from typing import Any

from .common import median, sample_batch_body
from .server import ServerProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHUNK = 100


def load_baseline(source: str) -> ModuleType:
    """The ``cdp_logging`` package under ``source``, imported as ``cdp_logging_baseline``."""
    folder = os.path.join(source, "cdp_logging")
    spec = importlib.util.spec_from_file_location(
        "cdp_logging_baseline", os.path.join(folder, "__init__.py"), submodule_search_locations=[folder])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cdp_logging_baseline"] = module
    spec.loader.exec_module(module)
    return module


def paired(baseline_source: str | None, requests: int, events: int) -> dict[str, dict[str, float]]:
    """Per-request figures of each checkout's HTTPTransport, chunks taken in turn."""
    from cdp_logging.delivery.transport import HTTPTransport

    kinds: dict[str, Any] = {"this checkout": HTTPTransport}
    if baseline_source is not None:
        load_baseline(baseline_source)
        kinds["baseline"] = importlib.import_module("cdp_logging_baseline.delivery.transport").HTTPTransport
    body = sample_batch_body(events)
    cpu: dict[str, list[float]] = {name: [] for name in kinds}
    wall: dict[str, list[float]] = {name: [] for name in kinds}
    with ServerProcess() as server:
        transports = {name: kind(server.url, "key", timeout=10.0) for name, kind in kinds.items()}
        try:
            for transport in transports.values():
                for _ in range(200):
                    assert transport.post("/v1/batch", body).status == 200
            for index in range(max(1, requests // CHUNK)):
                order = list(transports) if index % 2 == 0 else list(reversed(transports))
                for name in order:
                    post = transports[name].post
                    started_cpu, started = time.thread_time(), time.perf_counter()
                    for _ in range(CHUNK):
                        post("/v1/batch", body)
                    wall[name].append((time.perf_counter() - started) / CHUNK * 1e6)
                    cpu[name].append((time.thread_time() - started_cpu) / CHUNK * 1e6)
        finally:
            for transport in transports.values():
                transport.close()
    figures = {name: {"cpu_us_per_request": median(cpu[name]), "wall_us_per_request": median(wall[name])}
               for name in kinds}
    if "baseline" in kinds:
        figures["ratio"] = {
            "cpu_us_per_request": median([a / b for a, b in zip(cpu["this checkout"], cpu["baseline"])]),
            "wall_us_per_request": median([a / b for a, b in zip(wall["this checkout"], wall["baseline"])]),
        }
    return figures


def _burst(source: str | None, events: int) -> dict[str, Any]:
    environment = dict(os.environ)
    if source is not None:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [source, environment.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "benchmarks.scenarios", "throughput", "--subject", "ours_client",
               "--events", "100000", "--batch", str(events)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=environment,
                               timeout=600, check=False)
    for line in completed.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            return json.loads(line[len("BENCH-RESULT "):])  # type: ignore[no-any-return]
    raise RuntimeError(f"no result from the burst: {completed.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_path", description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-src", help="a folder holding the cdp_logging package to compare with")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--events", type=int, default=20, help="events per batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--throughput", action="store_true", help="also the 100,000-event burst")
    args = parser.parse_args(argv)
    figures = paired(args.baseline_src, args.requests, args.events)
    print(f"{'':16} {'worker CPU us/request':>22} {'wall us/request':>16}  (paired, chunks of {CHUNK})")
    for name, figure in figures.items():
        digits = 2 if name == "ratio" else 1
        print(f"{name:16} {figure['cpu_us_per_request']:22.{digits}f} {figure['wall_us_per_request']:16.{digits}f}")
    if args.throughput:
        sources = {"this checkout": None, "baseline": args.baseline_src}
        bursts: dict[str, list[dict[str, Any]]] = {name: [] for name in sources if name == "this checkout"
                                                   or args.baseline_src}
        for _ in range(args.repeats):
            for name in bursts:
                bursts[name].append(_burst(sources[name], args.events))
        print(f"{'':16} {'burst events/s':>22} {'CPU us/event':>16}  (separate processes, medians of {args.repeats})")
        for name, results in bursts.items():
            print(f"{name:16} {median([b['events_per_s'] for b in results]):22,.0f}"
                  f" {median([b['cpu_us_per_event'] for b in results]):16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
