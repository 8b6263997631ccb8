"""What leaves your process: secrets redacted by default, and before_send to change or drop events.

Try it:     CDP_WRITE_KEY=... python examples/privacy.py
            (CDP_HOST=http://127.0.0.1:PORT sends to a local collector instead)

* Values under secret-named keys (password, token, authorization, cookie, api_key, cvv, ... :
  ``cdp_logging.DEFAULT_REDACT_KEYS``) are sent as "[redacted]", at any depth of properties,
  traits and context. Identifiers (email, phone, userId) are never touched.
* ``before_send`` sees each message after redaction: here it drops internal users' events,
  hashes the user id and removes a property nobody outside should see.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import cdp_logging

#: Your own secret-named keys, beside the default list.
REDACT_KEYS = (*cdp_logging.DEFAULT_REDACT_KEYS, "ssn", "internal_note")


def scrub(message: dict[str, Any]) -> dict[str, Any] | None:
    """before_send: return the message (changed or not), or None to drop it."""
    user_id = message.get("userId", "")
    if user_id.endswith("@staff.example.com"):
        return None  # internal users' events are not sent at all
    if user_id:
        # A stable pseudonym instead of the id itself.
        message["userId"] = hashlib.sha256(user_id.encode()).hexdigest()[:16]
    message.get("properties", {}).pop("debug_dump", None)  # a property to remove
    return message


def main() -> None:
    handler = cdp_logging.CDPHandler(redact_keys=REDACT_KEYS, before_send=scrub)
    log = logging.getLogger("shop")
    log.setLevel(logging.INFO)
    log.addHandler(handler)

    # Sent, with the password, the bearer token and the note redacted and debug_dump removed.
    log.info("login", extra={
        "event": "Logged In", "user_id": "ada@example.com", "method": "password",
        "password": "hunter2", "headers": {"Authorization": "Bearer abc"},
        "internal_note": "VIP", "debug_dump": {"rows": 1200},
    })
    # Dropped by scrub(): an internal user.
    log.info("login", extra={"event": "Logged In", "user_id": "ops@staff.example.com"})

    handler.flush()
    stats = handler.client.stats()
    print(f"redacted: {stats['redacted']}; dropped by before_send: {stats['dropped_by_before_send']}")
    handler.close()


if __name__ == "__main__":
    main()
