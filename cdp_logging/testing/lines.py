"""One message as one readable line, for the collector's output and test failures."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any


_MAX_VALUE_CHARS = 40


_MAX_TITLE_CHARS = 60


_PLAIN_TEXT = re.compile(r'[^\s"=]+')


def format_event_line(message: Mapping[str, Any], *, max_fields: int = 4) -> str:
    """One readable line for a message: type, event or name, who, and a few properties or traits.

    Values are shortened and control characters escaped, so any payload prints as one safe line.

    >>> format_event_line({"type": "track", "event": "Order Completed", "userId": "42",
    ...                    "properties": {"order_id": 7, "total": 9.5}})
    'track  "Order Completed"  user=42  order_id=7 total=9.5'
    """
    call_type = message.get("type")
    parts = [call_type if isinstance(call_type, str) and call_type else "?"]
    title = message.get("event") if call_type == "track" else message.get("name")
    if title is not None and call_type in ("track", "page", "screen"):
        parts.append(_quote(_shorten(str(title), _MAX_TITLE_CHARS)))
    if call_type == "group" and message.get("groupId") is not None:
        parts.append(f"group={_render(message['groupId'])}")
    if message.get("userId") is not None:
        parts.append(f"user={_render(message['userId'])}")
    elif message.get("anonymousId") is not None:
        parts.append(f"anonymous={_render(message['anonymousId'])}")
    if call_type == "alias" and message.get("previousId") is not None:
        parts.append(f"previous={_render(message['previousId'])}")
    details = message.get("traits" if call_type in ("identify", "group") else "properties")
    if isinstance(details, Mapping) and details:
        shown = [f"{_render(key)}={_render(value)}" for key, value in details.items()][:max_fields]
        if len(details) > max_fields:
            shown.append(f"(+{len(details) - max_fields} more)")
        parts.append(" ".join(shown))
    return "  ".join(parts)


def _render(value: Any) -> str:
    if isinstance(value, str):
        text = _shorten(value, _MAX_VALUE_CHARS)
        return text if _PLAIN_TEXT.fullmatch(text) and text.isprintable() else _quote(text)
    try:
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    except ValueError:  # a circular structure, only possible when called with Python objects
        encoded = repr(value)
    return _escape_unprintable(_shorten(encoded, _MAX_VALUE_CHARS))


def _quote(text: str) -> str:
    return _escape_unprintable(json.dumps(text, ensure_ascii=False))


def printable(text: str) -> str:
    """``text`` safe to write to a terminal: control characters (C0, C1, DEL), bidirectional
    overrides and everything else unprintable escaped as ``\\uXXXX``, so that nothing a
    client sends can move the cursor, retitle the window or hide a line.

    >>> printable("track \x1b[2Jhi")
    'track \\u001b[2Jhi'
    """
    return _escape_unprintable(text)


def _escape_unprintable(text: str) -> str:
    # json.dumps escapes only C0 controls; C1 controls and the like could still drive a terminal.
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else f"\\u{ord(char):04x}" for char in text)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
