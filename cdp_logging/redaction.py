"""Redaction: values under secret-named keys sent as ``"[redacted]"``, at any depth of a message's
``properties``, ``traits`` and ``context``, lists included.

The walk never changes the application's own objects: a dict or list holding a secret is
copied, the rest is shared. A message without secrets costs a look-up per key and allocates
nothing. :mod:`cdp_logging.privacy` runs it for every message, before ``before_send``.

Example::

    from cdp_logging import Analytics, DEFAULT_REDACT_KEYS

    analytics = Analytics(redact_keys=DEFAULT_REDACT_KEYS + ("ssn",))
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import InvalidEventError
from .messages import LIBRARY, build_message
from .reporting import warn

#: The keys whose values are never sent (compared as :func:`normalise` makes them), the default
#: of the ``redact_keys`` option: credentials, session and CSRF tokens, payment card data.
DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password", "passwd", "pwd", "passphrase", "secret", "secret_key", "client_secret", "api_secret",
    "token", "access_token", "refresh_token", "id_token", "auth_token", "session_token", "bearer", "jwt",
    "api_key", "x_api_key", "access_key", "aws_secret_access_key", "private_key",
    "authorization", "proxy_authorization", "auth", "credentials",
    "cookie", "cookies", "set_cookie", "session", "session_id", "phpsessid", "connect.sid",
    "csrf", "csrf_token", "csrftoken", "x_csrf_token", "xsrf", "xsrf_token", "x_xsrf_token",
    "card_number", "credit_card", "credit_card_number", "cc_number", "cvv", "cvv2", "cvc",
    "otp", "mfa_code",
)
#: What a redacted value is sent as.
REDACTED = "[redacted]"
#: The variable that sets ``redact_keys`` for clients not given it in code.
ENV_REDACT_KEYS = "CDP_REDACT_KEYS"
#: The identifiers Customer.io needs (normalised): never redacted, refused in ``redact_keys``.
IDENTIFIERS = frozenset(("email", "phone", "userid", "anonymousid", "groupid", "previousid",
                         "objecttypeid", "messageid", "id"))
#: How deep the walk looks: an event nested deeper (or holding a cycle) is refused as invalid,
#: since it cannot be checked (the encoder itself gives up at 254 levels).
MAX_DEPTH = 100


class _TooDeep(Exception):
    """Raised by the walk at MAX_DEPTH."""
#: Keys remembered with their verdict: more (keys made of ids, say) are judged each time.
_MAX_VERDICTS = 4096
#: Values the walk never looks into, found by one set look-up of their type.
_LEAVES = frozenset((str, int, float, bool, type(None)))
#: The context of nearly every message, the library's own (build_message shares one dict):
#: nothing to look through.
_LIBRARY_ONLY = build_message("alias", previous_id="a", user_id="b")["context"]
_SHAPE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.$")


def normalise(key: str) -> str:
    """A key as compared with ``redact_keys``: lower case, ``-`` and ``_`` left out, so that
    ``Access-Token``, ``access_token`` and ``accessToken`` are one key.

    Example::

        >>> normalise("X-CSRF-Token")
        'xcsrftoken'
    """
    return key.lower().replace("-", "").replace("_", "")


def check_redact_keys(keys: Any, option: str = "redact_keys") -> tuple[str, ...]:
    """The keys of the ``redact_keys`` option as a tuple; TypeError or ValueError naming
    ``option`` for anything but an iterable of key names, or a name of an identifier.

    Example::

        >>> check_redact_keys(["password", "ssn"])
        ('password', 'ssn')
    """
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise TypeError(f"cdp_logging option {option!r} must be a tuple or list of key names "
                        f"(DEFAULT_REDACT_KEYS + ('my_key',), or () for none), got {keys!r}")
    checked = tuple(keys)
    for key in checked:
        if not isinstance(key, str) or not normalise(key.strip()):
            raise TypeError(f"cdp_logging option {option!r} must hold key names, got {key!r}")
        if normalise(key) in IDENTIFIERS:
            raise ValueError(
                f"cdp_logging option {option!r}: {key!r} is an identifier Customer.io needs and is "
                "never redacted; remove it where you mean to with before_send"
            )
    return checked


def parse_redact_keys(text: str) -> tuple[str, ...]:
    """``redact_keys`` as the text of ``CDP_REDACT_KEYS`` sets it: key names separated by
    commas, ``+`` first to add them to the default list, ``none`` for no redaction; ValueError
    saying what it must be.

    Example::

        >>> parse_redact_keys("+ssn")[-1]
        'ssn'
    """
    text = text.strip()
    if text.lower() == "none":
        return ()
    added = text.startswith("+")
    names = [name.strip() for name in text.removeprefix("+").split(",")]
    if any(not name or not set(name.lower()) <= _SHAPE for name in names):
        raise ValueError("must be key names separated by commas (letters, digits, _ - . $), '+' first "
                         "to add to the default list, or 'none'")
    try:
        keys = check_redact_keys(names, ENV_REDACT_KEYS)
    except (TypeError, ValueError) as err:
        raise ValueError(str(err).replace(f"cdp_logging option {ENV_REDACT_KEYS!r}: ", "")) from None
    return DEFAULT_REDACT_KEYS + keys if added else keys


_warned_environment: set[str] = set()


def redact_keys_from_environment(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``redact_keys`` as ``CDP_REDACT_KEYS`` in ``environ`` sets it (see
    :func:`parse_redact_keys`); unset or blank, the default. A value it cannot read is one
    WARNING naming the variable, and the default (``cdp-logging check`` reads it this way).

    Example::

        >>> redact_keys_from_environment({"CDP_REDACT_KEYS": "+ssn"})[-1]
        'ssn'
    """
    text = (os.environ if environ is None else environ).get(ENV_REDACT_KEYS, "").strip()
    if not text:
        return DEFAULT_REDACT_KEYS
    try:
        return parse_redact_keys(text)
    except ValueError as err:
        if text not in _warned_environment:
            _warned_environment.add(text)
            warn("cdp-logging: ignoring %s=%r: %s; using the default list", ENV_REDACT_KEYS,
                 text[:200], err)
        return DEFAULT_REDACT_KEYS


