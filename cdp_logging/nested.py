"""Calls carried one level down, in a dict of a logging front's own: a structlog event dict
(``log.info("added", track={...})``, which reaches a handler as ``record.msg`` through
``ProcessorFormatter.wrap_for_formatter``) and loguru's ``extra`` (``logger.bind(track={...})``,
which loguru's bridge to the standard library puts under ``record.extra``).

The call keys are those of ``extra`` (``track``, ``identify``, ``page``, ``screen``, ``group``,
``alias``, each a dict of the call's fields); ``event`` is structlog's message there and never
makes a call by itself. The dict's own ``user_id``, ``anonymous_id`` and ``context`` (a
dict), as ``structlog.contextvars`` and loguru's ``bind``/``contextualize`` put them, fill the
fields each call leaves unset; the call's ``context`` keys win (see
:func:`cdp_logging.mapping.fill_unset`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .constants import CALL_TYPES
from .mapping import call_fields, fill_unset

#: The keys that ask for a call, in a nested dict.
CALL_KEYS = frozenset(CALL_TYPES)


def has_calls(values: Mapping[str, Any]) -> bool:
    """True when ``values`` holds a call key (a C-level set check).

    Example::

        >>> has_calls({"event": "added", "track": {"event": "Added"}})
        True
    """
    return not values.keys().isdisjoint(CALL_KEYS)


def nested_values(record: logging.LogRecord) -> dict[str, Any] | None:
    """The dict a record carries its calls in, if any: structlog's event dict as the record's
    ``msg``, or loguru's ``extra`` as an attribute.

    Example::

        >>> nested_values(logging.makeLogRecord({"extra": {"track": {}}}))
        {'track': {}}
    """
    message = record.msg
    if type(message) is dict and has_calls(message):
        return message
    extra = record.__dict__.get("extra")
    if type(extra) is dict and has_calls(extra):
        return extra
    return None


def calls_from_values(values: Mapping[str, Any],
                      timestamp: float | None) -> list[tuple[str, dict[str, Any]]]:
    """``(call, fields)`` for each call key of ``values``, in the order of CALL_TYPES; the
    timestamp of the log call (None: none) where the call gives none. Raises
    :class:`~cdp_logging.InvalidEventError` for a payload that is not a dict of the call's fields.

    Example::

        >>> calls_from_values({"user_id": "42", "track": {"event": "Added"}}, 0.0)
        [('track', {'event': 'Added', 'timestamp': 0.0, 'user_id': '42'})]
    """
    present = values.keys() & CALL_KEYS
    calls = []
    for call in present if len(present) == 1 else [call for call in CALL_TYPES if call in present]:
        payload = values[call]
        if payload is not None:
            calls.append((call, fill_unset(call_fields(call, payload, timestamp), values)))
    return calls
