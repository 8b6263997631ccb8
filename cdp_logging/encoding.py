"""JSON encoding of any Python value, and the timestamp and id formats of the API.

Messages are encoded once, on the calling thread, with orjson: the bytes are the snapshot
that is queued and sent, so later changes to the caller's dicts change nothing, and the
worker assembles request bodies by joining bytes. orjson was chosen over the standard
library for speed (it encodes a typical event several times faster) and because it
already writes datetimes, UUIDs, enums and dataclasses the way the API expects.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import functools
import json
import math
import os
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

#: The second attempt's options; the first has none and no default function, which makes
#: orjson faster (OPT_NON_STR_KEYS alone costs it a third) and fails fast on what it cannot
#: write by itself: a Decimal or a set, a NumPy value, a key that is not a string.
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_NON_STR_KEY_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_NULL = orjson.Fragment(b"null")
_dumps = orjson.dumps


class EncodingError(ValueError):
    """A value could not be turned into JSON even by the fallback encoder."""


def _default(value: Any, substituted: list[Any] | None = None) -> Any:
    """Convert what orjson cannot write natively; never raises. A value written as
    ``<unprintable ...>`` is added to ``substituted``."""
    if isinstance(value, decimal.Decimal):
        # Written as a JSON number with every digit kept; NaN and infinities become null.
        return orjson.Fragment(str(value).encode()) if value.is_finite() else _NULL
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)):
        # Subclasses orjson declines, e.g. with a custom __iter__.
        return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    return _text(value, substituted)


def _text(value: Any, substituted: list[Any] | None) -> str:
    try:
        text = str(value)
    except Exception:  # a broken __str__ must not lose the event; the caller reports it
        if substituted is not None:
            substituted.append(value)
        return f"<unprintable {type(value).__qualname__}>"
    valid = valid_unicode(text)  # a Path of an undecodable file name
    if valid is not text and substituted is not None:
        substituted.append(value)
    return valid


def encode(value: Any, substituted: list[Any] | None = None) -> bytes:
    """Encode ``value`` as compact JSON bytes, converting any Python value.

    datetime, date and time become ISO-8601 strings; Decimal a JSON number; UUID a string;
    Enum its value; set, tuple and frozenset arrays; dataclasses objects; bytes text;
    NaN and infinities null; non-string keys strings; anything else ``str(value)``, or
    ``"<unprintable TYPE>"`` when that raises: such values are added to ``substituted``.

    Example::

        >>> encode({"when": datetime.date(2024, 5, 1), "n": float("nan")})
        b'{"when":"2024-05-01","n":null}'
    """
    try:
        return _dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        pass
    default = _default if substituted is None else functools.partial(_default, substituted=substituted)
    try:
        return _dumps(value, default=default, option=_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        pass
    if substituted:
        del substituted[:]  # found again by the next attempt
    try:
        return _dumps(value, default=default, option=_NON_STR_KEY_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        # Integers beyond 64 bits, nesting deeper than orjson allows, circular references,
        # keys orjson cannot stringify, lone surrogates (undecodable file names): rebuild
        # the value as plain data and use json. A lone surrogate is made U+FFFD, the text
        # added to ``substituted``: its \uXXXX escape is JSON no strict decoder (orjson, the
        # spool's, the API's) reads, which lost the whole batch's callbacks.
        if substituted:
            del substituted[:]
        try:
            return json.dumps(_plain(value, set(), substituted), separators=(",", ":"),
                              ensure_ascii=False).encode("utf-8", "backslashreplace")
        except (RecursionError, ValueError, TypeError) as err:
            raise EncodingError(f"cannot encode as JSON: {err}") from err


_SURROGATE = re.compile(r"[\ud800-\udfff]")  # re reads the escapes: no lone surrogate in the source


def valid_unicode(text: str, substituted: list[Any] | None = None) -> str:
    """``text`` with each lone surrogate (a byte of an undecodable file name, as
    ``os.listdir`` returns it) made U+FFFD; ``text`` itself is added to ``substituted`` when
    it held any. Never raises.

    Example::

        >>> valid_unicode("caf\\udce9")
        'caf\ufffd'
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        if substituted is not None:
            substituted.append(text)
        return _SURROGATE.sub("\ufffd", text)
    return text


