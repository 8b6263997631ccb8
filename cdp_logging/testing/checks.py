"""What the local collector checks in each message, as the API does: the fields each call requires,
their types, ids and timestamps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..constants import CALL_TYPES
from .wire import json_bytes


#: JSON nested deeper than this is refused (400): no real event nests so deep, and a parser
#: recursing without end would lose the connection.
MAX_DEPTH = 64


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


def check_message(
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
        size = len(json_bytes(message))
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


def deeper_than(value: Any, limit: int) -> bool:
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
