"""One rule: its keys checked, its fields compiled, and what it makes of a record it matches."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..constants import CALL_TYPES
from ..errors import InvalidEventError, RulesError
from ..messages import CAMEL_CASE, FIELDS
from .patterns import LinearPattern, linear_pattern
from .templates import GUNICORN_ACCESS_ATOMS, MISSING, Resolver, ConversionError, Template
from .references import FieldCompiler


#: The keys a rule may have besides its call.
RULE_KEYS = ("logger", "level", "message", "regex")


_REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "identify": (("user_id", "anonymous_id"),),
    "track": (("event",), ("user_id", "anonymous_id")),
    "page": (("user_id", "anonymous_id"),),
    "screen": (("user_id", "anonymous_id"),),
    "group": (("group_id",),),
    "alias": (("previous_id",), ("user_id",)),
}


_NO_GROUPS: Mapping[str, Any] = {}


class _UnknownKey(RulesError):
    """A rule key that is probably a misspelling: reported as a WARNING, not an ERROR."""


class Rule:
    """One checked, compiled rule; made by :class:`RuleSet`.

    ``number`` counts from 1 in the order given; ``call`` is the call it makes.

    Example::

        rule = RuleSet([{"message": "Hi %s", "identify": {"user_id": "{args[0]}"}}]).rules[0]
        rule.describe()      # "logger (any), message 'Hi %s'"
    """

    def __init__(self, number: int, spec: Mapping[str, Any]) -> None:
        self.number = number
        if not isinstance(spec, Mapping):
            raise RulesError(f"a rule is a table of keys and values, got {type(spec).__name__}")
        unknown = [key for key in spec if key not in RULE_KEYS and key not in CALL_TYPES]
        if unknown:
            named = []
            for key in unknown:
                guesses = difflib.get_close_matches(str(key), (*RULE_KEYS, *CALL_TYPES), n=1)
                named.append(f"{key!r}" + (f" (did you mean {guesses[0]!r}?)" if guesses else ""))
            raise _UnknownKey(
                f"unknown key{'s' if len(named) > 1 else ''} {', '.join(named)}"
                f"; a rule has {', '.join(RULE_KEYS)} and one call: " + ", ".join(CALL_TYPES)
            )
        self.logger = _logger_name(spec.get("logger"))
        self.message: str | None = spec.get("message")
        self.level = _level(spec.get("level"))
        pattern = spec.get("regex")
        calls = [key for key in spec if key in CALL_TYPES]
        if len(calls) != 1:
            problem = "no call" if not calls else f"{len(calls)} calls ({', '.join(calls)})"
            raise RulesError(f"{problem}; a rule makes exactly one of: {', '.join(CALL_TYPES)}")
        self.call: str = calls[0]
        if self.message is not None and not isinstance(self.message, str):
            raise RulesError(f"'message' must be a string, got {self.message!r}")
        if pattern is not None and self.message is not None:
            raise RulesError("give 'message' (the exact template) or 'regex', not both")
        self.regex: LinearPattern | None = None
        if pattern is not None:
            if not isinstance(pattern, str):
                raise RulesError(f"'regex' must be a string, got {pattern!r}")
            self.regex = linear_pattern(pattern)
        self._logger_dot = self.logger + "."
        self._template = None if self.message is None else Template(
            self.message, GUNICORN_ACCESS_ATOMS if self.logger == "gunicorn.access" else frozenset())
        self._text_pattern: Any = None
        self._fields = self._compile_fields(spec[self.call])

    def _compile_fields(self, payload: Any) -> list[tuple[str, Any, Resolver | None]]:
        call = self.call
        if not isinstance(payload, Mapping):
            raise RulesError(f"{call!r} must be a table of the call's fields, got {payload!r}")
        compiler = FieldCompiler(self._template, self.regex)
        fields = []
        for key, value in payload.items():
            name = CAMEL_CASE.get(key, key)
            if name not in FIELDS[call]:
                raise RulesError(f"{call}.{key} is not a field of {call}; its fields: "
                                 + ", ".join(sorted(FIELDS[call])))
            fields.append((name, value, compiler.value(value, f"{call}.{key}")))
        given = {name for name, _, _ in fields}
        for alternatives in _REQUIRED[call]:
            if given.isdisjoint(alternatives):
                raise RulesError(f"{call} needs " + " or ".join(map(repr, alternatives)))
        event = next((value for name, value, resolver in fields if name == "event"), "x")
        if not isinstance(event, str) or not event:
            raise RulesError(f"{call}.event must be a non-empty string, got {event!r}")
        return fields

    def __repr__(self) -> str:
        return f"<Rule {self.number}: {self.describe()} -> {self.call}>"

    def describe(self) -> str:
        """The rule in words, for messages: its logger and message (or regex)."""
        logger = repr(self.logger) if self.logger else "(any)"
        if self.message is not None:
            return f"logger {logger}, message {self.message!r}"
        if self.regex is not None:
            return f"logger {logger}, regex {self.regex.pattern!r}"
        return f"logger {logger}, any message"

    def covers(self, logger_name: str) -> bool:
        """True for the rule's logger and its children."""
        return (not self.logger or logger_name == self.logger
                or logger_name.startswith(self._logger_dot))

    def fields(self, record: logging.LogRecord, groups: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
        """The call's fields for ``record``; the timestamp defaults to the log call's time.

        Raises :class:`InvalidEventError` when a conversion fails.
        """
        groups = _NO_GROUPS if groups is None else groups
        fields: dict[str, Any] = {}
        for name, constant, resolver in self._fields:
            if resolver is None:
                fields[name] = constant
                continue
            try:
                value = resolver(record, groups)
            except ConversionError as err:
                raise InvalidEventError(self.call, name, str(err)) from None
            if value is not MISSING:
                fields[name] = value
        if fields.get("timestamp") is None:
            fields["timestamp"] = record.created
        return fields

    def args_from_text(self, message: str) -> tuple[Any, ...] | dict[str, Any] | None:
        """Recover the log call's arguments from formatted text; None when it does not fit."""
        if self._template is None:
            return None
        if self._text_pattern is None:
            self._text_pattern = self._template.text_pattern() or False
        if not self._text_pattern:
            return None
        pattern, groups, same = self._text_pattern
        found = pattern.fullmatch(message)
        if found is None or any(found[first] != found[again] for first, again in same):
            return None
        try:
            values = [convert(found[f"_{i}"]) for i, (_, convert) in enumerate(groups)]
        except ValueError:
            return None
        if self._template.names:
            named = {key: value for (key, _), value in zip(groups, values, strict=True)}
            if self._template.given:
                _request_line_atoms(named)
            return named
        return tuple(values)


def _request_line_atoms(args: dict[str, Any]) -> None:
    """gunicorn's m, U, q and H are the parts of r, the request line: read back those the
    format does not show, as gunicorn would have passed them."""
    parts = str(args.get("r", "")).split(" ")
    if len(parts) == 3:
        method, uri, protocol = parts
        path, _, query = uri.partition("?")
        for key, value in (("m", method), ("U", path), ("q", query), ("H", protocol)):
            args.setdefault(key, value)


def _logger_name(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RulesError(f"'logger' must be a logger name, got {value!r}")
    return "" if value == "root" else value


def _level(value: Any) -> int:
    if value is None:
        return logging.NOTSET
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        level = logging.getLevelName(value.upper())
        if isinstance(level, int):
            return level
    raise RulesError(f"'level' must be a level name (DEBUG, INFO, WARNING, ERROR, CRITICAL) "
                     f"or a number, got {value!r}")


class RuleMatch(NamedTuple):
    """The rule a record matched and the groups of its regex (None without one)."""

    rule: Rule
    groups: Mapping[str, Any] | None

    def call(self, record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
        """``(call, fields)`` for the matched record."""
        return self.rule.call, self.rule.fields(record, self.groups)
