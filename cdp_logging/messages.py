"""From a call's fields to a CDP message: validation, normalisation and the encoded bytes.

One function, :func:`build_message`, serves the client's methods and the logging handler, so
both accept and reject exactly the same input.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import numbers
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from . import encoding as _encoding
from ._version import __version__
from .constants import CALL_TYPES, MAX_MESSAGE_BYTES
from .encoding import EncodingError, _take_spare_id, encode, iso_from_datetime, iso_from_epoch, new_message_id
from .errors import EventTooLargeError, InvalidEventError

#: What every message says about its sender, under ``context.library``.
LIBRARY = {"name": "cdp-logging", "version": __version__}
_DEFAULT_CONTEXT = {"library": LIBRARY}

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
    never sent as null; numeric ids (any number but a bool) become ``str(id)``;
    ``timestamp`` defaults to now, and a naive datetime is local time.

    Example::

        >>> build_message("track", user_id=42, event="Signed Up")["userId"]
        '42'
    """
    if call not in FIELDS:
        raise InvalidEventError(call, None, f"unknown call; expected one of {', '.join(CALL_TYPES)}")
    # Written for speed: this runs on the application's thread for every event, so the
    # common types take the first branch of each check and helpers run only when needed.
    if message_id is None:
        message_id = new_message_id()
    elif type(message_id) is not str or not message_id:
        message_id = _message_id(call, message_id)
    message: dict[str, Any] = {
        "type": call,
        "messageId": message_id,
        "timestamp": iso_from_epoch(timestamp)
        if type(timestamp) is float and _FIRST_EPOCH <= timestamp <= _LAST_EPOCH
        else _timestamp(call, timestamp, message_id),
    }
    if user_id is not None:
        if type(user_id) is not str:
            user_id = _identifier(call, "user_id", user_id, message_id)
        if user_id:
            message["userId"] = user_id
        else:
            user_id = None
    if anonymous_id is not None:
        if type(anonymous_id) is not str:
            anonymous_id = _identifier(call, "anonymous_id", anonymous_id, message_id)
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
            raise _nobody(call, message_id)
        if properties is not None:
            message["properties"] = _mapping(call, "properties", properties, message_id)
    elif call == "identify":
        if user_id is None and anonymous_id is None:
            raise _nobody(call, message_id)
        if traits is not None:
            message["traits"] = _mapping(call, "traits", traits, message_id)
    elif call == "page" or call == "screen":
        if user_id is None and anonymous_id is None:
            raise _nobody(call, message_id)
        if name is not None:
            message["name"] = _text(call, "name", name, message_id)
        if category is not None:
            message["category"] = _text(call, "category", category, message_id)
        if properties is not None:
            message["properties"] = _mapping(call, "properties", properties, message_id)
    elif call == "group":
        group = _identifier(call, "group_id", group_id, message_id)
        if group is None:
            raise InvalidEventError(call, "group_id", "is required", message_id=message_id)
        message["groupId"] = group
        object_type = _object_type(call, object_type_id, message_id)
        if object_type is not None:
            message["objectTypeId"] = object_type
        if traits is not None:
            traits = _mapping(call, "traits", traits, message_id)
            in_traits = traits.get("object_type_id")
            if in_traits is not None:
                # The docs also accept the object type as traits.object_type_id, a string there too.
                traits = {
                    **traits,
                    "object_type_id": _object_type(call, in_traits, message_id),
                }
            message["traits"] = traits
    else:  # alias
        previous = _identifier(call, "previous_id", previous_id, message_id)
        if previous is None:
            raise InvalidEventError(call, "previous_id", "is required", message_id=message_id)
        if user_id is None:
            raise InvalidEventError(call, "user_id", "is required", message_id=message_id)
        message["previousId"] = previous

    if context is None:
        message["context"] = _DEFAULT_CONTEXT
    else:
        message["context"] = {"library": LIBRARY, **_mapping(call, "context", context, message_id)}
    if integrations is not None:
        message["integrations"] = _mapping(call, "integrations", integrations, message_id)
    return message


#: The fields :func:`fast_message` takes, per call: ids, names and dicts, the fields a
#: logging payload nearly always holds. Any other field takes the general path.
_FAST_FIELDS: dict[str, frozenset[str]] = {
    "identify": frozenset(("user_id", "anonymous_id", "traits")),
    "track": frozenset(("user_id", "anonymous_id", "event", "properties")),
    "page": frozenset(("user_id", "anonymous_id", "name", "category", "properties")),
    "screen": frozenset(("user_id", "anonymous_id", "name", "category", "properties")),
}


