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

import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import socket
import socketserver
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple

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

from ..constants import BATCH_PATH, CALL_TYPES, MAX_BATCH_BYTES, MAX_MESSAGE_BYTES

logger = logging.getLogger(__name__)

# The API's limits, call types and paths are named once, in constants.py.
_SINGLE_CALL_PATHS = {f"/v1/{call_type}": call_type for call_type in CALL_TYPES}

_STRICT_MODE_HEADER = "X-Strict-Mode"
_TRUE_HEADER_VALUES = frozenset({"1", "true", "yes"})

# Past this a body is refused unread and the connection closed: reading it only to answer 413
# would let one bad request tie up memory.
_MAX_READ_BYTES = 64 * 1024 * 1024

#: JSON nested deeper than this is refused (400): no real event nests so deep, and a parser
#: recursing without end would lose the connection.
MAX_DEPTH = 64
#: How many messages, rejections and requests a collector keeps by default (the newest).
DEFAULT_MAX_KEPT = 10_000
#: Seconds a connection may stay silent (between requests, or within one) before it is closed.
DEFAULT_IDLE_TIMEOUT = 30.0

_ID_FIELDS = ("userId", "anonymousId", "previousId", "groupId", "messageId")
_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
_TIMESTAMP_FIELDS = ("timestamp", "sentAt", "originalTimestamp")

# The OpenAPI file types these fields `format: date-time`, which is RFC 3339: an offset is required.
# Ranges are checked field by field (a 30th of February passes): a regular expression is cheap
# enough to run on every message.
_RFC3339 = re.compile(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"[Tt ](?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?"
    r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)

Message = dict[str, Any]
"""One CDP message as decoded from JSON: ``{"type": "track", "event": ..., "userId": ...}``."""


@dataclass(frozen=True)
class MessageError:
    """One thing wrong with one message of a request.

    ``index`` is the message's position in the batch (0 for a single call), ``field`` the top-level
    field at fault ("" when the message as a whole is), ``reason`` a short code (``missing``,
    ``empty``, ``wrong_type``, ``null``, ``unknown_type``, ``type_mismatch``, ``bad_timestamp``,
    ``not_object``, ``too_large``) and ``detail`` a sentence for people::

        >>> error = MessageError(1, "m-2", "event", "missing", "a track call needs an event name")
        >>> str(error)
        'message 1 (messageId m-2): event: a track call needs an event name'
    """

    index: int
    message_id: str | None
    field: str
    reason: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        """The error as it appears in a 400 answer's ``errors`` list.

        >>> MessageError(0, None, "userId", "wrong_type", "must be a string").as_json()["field"]
        'userId'
        """
        return {
            "index": self.index,
            "messageId": self.message_id,
            "field": self.field,
            "reason": self.reason,
            "message": self.detail,
        }

    def __str__(self) -> str:
        where = f"message {self.index}"
        if self.message_id is not None:
            where += f" (messageId {self.message_id})"
        if self.field:
            return f"{where}: {self.field}: {self.detail}"
        return f"{where}: {self.detail}"


@dataclass(frozen=True)
class RejectedMessage:
    """A message the collector refused, with every reason it found::

    # after a client sent {"type": "track", "userId": "42"}, without an event
    [rejected] = collector.rejected
    assert rejected.errors[0].field == "event"
    """

    message: Any
    errors: tuple[MessageError, ...]
    path: str


@dataclass(frozen=True)
class ReceivedRequest:
    """What the collector saw of one HTTP request and how it answered.

    ``body`` holds the bytes as sent (still gzip-compressed if they were), ``payload`` the decoded
    JSON (None when it could not be decoded), ``errors`` the error lines of the answer. ``headers``
    keeps the names as sent; `header` looks one up regardless of case. The headers and body are left
    out of the repr, so that a write key in ``Authorization`` does not end up in test output::

        # after a client posted one gzip-compressed batch
        [request] = collector.requests
        assert (request.path, request.status) == ("/v1/batch", 200)
        assert request.header("content-encoding") == "gzip"
    """

    method: str
    path: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    payload: Any = field(repr=False)
    status: int
    errors: tuple[str, ...]
    time: float
    client_address: tuple[str, int]

    def header(self, name: str) -> str | None:
        """The value of header ``name``, matched without regard to case, or None::

        assert request.header("content-type") == "application/json"
        """
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


