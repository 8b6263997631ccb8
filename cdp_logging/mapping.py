"""From a LogRecord to CDP calls: the ``extra`` conventions.

Two forms are recognised:

* one key per call, holding the call's fields as in the Node library::

      log.info("cart", extra={"track": {"user_id": "42", "event": "Added", "properties": {...}}})

* the short track form, where the record's other ``extra`` fields become the properties::

      log.info("order", extra={"event": "Order Completed", "user_id": "42", "total": 9.5})

Field names may be snake_case (``user_id``) or the API's camelCase (``userId``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS, merge_record_extra

from .constants import CALL_TYPES
from .errors import InvalidEventError
from .messages import CAMEL_CASE, FIELDS
from .scoping import merged_context

#: The ``extra`` keys that mark a record as carrying a payload.
PAYLOAD_KEYS = frozenset((*CALL_TYPES, "event"))
#: Standard LogRecord attributes (python-json-logger's list, plus Python 3.12's taskName):
#: whatever else a record holds came from ``extra``.
_STANDARD_ATTRIBUTES = frozenset((*RESERVED_ATTRS, "taskName"))
#: Short-form keys that are fields of the track call, in either spelling; any other key,
#: a field of another call included (``groupId``, ``traits``), is a property.
_SHORT_FORM_FIELDS = {
    **{name: name for name in FIELDS["track"]},
    **{camel: snake for camel, snake in CAMEL_CASE.items() if snake in FIELDS["track"]},
}


def has_payload(record: logging.LogRecord) -> bool:
    """True when the record's ``extra`` holds a payload; a C-level set check, no Python loop."""
    return not record.__dict__.keys().isdisjoint(PAYLOAD_KEYS)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The attributes that came from the log call's ``extra`` (as python-json-logger finds
    them: neither standard nor private)."""
    return merge_record_extra(record, {}, _STANDARD_ATTRIBUTES)


def calls_from_record(record: logging.LogRecord) -> list[tuple[str, dict[str, Any]]]:
    """``(call, fields)`` for each call a record asks for, fields in snake_case.

    The timestamp defaults to the moment of the log call. Raises
    :class:`InvalidEventError` for a payload that is not a dict or names unknown fields.

    Example::

        >>> record = logging.makeLogRecord({"track": {"userId": 42, "event": "Added"}})
        >>> calls_from_record(record)[0][1]["user_id"]
        42
    """
    attributes = record.__dict__
    present = attributes.keys() & _CALL_KEYS
    if len(present) == 1:
        call = present.pop()
        payload = attributes[call]
        if payload is not None:
            return [(call, fill_unset(call_fields(call, payload, record.created), attributes))]
    elif present:
        calls = [
            (call, fill_unset(call_fields(call, attributes[call], record.created), attributes))
            for call in CALL_TYPES
            if call in present and attributes[call] is not None
        ]
        if calls:
            return calls
    # A call key set to None asks for no call.
    return [("track", _short_form(record))] if "event" in attributes else []


_CALL_KEYS = frozenset(CALL_TYPES)


def call_fields(call: str, payload: Any, timestamp: float | None) -> dict[str, Any]:
    """A call key's payload as the call's fields in snake_case, ``timestamp`` (epoch seconds,
    the moment of the log call) where it gives none: a copy, or with ``timestamp`` None the
    payload itself when it needs no change (never to be modified). Raises
    :class:`InvalidEventError` for a payload that is not a dict or names unknown fields.

    Example::

        >>> call_fields("track", {"userId": "42", "event": "Added"}, 0.0)
        {'user_id': '42', 'event': 'Added', 'timestamp': 0.0}
    """
    allowed = FIELDS[call]
    if type(payload) is dict and payload.keys() <= allowed:
        # The common case, snake_case names only: one C-level subset check. Without a
        # timestamp to add, the payload itself serves: nothing downstream changes it.
        fields = dict(payload) if timestamp is not None else payload
    elif isinstance(payload, Mapping):
        fields = {}
        for key, value in payload.items():
            name = CAMEL_CASE.get(key, key)
            if name not in allowed:
                raise InvalidEventError(
                    call, str(key), f"is not a field of {call}; expected one of "
                    + ", ".join(sorted(allowed))
                )
            fields[name] = value
    else:
        raise InvalidEventError(
            call, None, f"extra[{call!r}] must be a dict of the call's fields, "
            f"got {type(payload).__name__}"
        )
    if timestamp is not None and fields.get("timestamp") is None:
        fields["timestamp"] = timestamp
    return fields


#: The values beside a call key that fill the fields its payload leaves unset.
UNSET_FILLERS = ("user_id", "anonymous_id", "context")


def fill_unset(fields: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` (a call's, in snake_case) with ``user_id``, ``anonymous_id`` and ``context``
    (a dict, merged under the call's own: its keys win) from ``values`` where the call leaves
    them unset: what ``extra``, a structlog event dict or loguru's ``extra`` holds beside the
    call key (``structlog.contextvars``, ``logger.bind``): ``fields`` itself when there is
    nothing to fill, else a copy.

    Example::

        >>> fill_unset({"event": "Added"}, {"user_id": "42", "track": {"event": "Added"}})
        {'event': 'Added', 'user_id': '42'}
    """
    user_id = values.get("user_id")
    anonymous_id = values.get("anonymous_id")
    context = values.get("context")
    if user_id is None and anonymous_id is None and context is None:
        return fields
    fields = dict(fields)  # the payload may be the caller's own dict (see call_fields)
    if user_id is not None and fields.get("user_id") is None:
        fields["user_id"] = user_id
    if anonymous_id is not None and fields.get("anonymous_id") is None:
        fields["anonymous_id"] = anonymous_id
    if isinstance(context, Mapping):
        own = fields.get("context")
        if own is None:
            fields["context"] = context
        elif isinstance(own, Mapping):
            fields["context"] = merged_context(context, own)
    return fields


def _short_form(record: logging.LogRecord) -> dict[str, Any]:
    extra = extra_fields(record)
    fields: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in extra.items():
        name = _SHORT_FORM_FIELDS.get(key)
        if name is None:
            rest[key] = value
        else:
            fields[name] = value
    if "properties" not in fields and rest:
        fields["properties"] = rest
    if fields.get("timestamp") is None:
        fields["timestamp"] = record.created
    return fields