def _plain(value: Any, seen: set[int], substituted: list[Any] | None) -> Any:
    """A JSON-ready copy of ``value``; the slow path behind :func:`encode`."""
    if type(value) is str:
        return valid_unicode(value, substituted)
    if value is None or isinstance(value, (str, bool, int)):
        return value if type(value) in (str, bool, int) or value is None else _scalar(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value, seen, substituted)
    if id(value) in seen:
        return "<circular reference>"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        seen.add(id(value))
        try:
            return {f.name: _plain(getattr(value, f.name), seen, substituted) for f in dataclasses.fields(value)}
        finally:
            seen.discard(id(value))
    if isinstance(value, Mapping):
        seen.add(id(value))
        try:
            return {_key(k, substituted): _plain(v, seen, substituted) for k, v in value.items()}
        finally:
            seen.discard(id(value))
    if isinstance(value, (list, tuple, set, frozenset)):
        seen.add(id(value))
        try:
            return [_plain(v, seen, substituted) for v in value]
        finally:
            seen.discard(id(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return _text(value, substituted)


def _scalar(value: Any) -> Any:
    """Subclasses of str/int/bool as their base type."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    return valid_unicode(str(value))


def _key(key: Any, substituted: list[Any] | None) -> str:
    if isinstance(key, str):
        return valid_unicode(key if type(key) is str else str(key), substituted)
    if isinstance(key, enum.Enum):
        key = key.value
    if isinstance(key, (_dt.datetime, _dt.date, _dt.time)):
        return key.isoformat()
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return _text(key, substituted)


# -- timestamps ----------------------------------------------------------------------------

#: ".000Z" to ".999Z".
_MILLISECONDS = tuple(f".{n:03d}Z" for n in range(1000))
#: The API's timestamps for every millisecond of the latest second events were made in:
#: that second's first millisecond (epoch milliseconds) and the 1,000 strings. Nearly every
#: event is stamped "now", so its timestamp is one look-up, with nothing formatted or
#: allocated; the table is remade once a second, for about 50 microseconds.
_recent_stamps: tuple[int, tuple[str, ...]] = (-(10**18), ())
#: The last second formatted outside the table (a backfill's, say) and its text.
_other_second: tuple[int, str] = (-(10**18), "")
#: Only seconds this close to the clock get a table: a backfill through seconds long past
#: would otherwise remake it for every event.
_TABLE_WINDOW_SECONDS = 2.0


def iso_from_epoch(seconds: float) -> str:
    """ISO-8601 UTC with milliseconds for a ``time.time()`` value, e.g. ``2024-05-01T12:00:00.250Z``.

    Called for every event: the current second's 1,000 timestamps are made once.

    Example::

        >>> iso_from_epoch(0.5)
        '1970-01-01T00:00:00.500Z'
    """
    milliseconds = int(seconds * 1000) if seconds >= 0 else math.floor(seconds * 1000)
    # One tuple, read once: another thread may replace it meanwhile.
    first, stamps = _recent_stamps
    index = milliseconds - first
    if 0 <= index < 1000:
        return stamps[index]
    return stamp_of_milliseconds(milliseconds)


def stamp_of_milliseconds(milliseconds: int) -> str:
    """The timestamp of an epoch time in whole milliseconds; remakes the table of
    :func:`iso_from_epoch` when time has moved on to a new second.

    Example::

        >>> stamp_of_milliseconds(1_500)
        '1970-01-01T00:00:01.500Z'
    """
    global _recent_stamps, _other_second
    second, millisecond = divmod(milliseconds, 1000)
    cached, prefix = _other_second
    if cached != second:
        moment = time.gmtime(second)
        # The year by hand: strftime's %Y drops the leading zeros of years before 1000.
        prefix = f"{moment.tm_year:04d}" + time.strftime("-%m-%dT%H:%M:%S", moment)
        _other_second = (second, prefix)
    first = second * 1000
    if first > _recent_stamps[0] and abs(second - time.time()) < _TABLE_WINDOW_SECONDS:
        _recent_stamps = (first, tuple([prefix + suffix for suffix in _MILLISECONDS]))
    return prefix + _MILLISECONDS[millisecond]


def iso_from_datetime(value: _dt.datetime) -> str:
    """ISO-8601 UTC with milliseconds; a naive datetime is local time, as Python's own
    ``datetime.timestamp()`` and ``astimezone()`` read it.

    Example::

        >>> iso_from_datetime(datetime.datetime(2024, 5, 1, 14, 0, tzinfo=CET))
        '2024-05-01T13:00:00.000Z'
    """
    value = value.astimezone(_dt.timezone.utc)
    return f"{value.year:04d}" + value.strftime("-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def now_iso() -> str:
    """The current time as the API's timestamp."""
    return iso_from_epoch(time.time())


# -- message ids ---------------------------------------------------------------------------

#: Message ids are made 256 at a time, with C-level operations on one block of random
#: bytes: a version 4 UUID formatted one by one in Python costs a microsecond, a quarter of
#: what the application's thread spends on an event. Each id takes 37 bytes of the block,
#: one per character of "xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx " (with the space that
#: separates it from the next): every random byte becomes the hex digit of its low four
#: bits, then the dashes, the version digit 4, the variant digit (8, 9, a or b, from two
#: random bits) and the space are written over their columns.
_IDS_PER_REFILL = 256
_ID_WIDTH = 37
_ID_BYTES = _ID_WIDTH * _IDS_PER_REFILL
_HEX_DIGIT_OF_LOW_BITS = bytes(b"0123456789abcdef"[value & 15] for value in range(256))
_VARIANT_DIGIT = bytes(b"89ab"[value & 3] for value in range(256))
_VARIANT_COLUMN = 19
_FIXED_COLUMNS = tuple((column, char * _IDS_PER_REFILL)
                       for column, char in ((8, b"-"), (13, b"-"), (14, b"4"), (18, b"-"), (23, b"-"), (36, b" ")))
#: Ids made but not yet used; emptied in forked children, which must not reuse the parent's.
_spare_ids: list[str] = []
take_spare_id = _spare_ids.pop  # atomic: two threads never take the same id


def _make_message_ids() -> list[str]:
    random_bytes = os.urandom(_ID_BYTES)
    text = bytearray(random_bytes.translate(_HEX_DIGIT_OF_LOW_BITS))
    for column, chars in _FIXED_COLUMNS:
        text[column::_ID_WIDTH] = chars
    text[_VARIANT_COLUMN::_ID_WIDTH] = random_bytes[_VARIANT_COLUMN::_ID_WIDTH].translate(_VARIANT_DIGIT)
    return text.decode("ascii").split()


def new_message_id() -> str:
    """A random (version 4) UUID as a string, several times faster than ``str(uuid.uuid4())``.

    The bits come from ``os.urandom``, as ``uuid.uuid4()``'s do; a forked child discards the
    ids its parent made ahead, so ids stay unique across forks.

    Example::

        >>> len(new_message_id())
        36
    """
    while True:
        try:
            return take_spare_id()
        except IndexError:
            _spare_ids.extend(_make_message_ids())


os.register_at_fork(after_in_child=_spare_ids.clear)
