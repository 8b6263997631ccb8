"""``cdp-logging run -- command``: the command run with the handler installed from the environment."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Any

from ..autoinstall import SITE_DIRECTORY
from ..config import handler_from_environment
from ..constants import ENV_RULES
from ..constants import ENV_ENABLE, ENV_WRITE_KEY
from ..errors import ConfigurationError
from .common import EXIT_CONFIGURATION, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, print_error, environment_help


def add_run(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "run", help="run a command with its log lines sent as CDP calls",
        description="Run COMMAND with the CDP handler installed in every Python process it "
                    "starts, configured by the environment variables below. The configuration "
                    "is checked first: if it cannot work, the command is not started.",
        epilog=environment_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="cdp-logging run -- COMMAND [ARGUMENT ...]",
    )
    parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND",
                        help="the command line to run, after --")
    parser.set_defaults(command=run)


def run(arguments: argparse.Namespace) -> int:
    """Check the environment, then replace this process with the command."""
    argv = list(arguments.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print_error("give the command to run after --, as in: cdp-logging run -- python app.py")
        return EXIT_CONFIGURATION
    if os.environ.get(ENV_RULES, "").strip():
        # The program may change directory (gunicorn --chdir) before reading it; and the
        # check below names the file as the program's processes will, so that what it
        # reports about the rules they do not report again.
        os.environ[ENV_RULES] = os.path.abspath(os.environ[ENV_RULES].strip())
    try:
        handler_from_environment().client.close_and_flush(timeout=0)
    except ConfigurationError as err:
        print_error(f"{err}\ncdp-logging: {argv[0]} was not started")
        return EXIT_CONFIGURATION
    environ = dict(os.environ)  # taken after the check: what it reported, it marked reported
    quiet_without_write_key(environ)
    environ["PYTHONPATH"] = os.pathsep.join(
        [SITE_DIRECTORY, *(entry for entry in environ.get("PYTHONPATH", "").split(os.pathsep)
                           if entry and entry != SITE_DIRECTORY)]
    )
    return _replace_process(argv, environ)


def quiet_without_write_key(environ: dict[str, str]) -> None:
    """Without a write key the handler sends nothing and said so once, here: the command's
    processes send nothing too, without saying it again each."""
    if not environ.get(ENV_WRITE_KEY, "").strip():
        environ[ENV_ENABLE] = "false"


def _replace_process(argv: list[str], environ: dict[str, str]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        if os.name == "posix":
            os.execvpe(argv[0], argv, environ)  # noqa: S606 - `run` becomes the user command, as exec(1) does
        return subprocess.call(argv, env=environ)
    except FileNotFoundError:
        print_error(f"command not found: {argv[0]}")
        return EXIT_NOT_FOUND
    except PermissionError:
        print_error(f"cannot execute: {argv[0]}")
        return EXIT_NOT_EXECUTABLE
