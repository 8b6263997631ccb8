"""The exceptions of cdp_logging: what a user can catch, or receives in ``error_handler``.

Errors about the event itself are raised by the client's calls (a :class:`BeforeSendError` is
only reported); errors about delivery are never raised in the application: they go to
``error_handler`` or, without one, to the ``cdp_logging`` logger. A :class:`TransportError`
is what a :class:`cdp_logging.Transport` raises when it got no usable answer; the one a batch
last failed with is the :class:`DeliveryError`'s ``cause``. The tree::

    CDPError
    ├── InvalidEventError (also a ValueError)   a call's fields break the API's rules
    │   ├── EventTooLargeError                  over the API's 32 KB per event
    │   └── BeforeSendError                     the before_send option failed
    ├── ConfigurationError (also a ValueError)  configuration the library cannot use
    │   └── RulesError                          a mapping rule is invalid
    ├── DeliveryError                           a batch was not delivered
    ├── EventDroppedError                       an event could not be queued
    ├── CallbackError                           a per-call callback raised
    ├── SpoolError                              the spool file cannot be used
    └── TransportError                          no usable HTTP answer
        ├── ConnectError                        no connection (name, refused, lost)
        ├── TLSError                            TLS failed (certificate, handshake)
        ├── ConnectTimeout                      no connection within the timeout
        ├── ReadTimeout                         no complete answer within the timeout
        └── ProtocolError                       the answer was not HTTP/1.x
"""

from __future__ import annotations

import json
from collections.abc import Sequence


class CDPError(Exception):
    """Base class of every error cdp_logging reports.

    Example::

        def report(err: cdp_logging.CDPError) -> None:
            sentry_sdk.capture_exception(err)

        analytics = cdp_logging.Analytics(error_handler=report)
    """


class InvalidEventError(CDPError, ValueError):
    """A call's fields break the API's rules; names the call and the field.

    ``origin`` says where the event came from when the library knows it (for log records,
    ``logger name at pathname:lineno``).

    Example::

        try:
            analytics.track(user_id="42")          # no event name
        except cdp_logging.InvalidEventError as err:
            assert err.call == "track" and err.field == "event"
    """

    def __init__(
        self,
        call: str,
        field: str | None,
        problem: str,
        *,
        message_id: str | None = None,
        origin: str | None = None,
    ) -> None:
        self.call = call
        self.field = field
        self.problem = problem
        self.message_id = message_id
        self.origin = origin
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.call}: " if self.field is None else f"{self.call}.{self.field}: "
        text = where + self.problem
        if self.message_id:
            text += f" (messageId {self.message_id})"
        if self.origin:
            text += f" [from {self.origin}]"
        return text

    def with_origin(self, origin: str) -> InvalidEventError:
        """Return the same error, saying where the event came from.

        Example::

            error = InvalidEventError("track", "event", "must not be empty")
            error.with_origin("logger 'shop' at orders.py:42")   # now named in the message
        """
        self.origin = origin
        self.args = (self._describe(),)
        return self


class EventTooLargeError(InvalidEventError):
    """An encoded message is over the API's 32 KB limit; names its messageId and size.

    Example::

        try:
            analytics.track(user_id="42", event="Big", properties={"blob": "x" * 40_000})
        except cdp_logging.EventTooLargeError as err:
            print(err.message_id, err.size, err.limit)
    """

    def __init__(
        self, call: str, *, message_id: str, size: int, limit: int, origin: str | None = None
    ) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            call,
            None,
            f"encoded message is {size} bytes, over the API's limit of {limit} bytes",
            message_id=message_id,
            origin=origin,
        )


class BeforeSendError(InvalidEventError):
    """The ``before_send`` option raised, or returned something other than a message or None.

    The event is not sent: it is counted in ``stats()["failed"]`` and reported (to
    ``error_handler``, else logged) once, with where it came from; the application's call
    returns as usual. The exception ``before_send`` raised is ``__cause__``.

    Example::

        def on_error(err: cdp_logging.CDPError) -> None:
            if isinstance(err, cdp_logging.BeforeSendError):
                sentry_sdk.capture_exception(err.__cause__ or err)
    """

    def __init__(self, call: str, problem: str, *, message_id: str | None = None,
                 origin: str | None = None) -> None:
        super().__init__(call, None, problem, message_id=message_id, origin=origin)


#: What a report says of events whose request went out and whose answer never came.
UNCONFIRMED = ("not confirmed: the answer was lost after the request was sent; "
               "the API may have them (same messageIds)")


