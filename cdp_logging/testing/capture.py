"""Capture the calls made through any client, and assertions over them (see :mod:`cdp_logging.testing`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, Literal

import orjson

from .. import calls as _calls
from .lines import format_event_line
from .matching import criteria_for, describe_wanted, listing_of, message_matches


__all__ = ["CallType", "CapturedEvents", "capture_events"]


CallType = Literal["identify", "track", "page", "screen", "group", "alias"]


_capture_lock = threading.Lock()


class CapturedEvents:
    """The messages captured by :func:`capture_events` (or the ``cdp_events`` fixture), in order.

    Each message is the dict the API would receive: camelCase fields (``userId``,
    ``messageId``), ids as strings, ISO-8601 ``timestamp``, ``context.library``. Filters take
    the same keywords as the client's calls (``user_id=...``); a dict value matches a message
    whose dict holds those keys with equal values (``properties={"plan": "pro"}``), any other
    value must be equal. Safe to use from several threads.

    Example::

        with capture_events() as events:
            analytics.identify(user_id=42, traits={"plan": "pro"})
            analytics.track(user_id=42, event="Signed Up")
        assert events.tracks("Signed Up")[0]["userId"] == "42"
        assert [m["type"] for m in events] == ["identify", "track"]
    """

    def __init__(self) -> None:
        self._messages: list[dict[str, Any]] = []
        self._condition = threading.Condition()
        self._capturing = False

    # -- receiving ------------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        """The capture sink: called by every client's ``send()`` with an encoded message."""
        message = orjson.loads(data)
        with self._condition:
            self._messages.append(message)
            self._condition.notify_all()

    def start(self) -> CapturedEvents:
        """Begin capturing (what :func:`capture_events` does on entry); returns itself."""
        with _capture_lock:
            if self._capturing:
                raise RuntimeError("this capture is already running")
            _calls.capture_sinks.append(self._receive)
            self._capturing = True
        return self

    def stop(self) -> None:
        """Stop capturing: calls made from now on are queued and sent again. Safe to repeat."""
        with _capture_lock:
            if not self._capturing:
                return
            sinks = _calls.capture_sinks
            for index, sink in enumerate(sinks):
                if sink == self._receive:
                    del sinks[index]
                    break
            self._capturing = False

    @property
    def capturing(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._capturing

    # -- reading ----------------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """A snapshot of every captured message, in the order the calls were made.

        Example::

            assert events.messages[-1]["type"] == "alias"
        """
        with self._condition:
            return list(self._messages)

    def __len__(self) -> int:
        with self._condition:
            return len(self._messages)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.messages)

    def __getitem__(self, index: int) -> dict[str, Any]:
        with self._condition:
            return self._messages[index]

    def __bool__(self) -> bool:
        return len(self) > 0

    def __repr__(self) -> str:
        state = "capturing" if self._capturing else "stopped"
        return f"<CapturedEvents {len(self)} messages, {state}>"

    def filter(self, type: CallType | None = None, event: str | None = None,
               **fields: Any) -> list[dict[str, Any]]:
        """The captured messages matching every criterion given, in order.

        ``type`` is the call (``"track"``...), ``event`` a track's event name; any other
        keyword is a field of the call, in the client's spelling or the API's
        (``user_id``/``userId``, ``properties``, ``traits``, ``name``, ``integrations``...).

        Example::

            [order] = events.filter("track", event="Order Completed", user_id="42")
            events.filter(properties={"coupon": "SPRING"})
        """
        wanted = criteria_for(type, event, fields)
        return [message for message in self.messages if message_matches(message, wanted)]

    def identifies(self, user_id: str | int | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The identify calls, optionally only those of ``user_id`` or matching ``fields``.

        Example::

            assert events.identifies("42")[0]["traits"]["plan"] == "pro"
        """
        return self.filter("identify", user_id=user_id, **fields)

    def tracks(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The track calls, optionally only those named ``event`` or matching ``fields``.

        Example::

            assert events.tracks("Signed Up")[0]["userId"] == "42"
            assert len(events.tracks(user_id="42")) == 3
        """
        return self.filter("track", event=event, **fields)

    def pages(self, name: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The page calls, optionally only those named ``name`` or matching ``fields``.

        Example::

            assert events.pages("Pricing", user_id="42")
        """
        return self.filter("page", name=name, **fields)

    def screens(self, name: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The screen calls, optionally only those named ``name`` or matching ``fields``.

        Example::

            assert events.screens("Checkout")[0]["properties"]["step"] == 2
        """
        return self.filter("screen", name=name, **fields)

    def groups(self, group_id: str | int | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The group calls, optionally only those of ``group_id`` or matching ``fields``.

        Example::

            assert events.groups("acme", object_type_id=1)[0]["userId"] == "42"
        """
        return self.filter("group", group_id=group_id, **fields)

    def aliases(self, user_id: str | int | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The alias calls, optionally only those into ``user_id`` or matching ``fields``.

        Example::

            assert events.aliases("42")[0]["previousId"] == "anon-7"
        """
        return self.filter("alias", user_id=user_id, **fields)

    def by_user(self, user_id: str | int) -> list[dict[str, Any]]:
        """Every call made for ``user_id`` (its ``userId``), of any type.

        Example::

            assert [m["type"] for m in events.by_user("42")] == ["identify", "track"]
        """
        return self.filter(user_id=user_id)

    def clear(self) -> None:
        """Forget what was captured so far; capturing goes on.

        Example::

            events.clear()
            assert not events
        """
        with self._condition:
            self._messages.clear()

    # -- asserting --------------------------------------------------------------------------

    def one(self, type: CallType | None = None, event: str | None = None,
            **fields: Any) -> dict[str, Any]:
        """The one message matching the criteria of :meth:`filter`; AssertionError when none
        or several match, listing everything captured.

        Example::

            signup = events.one("track", event="Signed Up")
            assert signup["properties"]["plan"] == "free"
        """
        wanted = criteria_for(type, event, fields)
        messages = self.messages
        found = [message for message in messages if message_matches(message, wanted)]
        if len(found) != 1:
            how_many = "none" if not found else str(len(found))
            raise AssertionError(
                f"expected exactly one {describe_wanted(wanted)}, found {how_many}\n"
                + listing_of(messages, found, wanted)
            )
        return found[0]

    def assert_identified(self, user_id: str | int | None = None,
                          **fields: Any) -> dict[str, Any]:
        """Assert at least one identify call matches; return the first that does.

        Example::

            events.assert_identified("42", traits={"email": "ada@example.com"})
        """
        return self._assert_some({"type": "identify", "userId": user_id, **fields})

    def assert_tracked(self, event: str, **fields: Any) -> dict[str, Any]:
        """Assert at least one track call named ``event`` matches ``fields``; return the first.

        Example::

            events.assert_tracked("Order Completed", user_id="42", properties={"total": 9.5})
        """
        return self._assert_some({"type": "track", "event": event, **fields})

    def assert_sent(self, type: CallType | None = None, event: str | None = None,
                    **fields: Any) -> dict[str, Any]:
        """Assert at least one call matches the criteria of :meth:`filter`; return the first.

        Example::

            events.assert_sent("group", group_id="acme", object_type_id=1)
        """
        return self._assert_some({"type": type, "event": event, **fields})

    def assert_not_sent(self, type: CallType | None = None, event: str | None = None,
                        **fields: Any) -> None:
        """Assert no call matches the criteria of :meth:`filter` (none at all without any).

        Example::

            events.assert_not_sent("track", event="Payment Failed")
        """
        wanted = criteria_for(type, event, fields)
        messages = self.messages
        found = [message for message in messages if message_matches(message, wanted)]
        if found:
            raise AssertionError(
                f"expected no {describe_wanted(wanted)}, found {len(found)}\n"
                + listing_of(messages, found)
            )

    def _assert_some(self, criteria: dict[str, Any]) -> dict[str, Any]:
        wanted = criteria_for(criteria.pop("type", None), criteria.pop("event", None), criteria)
        messages = self.messages
        for message in messages:
            if message_matches(message, wanted):
                return message
        raise AssertionError(
            f"expected {describe_wanted(wanted)}, found none\n" + listing_of(messages, [], wanted)
        )

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` messages were captured (calls made on other threads);
        return them all. AssertionError after ``timeout`` seconds, listing what was captured.

        Example::

            threading.Thread(target=signup, args=("42",)).start()
            events.wait_for(2, timeout=2.0)
        """
        with self._condition:
            if self._condition.wait_for(lambda: len(self._messages) >= count, timeout):
                return list(self._messages)
            messages = list(self._messages)
        raise AssertionError(
            f"expected at least {count} messages within {timeout:g} s, got {len(messages)}\n"
            + listing_of(messages, [])
        )

    def format(self) -> str:
        """Every captured message as one readable line each (see :func:`format_event_line`).

        Example::

            print(events.format())
        """
        return "\n".join(format_event_line(message) for message in self.messages)


@contextlib.contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Capture every call made through any client or handler, in any thread, while open.

    Nothing is queued or sent meanwhile; calls queued before it opened are delivered as usual.
    Calls are validated as always: an invalid one raises :class:`~cdp_logging.InvalidEventError`
    from ``Analytics`` (and is reported by ``CDPHandler``) and is not captured. A per-call
    ``callback`` is called at once, on the calling thread, with ``(None, [message])``, as if
    the message had been delivered. Clients made with ``enable=False`` are captured too.
    Captures nest: each sees the calls made while it is open. The capture ends on leaving the
    block, whether by an exception or not.

    Example::

        with capture_events() as events:
            logging.getLogger("shop").info("paid", extra={"event": "Order Paid", "user_id": 7})
        assert events.one("track")["properties"] == {}
    """
    events = CapturedEvents().start()
    try:
        yield events
    finally:
        events.stop()
