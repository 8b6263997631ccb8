"""What the process around the library says: the ``CDP_*`` variables nothing reads, and whether
pytest runs with cdp-logging's plugin.

Both are asked by the engine (``Analytics`` at its first construction) and by the front (the
``events`` helpers, :mod:`cdp_logging.config`), so they live below both.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping

from .constants import ENV_LEVEL, ENV_RULES, ENV_STRICT
from .reporting import warn

#: Analytics options that cannot come from the environment (an object, not a value).
NOT_FROM_ENVIRONMENT = frozenset(("transport",))
#: The variables read for the handler rather than for ``Analytics``, after the options' own.
HANDLER_VARIABLES = (ENV_RULES, ENV_LEVEL, ENV_STRICT)

#: Set in the environment once the unknown variables were reported, so that the processes
#: this one starts (gunicorn's workers, say) do not report them again.
_REPORTED_UNKNOWN = "_CDP_LOGGING_UNKNOWN_VARIABLES"


def variable_of(option: str) -> str:
    """The variable that sets an ``Analytics`` option: ``CDP_`` and its name in capitals."""
    return f"CDP_{option.upper()}"


def known_variables(options: Iterable[str]) -> list[str]:
    """Every variable cdp-logging reads, given the options of ``Analytics.__init__``."""
    return [variable_of(o) for o in options if o != "self" and o not in NOT_FROM_ENVIRONMENT] + list(
        HANDLER_VARIABLES
    )


def pytest_plugin_active() -> bool:
    """True in a pytest run with cdp-logging's plugin loaded (pytest loads it at start-up,
    unless ``-p no:cdp_logging``): there a missing write key is expected and a bad payload
    should fail the test."""
    return "cdp_logging.testing.plugin" in sys.modules and "pytest" in sys.modules


def warn_about_unknown_variables(known: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Log one WARNING naming every ``CDP_*`` variable in ``environ`` (default:
    ``os.environ``) not in ``known``, with the variable meant where one is close
    (``CDP_RULE``: did you mean ``CDP_RULES``?); once per process tree. Returns the unknown
    names.

    Example::

        >>> warn_about_unknown_variables(["CDP_FLUSH_INTERVAL"], {"CDP_FLUSH_INTERVALL": "5"})
        ['CDP_FLUSH_INTERVALL']
    """
    environ = os.environ if environ is None else environ
    unknown = sorted(name for name in environ if name.startswith("CDP_") and name not in known)
    said = ",".join(unknown)
    if not unknown or os.environ.get(_REPORTED_UNKNOWN) == said:
        return unknown
    os.environ[_REPORTED_UNKNOWN] = said
    described = []
    for name in unknown:
        guesses = difflib.get_close_matches(name, known, n=1)
        described.append(f"{name} (did you mean {guesses[0]}?)" if guesses else name)
    warn("cdp-logging: ignoring unknown environment variable(s) %s; cdp-logging reads %s",
         ", ".join(described), ", ".join(known))
    return unknown
