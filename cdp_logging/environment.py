"""What the process around the library says: the ``CDP_*`` variables nothing reads, and whether
pytest runs with cdp-logging's plugin.

Both are asked by the engine (``Analytics`` at its first construction) and by the front (the
``events`` helpers, :mod:`cdp_logging.config`), so they live below both.
"""

from __future__ import annotations

import difflib
import hashlib
import multiprocessing
import os
import sys
import tempfile
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


#: Set in the environment to what this process said once for its whole tree (hashed), so
#: that the processes it starts do not say it again.
_SAID = "_CDP_LOGGING_SAID"


def once_per_process_tree(what: str) -> bool:
    """True the first time ``what`` is to be said in this process and those it starts (they
    inherit the mark in the environment); False after. The caller then says it.

    Example::

        if once_per_process_tree("bad:CDP_TIMEOUT=inf"):
            warn("cdp-logging: CDP_TIMEOUT='inf': ...")
    """
    token = hashlib.sha256(what.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    said = [entry for entry in os.environ.get(_SAID, "").split(",") if entry]
    if token in said:
        return False
    os.environ[_SAID] = ",".join([*said, token])
    return True


def first_of_sibling_workers(what: str) -> bool:
    """False when ``what`` was said already by another worker started by the same
    multiprocessing parent (uvicorn ``--workers``, a ``multiprocessing`` pool): siblings
    inherit no mark from each other, so they share a file named for their parent, created by
    the first. True otherwise, and wherever the file cannot be made.

    Example::

        if once_per_process_tree(what) and first_of_sibling_workers(what):
            warn(...)
    """
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return True
    token = hashlib.sha256(what.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    try:
        folder = os.path.join(tempfile.gettempdir(), f"cdp-logging-{os.getuid()}")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        status = os.lstat(folder)
        if status.st_uid != os.getuid() or status.st_mode & 0o077 or not os.path.isdir(folder) \
                or os.path.islink(folder):
            return True  # someone else's folder: say it rather than trust it
        mark = os.path.join(folder, f"said-{parent.pid}-{_started(parent.pid)}-{token}")
        os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600))
    except FileExistsError:
        return False
    except (OSError, AttributeError):  # AttributeError: os.getuid, which Windows has not
        return True
    return True


def _started(pid: int) -> str:
    """When process ``pid`` started (Linux), so that a reused pid is another parent."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return "0"


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