def fast_message(call: str, fields: dict[str, Any], timestamp: float) -> dict[str, Any] | None:
    """The message :func:`build_message` makes of ``fields`` at ``timestamp`` (epoch seconds),
    when the fields are of the common kinds; None for anything else.

    The common kinds: identify, track, page or screen; non-empty string ids; a non-empty
    string event; string names and categories; plain dicts of traits or properties; no
    other field. This runs for nearly every record a handler sends, where calling
    :func:`build_message` with keyword arguments and its general checks would cost more
    than all the rest of the application's share. It never raises: whatever it declines,
    :func:`build_message` accepts or rejects as usual.

    Example::

        >>> fast_message("track", {"user_id": "42", "event": "Added"}, 0.0)["timestamp"]
        '1970-01-01T00:00:00.000Z'
    """
    if call == "track" and len(fields) == 3 and type(timestamp) is float:
        # The commonest shape of all, {"user_id", "event", "properties"}, in the fewest
        # steps: three valid values among three keys are exactly those three.
        user_id = fields.get("user_id")
        event = fields.get("event")
        body = fields.get("properties")
        if type(user_id) is str and user_id and type(event) is str and event and type(body) is dict:
            # new_message_id() and iso_from_epoch(), inlined: as calls they would cost a
            # tenth of what the application's thread spends on the event.
            try:
                message_id = _take_spare_id()
            except IndexError:
                message_id = new_message_id()
            first, stamps = _encoding._recent_stamps
            index = int(timestamp * 1000) - first
            return {"type": "track", "messageId": message_id,
                    "timestamp": stamps[index] if 0 <= index < 1000 else iso_from_epoch(timestamp),
                    "userId": user_id, "event": event, "properties": body, "context": _DEFAULT_CONTEXT}
    allowed = _FAST_FIELDS.get(call)
    if allowed is None or not fields.keys() <= allowed or type(timestamp) is not float:
        return None
    user_id = fields.get("user_id")
    anonymous_id = fields.get("anonymous_id")
    if anonymous_id is None:
        if type(user_id) is not str or not user_id:
            return None
    elif type(anonymous_id) is not str or not anonymous_id or (
            user_id is not None and (type(user_id) is not str or not user_id)):
        return None
    if call == "track":
        event = fields.get("event")
        body = fields.get("properties")
        if type(event) is not str or not event or (body is not None and type(body) is not dict):
            return None
    elif call == "identify":
        body = fields.get("traits")
        if body is not None and type(body) is not dict:
            return None
    else:
        name = fields.get("name")
        category = fields.get("category")
        body = fields.get("properties")
        if ((name is not None and type(name) is not str)
                or (category is not None and type(category) is not str)
                or (body is not None and type(body) is not dict)):
            return None
    message_id = new_message_id()
    stamp = iso_from_epoch(timestamp)
    # Keys in build_message's order throughout, so that both paths send the same bytes.
    if call == "track":
        message: dict[str, Any] = {"type": call, "messageId": message_id, "timestamp": stamp}
        if user_id is not None:
            message["userId"] = user_id
        if anonymous_id is not None:
            message["anonymousId"] = anonymous_id
        message["event"] = event
        if body is not None:
            message["properties"] = body
    else:
        message = {"type": call, "messageId": message_id, "timestamp": stamp}
        if user_id is not None:
            message["userId"] = user_id
        if anonymous_id is not None:
            message["anonymousId"] = anonymous_id
        if call == "identify":
            if body is not None:
                message["traits"] = body
        else:
            if name is not None:
                message["name"] = name
            if category is not None:
                message["category"] = category
            if body is not None:
                message["properties"] = body
    message["context"] = _DEFAULT_CONTEXT
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
    """The error reporting that ``values`` of ``message`` were sent as ``"<unprintable TYPE>"``
    (their ``str()`` raised), naming the fields that held them.

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
    kinds = sorted({type(value).__qualname__ for value in values})
    fields = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return InvalidEventError(
        message.get("type", "?"), fields or None,
        f"str() raised for {', '.join(kinds)}; sent as \"<unprintable ...>\"",
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


#: How much of a value's repr an error message quotes: a 10 MB id must not make a 10 MB
#: message, in the exception or in the log line that reports it.
SHOWN_CHARS = 80
#: Epoch seconds a timestamp may take: the years 1 to 9999, what a datetime can hold.
_FIRST_EPOCH = -62_135_596_800.0
_LAST_EPOCH = 253_402_300_799.999


def shown(value: Any) -> str:
    """The type and ``repr`` of ``value`` for an error message: cut to :data:`SHOWN_CHARS`,
    and never raising, whatever the value's ``__repr__`` does.

    Example::

        >>> shown("x" * 10_000_000)[-15:]
        '(10000000 long)'
        >>> shown(10**5000)
        'int (its repr raised ValueError)'
    """
    kind = type(value).__qualname__
    try:
        if type(value) in (str, bytes, bytearray):
            # Only the start is made into text: a 10 MB id is not copied to be cut.
            text, size = repr(value[:SHOWN_CHARS]), len(value)
        else:
            text = repr(value)
            size = len(text)
    except Exception as err:  # a broken __repr__ must not turn a clear error into its own
        return f"{kind} (its repr raised {type(err).__name__})"
    if size > SHOWN_CHARS:
        return f"{kind} {text[:SHOWN_CHARS]}... ({size} long)"
    return f"{kind} {text}"


def _message_id(call: str, value: Any) -> str:
    if value is None:
        return new_message_id()
    if isinstance(value, str) and value:
        return str(value)
    if not isinstance(value, str):
        # As the official client does: integers (and any number, and UUIDs) become strings.
        text = _id_text(value)
        if text:
            return text
    raise InvalidEventError(
        call, "message_id", f"must be a non-empty string, a number or a UUID, got {shown(value)}"
    )


def _id_text(value: Any) -> str | None:
    """``str(value)`` for a UUID or a finite number other than a bool, else None."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, numbers.Number) or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (float, decimal.Decimal)) and not math.isfinite(value):
            return None
        # int(value) first for int subclasses (an IntEnum's str() is its name).
        return str(int(value)) if isinstance(value, int) else str(value)
    except (ValueError, TypeError, ArithmeticError):  # int over 4300 digits, complex NaN
        return None


