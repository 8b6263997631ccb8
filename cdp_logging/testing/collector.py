"""A local HTTP server that speaks the Customer.io Data Pipelines API, for development and tests.

`LocalCollector` answers ``POST /v1/batch`` and the six single-call endpoints on 127.0.0.1 the way
the real API does (Basic auth, gzip bodies, the 32 KB / 500 KB limits, the fields each call
requires), keeps every message it accepts, and can be told to fail or to answer slowly, so an
application's delivery, retries and shutdown can be tested end to end over real HTTP::

    with LocalCollector(write_key="test-key") as collector:
        analytics = Analytics("test-key", host=collector.url)
        analytics.track("42", "Order Completed", {"order_id": 7})
        analytics.flush()
        [message] = collector.wait_for(1)

It uses the standard library only, so it runs wherever the library does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from ..constants import CALL_TYPES, MAX_BATCH_BYTES, MAX_MESSAGE_BYTES
from .checks import Message, MessageError, RejectedMessage
from .lines import format_event_line
from .wire import ReceivedRequest, planned_failure, logger
from .server import CollectorServer
from .receiving import Receiver


__all__ = [
    "CALL_TYPES",
    "MAX_BATCH_BYTES",
    "MAX_MESSAGE_BYTES",
    "LocalCollector",
    "MessageError",
    "ReceivedRequest",
    "RejectedMessage",
    "format_event_line",
]


class LocalCollector(Receiver):
    """A Data Pipelines compatible HTTP server on 127.0.0.1 that keeps what it receives.

    Point a client's ``host`` at `url`. ``port=0`` picks a free port. With ``write_key`` the Basic
    auth user name must equal it; without, any non-empty user name is accepted; the password must be
    empty either way, as the API asks. In strict mode (``strict=True``, or a request carrying
    ``X-Strict-Mode: 1``) one invalid message makes the whole request answer 400 with the list of
    errors; otherwise, like the API, valid messages are kept, invalid ones land in `rejected`, and
    the answer is 200. ``on_message`` is called with each accepted message, on the server's thread;
    ``on_refused`` with each request answered with an error status or holding invalid messages
    (the request, and the messages refused), as it happens.

    What it keeps is bounded: the newest ``max_kept`` accepted messages and rejected messages,
    and the newest requests holding at most ``max_kept`` messages between them (each a ring;
    `let_go` counts what made room); a request refused before its messages were read (wrong
    key, wrong path, a body too large or not JSON) is recorded without its body. The key, the
    path and the length are checked before a byte of the body is read: a body over the API's
    limits (``max_batch_bytes``, ``max_message_bytes``) is answered 413 and never read into
    memory. A connection silent for ``idle_timeout`` seconds is closed, and each request must
    arrive whole within ``idle_timeout`` (a client trickling a byte at a time is cut off), so
    idle or slow clients do not hold threads; at most ``max_connections`` (default 128) are
    open at once, a new one past it answered 503. JSON nested deeper than `MAX_DEPTH` is
    answered 400. A refusal's body is JSON with ``code`` and ``message`` (what clients read)
    and the API's ``meta.errors`` list.

    Example::

        >>> import requests
        >>> with LocalCollector(write_key="test-key") as collector:
        ...     requests.post(f"{collector.url}/v1/track", auth=("test-key", ""),
        ...                   json={"userId": "42", "event": "Order Completed"}).status_code
        ...     collector.events(event="Order Completed")[0]["type"]
        200
        'track'
    """

    def start(self) -> LocalCollector:
        """Bind the port and serve on a daemon thread; returns the collector itself.

        >>> collector = LocalCollector().start()
        >>> collector.stop()
        """
        if self._server is not None:
            raise RuntimeError("the collector is already running")
        self._stopping = threading.Event()
        server = CollectorServer((self.host, self._requested_port), self)
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            # A short poll keeps stop() quick; the loop only watches the listening socket.
            kwargs={"poll_interval": 0.02},
            name=f"cdp-logging-collector:{self._port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("collector listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and close the socket. Safe to repeat.

        >>> collector = LocalCollector().start()
        >>> collector.stop()
        >>> collector.stop()
        """
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)
        logger.debug("collector on port %s stopped", self._port)

    def __enter__(self) -> LocalCollector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        where = f" {self.url}" if self._port is not None else ""
        return f"<LocalCollector{where} {state}>"

    @property
    def port(self) -> int:
        """The TCP port the collector listens (or last listened) on.

        >>> with LocalCollector(port=0) as collector:
        ...     collector.port > 0
        True
        """
        if self._port is None:
            raise RuntimeError("the collector has not been started: call start() or use `with`")
        return self._port

    @property
    def url(self) -> str:
        """The base URL to give a client as its ``host``, e.g. ``http://127.0.0.1:54321``.

        >>> with LocalCollector() as collector:
        ...     collector.url.startswith("http://127.0.0.1:")
        True
        """
        return f"http://{self.host}:{self.port}"

    @property
    def messages(self) -> list[Message]:
        """A snapshot of the accepted messages, in arrival order, each with its ``type``.

        Example: ``assert collector.messages[0]["event"] == "Order Completed"``.
        """
        with self._condition:
            return list(self._messages)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of every request answered, failed and refused ones included::

        assert [request.status for request in collector.requests] == [503, 200]
        """
        with self._condition:
            return [request for request, _ in self._requests]

    @property
    def rejected(self) -> list[RejectedMessage]:
        """A snapshot of the messages refused for being invalid, with their errors::

        assert collector.rejected[0].errors[0].reason == "missing"
        """
        with self._condition:
            return list(self._rejected)

    @property
    def let_go(self) -> dict[str, int]:
        """How many of the oldest messages, requests and rejections were let go to keep only
        the newest ``max_kept`` messages' worth of each (since the start, or `clear`)::

            assert collector.let_go == {"messages": 0, "requests": 0, "rejected": 0}
        """
        with self._condition:
            return dict(self._let_go)

    def events(
        self,
        type: str | None = None,
        event: str | None = None,
        user_id: str | None = None,
    ) -> list[Message]:
        """The accepted messages matching every filter given::

        [order] = collector.events("track", event="Order Completed", user_id="42")
        """
        return [
            message
            for message in self.messages
            if (type is None or message.get("type") == type)
            and (event is None or message.get("event") == event)
            and (user_id is None or message.get("userId") == user_id)
        ]

    def message_ids(self) -> list[str]:
        """The ``messageId`` of each accepted message that has one, in arrival order::

        ids = collector.message_ids()
        assert len(ids) == len(set(ids)), "a retry created duplicates"
        """
        return [
            message_id
            for message in self.messages
            if isinstance(message_id := message.get("messageId"), str)
        ]

    def clear(self) -> None:
        """Forget received messages, requests and rejections; planned failures and delay remain::

        collector.clear()
        assert collector.messages == []
        """
        with self._condition:
            self._messages.clear()
            self._requests.clear()
            self._rejected.clear()
            self._let_go = dict.fromkeys(self._let_go, 0)
            self._accepted = 0
            self._messages_in_requests = 0

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Message]:
        """Block until at least ``count`` messages were accepted; return those kept (the newest
        ``max_kept``).

        Raises `TimeoutError` after ``timeout`` seconds, its message listing what did arrive::

            analytics.track("42", "Order Completed")
            [message] = collector.wait_for(1, timeout=2.0)
        """
        with self._condition:
            if not self._condition.wait_for(lambda: self._accepted >= count, timeout):
                raise TimeoutError(self._describe_shortfall(count, timeout))
            return list(self._messages)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests were answered (failed ones too); return those
        kept.

        Useful when the requests of interest keep no message, such as those answered by
        `fail_next`. Raises `TimeoutError` after ``timeout`` seconds::

            collector.fail_next(1, status=500)
            analytics.track("42", "Order Completed")
            [failed] = collector.wait_for_requests(1)
        """
        with self._condition:
            answered = lambda: len(self._requests) + self._let_go["requests"] >= count  # noqa: E731 - read under the condition
            if not self._condition.wait_for(answered, timeout):
                raise TimeoutError(self._describe_shortfall(count, timeout, unit="requests"))
            return [request for request, _ in self._requests]

    def _describe_shortfall(self, count: int, timeout: float, unit: str = "messages") -> str:
        statuses = ", ".join(str(request.status) for request, _ in list(self._requests)[-20:])
        lines = [
            f"expected at least {count} {unit} within {timeout:g} s; "
            f"got {self._accepted} messages from {len(self._requests) + self._let_go['requests']} "
            f"requests (statuses: {statuses or 'none'}), "
            f"{len(self._rejected) + self._let_go['rejected']} rejected"
        ]
        lines += [f"  {format_event_line(message)}" for message in list(self._messages)[-20:]]
        for rejected in list(self._rejected)[-10:]:
            reasons = "; ".join(str(error) for error in rejected.errors)
            lines.append(f"  rejected on {rejected.path}: {reasons}")
        return "\n".join(lines)

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: float | str | None = None,
        body: bytes | str | Mapping[str, Any] | None = None,
    ) -> None:
        """Answer the next ``n`` requests with ``status``, keeping none of their messages.

        The failure comes before any check, the way a proxy in front of the API fails requests.
        ``retry_after`` (seconds) becomes the ``Retry-After`` header. ``body`` replaces the
        default JSON error body (a mapping is sent as JSON, text and bytes as they are). Calls
        queue up: the failures of a second call follow those of the first::

            collector.fail_next(2, status=429, retry_after=1)  # then answers normally again
        """
        if n < 0:
            raise ValueError(f"n must be zero or more, not {n}")
        if n == 0:
            return
        failure = planned_failure(status, retry_after, body, remaining=n)
        with self._condition:
            self._planned_failures.append(failure)

    def fail_when(
        self,
        predicate: Callable[[str, Any], bool] | None,
        status: int = 503,
        retry_after: float | str | None = None,
        body: bytes | str | Mapping[str, Any] | None = None,
    ) -> None:
        """Fail every request for which ``predicate(path, payload)`` is true; None removes it.

        ``payload`` is the decoded JSON body, or None when it could not be decoded::

            collector.fail_when(lambda path, payload: path == "/v1/batch", status=500)
            collector.fail_when(None)
        """
        rule = (
            None
            if predicate is None
            else (predicate, planned_failure(status, retry_after, body, 0))
        )
        with self._condition:
            self._failure_rule = rule

    def set_delay(self, seconds: float) -> None:
        """Hold every answer for ``seconds`` before sending it (0 for none)::

        collector.set_delay(0.5)  # to test a client's timeout
        """
        if seconds < 0:
            raise ValueError(f"the delay must be zero or more seconds, not {seconds}")
        with self._condition:
            self._delay = seconds
