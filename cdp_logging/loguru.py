"""loguru as a CDP front: :class:`CDPSink`, a sink for ``logger.add``.

::

    from loguru import logger
    from cdp_logging.loguru import CDPSink

    logger.add(CDPSink(), level="INFO")
    logger.bind(track={"user_id": "42", "event": "Added To Cart"}).info("added to cart")
    logger.info("signed up", identify={"user_id": "42", "traits": {"plan": "pro"}})

A log call asks for a CDP call with the keys of logging's ``extra`` (``track={...}``,
``identify={...}``, ...) in loguru's ``extra`` (``bind``, or the log call's keyword
arguments); ``user_id``, ``anonymous_id`` and ``context`` there (``logger.bind(user_id=...)``,
``logger.contextualize(user_id=...)``) fill the fields the call leaves unset (see
:mod:`cdp_logging.nested`). ``logger.add(CDPHandler())`` works too: the handler reads
loguru's ``extra`` from the record loguru makes for it.
"""

from __future__ import annotations

import threading
from typing import Any

from .client import Analytics
from .errors import InvalidEventError
from .nested import calls_from_values, has_calls
from .reporting import threads_in_report
from .route import FrontClient, send_call

__all__ = ["CDPSink"]


class CDPSink:
    """A loguru sink that sends the calls a log message's ``extra`` asks for; every other
    message costs a set check.

    ``client`` is the :class:`~cdp_logging.Analytics` to send through; without one, the sink
    makes its own on its first call, from ``options`` (those of ``Analytics``: the write key
    defaults to ``CDP_WRITE_KEY``, the host to ``CDP_HOST``). It never raises into the log
    call: a call it cannot send is counted as invalid and reported, naming the file and line.
    loguru calls :meth:`stop` when the sink is removed (``logger.remove()``): the sink's own
    client then delivers what is queued and stops.

    Example::

        logger.add(CDPSink(client=analytics), level="INFO")
    """

    def __init__(self, client: Analytics | None = None, **options: Any) -> None:
        self._holder = FrontClient("CDPSink", client, options)

    def __repr__(self) -> str:
        return f"<CDPSink {self._holder.current!r}>"

    @property
    def client(self) -> Analytics:
        """The client the sink sends through (made on first use when none was given)."""
        return self._holder.get()

    def write(self, message: Any) -> None:
        """Send what the message's ``extra`` asks for (loguru calls it with each message)."""
        record = message.record
        extra = record["extra"]
        if not has_calls(extra) or (threads_in_report and threading.get_ident() in threads_in_report):
            return
        client = self.client

        def origin() -> str:
            return f"loguru {record['name']} at {record['file'].path}:{record['line']}"

        try:
            timestamp = record["time"].timestamp()
            calls = calls_from_values(extra, None)
        except InvalidEventError as err:
            client.count_invalid(err.with_origin(origin()))
            return
        except Exception as err:  # whatever extra holds, the log call goes on
            client.count_invalid(_failure(err, origin()))
            return
        for call, fields in calls:
            try:
                send_call(client, call, fields, origin, timestamp)
            except Exception as err:
                client.count_invalid(_failure(err, origin(), call))

    __call__ = write

    def stop(self) -> None:
        """Deliver what is queued and stop the client, if the sink made it (loguru calls this
        when the sink is removed)."""
        if self._holder.made and self._holder.current is not None:
            self._holder.current.close_and_flush()


def _failure(err: Exception, origin: str, call: str = "track") -> InvalidEventError:
    error = InvalidEventError(call, None, f"could not be sent: {type(err).__name__}: {err}", origin=origin)
    error.__cause__ = err
    return error