def _timestamp(call: str, value: Any, message_id: str) -> str:
    if value is None:
        return iso_from_epoch(time.time())
    problem = "must be a datetime, a date, epoch seconds or an ISO-8601 string"
    try:
        if isinstance(value, _dt.datetime):
            return iso_from_datetime(value)
        if isinstance(value, _dt.date):
            return f"{value.isoformat()}T00:00:00.000Z"
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            seconds = float(value)
            if _FIRST_EPOCH <= seconds <= _LAST_EPOCH:  # NaN fails both
                return iso_from_epoch(seconds)
            problem = "epoch seconds must fall in the years 1 to 9999"
        elif isinstance(value, str):
            try:
                parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                pass
            else:
                return iso_from_datetime(parsed)
    except (OverflowError, ValueError) as err:
        # 10**400 as a float; a datetime of year 1 or 9999 that leaves the range in UTC.
        problem = f"is out of range ({type(err).__name__})"
    raise InvalidEventError(call, "timestamp", f"{problem}, got {shown(value)}", message_id=message_id)


def _identifier(call: str, field: str, value: Any, message_id: str) -> str | None:
    """Ids are strings; numbers (0 included, not bools) and UUIDs become strings, as the
    official client sends them; '' counts as absent."""
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        return value or None
    if kind is int:
        try:
            return str(value)
        except ValueError:  # over sys.get_int_max_str_digits() digits
            pass
    elif isinstance(value, str):
        return str(value) or None
    else:
        text = _id_text(value)
        if text is not None:
            return text
    raise InvalidEventError(
        call,
        field,
        f"must be a string, a finite number or a UUID, got {shown(value)}",
        message_id=message_id,
    )


def _object_type(call: str, value: Any, message_id: str) -> str | None:
    """An object type is a whole number from 1 (or its string): 1.5 is a mistake, not an id."""
    if isinstance(value, numbers.Number) and not isinstance(value, numbers.Integral):
        raise InvalidEventError(
            call, "object_type_id", f"must be a string or an integer, got {shown(value)}", message_id=message_id
        )
    return _identifier(call, "object_type_id", value, message_id)


def _nobody(call: str, message_id: str) -> InvalidEventError:
    return InvalidEventError(call, "user_id", "user_id or anonymous_id is required", message_id=message_id)


def _mapping(call: str, field: str, value: Any, message_id: str) -> Any:
    if type(value) is dict or isinstance(value, Mapping):
        return value
    raise InvalidEventError(
        call, field, f"must be a dict, got {type(value).__name__}", message_id=message_id
    )


def _text(call: str, field: str, value: Any, message_id: str) -> str:
    if isinstance(value, str):
        return value
    raise InvalidEventError(call, field, f"must be a string, got {shown(value)}", message_id=message_id)
