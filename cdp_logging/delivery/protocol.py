"""What a transport is (it posts a body and returns a :class:`Response` or raises
:class:`TransportError`), and what every request carries: the user agent and the authorization."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Protocol
from collections.abc import Mapping

import requests
import requests.adapters
import requests.auth
import requests.sessions
import requests.utils

from .._version import __version__
# TransportError is imported from here too (its home before errors.py).
from ..errors import TransportError as TransportError
from ..secret import Secret


USER_AGENT = f"cdp-logging/{__version__}"


#: API keys that name their region ("pk_eu_..."): sent as a Bearer token, as the official
#: client sends them; any other write key goes as Basic auth, the key as user name.
_REGION_KEY = re.compile(r"(?:pk|sk)_(us|eu)_")


def key_region(write_key: str) -> str | None:
    """"us" or "eu" for a region API key (``pk_us_``, ``sk_us_``, ``pk_eu_``, ``sk_eu_``), else None.

    Example::

        >>> key_region("pk_eu_123"), key_region("legacy-write-key")
        ('eu', None)
    """
    found = _REGION_KEY.match(write_key)
    return None if found is None else found.group(1)


def authorization(write_key: str) -> str:
    """The Authorization header's value: Bearer for a region API key, else Basic with the
    key as user name and an empty password.

    Example::

        >>> authorization("pk_us_1")
        'Bearer pk_us_1'
    """
    if key_region(write_key) is not None:
        # As Basic's credentials are: a character latin-1 lacks must not stop every request.
        return "Bearer " + write_key.encode("latin-1", "replace").decode("latin-1")
    return "Basic " + base64.b64encode(f"{write_key}:".encode("latin-1", "replace")).decode("ascii")


class AuthorizationHeader(requests.auth.AuthBase):
    """Sets the header :func:`authorization` gives. Set as the session's ``auth``, so requests
    never swaps in Basic auth from a matching ``.netrc`` entry."""

    def __init__(self, value: Secret[str]) -> None:
        self._value = value  # a Secret: no attribute holds the header in the clear

    def __repr__(self) -> str:
        return "<AuthorizationHeader>"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._value.value
        return request


#: How much of an error response's text is kept in a DeliveryError.
RESPONSE_TEXT_LIMIT = 300


@dataclass(frozen=True)
class Response:
    """What a transport got back: the status, headers and (decoded) text."""

    status: int
    text: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


class Transport(Protocol):
    """Sends one request body; returns the response or raises :class:`TransportError`.

    Anything else a ``post`` raises (or returns instead of a :class:`Response`) is taken as a
    failed attempt too: retried, and reported when the batch is given up, never lost.

    A transport whose ``post`` also takes a ``timeout`` keyword lets a closing client cut a
    request to the time left before its close deadline; one without it is given none.

    Example (a transport that accepts everything)::

        class Accepting:
            def post(self, path: str, body: bytes) -> Response:
                return Response(200)
            def close(self) -> None:
                pass
    """

    def post(self, path: str, body: bytes) -> Response:
        """POST ``body`` (JSON, uncompressed) to ``path`` under the host."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
