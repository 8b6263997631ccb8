"""The things being measured ("subjects"), each behind one small interface.

A subject offers ``call()`` (one application-side call: a log line or a track call),
``flush()``, ``dropped()`` and ``close()``. The scenarios only ever talk to subjects, so
every scenario measures the baselines and cdp_logging in exactly the same loop.

This module is also the single place that calls cdp_logging's API, so if that API moves,
only :class:`OursClient` and :func:`make_cdp_handler` change.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import logging.handlers
import os
import queue
import shutil
import tempfile
from typing import Any
from collections.abc import Callable

from .common import APP_LOGGER, EVENT, MESSAGE, PROPERTIES, TRACK_EXTRA, USER_ID, WRITE_KEY, run_bounded


class SkipScenario(Exception):
    """The subject cannot be built here (library missing); the scenario is skipped, not failed."""


def ours() -> Any:
    """The ``cdp_logging`` module, loaded at run time: it may not be written yet."""
    return importlib.import_module("cdp_logging")


def ours_import_error() -> str | None:
    """Why ``cdp_logging.Analytics``/``CDPHandler`` cannot be used, or None if they can."""
    try:
        module = ours()
    except ImportError as err:
        return f"cdp_logging not importable ({err}); 'ours' scenarios run once the library lands"
    missing = [name for name in ("Analytics", "CDPHandler") if not hasattr(module, name)]
    if missing:
        return (f"cdp_logging has no {' or '.join(missing)} yet; "
                "'ours' scenarios run once the library lands")
    return None


def official_import_error() -> str | None:
    """Why the official client cannot be used, or None if it can."""
    try:
        importlib.import_module("customerio.analytics.client")
    except ImportError as err:
        return f"official client missing ({err}): pip install customerio-cdp-analytics==1.1.0"
    return None


def _app_logger(handler: logging.Handler, name: str = APP_LOGGER) -> logging.Logger:
    """A fresh, non-propagating INFO logger with exactly ``handler`` attached."""
    logger = logging.getLogger(name)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    return logger


def _log_call(logger: logging.Logger, with_payload: bool) -> Callable[[], None]:
    info = logger.info
    if with_payload:
        return lambda: info(MESSAGE, extra=TRACK_EXTRA)
    return lambda: info(MESSAGE)


class Subject:
    """Interface of everything measured. Subclasses set ``call`` in ``__init__``."""

    #: Short name used in result rows.
    kind = "subject"
    call: Callable[[], Any]

    def flush(self, timeout: float) -> None:
        """Push everything queued towards the server (bounded by ``timeout``)."""

    def dropped(self) -> int:
        """Events the client refused or discarded so far."""
        return 0

    def stats(self) -> dict[str, Any]:
        """The client's own counters, if it keeps any."""
        return {}

    def default_batch(self) -> int | None:
        """Events per request when the batch size is left to the client's default."""
        return None

    def close(self, timeout: float) -> None:
        """Stop background threads; never blocks longer than ``timeout``."""


class NullSubject(Subject):
    """``logger.info`` into a ``NullHandler``: the floor of what a logging call costs."""

    kind = "null"

    def __init__(self, *, with_payload: bool = True, logger_name: str = APP_LOGGER) -> None:
        self.logger = _app_logger(logging.NullHandler(), logger_name)
        self.call = _log_call(self.logger, with_payload)


class QueueSubject(Subject):
    """stdlib ``QueueHandler`` + ``QueueListener`` forwarding to a ``NullHandler``.

    The standard way to move log handling off the application thread; its per-call cost is
    the fair "background logging" baseline.
    """

    kind = "queue"

    def __init__(self, *, with_payload: bool = True, logger_name: str = APP_LOGGER) -> None:
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.listener = logging.handlers.QueueListener(self.queue, logging.NullHandler())
        self.listener.start()
        self.logger = _app_logger(logging.handlers.QueueHandler(self.queue), logger_name)
        self.call = _log_call(self.logger, with_payload)

    def flush(self, timeout: float) -> None:
        # The listener has no flush; stopping it drains the queue. Restart keeps it usable.
        run_bounded(self.listener.stop, timeout)
        self.listener.start()

    def close(self, timeout: float) -> None:
        run_bounded(self.listener.stop, timeout)


