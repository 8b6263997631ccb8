"""The handler's fast path: a record's payload made a message in one step when every field is
plainly valid; anything else goes the full way through :func:`~cdp_logging.messages.build_message`."""

from __future__ import annotations

from typing import Any

from . import encoding as _encoding
from .encoding import take_spare_id, iso_from_epoch, new_message_id
from .messages import DEFAULT_CONTEXT, LIBRARY
from .scoping import active_scope


#: The fields :func:`fast_message` takes, per call: ids, names and dicts, the fields a
#: logging payload nearly always holds (and ``context``, which a scope adds). Any other field
#: takes the general path.
_FAST_FIELDS: dict[str, frozenset[str]] = {
    "identify": frozenset(("user_id", "anonymous_id", "traits", "context")),
    "track": frozenset(("user_id", "anonymous_id", "event", "properties", "context")),
    "page": frozenset(("user_id", "anonymous_id", "name", "category", "properties", "context")),
    "screen": frozenset(("user_id", "anonymous_id", "name", "category", "properties", "context")),
}


def fast_message(call: str, fields: dict[str, Any], timestamp: float) -> dict[str, Any] | None:
    """The message :func:`build_message` makes of ``fields`` at ``timestamp`` (epoch seconds),
    when the fields are of the common kinds; None for anything else.

    The common kinds: identify, track, page or screen; non-empty string ids; a non-empty
    string event; string names and categories; plain dicts of traits, properties or context;
    no other field. Inside a :class:`cdp_logging.scope`, its fields fill those left unset.
    This runs for nearly every record a handler sends, where calling :func:`build_message`
    with keyword arguments and its general checks would cost more than all the rest of the
    application's share. It never raises: whatever it declines, :func:`build_message` accepts
    or rejects as usual.

    Example::

        >>> fast_message("track", {"user_id": "42", "event": "Added"}, 0.0)["timestamp"]
        '1970-01-01T00:00:00.000Z'
    """
    scope = active_scope()
    if scope is not None:
        # cdp_logging.scope fills what the call leaves unset, as in build_message.
        fields = scope.fill(fields)
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
                message_id = take_spare_id()
            except IndexError:
                message_id = new_message_id()
            first, stamps = _encoding._recent_stamps
            index = int(timestamp * 1000) - first
            return {"type": "track", "messageId": message_id,
                    "timestamp": stamps[index] if 0 <= index < 1000 else iso_from_epoch(timestamp),
                    "userId": user_id, "event": event, "properties": body, "context": DEFAULT_CONTEXT}
    allowed = _FAST_FIELDS.get(call)
    if allowed is None or not fields.keys() <= allowed or type(timestamp) is not float:
        return None
    context = fields.get("context")
    if context is not None and type(context) is not dict:
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
    message["context"] = DEFAULT_CONTEXT if context is None else {"library": LIBRARY, **context}
    return message