class _Response(NamedTuple):
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    errors: tuple[str, ...] = ()
    #: Refused before its messages were looked at (auth, path, framing, encoding): its body
    #: is not kept.
    refused: bool = False


class _Decoded(NamedTuple):
    payload: Any
    size: int
    error: _Response | None


@dataclass
class _PlannedFailure:
    status: int
    body: bytes
    content_type: str
    retry_after: str | None
    remaining: int


class LocalCollector:
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
    key, wrong path, a body too large or not JSON) is recorded without its body. A connection
    silent for ``idle_timeout`` seconds is closed, so idle clients do not hold threads; JSON
    nested deeper than `MAX_DEPTH` is answered 400.

    >>> import requests
    >>> with LocalCollector(write_key="test-key") as collector:
    ...     requests.post(f"{collector.url}/v1/track", auth=("test-key", ""),
    ...                   json={"userId": "42", "event": "Order Completed"}).status_code
    ...     collector.events(event="Order Completed")[0]["type"]
    200
    'track'
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        write_key: str | None = None,
        strict: bool = False,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        on_message: Callable[[Message], object] | None = None,
        max_kept: int = DEFAULT_MAX_KEPT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        on_refused: Callable[[ReceivedRequest, list[RejectedMessage]], object] | None = None,
    ) -> None:
        if isinstance(max_kept, bool) or not isinstance(max_kept, int) or max_kept < 1:
            raise ValueError(f"max_kept must be a whole number of at least 1, not {max_kept!r}")
        if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)) or not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be a number of seconds over 0, not {idle_timeout!r}")
        self.max_kept = max_kept
        self.idle_timeout = float(idle_timeout)
        self.host = host
        self.strict = strict
        self.max_message_bytes = max_message_bytes
        self.max_batch_bytes = max_batch_bytes
        self.on_message = on_message
        self.on_refused = on_refused
        self._requested_port = port
        self._write_key = write_key
        self._condition = threading.Condition()
        self._messages: deque[Message] = deque(maxlen=max_kept)
        #: Each request with the number of messages its payload holds.
        self._requests: deque[tuple[ReceivedRequest, int]] = deque()
        self._messages_in_requests = 0
        self._rejected: deque[RejectedMessage] = deque(maxlen=max_kept)
        self._let_go = {"messages": 0, "requests": 0, "rejected": 0}
        #: Messages accepted since the start (or clear()), those let go included.
        self._accepted = 0
        self._planned_failures: deque[_PlannedFailure] = deque()
        self._failure_rule: tuple[Callable[[str, Any], bool], _PlannedFailure] | None = None
        self._delay = 0.0
        self._server: _CollectorServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._stopping = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalCollector:
        """Bind the port and serve on a daemon thread; returns the collector itself.

        >>> collector = LocalCollector().start()
        >>> collector.stop()
        """
        if self._server is not None:
            raise RuntimeError("the collector is already running")
        self._stopping = threading.Event()
        server = _CollectorServer((self.host, self._requested_port), self)
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

    # -- what was received ---------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """A snapshot of the accepted messages, in arrival order, each with its ``type``::

        assert collector.messages[0]["event"] == "Order Completed"
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

    # -- failure injection ---------------------------------------------------------------------

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
        failure = _planned_failure(status, retry_after, body, remaining=n)
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
            else (predicate, _planned_failure(status, retry_after, body, 0))
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

    # -- answering (called on the server's threads) --------------------------------------------

    def _answer(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        client_address: tuple[str, int],
        framing_error: _Response | None,
    ) -> _Response | None:
        """Decide the answer and record the request; None when the collector stopped meanwhile."""
        received_at = time.time()
        path = target.partition("?")[0]
        decoded = (
            _Decoded(None, 0, framing_error) if framing_error else self._decode(path, headers, body)
        )
        with self._condition:
            delay = self._delay
        # Waiting on the stop event lets stop() cut a long delay short; the request is then
        # dropped unanswered, as a server going down would.
        if delay:
            logger.debug("holding the answer to %s %s for %g s", method, path, delay)
            if self._stopping.wait(delay):
                return None

        accepted: list[Message] = []
        rejected: list[RejectedMessage] = []
        failure = None if framing_error else self._take_failure(path, decoded.payload)
        if framing_error is not None:
            response = framing_error
        elif failure is not None:
            response = _Response(
                failure.status,
                failure.body,
                failure.content_type,
                (("Retry-After", failure.retry_after),) if failure.retry_after else (),
                errors=(f"failure planned by the test: status {failure.status}",),
            )
        else:
            response = self._check_and_sort(method, path, headers, decoded, accepted, rejected)

        if response.refused:
            # Kept, a refused body would let anyone who can connect fill the memory.
            body, decoded = b"", decoded._replace(payload=None)
        request = ReceivedRequest(
            method=method,
            path=path,
            headers=headers,
            body=body,
            payload=decoded.payload,
            status=response.status,
            errors=response.errors,
            time=received_at,
            client_address=client_address,
        )
        with self._condition:
            self._keep_request(request, _message_count(decoded.payload))
            self._keep("messages", self._messages, accepted)
            self._keep("rejected", self._rejected, rejected)
            self._accepted += len(accepted)
            self._condition.notify_all()
        logger.debug(
            "%s %s from port %s -> %d (%d accepted, %d rejected)",
            method,
            path,
            client_address[1],
            response.status,
            len(accepted),
            len(rejected),
        )
        self._notify(accepted)
        if self.on_refused is not None and (response.status >= 400 or rejected):
            try:
                self.on_refused(request, rejected)
            except Exception:
                logger.exception("on_refused callback raised for %s %s", method, path)
        return response

    def _keep(self, name: str, ring: deque[Any], items: list[Any]) -> None:
        """With the condition held: add to a ring, counting the oldest it lets go."""
        over = len(ring) + len(items) - self.max_kept
        if over > 0:
            self._let_go[name] += over
        ring.extend(items)

    def _keep_request(self, request: ReceivedRequest, messages: int) -> None:
        """With the condition held: keep the newest requests whose payloads hold at most
        ``max_kept`` messages between them (and the newest request, however many)."""
        self._requests.append((request, messages))
        self._messages_in_requests += messages
        while len(self._requests) > 1 and (len(self._requests) > self.max_kept
                                            or self._messages_in_requests > self.max_kept):
            _, dropped = self._requests.popleft()
            self._messages_in_requests -= dropped
            self._let_go["requests"] += 1

    def _decode(self, path: str, headers: dict[str, str], body: bytes) -> _Decoded:
        """Decompress and parse the body, or say why it cannot be."""
        limit = self.max_batch_bytes if path == BATCH_PATH else self.max_message_bytes
        encoding = _header(headers, "Content-Encoding", "identity").strip().lower()
        if encoding == "gzip":
            try:
                body = _gunzip(body, limit)
            except _TooLarge:
                return _Decoded(None, 0, _error(413, f"body is over {limit} bytes decompressed"))
            except ValueError as error:
                return _Decoded(None, 0, _error(400, f"body is not valid gzip: {error}"))
        elif encoding != "identity":
            return _Decoded(None, 0, _error(415, f"unsupported Content-Encoding {encoding!r}"))
        if len(body) > limit:
            text = f"body is {len(body)} bytes, over the {limit} byte limit"
            return _Decoded(None, len(body), _error(413, text))
        too_deep = _error(400, f"body is JSON nested more than {MAX_DEPTH} levels deep")
        try:
            # UnicodeDecodeError is a ValueError too: JSON on the wire is UTF-8 (RFC 8259).
            payload = _JSON_DECODER.decode(body.decode("utf-8"))
        except ValueError as error:
            return _Decoded(None, len(body), _error(400, f"body is not valid JSON: {error}"))
        except RecursionError:  # far deeper than MAX_DEPTH: the parser gave up first
            return _Decoded(None, len(body), too_deep)
        if _deeper_than(payload, MAX_DEPTH):
            return _Decoded(None, len(body), too_deep)
        return _Decoded(payload, len(body), None)

    def _take_failure(self, path: str, payload: Any) -> _PlannedFailure | None:
        with self._condition:
            if self._planned_failures:
                failure = self._planned_failures[0]
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._planned_failures.popleft()
                return failure
            rule = self._failure_rule
        if rule is None:
            return None
        predicate, failure = rule
        try:
            return failure if predicate(path, payload) else None
        except Exception:
            logger.exception("the fail_when predicate raised; answering normally")
            return None

    def _check_and_sort(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        decoded: _Decoded,
        accepted: list[Message],
        rejected: list[RejectedMessage],
    ) -> _Response:
        """Check the request and its messages, sorting them into accepted and rejected."""
        default_type = _SINGLE_CALL_PATHS.get(path)
        if method != "POST" or (path != BATCH_PATH and default_type is None):
            endpoints = ", ".join([BATCH_PATH, *_SINGLE_CALL_PATHS])
            return _error(404, f"no endpoint {method} {path}; POST to one of {endpoints}")
        auth_error = self._check_auth(headers)
        if auth_error is not None:
            return _error(401, auth_error, (("WWW-Authenticate", 'Basic realm="cdp"'),))
        if decoded.error is not None:
            return decoded.error

        payload = decoded.payload
        if default_type is None:
            if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
                return _error(400, 'a batch body must be an object with a "batch" list')
            messages: list[Any] = payload["batch"]
        else:
            if not isinstance(payload, dict):
                return _error(400, f"the body of {path} must be one message object")
            # A copy, so that the type filled in from the path leaves the recorded payload as sent.
            messages = [dict(payload)]

        strict = self.strict or (
            _header(headers, _STRICT_MODE_HEADER, "").strip().lower() in _TRUE_HEADER_VALUES
        )
        # A body within the limit cannot hold a message over it, so each need not be encoded again.
        size_limit = self.max_message_bytes if decoded.size > self.max_message_bytes else None
        message_errors: list[MessageError] = []
        valid: list[Message] = []
        for index, message in enumerate(messages):
            found = _check_message(message, index, default_type, strict, size_limit)
            if found:
                message_errors += found
                rejected.append(RejectedMessage(message, tuple(found), path))
            else:
                valid.append(message)
        error_lines = tuple(str(error) for error in message_errors)
        if strict and message_errors:
            body = {
                "meta": {"errors": list(error_lines)},
                "errors": [error.as_json() for error in message_errors],
            }
            return _Response(400, _json_bytes(body), errors=error_lines)
        accepted += valid
        # The documented answer: "A successful request returns an empty object response."
        return _Response(200, b"{}", errors=error_lines)

    def _check_auth(self, headers: dict[str, str]) -> str | None:
        """Why the request's credentials are refused, or None when they are accepted."""
        authorization = _header(headers, "Authorization", "")
        if not authorization:
            return "missing Authorization: use Basic auth, the write key as user name, no password"
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            # Region API keys go as Bearer tokens (transport.authorization), as the API takes
            # them. Imported here: the collector alone does not load requests.
            from ..delivery.transport import key_region

            if key_region(token.strip()) is None:
                return ("Bearer auth is for region API keys (pk_us_, sk_us_, pk_eu_, sk_eu_); "
                        "send other keys as Basic auth")
            return self._check_key(token.strip())
        if scheme.lower() != "basic":
            # Not echoed: a client that sends its bare write key would see it in the answer.
            return "Authorization is neither of the Basic nor the Bearer scheme"
        try:
            credentials = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "Basic credentials are not valid base64 of UTF-8 'user:password'"
        user, colon, password = credentials.partition(":")
        if not colon:
            return "Basic credentials lack the ':' between user name and password"
        if not user:
            return "the user name (the write key) is empty"
        if password:
            return "the password must be empty: the write key goes in the user name"
        return self._check_key(user)

    def _check_key(self, key: str) -> str | None:
        if self._write_key is not None and not hmac.compare_digest(
            key.encode("utf-8"), self._write_key.encode("utf-8")
        ):
            return "the write key is not the one this collector expects"
        return None

    def _notify(self, accepted: list[Message]) -> None:
        callback = self.on_message
        if callback is None:
            return
        for message in accepted:
            try:
                callback(message)
            except Exception:
                # The message is kept and the client answered 200 regardless: a failing display
                # callback must not make the client resend.
                logger.exception("on_message callback raised for a %s", message.get("type"))