class OfficialSubject(Subject):
    """The official client (``customerio-cdp-analytics``, import ``customerio.analytics``).

    ``Client.track`` returns ``(ok, message)``; ``ok`` is False when its bounded queue is full
    and the event is dropped, which is how drops are counted here.
    """

    kind = "official"

    def __init__(self, host: str, *, batch: int | None, queue_size: int | None) -> None:
        reason = official_import_error()
        if reason:
            raise SkipScenario(reason)
        from customerio.analytics.client import Client

        options = {"upload_size": batch, "max_queue_size": queue_size}
        self.client = Client(WRITE_KEY, host=host,
                             **{name: value for name, value in options.items() if value is not None})
        self._dropped = 0
        track = self.client.track

        def call() -> None:
            if not track(user_id=USER_ID, event=EVENT, properties=PROPERTIES)[0]:
                self._dropped += 1

        self.call = call

    def flush(self, timeout: float) -> None:
        # Client.flush() is queue.join() with no timeout: bound it from outside.
        run_bounded(self.client.flush, timeout)

    def dropped(self) -> int:
        return self._dropped

    def default_batch(self) -> int | None:
        from customerio.analytics.client import Client

        return int(inspect.signature(Client).parameters["upload_size"].default)

    def stats(self) -> dict[str, Any]:
        return {"queued": self.client.queue.qsize(), "dropped": self._dropped}

    def close(self, timeout: float) -> None:
        # join() pauses the consumer and waits for its current upload; bounded because a
        # hung server would keep it retrying for minutes.
        run_bounded(self.client.join, timeout)


#: Room per event when a scenario sizes our queue for N events: the events measured here
#: encode to about 330 bytes.
QUEUE_BYTES_PER_EVENT = 1_000


def ours_default(option: str) -> int:
    """The default of one of our client's options."""
    return int(inspect.signature(ours().Analytics).parameters[option].default)


def queue_bounds(queue_size: int | None) -> dict[str, int]:
    """Both of our client's queue bounds, sized to hold ``queue_size`` events: the bound on
    events alone would leave the one on bytes (20 MB by default) to drop part of a
    100,000-event burst. Never below the library's defaults; None: the defaults."""
    if queue_size is None:
        return {}
    default_bytes = ours_default("max_queue_bytes")
    return {"max_queue_size": queue_size,
            "max_queue_bytes": max(default_bytes, queue_size * QUEUE_BYTES_PER_EVENT)}


def batch_option(batch: int | None) -> dict[str, int]:
    """Our batch size option, or nothing for the default."""
    return {} if batch is None else {"max_events_in_batch": batch}


class OursClient(Subject):
    """``cdp_logging.Analytics.track`` called directly (same call shape as the official one)."""

    kind = "ours_client"

    def __init__(self, host: str, *, batch: int | None, queue_size: int | None,
                 flush_interval: float = 10.0, **options: Any) -> None:
        reason = ours_import_error()
        if reason:
            raise SkipScenario(reason)
        self.analytics = ours().Analytics(
            WRITE_KEY, host=host, flush_interval=flush_interval, **batch_option(batch),
            **queue_bounds(queue_size), **options)
        track = self.analytics.track
        self.call = lambda: track(user_id=USER_ID, event=EVENT, properties=PROPERTIES)

    def flush(self, timeout: float) -> None:
        run_bounded(lambda: self.analytics.flush(timeout=timeout), timeout + 1.0)

    def dropped(self) -> int:
        return int(self.stats().get("dropped", 0))

    def stats(self) -> dict[str, Any]:
        return dict(self.analytics.stats())

    def default_batch(self) -> int | None:
        return ours_default("max_events_in_batch")

    def close(self, timeout: float) -> None:
        run_bounded(self.analytics.close, timeout)


def make_cdp_handler(analytics: Any, host: str, options: dict[str, Any]) -> tuple[logging.Handler, Any]:
    """Build a ``CDPHandler``: around ``analytics`` if it takes one, else from the options.

    Returns ``(handler, client)``, the client being the ``Analytics`` whose ``stats()`` count
    this handler's events. Two constructor shapes are supported so the benchmark follows the
    library rather than guessing one spelling: ``CDPHandler(client=...)`` (or
    ``analytics=...``), and ``CDPHandler(write_key, host=..., **options)`` exposing the client
    it made as ``handler.client`` or ``handler.analytics``.
    """
    CDPHandler = ours().CDPHandler
    parameters = inspect.signature(CDPHandler).parameters
    for name in ("client", "analytics"):
        if name in parameters:
            return CDPHandler(**{name: analytics}), analytics
    analytics.close()
    try:
        handler = CDPHandler(WRITE_KEY, host=host, **options)
    except TypeError as err:
        raise RuntimeError(
            f"the benchmark cannot build CDPHandler{inspect.signature(CDPHandler)}: it passes "
            "client=/analytics= an Analytics, or else (write_key, host=..., max_events_in_batch="
            f"..., flush_interval=..., max_queue_size=...); update benchmarks/clients.py ({err})"
        ) from err
    client = getattr(handler, "client", None) or getattr(handler, "analytics", None)
    return handler, client


