"""How a call enters the pipeline: the six calls, each a message built and checked, encoded and
queued (or captured, or counted as skipped); what is refused is counted and reported."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Mapping

import orjson

from .errors import BeforeSendError, CDPError, EventDroppedError, InvalidEventError
from .messages import build_message, encode_message, encode_plain, substitution_error
from .privacy import caller_origin
from .fields import SHOWN_CHARS
from .reporting import warn
from .outcomes import Callback


if TYPE_CHECKING:
    from .delivery.batcher import Batcher
    from .outcomes import Outcomes, _Counters
    from .reporting import Reporter

#: While ``cdp_logging.testing`` captures events, every encoded message goes to these
#: functions instead of the queue (in every client), so tests see exactly what would be sent.
capture_sinks: list[Callable[[bytes], None]] = []


class Calls:
    """The six calls of :class:`~cdp_logging.Analytics`, and :meth:`send`, which they share."""

    # Set by Analytics.__init__.
    enable: bool
    _outcomes: Outcomes
    _counters: _Counters
    _reporter: Reporter
    _batcher: Batcher
    #: Redaction and before_send (see cdp_logging.privacy.leaving_step): the message to encode,
    #: or None (dropped); raises InvalidEventError, counted, for one not to send. None when
    #: neither is on.
    _leaving: Callable[[dict[str, Any]], dict[str, Any] | None] | None

    def identify(
        self,
        *,
        user_id: str | int | None = None,
        anonymous_id: str | int | None = None,
        traits: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Say who a person is and set their traits; returns the messageId.

        Example::

            analytics.identify(user_id="019mr8mf4r", traits={"email": "cool@example.com"})
        """
        return self.send(self._build(
            "identify", user_id=user_id, anonymous_id=anonymous_id, traits=traits,
            context=context, integrations=integrations, timestamp=timestamp, message_id=message_id,
        ), callback)

    def track(
        self,
        *,
        event: str | None = None,
        user_id: str | int | None = None,
        anonymous_id: str | int | None = None,
        properties: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record an action a person took; returns the messageId.

        Example::

            analytics.track(user_id="019mr8mf4r", event="added_to_cart",
                            properties={"product": "shoes", "revenue": 39.95})
        """
        return self.send(self._build(
            "track", user_id=user_id, anonymous_id=anonymous_id, event=event,
            properties=properties, context=context, integrations=integrations,
            timestamp=timestamp, message_id=message_id,
        ), callback)

    def page(
        self,
        *,
        user_id: str | int | None = None,
        anonymous_id: str | int | None = None,
        name: str | None = None,
        category: str | None = None,
        properties: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record a page view; returns the messageId.

        Example::

            analytics.page(user_id="019mr8mf4r", category="Docs", name="CDP",
                           properties={"url": "https://customer.io/cdp/"})
        """
        return self.send(self._build(
            "page", user_id=user_id, anonymous_id=anonymous_id, name=name, category=category,
            properties=properties, context=context, integrations=integrations,
            timestamp=timestamp, message_id=message_id,
        ), callback)

    def screen(
        self,
        *,
        user_id: str | int | None = None,
        anonymous_id: str | int | None = None,
        name: str | None = None,
        category: str | None = None,
        properties: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Record a mobile screen view; returns the messageId.

        Example::

            analytics.screen(user_id="019mr8mf4r", name="Checkout")
        """
        return self.send(self._build(
            "screen", user_id=user_id, anonymous_id=anonymous_id, name=name, category=category,
            properties=properties, context=context, integrations=integrations,
            timestamp=timestamp, message_id=message_id,
        ), callback)

    def group(
        self,
        *,
        group_id: str | int | None = None,
        user_id: str | int | None = None,
        anonymous_id: str | int | None = None,
        traits: Mapping[str, Any] | None = None,
        object_type_id: str | int | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Associate a person with a group (an object in Customer.io); returns the messageId.

        Example::

            analytics.group(user_id="019mr8mf4r", group_id="56", object_type_id=1,
                            traits={"name": "Initech"})
        """
        return self.send(self._build(
            "group", user_id=user_id, anonymous_id=anonymous_id, group_id=group_id,
            traits=traits, object_type_id=object_type_id, context=context,
            integrations=integrations, timestamp=timestamp, message_id=message_id,
        ), callback)

    def alias(
        self,
        *,
        previous_id: str | int | None = None,
        user_id: str | int | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: Any = None,
        message_id: str | None = None,
        callback: Callback | None = None,
    ) -> str:
        """Merge two identities: ``previous_id`` into ``user_id``; returns the messageId.

        Example::

            analytics.alias(previous_id="anonymous_user", user_id="identified@example.com")
        """
        return self.send(self._build(
            "alias", user_id=user_id, previous_id=previous_id, context=context,
            integrations=integrations, timestamp=timestamp, message_id=message_id,
        ), callback)

    def _build(self, call: str, **fields: Any) -> dict[str, Any]:
        """build_message, counting the calls it rejects."""
        try:
            return build_message(call, **fields)
        except InvalidEventError:
            self._counters.add("invalid")
            raise

    def send(self, message: dict[str, Any], callback: Callback | None = None, *,
             origin: str | Callable[[], str] | None = None) -> str:
        """Redact, run ``before_send``, encode a built message (see
        ``cdp_logging.messages.build_message``) and queue it: the way every front sends.

        Raises :class:`InvalidEventError` (or :class:`EventTooLargeError`) for a message the
        API would refuse; a message that cannot be queued is counted and reported, not
        raised, and so is one ``before_send`` fails on (counted as failed), named by
        ``origin`` (where the event came from, or a function saying it; default: the
        caller's file and line). Returns the messageId.

        Example::

            from cdp_logging.messages import build_message

            message = build_message("track", user_id="42", event="Signed Up")
            message_id = analytics.send(message)   # the same as analytics.track(...)
        """
        leaving = self._leaving
        if leaving is not None:
            try:
                checked = leaving(message)
            except InvalidEventError as err:  # counted by the step
                if callback is not None:
                    self._outcomes.run_callback(callback, err, [])
                if origin is None:
                    origin = caller_origin()
                self.report(err.with_origin(origin if isinstance(origin, str) else origin()))
                return str(message["messageId"])
            if checked is None:
                if callback is not None:
                    self._outcomes.run_callback(callback, EventDroppedError(
                        "before_send returned None", message_id=message["messageId"]), [])
                return str(message["messageId"])
            message = checked
        return self._queue(message, callback)

    def enqueue(self, message: dict[str, Any], origin: str | Callable[..., str], source: Any = None) -> None:
        """Redact, run ``before_send``, encode and queue a built message, as :meth:`send`
        does, for a front that knows where the message came from: nothing is raised; a
        message refused is counted and reported with ``origin``: where it came from, or a
        function saying it, called only then (with ``source`` when one is given, as logging
        formats a message's arguments only when it is emitted). Every logging front ends here.

        Example::

            message = build_message("track", user_id="42", event="Signed Up")
            analytics.enqueue(message, "shop/cart.py:12")
            analytics.enqueue(message, lambda record: f"line {record.lineno}", record)
        """
        try:
            leaving = self._leaving
            if leaving is not None and (message := leaving(message)) is None:  # type: ignore[assignment]
                return  # dropped by before_send: counted by the step
            data = encode_plain(message)
            if data is not None and self.enable and not capture_sinks:
                # Nearly every event: encoded in one step, queued.
                refused = self._batcher.put(data, len(data))
                if refused is not None:
                    self._count_dropped(refused, message["messageId"])
                return
            self._queue(message, None, data)
        except InvalidEventError as err:
            # Stopped before encoding, too large or not encodable: counted already.
            where = origin if isinstance(origin, str) else origin() if source is None else origin(source)
            self._reporter.report(err.with_origin(where))

    def _queue(self, message: dict[str, Any], callback: Callback | None = None, data: bytes | None = None) -> str:
        """Encode (unless ``data`` is the message encoded already) and queue, capture or skip
        a message that went through redaction and ``before_send``."""
        if data is None:
            data = encode_plain(message)
        if data is None:
            substituted: list[Any] = []
            try:
                data = encode_message(message, substituted=substituted)
            except InvalidEventError:
                self._counters.add("invalid")
                raise
            if substituted:
                self._counters.add("substituted")
                self._reporter.report(substitution_error(message, substituted))
        message_id: str = message["messageId"]
        if capture_sinks:
            # A snapshot: a capture ending on another thread must not make this loop skip
            # another capture's sink, and an empty snapshot means the message is queued.
            sinks = tuple(capture_sinks)
            if sinks:
                for sink in sinks:
                    sink(data)
                if callback is not None:
                    # Captured counts as delivered: the callback sees success at once.
                    self._outcomes.run_callback(callback, None, [orjson.loads(data)])
                return message_id
        if not self.enable:
            self._counters.add("skipped")
            return message_id
        refused = self._batcher.put(data if callback is None else (data, callback), len(data))
        if refused is not None:
            self._count_dropped(refused, message_id)
            if callback is not None:
                self._outcomes.run_callback(callback, EventDroppedError(refused, message_id=message_id), [])
        return message_id

    def _count_dropped(self, reason: str, message_id: str) -> None:
        """Count and report an event the queue refused (``reason``: why)."""
        self._counters.add("dropped")
        self._reporter.report(EventDroppedError(reason, message_id=message_id))

    def _count_redacted(self, entry: str, key: object) -> None:
        if self._counters.add_redacted(entry):
            warn("cdp-logging: sent the value under the key %r as \"[redacted]\" (it matches %r of "
                 "redact_keys); values under it are counted in stats()[\"redacted\"]",
                 str(key)[:SHOWN_CHARS], entry, level=logging.INFO)

    def _count_dropped_by_before_send(self) -> None:
        self._counters.add("dropped_by_before_send")

    def _count_not_sent(self, error: InvalidEventError) -> None:
        """An event stopped before encoding: failed when before_send failed on it, else invalid."""
        self._counters.add("failed" if isinstance(error, BeforeSendError) else "invalid")

    def count_invalid(self, error: InvalidEventError) -> None:
        """Count and report an event rejected before reaching :meth:`send` (the handler's).

        Example::

            try:
                message = build_message("track", user_id="42", event="")
            except InvalidEventError as err:
                analytics.count_invalid(err)   # stats()["invalid"] grows, error_handler sees it
        """
        self._counters.add("invalid")
        self._reporter.report(error)

    def report(self, error: CDPError) -> None:
        """Hand ``error`` to the error_handler, or log it (rate-limited); nothing is counted.

        Example::

            analytics.report(InvalidEventError("track", "event", "must not be empty"))
        """
        self._reporter.report(error)
