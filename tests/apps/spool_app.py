"""Logs events through a CDPHandler with a spool, for the spool's multi-process tests.

Usage: spool_app.py RUN_ID SPOOL_PATH [--events N] [--rate R] [--progress FILE]
       [--flush TIMEOUT] [--fork] [--options JSON]

Logs N events (-1: until killed) with messageIds ``RUN_ID-I``, R a second (0: as fast as it
can), writing after each how many it has logged into the 8 bytes of FILE, so that a test
that kills the process knows exactly how many calls returned. With ``--flush`` it then
flushes (reporting ``{"flushed": ...}``); with ``--fork`` a child forked half way logs N
more as ``RUN_ID-child-I`` and exits normally. The process then exits, its handler closing
at interpreter exit; an atexit function registered first prints ``{"stats": ...}`` after
that. CDP_HOST and CDP_WRITE_KEY come from the environment.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import logging.config
import os
import time

log = logging.getLogger("app")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_id")
    parser.add_argument("spool_path")
    parser.add_argument("--events", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--progress")
    parser.add_argument("--flush", type=float)
    parser.add_argument("--fork", action="store_true")
    parser.add_argument("--options", default="{}", help="more CDPHandler options, as JSON")
    args = parser.parse_args()

    def report() -> None:
        say(stats=log.handlers[0].client.stats())

    atexit.register(report)  # registered before the client's: runs after its close
    logging.config.dictConfig({
        "version": 1,
        "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "spool_path": args.spool_path,
                             **json.loads(args.options)}},
        "loggers": {"app": {"handlers": ["cdp"], "level": "INFO", "propagate": False}},
    })
    progress = os.open(args.progress, os.O_RDWR | os.O_CREAT) if args.progress else None

    def log_events(prefix: str, count: int) -> None:
        started = time.monotonic()
        i = 0
        while i != count:
            if args.rate:
                # Paced by the clock, so a slow moment is caught up rather than lost.
                due = started + i / args.rate
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            log.info("spool test", extra={"track": {
                "user_id": "u1", "event": "Spool test", "message_id": f"{prefix}-{i}",
                "properties": {"i": i, "text": "s" * 200},
            }})
            i += 1
            if progress is not None:
                os.pwrite(progress, i.to_bytes(8, "little"), 0)

    if args.fork:
        log_events(args.run_id, args.events // 2)
        pid = os.fork()
        if pid == 0:
            atexit.unregister(report)
            log_events(f"{args.run_id}-child", args.events)
            return  # a normal exit: the child's handler closes at exit
        log_events(f"{args.run_id}-late", args.events - args.events // 2)
        say(child_exit_code=os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    else:
        log_events(args.run_id, args.events)
    if args.flush is not None:
        say(flushed=log.handlers[0].client.flush(timeout=args.flush))


def say(**fields: object) -> None:
    # One write a line: a forked child shares this pipe.
    os.write(1, (json.dumps({"pid": os.getpid(), **fields}) + "\n").encode())


if __name__ == "__main__":
    main()