class OursHandler(Subject):
    """``logger.info(..., extra={"track": ...})`` into ``cdp_logging.CDPHandler``."""

    kind = "ours_handler"

    def __init__(self, host: str, *, batch: int | None, queue_size: int | None,
                 with_payload: bool = True, flush_interval: float = 10.0,
                 logger_name: str = APP_LOGGER, **more_options: Any) -> None:
        reason = ours_import_error()
        if reason:
            raise SkipScenario(reason)
        options = {"flush_interval": flush_interval, **batch_option(batch),
                   **queue_bounds(queue_size), **more_options}
        analytics = ours().Analytics(WRITE_KEY, host=host, **options)
        self.handler, self.analytics = make_cdp_handler(analytics, host, options)
        self.logger = _app_logger(self.handler, logger_name)
        self.call = _log_call(self.logger, with_payload)

    def flush(self, timeout: float) -> None:
        if self.analytics is not None:
            run_bounded(lambda: self.analytics.flush(timeout=timeout), timeout + 1.0)
        else:
            run_bounded(self.handler.flush, timeout)

    def dropped(self) -> int:
        return int(self.stats().get("dropped", 0))

    def stats(self) -> dict[str, Any]:
        return dict(self.analytics.stats()) if self.analytics is not None else {}

    def default_batch(self) -> int | None:
        return ours_default("max_events_in_batch")

    def close(self, timeout: float) -> None:
        self.logger.removeHandler(self.handler)
        run_bounded(self.handler.close, timeout)
        if self.analytics is not None:
            run_bounded(self.analytics.close, timeout)


class SpoolDirectory:
    """A temporary directory for the durable spool's file (on disk, as /tmp is here)."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="cdp-bench-spool-")
        self.spool_path = os.path.join(self.path, "events.db")

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class OursClientSpool(OursClient):
    """``Analytics.track`` with the durable spool on (``spool_path``, default options)."""

    kind = "ours_client_spool"

    def __init__(self, host: str, *, batch: int | None, queue_size: int | None) -> None:
        self.directory = SpoolDirectory()
        super().__init__(host, batch=batch, queue_size=queue_size, spool_path=self.directory.spool_path)

    def close(self, timeout: float) -> None:
        try:
            super().close(timeout)
        finally:
            self.directory.remove()


class OursHandlerSpool(OursHandler):
    """``CDPHandler`` with the durable spool on (``spool_path``, default options)."""

    kind = "ours_handler_spool"

    def __init__(self, host: str, *, batch: int | None, queue_size: int | None,
                 with_payload: bool = True, logger_name: str = APP_LOGGER) -> None:
        self.directory = SpoolDirectory()
        super().__init__(host, batch=batch, queue_size=queue_size, with_payload=with_payload,
                         logger_name=logger_name, spool_path=self.directory.spool_path)

    def close(self, timeout: float) -> None:
        try:
            super().close(timeout)
        finally:
            self.directory.remove()


def make_subject(kind: str, host: str = "", *, batch: int | None = 20,
                 queue_size: int | None = 10_000, with_payload: bool = True,
                 logger_name: str = APP_LOGGER, overflow: str | None = None,
                 concurrency: int | None = None) -> Subject:
    """Build the subject called ``kind`` (see each class's ``kind``); ``batch`` and
    ``queue_size`` None leave the client's own defaults, ``overflow`` and ``concurrency``
    (``max_concurrent_requests``) are ours only.

    ``logger_name`` lets two logging subjects live side by side in one process.
    """
    if kind == "null":
        return NullSubject(with_payload=with_payload, logger_name=logger_name)
    if kind == "queue":
        return QueueSubject(with_payload=with_payload, logger_name=logger_name)
    if kind == "official":
        return OfficialSubject(host, batch=batch, queue_size=queue_size)
    ours_options: dict[str, Any] = {} if overflow is None else {"overflow": overflow}
    if concurrency is not None:
        ours_options["max_concurrent_requests"] = concurrency
    if kind == "ours_client":
        return OursClient(host, batch=batch, queue_size=queue_size, **ours_options)
    if kind == "ours_handler":
        return OursHandler(host, batch=batch, queue_size=queue_size, with_payload=with_payload,
                           logger_name=logger_name, **ours_options)
    if kind == "ours_client_spool":
        return OursClientSpool(host, batch=batch, queue_size=queue_size)
    if kind == "ours_handler_spool":
        return OursHandlerSpool(host, batch=batch, queue_size=queue_size, with_payload=with_payload,
                                logger_name=logger_name)
    raise ValueError(f"unknown subject {kind!r}")
