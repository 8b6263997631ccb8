"""One call's way in for every logging front (the handler's general path, the structlog and
loguru fronts): the message built and checked by :func:`~cdp_logging.messages.build_message`
(where :class:`cdp_logging.scope` fills unset fields), then :meth:`Analytics.enqueue
<cdp_logging.Analytics.enqueue>`, which encodes and queues it; what is refused is counted and
reported with where it came from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .client import Analytics
from .errors import InvalidEventError
from .fast import fast_message
from .mapping import call_fields
from .messages import build_message


def send_call(client: Analytics, call: str, fields: dict[str, Any], origin: Callable[[], str],
              timestamp: float | None = None) -> None:
    """Build, check and queue one call through ``client``; never raises for a bad call: it is
    counted (``stats()["invalid"]``) and reported with ``origin()`` (the log call it came
    from), as every front reports. With ``timestamp`` (epoch seconds, the moment of the log
    call), ``fields`` may be a payload as logged (camelCase names too; see
    :func:`~cdp_logging.mapping.call_fields`), and the common shapes take the handler's
    one-step build (:func:`~cdp_logging.fast.fast_message`).

    Example::

        send_call(analytics, "track", {"user_id": "42", "event": "Added"}, lambda: "shop.py:12")
    """
    try:
        message = fast_message(call, fields, timestamp) if type(timestamp) is float and type(fields) is dict else None
        if message is None:
            if timestamp is not None:  # a payload as logged: checked, in snake_case, timestamped
                fields = call_fields(call, fields, timestamp)
            message = build_message(call, **fields)
    except InvalidEventError as err:
        client.count_invalid(err.with_origin(origin()))
        return
    client.enqueue(message, origin)
