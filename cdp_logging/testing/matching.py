"""Which captured messages an assertion means, and how a failed one describes the near misses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .lines import format_event_line


#: Keyword names accepted by the filters and assertions, and the message field each matches.
_FIELD_NAMES = {
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "group_id": "groupId",
    "object_type_id": "objectTypeId",
    "previous_id": "previousId",
    "message_id": "messageId",
}


#: Fields the library sends as strings; a number given in a filter is compared as its string.
_ID_FIELDS = frozenset(_FIELD_NAMES.values())


#: How many captured messages a failure message lists before it says how many more there are.
_LISTED = 50


#: How many messages of the wanted call a failure message explains.
_NEAR_MISSES = 5


def criteria_for(type: str | None, event: str | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The message fields to match, in the API's spelling; criteria given as None are dropped."""
    wanted: dict[str, Any] = {}
    if type is not None:
        wanted["type"] = type
    if event is not None:
        wanted["event"] = event
    for name, value in fields.items():
        if value is None:
            continue
        field = _FIELD_NAMES.get(name, name)
        if field in _ID_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        wanted[field] = value
    return wanted


def message_matches(message: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    for field, value in wanted.items():
        if field not in message or not _value_matches(message[field], value):
            return False
    return True


def _value_matches(actual: Any, expected: Any) -> bool:
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and _value_matches(actual[key], value) for key, value in expected.items()
        )
    return bool(actual == expected)


def describe_wanted(wanted: Mapping[str, Any]) -> str:
    """``track "Signed Up" with userId='42'``: the criteria as a failure message states them."""
    text = str(wanted.get("type", "call"))
    if "event" in wanted:
        text += f" {_short(wanted['event'])}"
    rest = [f"{field}={_short(value)}" for field, value in wanted.items()
            if field not in ("type", "event")]
    return f"{text} with {', '.join(rest)}" if rest else text


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _differences(
    actual: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = ""
) -> list[str]:
    """What keeps ``actual`` from matching, one phrase per field: ``userId is '43', not '42'``."""
    found = []
    for field, value in wanted.items():
        name = prefix + str(field)
        if field not in actual:
            found.append(f"{name} is missing")
        elif isinstance(value, Mapping) and isinstance(actual[field], Mapping):
            found += _differences(actual[field], value, name + ".")
        elif not _value_matches(actual[field], value):
            found.append(f"{name} is {_short(actual[field])}, not {_short(value)}")
    return found


def listing_of(messages: list[dict[str, Any]], marked: list[dict[str, Any]],
             wanted: Mapping[str, Any] | None = None) -> str:
    """Every captured message as a line (``>`` marks matches), then why near misses differ."""
    if not messages:
        return (
            "no messages were captured. A call with invalid fields is not captured "
            "(Analytics raises InvalidEventError; CDPHandler reports it on the 'cdp_logging' "
            "logger); a log record below the logger's or the handler's level never reaches "
            "the handler; calls made before the capture began were queued, not captured."
        )
    marked_ids = {id(message) for message in marked}
    noun = "message" if len(messages) == 1 else "messages"
    lines = [f"captured {len(messages)} {noun}:"]
    for message in messages[:_LISTED]:
        lines.append(("> " if id(message) in marked_ids else "  ") + format_event_line(message))
    if len(messages) > _LISTED:
        lines.append(f"  ... and {len(messages) - _LISTED} more")
    if wanted and not marked:
        # A message of the same call (and event) is the one the test most likely meant.
        kind = {field: wanted[field] for field in ("type", "event") if field in wanted}
        near = [message for message in messages if message_matches(message, kind)][:_NEAR_MISSES]
        if near and len(kind) < len(wanted):
            lines.append("closest:")
            for message in near:
                why = "; ".join(_differences(message, wanted))
                lines.append(f"  {format_event_line(message)}: {why}")
    return "\n".join(lines)