# -- message checks ----------------------------------------------------------------------------


def _check_message(
    message: Any,
    index: int,
    default_type: str | None,
    strict: bool,
    max_message_bytes: int | None,
) -> list[MessageError]:
    """Everything wrong with one message, the way the API's schema sees it; [] when valid.

    A single-call message without ``type`` gets the endpoint's (the dict is updated in place).
    This runs for every message the collector receives, so the valid path does as little as it can.
    """
    if type(message) is not dict:
        return [MessageError(index, None, "", "not_object", "a message must be a JSON object")]
    get = message.get
    errors: list[MessageError] = []

    if strict and None in message.values():
        for name, value in message.items():
            if value is None:
                errors.append(_fault(message, index, name, "null", _NULL_DETAIL))

    call_type = get("type")
    if call_type is None:
        if default_type is None:
            detail = f"a batch item needs a type, one of {', '.join(CALL_TYPES)}"
            errors.append(_fault(message, index, "type", "missing", detail))
            return errors
        call_type = message["type"] = default_type
    elif call_type not in CALL_TYPES:
        detail = f"{call_type!r} is not one of {', '.join(CALL_TYPES)}"
        errors.append(_fault(message, index, "type", "unknown_type", detail))
        return errors
    elif default_type is not None and call_type != default_type:
        detail = f"{call_type!r} sent to the {default_type} endpoint"
        errors.append(_fault(message, index, "type", "type_mismatch", detail))

    wrongly_typed: list[str] = []
    for name in _ID_FIELDS:
        value = get(name)
        if value is not None and type(value) is not str:
            wrongly_typed.append(name)
            detail = f"must be a string, not {_json_type(value)}"
            errors.append(_fault(message, index, name, "wrong_type", detail))

    if call_type == "alias":
        _require(
            message, index, "previousId", "an alias call needs the previousId to merge", errors
        )
        _require(message, index, "userId", "an alias call needs the userId to keep", errors)
    elif not (get("userId") or get("anonymousId")) and not (
        "userId" in wrongly_typed or "anonymousId" in wrongly_typed
    ):
        detail = f"a {call_type} call needs a userId or an anonymousId"
        errors.append(_fault(message, index, "userId", "missing", detail))
    if call_type == "track":
        event = get("event")
        if event is not None and type(event) is not str:
            detail = f"must be a string, not {_json_type(event)}"
            errors.append(_fault(message, index, "event", "wrong_type", detail))
        elif not event:
            _require(message, index, "event", "a track call needs an event name", errors)
    elif call_type == "group":
        _require(message, index, "groupId", "a group call needs a groupId", errors)
    elif call_type == "page" or call_type == "screen":
        name = get("name")
        if name is not None and type(name) is not str:
            detail = f"must be a string, not {_json_type(name)}"
            errors.append(_fault(message, index, "name", "wrong_type", detail))

    for name in _OBJECT_FIELDS:
        value = get(name)
        if value is not None and type(value) is not dict:
            detail = f"must be an object, not {_json_type(value)}"
            errors.append(_fault(message, index, name, "wrong_type", detail))
    for name in _TIMESTAMP_FIELDS:
        value = get(name)
        if value is not None and (type(value) is not str or not _RFC3339.fullmatch(value)):
            detail = f"{value!r} is not an ISO 8601 date-time with an offset"
            errors.append(_fault(message, index, name, "bad_timestamp", detail))

    if max_message_bytes is not None:
        size = len(_json_bytes(message))
        if size > max_message_bytes:
            detail = f"is {size} bytes, over the {max_message_bytes} byte limit a call"
            errors.append(_fault(message, index, "", "too_large", detail))
    return errors