class DeliveryError(CDPError):
    """A batch could not be delivered; given to ``error_handler`` and to per-call callbacks.

    Carries the HTTP ``status`` (None when no response came), the server's ``message``
    (None without a response), the response ``text`` cut short, the ``message_ids`` of the
    events in the batch, how many ``attempts`` were made, and the ``cause`` (the exception
    behind a connection failure, if any).

    ``unconfirmed`` is True when the client cannot tell whether the API has the events: a
    request went out in full and its answer was lost (the connection cut, the answer timed
    out), or the request was still in flight when the close timeout ran out. Such events are
    counted in ``stats()["unconfirmed"]``, not ``"failed"``; had the API taken them, a
    retry's copies carry the same messageIds, so it can tell them apart.

    Example::

        def on_error(err: cdp_logging.CDPError) -> None:
            if isinstance(err, cdp_logging.DeliveryError):
                if err.status == 401:
                    alert(f"the write key was refused: {err.message}")
                print(err.status, err.count, err.attempts)
    """

    def __init__(
        self,
        reason: str,
        *,
        message_ids: Sequence[str] = (),
        status: int | None = None,
        text: str = "",
        attempts: int = 1,
        cause: BaseException | None = None,
        unconfirmed: bool = False,
    ) -> None:
        self.reason = reason
        self.message_ids = list(message_ids)
        self.status = status
        self.text = text
        self.attempts = attempts
        self.cause = cause
        self.unconfirmed = unconfirmed
        super().__init__(self._describe())
        if cause is not None:
            self.__cause__ = cause

    @property
    def message(self) -> str | None:
        """What the server said: the ``message`` of a JSON error body (``{"message": ...}``,
        as the API answers) or its ``meta.errors``, else the response's text; None when no
        response came.

        Example::

            >>> DeliveryError("refused", status=400, text='{"message": "bad batch"}').message
            'bad batch'
        """
        if self.status is None:
            return None
        try:
            said = json.loads(self.text)
        except ValueError:
            return self.text
        if isinstance(said, dict) and isinstance(said.get("message"), str):
            return str(said["message"])
        meta = said.get("meta") if isinstance(said, dict) else None
        errors = meta.get("errors") if isinstance(meta, dict) else None
        if isinstance(errors, list) and errors and all(isinstance(error, str) for error in errors):
            return "; ".join(errors)  # {"meta": {"errors": [...]}}, as the API documents it
        return self.text

    @property
    def count(self) -> int:
        """How many events the failed batch held.

        Example::

            def on_error(error):
                if isinstance(error, DeliveryError):
                    metrics.increment("cdp.lost", error.count)
        """
        return len(self.message_ids)

    def _describe(self) -> str:
        noun = "event" if self.count == 1 else "events"
        attempts = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
        if self.unconfirmed:
            detail = f"after {attempts}; {self.reason}" if self.attempts else self.reason
            text = f"{self.count} {noun} {UNCONFIRMED} ({detail})"
        else:
            text = f"{self.count} {noun} not delivered after {attempts}: {self.reason}"
        if self.status is not None and f"HTTP {self.status}" not in self.reason:
            text += f" (HTTP {self.status})"  # the status once: most reasons name it
        said = (self.message or "").strip()
        if said:
            text += f"; the API said: {said}"
        if self.message_ids:
            shown = ", ".join(self.message_ids[:3])
            more = f" and {self.count - 3} more" if self.count > 3 else ""
            text += f"; messageIds {shown}{more}"
        return text


class EventDroppedError(CDPError):
    """An event was accepted by a call but could not be queued (full queue, closed client).

    Example::

        stats = analytics.stats()
        assert stats["dropped"] == 0, "queue too small for this burst"
    """

    def __init__(self, reason: str, *, message_id: str | None = None, count: int = 1) -> None:
        self.reason = reason
        self.message_id = message_id
        self.count = count
        which = f"messageId {message_id}" if message_id else f"{count} events"
        super().__init__(f"event dropped ({which}): {reason}")


class CallbackError(CDPError):
    """A per-call callback raised; the error it raised is ``__cause__``.

    Reported (to ``error_handler``, or logged) on the worker, which carries on delivering.

    Example::

        def on_error(error: CDPError) -> None:
            if isinstance(error, CallbackError):
                sentry_sdk.capture_exception(error.__cause__)
    """

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"a callback raised {type(cause).__name__}: {cause}")
        self.__cause__ = cause


class SpoolError(CDPError):
    """The spool file cannot be used; the client carries on with its in-memory queue.

    Reported once, when the problem is found: at start or at any later read or write.
    ``path`` is the spool; ``moved_to`` is where a corrupt file was moved aside (None when it
    was left in place: a directory that cannot be written, another program's
    database, a file of another user's or one others may write, a symbolic link). Events
    already in a moved file are not sent; rename it back to recover them. With ``fresh``, the
    corrupt file was replaced by a new, empty spool and the client goes on using it. With
    ``paused``, the spool could not be written for now (a full disk, a used-up disk quota, the
    process's file size limit): events are sent from memory meanwhile, and the spool is used
    again once a write works.

    Example::

        def on_error(err: cdp_logging.CDPError) -> None:
            if isinstance(err, cdp_logging.SpoolError):
                alert(f"analytics spool lost durability: {err}")
    """

    def __init__(self, problem: str, *, path: str, moved_to: str | None = None,
                 fresh: bool = False, paused: bool = False) -> None:
        self.problem = problem
        self.path = path
        self.moved_to = moved_to
        #: A fresh spool was made in place of the file moved aside: durability goes on.
        self.fresh = fresh
        #: The spool cannot be written for now (no room on the disk, in the quota or under the
        #: file size limit): it is used again once it can.
        self.paused = paused
        text = f"spool {path} {problem}"
        if moved_to is not None:
            text += f"; moved aside to {moved_to}"
        if paused:
            super().__init__(text)
        elif fresh:
            super().__init__(text + "; a fresh spool was made in its place")
        else:
            super().__init__(text + "; events are kept in memory only until the process restarts")


