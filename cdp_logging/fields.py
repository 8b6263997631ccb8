"""Each field of a message checked and normalised: ids, timestamps, objects, text; and how a
bad value is shown in an error."""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import numbers
import time
import uuid
from collections.abc import Mapping
from typing import Any

from .encoding import iso_from_datetime, iso_from_epoch, new_message_id
from .errors import InvalidEventError


#: How much of a value's repr an error message quotes: a 10 MB id must not make a 10 MB
#: message, in the exception or in the log line that reports it.
SHOWN_CHARS = 80


#: Epoch seconds a timestamp may take: the years 1 to 9999, what a datetime can hold.
FIRST_EPOCH = -62_135_596_800.0


LAST_EPOCH = 253_402_300_799.999


def shown(value: Any) -> str:
    """The type and ``repr`` of ``value`` for an error message: cut to :data:`SHOWN_CHARS`,
    and never raising, whatever the value's ``__repr__`` does.

    Example::

        >>> shown("x" * 10_000_000)[-15:]
        '(10000000 long)'
        >>> shown(10**5000)
        'int (its repr raised ValueError)'
    """
    kind = type(value).__qualname__
    try:
        if type(value) in (str, bytes, bytearray):
            # Only the start is made into text: a 10 MB id is not copied to be cut.
            text, size = repr(value[:SHOWN_CHARS]), len(value)
        else:
            text = repr(value)
            size = len(text)
    except Exception as err:  # a broken __repr__ must not turn a clear error into its own
        return f"{kind} (its repr raised {type(err).__name__})"
    if size > SHOWN_CHARS:
        return f"{kind} {text[:SHOWN_CHARS]}... ({size} long)"
    return f"{kind} {text}"


def message_id_field(call: str, value: Any) -> str:
    if value is None:
        return new_message_id()
    if isinstance(value, str) and value:
        return str(value)
    if not isinstance(value, str):
        # As the official client does: integers (and any number, and UUIDs) become strings.
        text = _id_text(value)
        if text:
            return text
    raise InvalidEventError(
        call, "message_id", f"must be a non-empty string, a number or a UUID, got {shown(value)}"
    )


def _id_text(value: Any) -> str | None:
    """``str(value)`` for a UUID or a finite number other than a bool, else None."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, numbers.Number) or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (float, decimal.Decimal)) and not math.isfinite(value):
            return None
        # int(value) first for int subclasses (an IntEnum's str() is its name).
        return str(int(value)) if isinstance(value, int) else str(value)
    except (ValueError, TypeError, ArithmeticError):  # int over 4300 digits, complex NaN
        return None


def timestamp_field(call: str, value: Any, message_id: str) -> str:
    if value is None:
        return iso_from_epoch(time.time())
    problem = "must be a datetime, a date, epoch seconds or an ISO-8601 string"
    try:
        if isinstance(value, _dt.datetime):
            return iso_from_datetime(value)
        if isinstance(value, _dt.date):
            return f"{value.isoformat()}T00:00:00.000Z"
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            seconds = float(value)
            if FIRST_EPOCH <= seconds <= LAST_EPOCH:  # NaN fails both
                return iso_from_epoch(seconds)
            problem = "epoch seconds must fall in the years 1 to 9999"
        elif isinstance(value, str):
            try:
                parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                pass
            else:
                return iso_from_datetime(parsed)
    except (OverflowError, ValueError) as err:
        # 10**400 as a float; a datetime of year 1 or 9999 that leaves the range in UTC.
        problem = f"is out of range ({type(err).__name__})"
    raise InvalidEventError(call, "timestamp", f"{problem}, got {shown(value)}", message_id=message_id)


def identifier_field(call: str, field: str, value: Any, message_id: str) -> str | None:
    """Ids are strings; numbers (0 included, not bools) and UUIDs become strings, as the
    official client sends them; '' counts as absent."""
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        return value or None
    if kind is int:
        try:
            return str(value)
        except ValueError:  # over sys.get_int_max_str_digits() digits
            pass
    elif isinstance(value, str):
        return str(value) or None
    else:
        text = _id_text(value)
        if text is not None:
            return text
    raise InvalidEventError(
        call,
        field,
        f"must be a string, a finite number or a UUID, got {shown(value)}",
        message_id=message_id,
    )


def object_type_field(call: str, value: Any, message_id: str) -> str | None:
    """An object type is a whole number from 1 (or its string): 1.5 is a mistake, not an id."""
    if isinstance(value, numbers.Number) and not isinstance(value, numbers.Integral):
        raise InvalidEventError(
            call, "object_type_id", f"must be a string or an integer, got {shown(value)}", message_id=message_id
        )
    return identifier_field(call, "object_type_id", value, message_id)


def missing_user_error(call: str, message_id: str) -> InvalidEventError:
    return InvalidEventError(call, "user_id", "user_id or anonymous_id is required", message_id=message_id)


def mapping_field(call: str, field: str, value: Any, message_id: str) -> Any:
    if type(value) is dict or isinstance(value, Mapping):
        return value
    raise InvalidEventError(
        call, field, f"must be a dict, got {type(value).__name__}", message_id=message_id
    )


def text_field(call: str, field: str, value: Any, message_id: str) -> str:
    if isinstance(value, str):
        return value
    raise InvalidEventError(call, field, f"must be a string, got {shown(value)}", message_id=message_id)
