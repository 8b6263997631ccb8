"""Imported at start-up by every Python process ``cdp-logging run`` starts (its directory is
first on PYTHONPATH): runs the sitecustomize it displaced, then installs the CDP handler
configured by environment variables.

It never stops the program: a failure is reported once on standard error and the program
runs on without the handler. Kept to plain syntax so that any Python that finds it on
PYTHONPATH (an older one, or one without cdp-logging installed) fails politely: its types
are comments, which mypy reads and no Python has to.
"""

import os
import sys
import types  # noqa: F401 - named in a type comment, which ruff does not read

#: Set once a failure is reported, so child processes do not repeat the same message.
_REPORTED = "_CDP_LOGGING_REPORTED"


def _run_displaced_sitecustomize():
    # type: () -> None
    """Import the sitecustomize that this one hides, as the site module would have."""
    here = os.path.dirname(os.path.realpath(__file__))
    ours = sys.modules.get("sitecustomize")
    # Leave sys.path as it would be without cdp-logging; PYTHONPATH keeps the directory for
    # child processes.
    sys.path[:] = [entry for entry in sys.path
                   if not entry or os.path.realpath(entry) != here]
    sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # type: ignore[import-not-found]  # noqa: F401  (the next one on sys.path)
    except ImportError as err:
        _put_back(ours)
        if getattr(err, "name", None) != "sitecustomize":
            _as_site_reports(err)
    except Exception as err:
        _put_back(ours)
        _as_site_reports(err)


def _put_back(ours):
    # type: (types.ModuleType | None) -> None
    """With no other sitecustomize, this one stays the module site imported."""
    if ours is not None:
        sys.modules["sitecustomize"] = ours


def _as_site_reports(err):
    # type: (BaseException) -> None
    if sys.flags.verbose:
        sys.excepthook(*sys.exc_info())
    else:
        sys.stderr.write("Error in sitecustomize; set PYTHONVERBOSE for traceback:\n"
                         "%s: %s\n" % (err.__class__.__name__, err))


def _install_handler():
    # type: () -> None
    try:
        from cdp_logging.autoinstall import describe_failure, install
    except Exception as err:
        _report("cannot import cdp_logging (%s: %s); install cdp-logging into the Python "
                "environment of %s" % (err.__class__.__name__, err, sys.executable))
        return
    try:
        install()
    except Exception as err:
        _report(describe_failure(err))


def _report(reason):
    # type: (str) -> None
    """Write why this process sends nothing, unless a parent process said the same."""
    if os.environ.get(_REPORTED) == reason:
        return
    os.environ[_REPORTED] = reason
    try:
        sys.stderr.write("cdp-logging: not sending events from this process (pid %d): %s\n"
                         % (os.getpid(), reason))
        sys.stderr.flush()
    except Exception:  # noqa: S110 - a failing stderr must not stop the application starting
        pass


if __name__ == "sitecustomize":
    _run_displaced_sitecustomize()
    _install_handler()