_NULL_DETAIL = "is null: leave an absent field out of the message"


def _fault(message: Message, index: int, field_name: str, reason: str, detail: str) -> MessageError:
    message_id = message.get("messageId")
    return MessageError(
        index, message_id if isinstance(message_id, str) else None, field_name, reason, detail
    )


def _require(
    message: Message, index: int, name: str, detail: str, errors: list[MessageError]
) -> None:
    value = message.get(name)
    if value is None:
        errors.append(_fault(message, index, name, "missing", detail))
    elif value == "":
        errors.append(_fault(message, index, name, "empty", detail))


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    return "null"


# -- event lines -------------------------------------------------------------------------------

_MAX_VALUE_CHARS = 40
_MAX_TITLE_CHARS = 60
_PLAIN_TEXT = re.compile(r'[^\s"=]+')


def format_event_line(message: Mapping[str, Any], *, max_fields: int = 4) -> str:
    """One readable line for a message: type, event or name, who, and a few properties or traits.

    Values are shortened and control characters escaped, so any payload prints as one safe line.

    >>> format_event_line({"type": "track", "event": "Order Completed", "userId": "42",
    ...                    "properties": {"order_id": 7, "total": 9.5}})
    'track  "Order Completed"  user=42  order_id=7 total=9.5'
    """
    call_type = message.get("type")
    parts = [call_type if isinstance(call_type, str) and call_type else "?"]
    title = message.get("event") if call_type == "track" else message.get("name")
    if title is not None and call_type in ("track", "page", "screen"):
        parts.append(_quote(_shorten(str(title), _MAX_TITLE_CHARS)))
    if call_type == "group" and message.get("groupId") is not None:
        parts.append(f"group={_render(message['groupId'])}")
    if message.get("userId") is not None:
        parts.append(f"user={_render(message['userId'])}")
    elif message.get("anonymousId") is not None:
        parts.append(f"anonymous={_render(message['anonymousId'])}")
    if call_type == "alias" and message.get("previousId") is not None:
        parts.append(f"previous={_render(message['previousId'])}")
    details = message.get("traits" if call_type in ("identify", "group") else "properties")
    if isinstance(details, Mapping) and details:
        shown = [f"{_render(key)}={_render(value)}" for key, value in details.items()][:max_fields]
        if len(details) > max_fields:
            shown.append(f"(+{len(details) - max_fields} more)")
        parts.append(" ".join(shown))
    return "  ".join(parts)


