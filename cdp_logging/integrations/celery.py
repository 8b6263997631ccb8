"""Celery: :func:`carry_scope` makes the :class:`cdp_logging.scope` open where a task is queued
travel with the task, in its message's headers, and open while the task runs in the worker.

::

    from celery import Celery
    from cdp_logging.integrations.celery import carry_scope

    app = Celery("shop", broker="redis://localhost")
    carry_scope()   # where the app is defined, so both the web process and the worker run it

    # in a request, inside the scope the middleware opened:
    send_welcome_email.delay(order_id=7)   # its events are about the same user
"""

from __future__ import annotations

from typing import Any

import orjson
from celery import signals

from ..reporting import warn
from ..scoping import active_scope, scope

__all__ = ["HEADER", "carry_scope"]

#: The task message header that carries the scope: ``{"user_id", "anonymous_id", "context"}``.
HEADER = "cdp_scope"
#: The scopes open in tasks now, by task id, to close when each ends.
_open: dict[str, scope] = {}


def carry_scope() -> None:
    """Connect Celery's signals (once per process; calling again does nothing): a task queued
    inside a scope carries its fields in the ``cdp_scope`` header, and the worker opens that
    scope while the task runs. A context that JSON cannot hold travels with its odd values as
    text; a task queued outside any scope carries nothing. An eager task (``task_always_eager``,
    ``apply``) runs inside the caller's scope already.

    Example::

        carry_scope()
    """
    signals.before_task_publish.connect(_put_scope_in_headers, weak=False, dispatch_uid=HEADER)
    signals.task_prerun.connect(_open_scope, weak=False, dispatch_uid=HEADER)
    signals.task_postrun.connect(_close_scope, weak=False, dispatch_uid=HEADER)


def _put_scope_in_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    fields = active_scope()
    if fields is None or headers is None:
        return
    try:
        context = orjson.loads(orjson.dumps(fields.context, default=str)) if fields.context else None
    except (TypeError, ValueError) as err:  # a key JSON cannot hold: the ids still travel
        warn("cdp-logging: the scope's context cannot go with the task: %s", err)
        context = None
    headers[HEADER] = {"user_id": fields.user_id, "anonymous_id": fields.anonymous_id, "context": context}


def _open_scope(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    request = getattr(task, "request", None)
    carried = getattr(request, HEADER, None)
    if carried is None:
        carried = (getattr(request, "headers", None) or {}).get(HEADER)
    if not isinstance(carried, dict) or task_id is None:
        return
    try:
        opened = scope(user_id=carried.get("user_id"), anonymous_id=carried.get("anonymous_id"),
                       context=carried.get("context"))
    except TypeError as err:
        warn("cdp-logging: task %s carries a scope that cannot be opened: %s", task_id, err)
        return
    opened.__enter__()
    _open[task_id] = opened


def _close_scope(task_id: str | None = None, **_: Any) -> None:
    opened = _open.pop(task_id, None) if task_id is not None else None
    if opened is not None:
        opened.__exit__(None, None, None)
