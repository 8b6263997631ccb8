"""The ``cdp-logging`` command (also ``python -m cdp_logging``).

``cdp-logging run -- <command...>``
    runs the command with the handler installed in every Python process it starts,
    configured by environment variables only.
``cdp-logging check``
    checks that configuration and shows what sample log lines would send, sending nothing.
``cdp-logging collect [--port N]``
    runs a local CDP-compatible collector and prints each event it receives on one line.

Each subcommand is one ``add_<name>(subcommands)`` function that adds its parser and sets
``command`` to the function that runs it; :data:`SUBCOMMANDS` lists them.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any
from collections.abc import Callable, Sequence

from .check import add_check
from .collect import add_collect
from .common import EXIT_CONFIGURATION, environment_help
from .run import add_run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if getattr(arguments, "command", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_CONFIGURATION
    try:
        result: int = arguments.command(arguments)
    except BrokenPipeError:
        # The reader went away (`cdp-logging check | head`): stop quietly, as Unix tools do,
        # and keep the interpreter from complaining when it flushes standard output at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdp-logging",
        description="Send an application's log lines to Customer.io Data Pipelines without "
                    "changing its code.",
        epilog=environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subcommands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subcommands)
    return parser


#: The subcommands, in the order ``--help`` lists them; add one with an ``add_<name>``.
SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (add_run, add_check, add_collect)
