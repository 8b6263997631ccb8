"""Logs events through CDPHandler (configured by dictConfig), then lets the interpreter exit.

Prints JSON lines on stdout: ``{"exiting_at": ...}`` (wall-clock time) as the script ends,
and ``{"stats": [...], "closed_at": ...}`` from an atexit function that runs after the
clients' exit-time flush. CDP_HOST and CDP_WRITE_KEY come from the environment.

Usage: exit_app.py RUN_ID EVENTS [--clients K] [--log-at-exit] [--options JSON]
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import logging.config
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_id")
    parser.add_argument("events", type=int)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--log-at-exit", action="store_true",
                        help="log the events from an atexit function that runs before the flush")
    parser.add_argument("--options", default="{}", help="CDPHandler options as JSON")
    args = parser.parse_args()

    handlers: list = []

    def report() -> None:
        stats = [handler.client.stats() for handler in handlers]
        print(json.dumps({"stats": stats, "closed_at": time.time()}), flush=True)

    # Registered before any client exists, so it runs after their exit-time flush.
    atexit.register(report)

    options = json.loads(args.options)
    names = [f"app{k}" for k in range(args.clients)]
    logging.config.dictConfig({
        "version": 1,
        "handlers": {name: {"class": "cdp_logging.CDPHandler", **options} for name in names},
        "loggers": {name: {"handlers": [name], "level": "INFO", "propagate": False} for name in names},
    })
    handlers.extend(logging.getLogger(name).handlers[0] for name in names)

    def log_events() -> None:
        for name in names:
            for i in range(args.events):
                logging.getLogger(name).info("exit test", extra={"track": {
                    "user_id": "u1", "event": "Exit test", "message_id": f"{args.run_id}-{name}-{i}",
                }})

    if args.log_at_exit:
        # Registered after the clients, so it runs before their flush, during interpreter
        # shutdown: Python 3.12 and newer refuse to start a thread then.
        atexit.register(log_events)
    else:
        log_events()
    print(json.dumps({"exiting_at": time.time()}), flush=True)


if __name__ == "__main__":
    main()