class ConfigurationError(CDPError, ValueError):
    """Configuration the library cannot use; raised when logging is configured, never later.

    The message names what to fix: the environment variable (``CDP_MAX_EVENTS_IN_BATCH``), or
    the rules file and rule.

    Example::

        try:
            handler = cdp_logging.config.handler_from_environment()   # CDP_* variables
        except cdp_logging.ConfigurationError as err:
            sys.exit(f"cannot start: {err}")
    """


class RulesError(ConfigurationError):
    """A mapping rule is invalid: names the file, the rule (its number and logger/message)
    and the fault. Raised only when strict (see :func:`cdp_logging.events.is_strict`);
    otherwise the rule is skipped and this error reported (``RuleSet.skipped`` keeps it).

    ``source`` is the rules file (None for rules given as a list), ``rule`` the rule's
    number counting from 1 (None for a fault of the file as a whole), ``problem`` the fault.

    Example::

        try:
            cdp_logging.RuleSet([{"logger": "shop", "message": "Hi %s", "trak": {}}], strict=True)
        except cdp_logging.RulesError as err:
            assert err.rule == 1
    """

    def __init__(
        self, problem: str, *, rule: int | None = None, described: str = "",
        source: str | None = None,
    ) -> None:
        self.problem = problem
        self.rule = rule
        self.described = described
        self.source = source
        where = [] if source is None else [source]
        if rule is not None:
            where.append(f"rule {rule}" + (f" ({described})" if described else ""))
        super().__init__(": ".join([*where, problem]))


class TransportError(CDPError):
    """No usable HTTP answer: the connection failed or timed out, the answer broke HTTP, or
    a transport raised something else. ``cause`` holds why: for the library's HTTP transport,
    one of the subclasses below, whether it sent through its own connections or through
    ``requests`` and a proxy (then ``requests``' exception is the subclass's ``__cause__``).

    A custom :class:`cdp_logging.Transport` raises it for a failed attempt (``sent=True``
    when the request went out in full and only the answer was lost); the batch is retried,
    and reported as a :class:`DeliveryError` when given up.

    Example::

        class MyTransport:
            def post(self, path: str, body: bytes) -> cdp_logging.Response:
                try:
                    reply = my_http.post(path, body)
                except my_http.Error as err:
                    raise cdp_logging.TransportError(f"could not send: {err}", err) from err
                return cdp_logging.Response(reply.status, reply.text)
    """

    def __init__(self, message: str, cause: BaseException | None = None, *, sent: bool = False) -> None:
        super().__init__(message)
        self.cause = cause
        #: True when the request had gone out in full and only its answer was lost (cut, timed
        #: out): the API may have the events, so they are reported as unconfirmed.
        self.sent = sent


class ConnectError(TransportError):
    """No connection to the host: its name did not resolve, it refused, or the connection
    was lost while the request or its answer was on the way.

    Example::

        def on_error(err: cdp_logging.CDPError) -> None:
            if isinstance(err, DeliveryError) and isinstance(err.cause, ConnectError):
                alert(f"the collector is unreachable: {err.cause}")
    """


class TLSError(TransportError):
    """TLS with the host failed: the certificate was not trusted, or the handshake broke (a
    plain HTTP server behind an ``https://`` host, say).

    Example::

        if isinstance(delivery_error.cause, TLSError):
            print("check REQUESTS_CA_BUNDLE:", delivery_error.cause)
    """


class ConnectTimeout(TransportError):
    """No connection (TCP and TLS) within the timeout.

    Example::

        if isinstance(delivery_error.cause, (ConnectTimeout, ReadTimeout)):
            metrics.increment("cdp.timeouts")
    """


class ReadTimeout(TransportError):
    """The request could not be sent, or its answer did not arrive whole, within the timeout.

    Example::

        if isinstance(delivery_error.cause, ReadTimeout):
            print("the API answered too slowly:", delivery_error.cause)
    """


class ProtocolError(TransportError):
    """The server's answer was not HTTP/1.x as expected, or the connection ended within it.

    Example::

        if isinstance(delivery_error.cause, ProtocolError):
            print("not an HTTP/1.1 server, or a proxy in the way:", delivery_error.cause)
    """
