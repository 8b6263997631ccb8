"""The local collector's side of each request: authentication, decoding, checks, what it keeps and
what it answers."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..constants import BATCH_PATH, MAX_BATCH_BYTES, MAX_MESSAGE_BYTES
from .checks import MAX_DEPTH, Message, MessageError, RejectedMessage, check_message, deeper_than
from .wire import (
    ReceivedRequest,
    Decoded,
    JSON_DECODER,
    PlannedFailure,
    WireResponse,
    SINGLE_CALL_PATHS,
    STRICT_MODE_HEADER,
    TRUE_HEADER_VALUES,
    BodyTooLarge,
    error_response,
    error_body,
    gunzip,
    header_value,
    message_count,
    logger,
)
from .credentials import credentials_refused
from .server import CollectorServer


#: How many messages, rejections and requests a collector keeps by default (the newest).
DEFAULT_MAX_KEPT = 10_000


#: Seconds a connection may stay silent before it is closed, and the most one request may take
#: to arrive whole (counted from the connection's opening or the previous answer).
DEFAULT_IDLE_TIMEOUT = 30.0


#: Connections open at once (each holds a thread) before new ones are answered 503.
DEFAULT_MAX_CONNECTIONS = 128


class Receiver:
    """What the collector does with each request, and what it keeps (see :class:`LocalCollector`)."""

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
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if isinstance(max_kept, bool) or not isinstance(max_kept, int) or max_kept < 1:
            raise ValueError(f"max_kept must be a whole number of at least 1, not {max_kept!r}")
        if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)) or not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be a number of seconds over 0, not {idle_timeout!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a whole number of at least 1, not {max_connections!r}")
        self.max_kept = max_kept
        self.max_connections = max_connections
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
        self._planned_failures: deque[PlannedFailure] = deque()
        self._failure_rule: tuple[Callable[[str, Any], bool], PlannedFailure] | None = None
        self._delay = 0.0
        self._server: CollectorServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._stopping = threading.Event()

    def _answer(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        client_address: tuple[str, int],
        framing_error: WireResponse | None,
    ) -> WireResponse | None:
        """Decide the answer and record the request; None when the collector stopped meanwhile."""
        received_at = time.time()
        path = target.partition("?")[0]
        decoded = (
            Decoded(None, 0, framing_error) if framing_error else self._decode(path, headers, body)
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
            response = WireResponse(
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
            self._keep_request(request, message_count(decoded.payload))
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

    def _decode(self, path: str, headers: dict[str, str], body: bytes) -> Decoded:
        """Decompress and parse the body, or say why it cannot be."""
        limit = self.max_batch_bytes if path == BATCH_PATH else self.max_message_bytes
        encoding = header_value(headers, "Content-Encoding", "identity").strip().lower()
        if encoding == "gzip":
            try:
                body = gunzip(body, limit)
            except BodyTooLarge:
                return Decoded(None, 0, error_response(413, f"body is over {limit} bytes decompressed"))
            except ValueError as error:
                return Decoded(None, 0, error_response(400, f"body is not valid gzip: {error}"))
        elif encoding != "identity":
            return Decoded(None, 0, error_response(415, f"unsupported Content-Encoding {encoding!r}"))
        if len(body) > limit:
            text = f"body is {len(body)} bytes, over the {limit} byte limit"
            return Decoded(None, len(body), error_response(413, text))
        too_deep = error_response(400, f"body is JSON nested more than {MAX_DEPTH} levels deep")
        try:
            # UnicodeDecodeError is a ValueError too: JSON on the wire is UTF-8 (RFC 8259).
            payload = JSON_DECODER.decode(body.decode("utf-8"))
        except ValueError as error:
            return Decoded(None, len(body), error_response(400, f"body is not valid JSON: {error}"))
        except RecursionError:  # far deeper than MAX_DEPTH: the parser gave up first
            return Decoded(None, len(body), too_deep)
        if deeper_than(payload, MAX_DEPTH):
            return Decoded(None, len(body), too_deep)
        return Decoded(payload, len(body), None)

    def _take_failure(self, path: str, payload: Any) -> PlannedFailure | None:
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
        decoded: Decoded,
        accepted: list[Message],
        rejected: list[RejectedMessage],
    ) -> WireResponse:
        """Check the request and its messages, sorting them into accepted and rejected."""
        default_type = SINGLE_CALL_PATHS.get(path)
        refusal = self._refusal(method, path, headers)
        if refusal is not None:
            return refusal
        if decoded.error is not None:
            return decoded.error

        payload = decoded.payload
        if default_type is None:
            if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
                return error_response(400, 'a batch body must be an object with a "batch" list')
            messages: list[Any] = payload["batch"]
        else:
            if not isinstance(payload, dict):
                return error_response(400, f"the body of {path} must be one message object")
            # A copy, so that the type filled in from the path leaves the recorded payload as sent.
            messages = [dict(payload)]

        strict = self.strict or (
            header_value(headers, STRICT_MODE_HEADER, "").strip().lower() in TRUE_HEADER_VALUES
        )
        # A body within the limit cannot hold a message over it, so each need not be encoded again.
        size_limit = self.max_message_bytes if decoded.size > self.max_message_bytes else None
        message_errors: list[MessageError] = []
        valid: list[Message] = []
        for index, message in enumerate(messages):
            found = check_message(message, index, default_type, strict, size_limit)
            if found:
                message_errors += found
                rejected.append(RejectedMessage(message, tuple(found), path))
            else:
                valid.append(message)
        error_lines = tuple(str(error) for error in message_errors)
        if strict and message_errors:
            body = error_body(400, list(error_lines), errors=[error.as_json() for error in message_errors])
            return WireResponse(400, body, errors=error_lines)
        accepted += valid
        # The documented answer: "A successful request returns an empty object response."
        return WireResponse(200, b"{}", errors=error_lines)

    def _refusal(self, method: str, path: str, headers: dict[str, str]) -> WireResponse | None:
        """The answer to a request refused for its method, path or credentials, else None."""
        if method != "POST" or (path != BATCH_PATH and path not in SINGLE_CALL_PATHS):
            endpoints = ", ".join([BATCH_PATH, *SINGLE_CALL_PATHS])
            return error_response(404, f"no endpoint {method} {path}; POST to one of {endpoints}")
        auth_error = credentials_refused(headers, self._write_key)
        if auth_error is not None:
            return error_response(401, auth_error, (("WWW-Authenticate", 'Basic realm="cdp"'),))
        return None

    def _refuse_unread(self, method: str, target: str, headers: dict[str, str], length: int) -> WireResponse | None:
        """The answer to a request refused from its head alone (method, path, key, a body of
        ``length`` bytes over the API's limit), before a byte of its body is read; else None."""
        path = target.partition("?")[0]
        with self._condition:
            # A planned failure comes before authentication (as a proxy's would): it needs the body.
            planned = bool(self._planned_failures) or self._failure_rule is not None
        refusal = None if planned else self._refusal(method, path, headers)
        if refusal is not None:
            return refusal
        limit = self.max_batch_bytes if path == BATCH_PATH else self.max_message_bytes
        if length > limit:
            return error_response(413, f"body is {length} bytes, over the {limit} byte limit")
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
