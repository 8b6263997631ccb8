"""``cdp-logging collect``: a local collector that prints each event it receives, for development."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any

from ..constants import ENV_WRITE_KEY
from .common import EXIT_CONFIGURATION, print_error


def add_collect(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "collect", help="run a local collector and print each event it receives",
        description="Run a CDP-compatible HTTP server on this machine and print each event it "
                    "receives as one line, to watch what an application sends while developing. "
                    "Point the application at it with CDP_HOST=http://127.0.0.1:PORT. Nothing "
                    "is forwarded anywhere. Ctrl-C (or SIGTERM) stops it.",
    )
    parser.add_argument("--port", type=int, default=8765,
                        help="the port to listen on; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default: %(default)s)")
    parser.add_argument("--write-key", default=None, metavar="KEY",
                        help="accept only this write key; prefer the CDP_WRITE_KEY environment "
                             "variable, which other users cannot read in the process list "
                             "(default: CDP_WRITE_KEY if set, else any non-empty key)")
    parser.add_argument("--strict", action="store_true",
                        help="answer 400 to requests with invalid events, as the API's strict "
                             "mode does (default: keep the valid ones and list the rest)")
    parser.add_argument("--json", action="store_true",
                        help="print each event as one line of JSON instead")
    parser.set_defaults(command=collect)


def collect(arguments: argparse.Namespace) -> int:
    """Serve until interrupted, printing every event received."""
    from ..testing.collector import LocalCollector, ReceivedRequest, RejectedMessage, format_event_line

    from ..delivery.endpoint import check_write_key
    from ..testing.lines import printable

    write_key = arguments.write_key
    if write_key is not None:
        sys.stderr.write("cdp-logging collect: warning: --write-key shows the key to every user of this "
                         f"machine (in the process list); set {ENV_WRITE_KEY} instead.\n")
    else:
        write_key = os.environ.get(ENV_WRITE_KEY, "").strip() or None
    try:
        if write_key is not None:
            check_write_key(write_key)
    except ValueError as err:
        print_error(str(err))
        return EXIT_CONFIGURATION
    out = sys.stdout
    lock = threading.Lock()

    def show(message: dict[str, Any]) -> None:
        # Escaped: what a client sends must not drive the terminal.
        line = json.dumps(message, default=str) if arguments.json else printable(format_event_line(message))
        with lock:
            out.write(line + "\n")
            out.flush()

    def refused(request: ReceivedRequest, rejected: list[RejectedMessage]) -> None:
        text = "".join(printable(line) + "\n" for line in describe_refusal(request, rejected).splitlines())
        with lock:
            sys.stderr.write(text)
            sys.stderr.flush()

    collector = LocalCollector(arguments.port, host=arguments.host, write_key=write_key,
                               strict=arguments.strict, on_message=show, on_refused=refused)
    del write_key
    try:
        collector.start()
    except OSError as err:
        print_error(f"cannot listen on {arguments.host}:{arguments.port}: {err.strerror or err}")
        return EXIT_CONFIGURATION
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signal, _frame: stop.set())
    sys.stderr.write(f"cdp-logging collect: listening on {collector.url}; "
                     f"run your application with CDP_HOST={collector.url}. Ctrl-C stops.\n")
    sys.stderr.flush()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        collector.stop()
    let_go = collector.let_go  # the collector keeps only the newest: count those it let go too
    received = len(collector.messages) + let_go["messages"]
    rejected = len(collector.rejected) + let_go["rejected"]
    sys.stderr.write(f"cdp-logging collect: received {_count(received, 'event', 'events')}"
                     + (f", rejected {_count(rejected, 'invalid one', 'invalid ones')}" if rejected else "")
                     + ".\n")
    return 0


def describe_refusal(request: Any, rejected: list[Any]) -> str:
    """The lines ``collect`` writes to standard error for a refused request (wrong key, wrong
    path, a body it cannot read) or for the invalid messages of an accepted one.

    Example::

        describe_refusal(request, [])
        # 'cdp-logging collect: refused POST /v1/v1/batch (HTTP 404): no endpoint ...\n'
    """
    where = f"{request.method} {request.path}"
    if request.status >= 400:
        reasons = "; ".join(request.errors) or "no reason given"
        return f"cdp-logging collect: refused {where} (HTTP {request.status}): {reasons}\n"
    return "".join(
        f"cdp-logging collect: refused a {_call_type(message.message)} event of {where}: "
        + "; ".join(str(error) for error in message.errors) + "\n"
        for message in rejected
    )


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _call_type(message: Any) -> str:
    kind = message.get("type") if isinstance(message, dict) else None
    return kind if isinstance(kind, str) else "malformed"