def _render(value: Any) -> str:
    if isinstance(value, str):
        text = _shorten(value, _MAX_VALUE_CHARS)
        return text if _PLAIN_TEXT.fullmatch(text) and text.isprintable() else _quote(text)
    try:
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    except ValueError:  # a circular structure, only possible when called with Python objects
        encoded = repr(value)
    return _escape_unprintable(_shorten(encoded, _MAX_VALUE_CHARS))


def _quote(text: str) -> str:
    return _escape_unprintable(json.dumps(text, ensure_ascii=False))


def _escape_unprintable(text: str) -> str:
    # json.dumps escapes only C0 controls; C1 controls and the like could still drive a terminal.
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else f"\\u{ord(char):04x}" for char in text)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- HTTP plumbing -----------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing to produce more than ``limit`` bytes (gzip bombs)."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as error:
        raise ValueError(str(error)) from None
    if len(data) > limit:
        raise _TooLarge
    if not decompressor.eof:
        raise ValueError("the gzip stream is truncated")
    if decompressor.unused_data:
        raise ValueError("there is data after the end of the gzip stream")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Python's json accepts NaN and Infinity, which are not JSON and which the API refuses.
_JSON_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> _Response:
    """A refusal of the request as a whole; its body is not kept."""
    # The API documents its error answers as {"meta": {"errors": ["..."]}}.
    body = _json_bytes({"meta": {"errors": [text]}})
    return _Response(status, body, headers=headers, errors=(text,), refused=True)


