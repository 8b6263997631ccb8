"""What every subcommand shares: the exit statuses, and how an error is said."""

from __future__ import annotations

import sys

from ..config import VARIABLES


#: Exit statuses: a configuration that cannot work, and shell's "command not found" pair.
EXIT_CONFIGURATION = 2


EXIT_NOT_EXECUTABLE = 126


EXIT_NOT_FOUND = 127


#: ``check`` found lines whose events the API would refuse.
EXIT_REJECTED = 1


def print_error(message: str) -> None:
    sys.stderr.write(f"cdp-logging: {message}\n")


def environment_help() -> str:
    """The environment variables, their kinds and defaults, for ``--help``."""
    width = max(len(variable.name) for variable in VARIABLES)
    lines = ["environment variables (unset or empty: the default):"]
    for variable in VARIABLES:
        lines.append(f"  {variable.name:<{width}}  {variable.kind}; default {variable.default}")
        lines.append(f"  {'':<{width}}  {variable.description}")
    return "\n".join(lines)
