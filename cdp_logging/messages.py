"""From a call's fields to a CDP message: validation, normalisation and the encoded bytes.

One function, :func:`build_message`, serves the client's methods and the logging handler, so
both accept and reject exactly the same input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ._version import __version__
from .constants import CALL_TYPES, MAX_MESSAGE_BYTES
from .encoding import EncodingError, encode, iso_from_epoch, new_message_id
from .errors import EventTooLargeError, InvalidEventError
from .scoping import active_scope
from .fields import (
    SHOWN_CHARS,
    FIRST_EPOCH,
    LAST_EPOCH,
    identifier_field,
    mapping_field,
    message_id_field,
    missing_user_error,
    object_type_field,
    text_field,
    timestamp_field,
    shown,
)


#: What every message says about its sender, under ``context.library``.
LIBRARY = {"name": "cdp-logging", "version": __version__}


DEFAULT_CONTEXT = {"library": LIBRARY}


_COMMON = ("context", "integrations", "timestamp", "message_id")


#: The fields each call accepts, in snake_case (the client's keyword arguments).
FIELDS: dict[str, frozenset[str]] = {
    "identify": frozenset(("user_id", "anonymous_id", "traits", *_COMMON)),
    "track": frozenset(("user_id", "anonymous_id", "event", "properties", *_COMMON)),
    "page": frozenset(("user_id", "anonymous_id", "name", "category", "properties", *_COMMON)),
    "screen": frozenset(("user_id", "anonymous_id", "name", "category", "properties", *_COMMON)),
    "group": frozenset(
        ("user_id", "anonymous_id", "group_id", "traits", "object_type_id", *_COMMON)
    ),
    "alias": frozenset(("user_id", "previous_id", "anonymous_id", *_COMMON)),
}


assert tuple(FIELDS) == CALL_TYPES


#: The API's camelCase spelling of each field, for payloads written the API's way.
CAMEL_CASE = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "groupId": "group_id",
    "objectTypeId": "object_type_id",
    "previousId": "previous_id",
    "messageId": "message_id",
}


def build_message(
    call: str,
    *,
    user_id: Any = None,
    anonymous_id: Any = None,
    traits: Any = None,
    event: Any = None,
    properties: Any = None,
    name: Any = None,
    category: Any = None,
    group_id: Any = None,
    object_type_id: Any = None,
    previous_id: Any = None,
    context: Any = None,
    integrations: Any = None,
    timestamp: Any = None,
    message_id: Any = None,
) -> dict[str, Any]:
    """Validate a call's fields and return the message the API expects.

    Raises :class:`InvalidEventError` naming the call and the field, whatever the value (its
    ``repr`` is quoted cut short, or not at all when it raises). Absent fields are left out,
    never sent as null; inside a :class:`cdp_logging.scope`, its fields fill those the call
    leaves unset (before any check); numeric ids (any number but a bool) become ``str(id)``;
    ``timestamp`` defaults to now, and a naive datetime is local time.

    Example::

        >>> build_message("track", user_id=42, event="Signed Up")["userId"]
        '42'
    """
    if call not in FIELDS:
        raise InvalidEventError(call, None, f"unknown call; expected one of {', '.join(CALL_TYPES)}")
    scope = active_scope()
    if scope is not None:
        # cdp_logging.scope: the fields the call leaves unset, before anything is checked.
        if user_id is None:
            user_id = scope.user_id
        if anonymous_id is None:
            anonymous_id = scope.anonymous_id
        context = scope.context_for(context)
    # Written for speed: this runs on the application's thread for every event, so the
    # common types take the first branch of each check and helpers run only when needed.
    if message_id is None:
        message_id = new_message_id()
    elif type(message_id) is not str or not message_id:
        message_id = message_id_field(call, message_id)
    message: dict[str, Any] = {
        "type": call,
        "messageId": message_id,
        "timestamp": iso_from_epoch(timestamp)
        if type(timestamp) is float and FIRST_EPOCH <= timestamp <= LAST_EPOCH
        else timestamp_field(call, timestamp, message_id),
    }
    if user_id is not None:
        if type(user_id) is not str:
            user_id = identifier_field(call, "user_id", user_id, message_id)
        if user_id:
            message["userId"] = user_id
        else:
            user_id = None
    if anonymous_id is not None:
        if type(anonymous_id) is not str:
            anonymous_id = identifier_field(call, "anonymous_id", anonymous_id, message_id)
        if anonymous_id:
            message["anonymousId"] = anonymous_id
        else:
            anonymous_id = None

    if call == "track":
        if type(event) is not str or not event:
            problem = "is required" if event is None else f"must be a non-empty string, got {shown(event)}"
            raise InvalidEventError(call, "event", problem, message_id=message_id)
        message["event"] = event
        if user_id is None and anonymous_id is None:
            raise missing_user_error(call, message_id)
        if properties is not None:
            message["properties"] = mapping_field(call, "properties", properties, message_id)
    elif call == "identify":
        if user_id is None and anonymous_id is None:
            raise missing_user_error(call, message_id)
        if traits is not None:
            message["traits"] = mapping_field(call, "traits", traits, message_id)
    elif call == "page" or call == "screen":
        if user_id is None and anonymous_id is None:
            raise missing_user_error(call, message_id)
        if name is not None:
            message["name"] = text_field(call, "name", name, message_id)
        if category is not None:
            message["category"] = text_field(call, "category", category, message_id)
        if properties is not None:
            message["properties"] = mapping_field(call, "properties", properties, message_id)
    elif call == "group":
        group = identifier_field(call, "group_id", group_id, message_id)
        if group is None:
            raise InvalidEventError(call, "group_id", "is required", message_id=message_id)
        message["groupId"] = group
        object_type = object_type_field(call, object_type_id, message_id)
        if object_type is not None:
            message["objectTypeId"] = object_type
        if traits is not None:
            traits = mapping_field(call, "traits", traits, message_id)
            in_traits = traits.get("object_type_id")
            if in_traits is not None:
                # The docs also accept the object type as traits.object_type_id, a string there too.
                traits = {
                    **traits,
                    "object_type_id": object_type_field(call, in_traits, message_id),
                }
            message["traits"] = traits
    else:  # alias
        previous = identifier_field(call, "previous_id", previous_id, message_id)
        if previous is None:
            raise InvalidEventError(call, "previous_id", "is required", message_id=message_id)
        if user_id is None:
            raise InvalidEventError(call, "user_id", "is required", message_id=message_id)
        message["previousId"] = previous

    if context is None:
        message["context"] = DEFAULT_CONTEXT
    else:
        message["context"] = {"library": LIBRARY, **mapping_field(call, "context", context, message_id)}
    if integrations is not None:
        message["integrations"] = mapping_field(call, "integrations", integrations, message_id)
    return message


def encode_message(
    message: dict[str, Any], *, limit: int = MAX_MESSAGE_BYTES, substituted: list[Any] | None = None
) -> bytes:
    """Encode a built message, enforcing the API's per-message size limit.

    Raises :class:`EventTooLargeError` over ``limit`` bytes, :class:`InvalidEventError` if
    the value cannot be encoded at all. Values whose ``str()`` raised, sent as
    ``"<unprintable TYPE>"``, are added to ``substituted`` (see :func:`substitution_error`).

    Example::

        >>> encode_message(build_message("track", user_id=1, event="x"))[:15]
        b'{"type":"track"'
    """
    try:
        data = encode(message, substituted)
    except EncodingError as err:
        raise InvalidEventError(
            message.get("type", "?"), None, str(err), message_id=message.get("messageId")
        ) from err
    if len(data) > limit:
        raise EventTooLargeError(
            message["type"], message_id=message["messageId"], size=len(data), limit=limit
        )
    # orjson hands back bytes inside a buffer of 4 KB or more; the queue may hold ten
    # thousand of them, so keep an exact-size copy instead (joining with b"" makes one, in
    # a third of the time bytes(memoryview(data)) takes).
    return _join((data, b""))


def substitution_error(message: dict[str, Any], values: list[Any]) -> InvalidEventError:
    """The error reporting that ``values`` of ``message`` were sent changed: as
    ``"<unprintable TYPE>"`` (their ``str()`` raised), or with U+FFFD for each lone surrogate
    (text that is not valid Unicode, as an undecodable file name), naming the fields that held
    them.

    Example::

        substituted: list[Any] = []
        data = encode_message(message, substituted=substituted)
        if substituted:
            analytics.report(substitution_error(message, substituted))
    """
    paths = []
    for value in values:
        try:
            path = _path_to(message, value, "", set())
        except RecursionError:  # nested deeper than the stack: the field stays unnamed
            path = None
        if path and path not in paths:
            paths.append(path)
    unprintable, surrogates = [], False
    for value in values:
        try:
            if not isinstance(value, str):
                str(value)
            surrogates = True
        except Exception:  # the __str__ that raised before: its type is all there is to say
            unprintable.append(type(value).__qualname__)
    reasons = []
    if unprintable:
        reasons.append(f"str() raised for {', '.join(sorted(set(unprintable)))}; sent as "
                       "\"<unprintable ...>\"")
    if surrogates:
        reasons.append("text that is not valid Unicode (lone surrogates, as an undecodable "
                       "file name gives) was sent with U+FFFD in their place")
    fields = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return InvalidEventError(
        message.get("type", "?"), fields or None, "; ".join(reasons),
        message_id=message.get("messageId"),
    )


def _path_to(container: Any, target: Any, path: str, seen: set[int]) -> str | None:
    """Where ``target`` (by identity, as a value or a key) is in ``container``: "properties.a[2]"."""
    if id(container) in seen:
        return None
    if isinstance(container, Mapping):
        seen.add(id(container))
        for key, item in container.items():
            name = key[:SHOWN_CHARS] if isinstance(key, str) else f"<{type(key).__qualname__} key>"
            inner = f"{path}.{name}" if path else name
            if key is target or item is target:
                return inner
            found = _path_to(item, target, inner, seen)
            if found:
                return found
    elif isinstance(container, (list, tuple, set, frozenset)):
        seen.add(id(container))
        for index, item in enumerate(container):
            inner = f"{path}[{index}]"
            if item is target:
                return inner
            found = _path_to(item, target, inner, seen)
            if found:
                return found
    return None


_join = b"".join


_plain_dumps = orjson.dumps


def encode_plain(message: dict[str, Any]) -> bytes | None:
    """What :func:`encode_message` returns, for a message orjson writes without help (no
    Decimal, set, NumPy value or non-string key) within the size limit; None for any other,
    which :func:`encode_message` then encodes or rejects. The quick way, for every event.

    Example::

        >>> encode_plain({"type": "track", "n": 1})
        b'{"type":"track","n":1}'
        >>> encode_plain({"type": "track", "n": {1, 2}}) is None
        True
    """
    try:
        data = _plain_dumps(message)
    except TypeError:  # orjson.JSONEncodeError is one
        return None
    if len(data) > MAX_MESSAGE_BYTES:
        return None
    return _join((data, b""))  # an exact-size copy: see encode_message