class Redactor:
    """Replaces the values under ``keys`` with ``"[redacted]"`` at any depth of a message's
    ``properties``, ``traits`` and ``context``; ``on_redacted(entry, key)`` is told of each
    (``entry``: the name in ``keys`` it matched, ``key``: the key as found).

    Example::

        redactor = Redactor(("password",), lambda entry, key: None)
        redactor.redact({"type": "track", "properties": {"Password": "hunter2"}})
        # {'type': 'track', 'properties': {'Password': '[redacted]'}}
    """

    def __init__(self, keys: Iterable[str], on_redacted: Callable[[str, Any], object],
                 on_refused: Callable[[InvalidEventError], object] = lambda error: None) -> None:
        self.keys = tuple(keys)
        self._entries = {normalise(key): key for key in self.keys}
        #: Raw key -> the entry it matches, or "" when it names no secret; and the latter keys.
        self._verdicts: dict[str, str] = {}
        self._safe: set[str] = set()
        self._all_safe = self._safe.issuperset
        self._on_redacted = on_redacted
        self._on_refused = on_refused

    def redact(self, message: dict[str, Any]) -> dict[str, Any]:
        """``message``, or a copy with the secrets' values replaced (its nested dicts and lists
        copied only where they changed); never changes ``message`` or the objects it holds.

        Raises :class:`InvalidEventError` (told to ``on_refused`` first) for a message it cannot
        look through (nested too deep, a key whose ``__eq__`` raised): it is not sent unread."""
        try:
            changed = None
            field = message.get
            body = field("properties")
            if body is not None:
                cleaned = body
                if type(body) is dict and self._all_safe(body):
                    # _clean_dict's first step, inlined for the field nearly every event has.
                    for item in body.values():
                        if type(item) not in _LEAVES:
                            cleaned = self._clean_dict(body, 0)
                            break
                else:
                    cleaned = self._clean(body, 0)
                if cleaned is not body:
                    changed = dict(message)
                    changed["properties"] = cleaned
            body = field("traits")
            if body is not None:
                cleaned = self._clean_dict(body, 0) if type(body) is dict else self._clean(body, 0)
                if cleaned is not body:
                    changed = changed or dict(message)
                    changed["traits"] = cleaned
            body = field("context")
            if body is not None and body is not _LIBRARY_ONLY:
                cleaned = self._clean(body, 0)
                if cleaned is not body:
                    changed = changed or dict(message)
                    changed["context"] = cleaned
        except Exception as err:
            problem = (f"nested deeper than {MAX_DEPTH} levels (or holding itself)" if isinstance(err, _TooDeep)
                       else f"{type(err).__name__}: {err}")
            error = InvalidEventError(
                message.get("type", "?"), None,
                f"could not be checked for secret-named keys ({problem}), so it is not sent",
                message_id=message.get("messageId"),
            )
            self._on_refused(error)
            raise error from (None if isinstance(err, _TooDeep) else err)
        return message if changed is None else changed

    def _entry(self, key: Any) -> str:
        """The entry of ``keys`` that ``key`` names, or ""."""
        if not isinstance(key, str):
            return ""
        entry = self._entries.get(normalise(key), "")
        if type(key) is str and len(self._verdicts) < _MAX_VERDICTS:
            self._verdicts[key] = entry
            if not entry:
                self._safe.add(key)
        return entry

    def _clean(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if depth >= MAX_DEPTH:
            raise _TooDeep
        if kind is dict:
            return self._clean_dict(value, depth)
        if kind is list or kind is tuple:
            return self._clean_items(value, depth)
        if kind in _LEAVES:
            return value
        # Rarer containers, as the encoder writes them: any mapping, sequences, dataclasses.
        if isinstance(value, Mapping):
            cleaned = self._clean_dict(value, depth)
            return value if cleaned is value else cleaned
        if isinstance(value, (list, tuple)):
            return self._clean_items(value, depth)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
            cleaned = self._clean_dict(fields, depth)
            return value if cleaned is fields else cleaned
        return value

    def _clean_dict(self, value: Mapping[Any, Any], depth: int) -> Any:
        leaves = _LEAVES
        if self._all_safe(value):
            # Nearly every dict: keys seen before and found harmless (one C-level check), then
            # a look at the values' types alone.
            for item in value.values():
                if type(item) not in leaves:
                    break
            else:
                return value
        verdict = self._verdicts.get
        copy = None
        for key, item in value.items():
            entry = verdict(key)
            if entry is None:
                entry = self._entry(key)
            if entry:
                if copy is None:
                    copy = dict(value)
                copy[key] = REDACTED
                self._on_redacted(entry, key)
            elif type(item) not in leaves:
                cleaned = self._clean(item, depth + 1)
                if cleaned is not item:
                    if copy is None:
                        copy = dict(value)
                    copy[key] = cleaned
        return value if copy is None else copy

    def _clean_items(self, items: list[Any] | tuple[Any, ...], depth: int) -> Any:
        copy = None
        for index, item in enumerate(items):
            if type(item) not in _LEAVES:
                cleaned = self._clean(item, depth + 1)
                if cleaned is not item:
                    if copy is None:
                        copy = list(items)
                    copy[index] = cleaned
        return items if copy is None else copy

    def redacted_paths(self, message: Mapping[str, Any]) -> list[str]:
        """Where the values :meth:`redact` replaces are (``properties.headers.Authorization``,
        ``traits.cards[0].cvv``); slower, for showing, not for sending.

        Example::

            redactor.redacted_paths({"properties": {"password": "x"}})   # ['properties.password']
        """
        paths: list[str] = []

        def visit(value: Any, path: str, depth: int) -> None:
            if depth >= MAX_DEPTH:
                paths.append(path)
            elif isinstance(value, Mapping):
                for key, item in value.items():
                    inner = f"{path}.{key}"
                    if self._entry(key):
                        paths.append(inner)
                    elif item is not LIBRARY:
                        visit(item, inner, depth + 1)
            elif isinstance(value, (list, tuple)):
                for index, item in enumerate(value):
                    visit(item, f"{path}[{index}]", depth + 1)
            elif dataclasses.is_dataclass(value) and not isinstance(value, type):
                visit({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, path, depth)

        for field in ("properties", "traits", "context"):
            if message.get(field) is not None:
                visit(message[field], field, 0)
        return paths
