"""A parent and its forked children, all logging through one CDPHandler.

Usage: fork_app.py MODE RUN_ID, MODE one of ``os-fork`` (two children from os.fork() that
exit normally), ``mp-process`` (two multiprocessing children, fork start method: they end
with os._exit), ``mp-pool`` (a pool of two forked workers running 40 tasks) or
``billiard-pool`` (the same with billiard, the pool behind Celery's prefork workers; its
workers end with os._exit before any finalizer, so they deliver from ``on_process_exit``, the
hook behind Celery's ``worker_process_shutdown`` signal).

The parent logs BEFORE events, then forks while they are queued (flush_interval is long and
the test server holds the first request until a child's arrives; the parent waits for the
server to say so), logs AFTER events, waits
for its children and exits. MessageIds: ``RUN-parent-before-I``, ``RUN-parent-after-I``,
``RUN-childK-I`` and ``RUN-task-I``. Each process prints one JSON line about itself.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.config
import multiprocessing
import os
import sys
import time
import urllib.request

import cdp_logging

BEFORE = 15
AFTER = 10
CHILD = 25
TASKS = 40

log = logging.getLogger("app")


def event(message_id: str) -> None:
    log.info("fork test", extra={"track": {
        "user_id": f"pid-{os.getpid()}", "event": "Fork test", "message_id": message_id,
    }})


def handler_stats() -> dict:
    return log.handlers[0].client.stats()


def wait_for_the_server_to_hold_the_first_request() -> bool:
    """True once the test server says it holds the first request (within 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(os.environ["CDP_HOST"] + "/held", timeout=10) as answer:
            if answer.read() == b"yes":
                return True
        time.sleep(0.01)
    return False


def say(**fields: object) -> None:
    # One write per line: several processes share this pipe (short writes to it are atomic).
    os.write(1, (json.dumps({"pid": os.getpid(), **fields}) + "\n").encode())


def child(run_id: str, k: int) -> None:
    fresh = handler_stats()  # before logging: the pipeline a child starts with
    for i in range(CHILD):
        event(f"{run_id}-child{k}-{i}")
    say(role=f"child{k}", at_start=fresh)


def task(args: tuple[str, int]) -> int:
    run_id, i = args
    event(f"{run_id}-task-{i}")
    return os.getpid()


def deliver_before_pool_worker_exit(pid: int, exitcode: int) -> None:
    """What a Celery app connects to ``worker_process_shutdown``."""
    cdp_logging.close_all_clients()


def main() -> None:
    mode, run_id = sys.argv[1], sys.argv[2]
    logging.config.dictConfig({
        "version": 1,
        "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "flush_interval": 60}},
        "loggers": {"app": {"handlers": ["cdp"], "level": "INFO", "propagate": False}},
    })
    event(f"{run_id}-parent-before-0")
    # Once the worker has sent that first event (its request is held by the test server, which
    # says so at /held), the rest wait in the queue: the fork happens with events both in
    # flight and queued.
    first_held = wait_for_the_server_to_hold_the_first_request()
    for i in range(1, BEFORE):
        event(f"{run_id}-parent-before-{i}")
    at_fork = {**handler_stats(), "first_held": first_held}

    if mode == "os-fork":
        pids = []
        for k in range(2):
            pid = os.fork()
            if pid == 0:
                child(run_id, k)
                sys.exit(0)  # a normal exit: atexit delivers what the child queued
            pids.append(pid)
        for i in range(AFTER):
            event(f"{run_id}-parent-after-{i}")
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    elif mode == "mp-process":
        context = multiprocessing.get_context("fork")
        processes = [context.Process(target=child, args=(run_id, k)) for k in range(2)]
        for process in processes:
            process.start()
        for i in range(AFTER):
            event(f"{run_id}-parent-after-{i}")
        for process in processes:
            process.join(60)
        codes = [process.exitcode for process in processes]
    elif mode in ("mp-pool", "billiard-pool"):
        if mode == "mp-pool":
            Pool = multiprocessing.get_context("fork").Pool
        else:
            from billiard.pool import Pool as BilliardPool

            Pool = functools.partial(BilliardPool, on_process_exit=deliver_before_pool_worker_exit)
        with Pool(2) as pool:
            workers = sorted(set(pool.map(task, [(run_id, i) for i in range(TASKS)], chunksize=1)))
            for i in range(AFTER):
                event(f"{run_id}-parent-after-{i}")
            pool.close()
            pool.join()
        codes = [0]
        say(role="pool", workers=workers)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    say(role="parent", at_fork=at_fork, child_exit_codes=codes)


if __name__ == "__main__":
    main()