def _message_count(payload: Any) -> int:
    """How many messages a kept payload holds (a single call's, or a batch's); 0 for none."""
    if payload is None:
        return 0
    if type(payload) is dict and type(payload.get("batch")) is list:
        return len(payload["batch"])
    return 1


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON ``value`` nests arrays and objects more than ``limit`` deep (a walk with
    a stack of its own: the value may be deeper than Python's recursion allows)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if type(item) is dict else item if type(item) is list else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if type(child) in (dict, list))
    return False


def _closing_error(status: int, text: str) -> _Response:
    return _error(status, text)._replace(close=True)


def _header(headers: Mapping[str, str], name: str, default: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return default


def _planned_failure(
    status: int,
    retry_after: float | str | None,
    body: bytes | str | Mapping[str, Any] | None,
    remaining: int,
) -> _PlannedFailure:
    if body is None:
        encoded, content_type = (
            _json_bytes({"meta": {"errors": [f"failure planned by the test: status {status}"]}}),
            "application/json",
        )
    elif isinstance(body, bytes):
        encoded, content_type = body, "application/octet-stream"
    elif isinstance(body, str):
        encoded, content_type = body.encode("utf-8"), "text/plain; charset=utf-8"
    else:
        encoded, content_type = _json_bytes(dict(body)), "application/json"
    if isinstance(retry_after, float) and retry_after.is_integer():
        retry_after = int(retry_after)
    return _PlannedFailure(
        status=status,
        body=encoded,
        content_type=content_type,
        retry_after=None if retry_after is None else str(retry_after),
        remaining=remaining,
    )


class _CollectorServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many clients (one per worker process) may connect at once when a test starts.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], collector: LocalCollector) -> None:
        self.collector = collector
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _CollectorRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up with socket.getfqdn, which may query DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End the keep-alive connections, whose threads would otherwise go on answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # The client may have closed it already.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; this collector speaks only through its logger.
        logger.exception("error while answering %s", client_address)  # noqa: LOG004 - socketserver calls this from its except block


