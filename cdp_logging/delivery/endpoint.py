"""The API host, checked once at configuration, and text made safe to show.

A host is parsed one way, by :func:`urllib.parse.urlsplit`, and must read the same to urllib3
(which ``requests`` sends through): a URL the two parsers read differently (a backslash, an
``@`` in odd places) would be warned about as one host and connect to another. Its name is
IDNA-encoded (as ``requests`` encodes names, with the ``idna`` package), its path
percent-encoded, and what has no place in it (a user name or password, a query, a fragment,
whitespace or control characters) refused with a message that never shows a password.

Text that leaves the library (error messages, their causes, quoted answers) goes through
:func:`scrubbed`: the write key (as sent, and Base64-encoded as in Basic auth) and the
password of any URL in it are replaced.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import idna
import urllib3.util

#: The user information of any URL in a text (``scheme://user:password@``): hidden whole.
_USER_INFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#'\"<>]*@")


#: Characters a URL path may hold as they are (RFC 3986 pchar and "/", and "%" of an escape).
_PATH_SAFE = "/%!$&'()*+,;=:@-._~"


def hide_passwords(text: str) -> str:
    """``text`` with the user information of every URL in it replaced by ``***``.

    Example::

        >>> hide_passwords("Failed to parse: http://user:PASSWORD@proxy:99999")
        'Failed to parse: http://***@proxy:99999'
    """
    return _USER_INFO.sub(r"\1***@", text) if "@" in text else text


def scrubbed(text: str, key: str | None) -> str:
    """``text`` without the write key ``key`` (as sent, Base64-encoded as Basic auth sends it,
    and the Authorization header's value) and without URL passwords.

    Example::

        >>> scrubbed("echo: Authorization: Basic a2V5Og==", "key")
        'echo: Authorization: Basic [write key]'
    """
    if key and len(text) >= len(key):  # each form is at least as long as the key
        forms = _forms(key)
        if any(form in text for form in forms):
            text = re.sub("|".join(re.escape(form) for form in forms), "[write key]", text)
    return hide_passwords(text)


def _forms(key: str) -> list[str]:
    """The ways ``key`` may show in a text: as is, and as Basic auth's Base64 of ``key:``."""
    encoded = base64.b64encode(f"{key}:".encode("latin-1", "replace")).decode("ascii")
    return sorted({encoded, encoded.rstrip("="), key}, key=len, reverse=True)


def check_write_key(key: str) -> None:
    """Refuse a write key holding a control character (a CR or LF would end the Authorization
    header and start another header or request), naming where, never the key.

    Example::

        >>> check_write_key("pk_us_1\\r\\nX: y")
        Traceback (most recent call last):
        ValueError: cdp_logging option 'write_key' (or CDP_WRITE_KEY) holds a control character ...
    """
    for position, character in enumerate(key):
        if unicodedata.category(character) == "Cc":
            length = len(key)
            del key  # a traceback recorded with its locals must not show it
            raise ValueError(
                "cdp_logging option 'write_key' (or CDP_WRITE_KEY) holds a control character "
                f"(U+{ord(character):04X} at position {position + 1} of {length}; the key is not "
                "shown): copy the key again from the source's settings")


def check_host(host: str) -> str:
    """``host`` checked and in the one form every part of the library uses: scheme, the
    IDNA-encoded (lower-case) name or IP address, the port if given, the percent-encoded path;
    no trailing slash. Raises ValueError naming what is wrong (a password never shown).

    Example::

        >>> check_host("https://Bücher.example/my api/")
        'https://xn--bcher-kva.example/my%20api'
    """
    shown = hide_passwords(host)

    def refuse(why: str) -> ValueError:
        return ValueError(f"cdp_logging option 'host' {why}, got {shown!r}")

    if any(unicodedata.category(character) == "Cc" for character in host):
        raise refuse("must not hold control characters")
    host = host.strip()
    url = urlsplit(host)
    if url.scheme not in ("http", "https") or not host.lower().startswith(("http://", "https://")):
        raise refuse("must be an http(s) URL")
    if "@" in url.netloc:
        raise refuse("must not hold a user name or password (the write key is the only credential)")
    if url.query or url.fragment or "?" in host or "#" in host:
        raise refuse("must not hold a query (?) or fragment (#): give the scheme, name, port and path")
    if "\\" in host or any(character.isspace() for character in url.netloc):
        raise refuse("must not hold a backslash or spaces in its name")
    name = url.hostname
    if not name:
        raise refuse("must name a host")
    try:
        port = url.port
    except ValueError:
        raise refuse("has a port that is not a number from 0 to 65535") from None
    name = _encoded_name(name, refuse)
    netloc = f"[{name}]" if ":" in name else name
    if port is not None:
        netloc += f":{port}"
    path = quote(url.path, safe=_PATH_SAFE).rstrip("/")
    checked = f"{url.scheme}://{netloc}{path}"
    # One parse for everyone: what urllib3 (the requests path) reads must be what we read.
    parsed = urllib3.util.parse_url(checked)
    if (parsed.host or "").strip("[]").lower() != name or parsed.port != port or parsed.auth:
        raise refuse("is read differently by urllib3")
    return checked


def _encoded_name(name: str, refuse: Callable[[str], ValueError]) -> str:
    """An IP address as it is; a name IDNA-encoded (UTS 46, as requests does)."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        encoded = idna.encode(name, uts46=True).decode("ascii") if not name.isascii() else name
    except idna.IDNAError as err:
        raise refuse(f"has a name that is not a valid internationalised domain name ({err})") from None
    if not re.fullmatch(r"[a-z0-9_.\-]+", encoded):
        raise refuse("has a name with characters a host name cannot hold")
    return encoded
