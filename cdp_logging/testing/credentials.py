"""The local collector's check of a request's credentials, as the API checks them: made from
the head alone, before a byte of the body is read."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from .wire import header_value


def credentials_refused(headers: Mapping[str, str], expected: str | None) -> str | None:
    """Why the request's credentials are refused, or None when they are accepted: Basic auth
    with the write key as user name and no password, or a region API key as a Bearer token;
    with ``expected``, only that key.

    >>> credentials_refused({"Authorization": "Basic a2V5Og=="}, "key") is None
    True
    """
    authorization = header_value(headers, "Authorization", "")
    if not authorization:
        return "missing Authorization: use Basic auth, the write key as user name, no password"
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        # Region API keys go as Bearer tokens (protocol.authorization), as the API takes
        # them. Imported here: the collector alone does not load requests.
        from ..delivery.protocol import key_region

        if key_region(token.strip()) is None:
            return ("Bearer auth is for region API keys (pk_us_, sk_us_, pk_eu_, sk_eu_); "
                    "send other keys as Basic auth")
        return _check_key(token.strip(), expected)
    if scheme.lower() != "basic":
        # Not echoed: a client that sends its bare write key would see it in the answer.
        return "Authorization is neither of the Basic nor the Bearer scheme"
    try:
        credentials = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "Basic credentials are not valid base64 of UTF-8 'user:password'"
    user, colon, password = credentials.partition(":")
    if not colon:
        return "Basic credentials lack the ':' between user name and password"
    if not user:
        return "the user name (the write key) is empty"
    if password:
        return "the password must be empty: the write key goes in the user name"
    return _check_key(user, expected)

def _check_key(key: str, expected: str | None) -> str | None:
    if expected is not None and not hmac.compare_digest(key.encode("utf-8"), expected.encode("utf-8")):
        return "the write key is not the one this collector expects"
    return None
