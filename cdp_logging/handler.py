"""``CDPHandler``: the logging glue. Records with a payload become CDP calls."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from .client import Analytics
from .errors import EventDroppedError, InvalidEventError
from .mapping import PAYLOAD_KEYS, calls_from_record
from .messages import build_message
from .reporting import in_report


def resolve_callable(value: Any, option: str) -> Any:
    """Accept a callable, or its dotted path (``"pkg.module.function"``, ``"pkg.module:function"``,
    ``"ext://pkg.module.function"``), so INI and dict configurations can name functions."""
    if value is None or callable(value):
        return value
    if not isinstance(value, str):
        raise TypeError(f"cdp_logging option {option!r} must be a callable or its dotted path, got {value!r}")
    path = value.removeprefix("ext://")
    module_name, _, attribute = path.rpartition(":") if ":" in path else path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"cdp_logging option {option!r}: cannot import {value!r}: {err}") from err
    if not callable(found):
        raise TypeError(f"cdp_logging option {option!r}: {value!r} is not callable")
    return found


class CDPHandler(logging.Handler):
    """A logging handler that sends records carrying an analytics payload to CDP.

    Records whose ``extra`` holds ``track``/``identify``/``page``/``screen``/``group``/
    ``alias`` (a dict of the call's fields), or the short track form (``event`` plus other
    fields as properties), become calls; every other record is ignored at the cost of one
    set check. Options are those of :class:`cdp_logging.Analytics`, or ``client=`` an
    existing client to share one pipeline. The write key defaults to ``CDP_WRITE_KEY``.

    Example (dictConfig)::

        logging.config.dictConfig({
            "version": 1,
            "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "level": "INFO"}},
            "root": {"handlers": ["cdp"], "level": "INFO"},
        })
        logging.getLogger("shop").info(
            "added to cart",
            extra={"track": {"user_id": "42", "event": "Added", "properties": {"qty": 1}}},
        )
    """

    def __init__(self, level: int | str = logging.NOTSET, *, client: Analytics | None = None,
                 **options: Any) -> None:
        super().__init__(level)
        if client is not None:
            if options:
                raise TypeError(
                    "CDPHandler: give either client= or client options, not both "
                    f"(got {', '.join(sorted(options))})"
                )
            if not isinstance(client, Analytics):
                raise TypeError(f"CDPHandler option 'client' must be a cdp_logging.Analytics, got {client!r}")
            self._owns_client = False
        else:
            if "error_handler" in options:
                options["error_handler"] = resolve_callable(options["error_handler"], "error_handler")
            try:
                client = Analytics(**options)
            except TypeError as err:
                unknown = _unknown_options(options)
                if unknown:
                    raise TypeError(
                        f"CDPHandler got unknown option(s) {', '.join(map(repr, unknown))}; "
                        f"known options: {', '.join(_KNOWN_OPTIONS)}"
                    ) from None
                raise err
            self._owns_client = True
        self.client = client

    def __repr__(self) -> str:
        return f"<CDPHandler ({logging.getLevelName(self.level)}) {self.client!r}>"

    # -- the hot path ---------------------------------------------------------------------

    def handle(self, record: logging.LogRecord) -> Any:
        """Check for a payload before anything else; send without taking the handler lock
        (the queue has its own), so slow delivery can never hold up logging."""
        if record.__dict__.keys().isdisjoint(PAYLOAD_KEYS):
            return False
        if in_report() or self.client._batcher.is_worker_thread():
            # Logged by an error_handler or a callback: feeding it back could loop.
            return False
        result = self.filter(record)
        if isinstance(result, logging.LogRecord):
            record = result
        if result:
            self.emit(record)
        return result

    def emit(self, record: logging.LogRecord) -> None:
        """Turn the record into calls and queue them; never raises into the application."""
        client = self.client
        try:
            for call, fields in calls_from_record(record):
                self.send(call, fields, record)
        except InvalidEventError as err:
            client.count_invalid(err.with_origin(_origin(record)))
        except Exception:
            self.handleError(record)

    def send(self, call: str, fields: dict[str, Any], record: logging.LogRecord) -> None:
        """Build, check and queue one call; override to enrich or filter calls."""
        try:
            self.client.send(build_message(call, **fields))
        except InvalidEventError as err:
            self.client.count_invalid(err.with_origin(_origin(record)))

    # -- lifecycle ------------------------------------------------------------------------

    def flush(self) -> None:
        """Deliver what is queued, waiting at most the client's ``shutdown_timeout``."""
        if not self.client.closed:
            self.client.flush(timeout=self.client.shutdown_timeout)

    def close(self) -> None:
        """Deliver what is queued and stop the worker (if this handler made the client).

        Bounded by ``shutdown_timeout``; safe to call twice. ``logging.shutdown()`` calls it at
        exit and dictConfig when it replaces the configuration.
        """
        try:
            if self._owns_client:
                self.client.close_and_flush()
        finally:
            super().close()

    def handleError(self, record: logging.LogRecord) -> None:
        """Report an unexpected failure in emit as a dropped event, then as logging does."""
        self.client.report(EventDroppedError(f"unexpected error in CDPHandler for {_origin(record)}"))
        super().handleError(record)


def _origin(record: logging.LogRecord) -> str:
    return f"logger {record.name!r} at {record.pathname}:{record.lineno}"


_KNOWN_OPTIONS = (
    "write_key", "host", "max_events_in_batch", "flush_interval", "enable", "error_handler",
    "max_queue_size", "max_queue_bytes", "overflow", "overflow_timeout", "timeout", "gzip",
    "max_retries", "max_retry_time", "initial_backoff", "max_backoff", "max_retry_after",
    "shutdown_timeout", "transport",
)


def _unknown_options(options: dict[str, Any]) -> list[str]:
    return sorted(set(options) - set(_KNOWN_OPTIONS))
