"""Logs events through CDPHandlers, calls ``logging.shutdown()`` itself, then exits.

Prints JSON lines on stdout: ``{"shutdown_at": ...}`` (wall-clock time) as logging.shutdown()
begins, then ``{"shutdown_took": ..., "stats": [...]}`` when it returned. The interpreter then
exits (atexit closes what logging.shutdown() left open). CDP_HOST and CDP_WRITE_KEY come from
the environment.

Usage: shutdown_app.py EVENTS --layout {one,two,shared} [--flush-first] [--options JSON]

- one: one CDPHandler with a client of its own;
- two: two CDPHandlers, each with a client of its own;
- shared: two CDPHandlers given the same Analytics client (closed at exit, not by them).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import cdp_logging


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("events", type=int)
    parser.add_argument("--layout", choices=("one", "two", "shared"), default="one")
    parser.add_argument("--options", default="{}", help="client options as JSON")
    args = parser.parse_args()
    options = json.loads(args.options)

    if args.layout == "shared":
        client = cdp_logging.Analytics(**options)
        handlers = [cdp_logging.CDPHandler(client=client) for _ in range(2)]
    else:
        handlers = [cdp_logging.CDPHandler(**options) for _ in range(1 if args.layout == "one" else 2)]
    for number, handler in enumerate(handlers):
        log = logging.getLogger(f"app{number}")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        for i in range(args.events):
            log.info("shutdown test", extra={"track": {"user_id": "u1", "event": "Shutdown test",
                                                       "message_id": f"app{number}-{i}"}})

    started = time.monotonic()
    print(json.dumps({"shutdown_at": time.time()}), flush=True)
    logging.shutdown()
    took = time.monotonic() - started
    stats = [handler.client.stats() for handler in handlers]
    print(json.dumps({"shutdown_took": took, "stats": stats}), flush=True)


if __name__ == "__main__":
    main()
