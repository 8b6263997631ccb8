"""Zero-code activation: the handler in a program that was not written for it.

``cdp-logging run -- <command>`` puts this directory first on ``PYTHONPATH``; every Python
process the command starts then imports its ``sitecustomize`` at start-up, which runs the
``sitecustomize`` it displaced and calls :func:`install`.

:func:`install` makes the handler see every record a logger handles, as a handler on the
root logger would, without joining ``logging.root.handlers``: the application's logging
configuration stays exactly as the application makes it. ``basicConfig()`` still configures
(it does nothing once the root logger has a handler), ``logging.warning()`` before any
configuration still prints, and frameworks that look for a handler (Flask adds its own when
it finds none) still find none. Unlike a handler on the root logger it also sees records of
loggers that do not propagate (``propagate: false`` in dictConfig, gunicorn's own loggers),
so a rule for a logger works however the application routes its output.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any
from collections.abc import Callable, Mapping

from ..config import handler_from_environment
from ..constants import ENV_ENABLE, ENV_WRITE_KEY
from ..handler import CDPHandler, application_handlers
from ..mapping import has_payload

__all__ = ["SITE_DIRECTORY", "AutoInstalledHandler", "install", "installed_handler", "uninstall"]

#: The directory ``cdp-logging run`` puts on ``PYTHONPATH`` (it holds ``sitecustomize.py``).
SITE_DIRECTORY = os.path.dirname(os.path.abspath(__file__))


class AutoInstalledHandler(CDPHandler):
    """The handler :func:`install` sets up; its pipeline outlives the application's logging
    configuration.

    dictConfig and fileConfig close every handler they know of before configuring anew;
    this one stays open through that and delivers what is queued at exit (the client's
    own exit hook, ``cdp_logging.close_all_clients``). Example::

        handler = install()          # from the environment
        assert handler is installed_handler()
    """

    #: dictConfig's reset must not wait on the network.
    flushOnClose = False
    _installed_without_code = True

    def flush(self) -> None:
        """Do nothing: delivery is the client's, every ``flush_interval`` and at exit.

        dictConfig flushes every handler while holding logging's module lock (Python 3.11
        and older ignore ``flushOnClose``), and the worker that would deliver needs that lock
        to log: waiting here would hold up the application for ``shutdown_timeout``.
        """

    def close(self) -> None:
        """Forget the handler's logging bookkeeping; the pipeline runs on until exit."""
        logging.Handler.close(self)

    def handle(self, record: logging.LogRecord) -> Any:
        """As :meth:`CDPHandler.handle`, except for a record a handler of the application's
        own configuration already took: one event per record, however the handler got there.

        Example::

            # the application's dictConfig has a CDPHandler on the root logger
            logging.getLogger("shop").info("hi", extra={"event": "Hi", "user_id": "42"})
            # sent once, by that handler; this one leaves the record alone
        """
        if (application_handlers and (self.rules is not None or has_payload(record))
                and _taken_by_the_application(record, self)):
            return False
        return super().handle(record)


def _taken_by_the_application(record: logging.LogRecord, installed: CDPHandler) -> bool:
    """Whether a CDPHandler on the record's way up the logger tree (as Logger.callHandlers
    walks it) made a call of it: it had a payload or matched that handler's rules."""
    payload = has_payload(record)
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        for handler in logger.handlers:
            if (handler is not installed and isinstance(handler, CDPHandler)
                    and record.levelno >= handler.level
                    and (payload or (handler.rules is not None and handler.rules.find(record)))):
                return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


_installed: AutoInstalledHandler | None = None
_original_call_handlers: Callable[[logging.Logger, logging.LogRecord], None] | None = None


def install(environ: Mapping[str, str] | None = None) -> AutoInstalledHandler:
    """Configure a handler from ``environ`` (default ``os.environ``) and show it every record
    a logger handles; returns it. Calling it again returns the same handler.

    Raises :class:`cdp_logging.ConfigurationError` naming the variable (or rule) at fault.

    Example::

        os.environ.update(CDP_WRITE_KEY="...", CDP_RULES="/etc/shop/rules.toml")
        cdp_logging.autoinstall.install()
    """
    global _installed, _original_call_handlers
    if _installed is not None:
        return _installed
    handler = handler_from_environment(environ, handler_class=AutoInstalledHandler)
    assert isinstance(handler, AutoInstalledHandler)
    if environ is None and not os.environ.get(ENV_WRITE_KEY, "").strip():
        # The client said once that it sends nothing; the processes this one starts send
        # nothing either, without saying it again each.
        os.environ[ENV_ENABLE] = "false"
    original = logging.Logger.callHandlers

    @functools.wraps(original)
    def callHandlers(self: logging.Logger, record: logging.LogRecord) -> None:
        try:
            original(self, record)
        finally:
            if record.levelno >= handler.level:
                try:
                    handler.handle(record)
                except Exception:
                    handler.handleError(record)

    logging.Logger.callHandlers = callHandlers  # type: ignore[method-assign]
    _original_call_handlers = original
    _installed = handler
    return handler


def installed_handler() -> AutoInstalledHandler | None:
    """The handler :func:`install` set up in this process, or None."""
    return _installed


def uninstall(timeout: float | None = None) -> bool:
    """Stop showing records to the installed handler and deliver what it queued; True when
    everything was delivered (or nothing was installed)."""
    global _installed, _original_call_handlers
    handler, original = _installed, _original_call_handlers
    if handler is None or original is None:
        return True
    logging.Logger.callHandlers = original  # type: ignore[method-assign,assignment]
    _installed = _original_call_handlers = None
    return handler.client.close_and_flush(timeout)


def describe_failure(error: BaseException) -> str:
    """Why :func:`install` failed, in one line for standard error."""
    from ..errors import ConfigurationError

    if isinstance(error, ConfigurationError):
        return str(error)
    return f"{type(error).__name__}: {error}"
