"""Every live client, flushed at exit, reset in forked children and closed at the end of a
multiprocessing child."""

from __future__ import annotations


import atexit
import os
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Protocol



if TYPE_CHECKING:
    # Imported when a client has a spool: a client without one never loads sqlite3.
    pass


class Client(Protocol):
    """What the registry asks of a client (:class:`~cdp_logging.Analytics`)."""

    host: str
    shutdown_timeout: float

    @property
    def closed(self) -> bool: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close_and_flush(self, timeout: float | None = None) -> bool: ...

    def _begin_close(self, timeout: float | None) -> None: ...

    def _shutdown_begins(self, deadline: float) -> None: ...

    def _after_fork_in_child(self) -> None: ...


#: Every client alive in this process (held weakly): the exit hook closes them, a fork resets them.
live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


_registered = False


_registration_lock = threading.Lock()


def track_client(client: Client) -> None:
    """Count ``client`` among the live clients, registering the exit hook with the first."""
    global _registered
    live_clients.add(client)
    if not _registered:
        with _registration_lock:
            if not _registered:
                # Registered at the first client rather than at import, so that it runs before
                # atexit functions registered earlier by the application's imports.
                atexit.register(close_all_clients)
                os.register_at_fork(after_in_child=_after_fork_in_child)
                _registered = True


def close_all_clients(timeout: float | None = None) -> None:
    """Deliver and close every live client, each within its ``shutdown_timeout`` (or
    ``timeout``); the clients close side by side, so the whole takes no longer than the
    longest of them.

    Runs by itself at interpreter exit, and at the end of a multiprocessing child (which
    skips atexit). Call it yourself where a process ends without either: a signal handler,
    the end of a short-lived process (a Lambda invocation), or a Celery prefork child, whose
    pool ends it with os._exit::

        @celery.signals.worker_process_shutdown.connect
        def deliver_events(**kwargs):
            cdp_logging.close_all_clients()
    """
    begin_shutdown(timeout)
    clients = list(live_clients)
    for client in clients:
        try:
            client._begin_close(timeout)
        except Exception:  # noqa: S110 - at exit every client gets its turn
            pass
    for client in clients:
        try:
            client.close_and_flush(timeout)
        except Exception:  # noqa: S110 - at exit every client gets its turn
            pass


def begin_shutdown(timeout: float | None = None) -> None:
    """The process begins to shut down (atexit, ``logging.shutdown()``, :func:`close_all_clients`):
    every live client's waits from now on, flush and close alike, end by one deadline, now
    plus its ``shutdown_timeout`` (or ``timeout``). Set once per client: a later step of the
    same shutdown (``close()`` after ``flush()``, atexit after ``logging.shutdown()``) finds
    the deadline already running instead of starting a new one."""
    now = time.monotonic()
    for client in list(live_clients):
        try:
            client._shutdown_begins(now + (client.shutdown_timeout if timeout is None else timeout))
        except Exception:  # noqa: S110 - at exit every client gets its turn
            pass


def flush_all_clients(timeout: float | None = None) -> bool:
    """Deliver what every live client has queued, without closing them; True when all was.

    Waits at most ``timeout`` seconds in all (None: each client at most its own
    ``shutdown_timeout``). For the end of a unit of work in a process that lives on, such
    as an AWS Lambda invocation: see :func:`cdp_logging.flush_after`.

    Example::

        def handler(event, context):
            analytics.track(user_id=event["user_id"], event="Invoked")
            cdp_logging.flush_all_clients(timeout=2.0)
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    delivered = True
    for client in list(live_clients):
        if client.closed:
            continue
        if deadline is None:
            left = client.shutdown_timeout
        else:
            left = max(0.0, deadline - time.monotonic())
        try:
            delivered = client.flush(timeout=left) and delivered
        except Exception:
            delivered = False
    return delivered


def _after_fork_in_child() -> None:
    for client in list(live_clients):
        client._after_fork_in_child()
    _close_at_multiprocessing_exit()


class _ForkToken:
    """A weak-referenceable key for multiprocessing's after-fork registry."""


_FORK_TOKEN = _ForkToken()


def _close_at_multiprocessing_exit() -> None:
    """multiprocessing's forked children end with os._exit, which skips atexit; its own
    exit finalizers still run, so deliver from there."""
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    # The registry of finalizers is cleared as the child starts, after-fork callbacks run
    # after that: register the finalizer from one.
    util.register_after_fork(
        _FORK_TOKEN, lambda _token: util.Finalize(None, close_all_clients, exitpriority=10)
    )
