"""before_send functions named by dotted path in the privacy tests' logging configurations."""

from __future__ import annotations

from typing import Any


def drop_internal_users(message: dict[str, Any]) -> dict[str, Any] | None:
    """Drops events of users whose id starts with ``staff-``; marks the others."""
    if str(message.get("userId", "")).startswith("staff-"):
        return None
    message.setdefault("properties", {})["checked_by"] = "before_send"
    return message
