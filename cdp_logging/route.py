"""One call's way in for every logging front (the handler's general path, the structlog and
loguru fronts): the message built and checked by :func:`~cdp_logging.messages.build_message`
(where :class:`cdp_logging.scope` fills unset fields), then :meth:`Analytics.enqueue
<cdp_logging.Analytics.enqueue>`, which encodes and queues it; what is refused is counted and
reported with where it came from."""

from __future__ import annotations

import threading
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


class FrontClient:
    """The client a logging front (the structlog processor, the loguru sink) sends through:
    the one it was given, or one made from its options the first time it is needed, which
    the front then closes.

    Example::

        holder = FrontClient("CDPSink", None, {"flush_interval": 5.0})
        holder.get().track(user_id="42", event="Signed Up")
    """

    def __init__(self, front: str, client: Analytics | None, options: dict[str, Any]) -> None:
        if client is not None and options:
            raise TypeError(f"{front}: give either client= or client options, not both "
                            f"(got {', '.join(sorted(options))})")
        if client is not None and not isinstance(client, Analytics):
            raise TypeError(f"{front} option 'client' must be a cdp_logging.Analytics, got {client!r}")
        #: The client, once there is one.
        self.current = client
        #: Whether the front made its client (and so closes it).
        self.made = client is None
        self._options = options
        self._lock = threading.Lock()

    def get(self) -> Analytics:
        """The client, made now if this is the first time it is needed."""
        client = self.current
        if client is None:
            with self._lock:
                if self.current is None:
                    self.current = Analytics(**self._options)
                client = self.current
        return client