class _CollectorRequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, so a client's session sends all its batches on one.
    protocol_version = "HTTP/1.1"
    server_version = "cdp-logging-collector"
    sys_version = ""
    # Headers and body go out as two writes; without TCP_NODELAY the second can wait ~40 ms for
    # the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _CollectorServer

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def setup(self) -> None:
        super().setup()
        # Every read waits at most this long: an idle or stalled client lets its thread go.
        self.connection.settimeout(self.server.collector.idle_timeout)

    def _handle(self) -> None:
        headers = dict(self.headers.items())
        body, framing_error = self._read_body(headers)
        if body is None:
            return
        response = self.server.collector._answer(
            self.command,
            self.path,
            headers,
            body,
            (str(self.client_address[0]), int(self.client_address[1])),
            framing_error,
        )
        if response is None:
            self.close_connection = True
            return
        self.send_response_only(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        if response.close:
            self.send_header("Connection", "close")
        try:
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # A client that timed out has gone; what it sent was still received and kept.
            logger.debug("client on port %s left before its answer", self.client_address[1])
            self.close_connection = True

    def _read_body(self, headers: dict[str, str]) -> tuple[bytes | None, _Response | None]:
        """Read exactly Content-Length bytes: (body, None), (b"", an error answer), or (None, None)
        when the client went away mid-body."""
        # Without a length the end of the body is unknown, so these answers also end the connection.
        if _header(headers, "Transfer-Encoding", ""):
            return b"", _closing_error(411, "send a Content-Length; chunked bodies are refused")
        length_text = _header(headers, "Content-Length", "")
        if not length_text:
            if self.command == "POST":
                return b"", _closing_error(411, "a POST needs a Content-Length")
            return b"", None
        length = int(length_text) if length_text.isdigit() else -1
        if length < 0:
            return b"", _closing_error(400, f"bad Content-Length {length_text!r}")
        if length > _MAX_READ_BYTES:
            return b"", _closing_error(413, f"a {length} byte body is far over any limit")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            logger.debug("client on port %s stalled mid-body; connection closed", self.client_address[1])
            body = b""
        if len(body) < length:
            self.close_connection = True
            return None, None
        return body, None

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The collector logs each request itself, with what it accepted."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s: " + format, self.address_string(), *args)
