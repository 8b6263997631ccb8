"""Mapping rules: log lines an application already writes, made CDP calls by configuration.

A rule matches records by logger (that logger or its children), minimum level and message,
and says which call to make and how to fill its fields::

    {"logger": "shop.orders", "message": "Order %s placed by %s",
     "track": {"event": "Order Placed", "user_id": "{args[1]}",
               "properties": {"order_id": "{args[0]}"}}}

A rule's keys:

``logger``
    the logger name; the rule also covers its children. Absent, ``""`` or ``"root"``: every
    logger.
``level``
    the minimum level, a name (``"INFO"``) or a number; absent: every level.
``message``
    the message template exactly as the code writes it (``record.msg``), or
``regex``
    a regular expression searched in the formatted message; its named groups can be used in
    fields. With neither, the rule matches every message of its logger.
``identify``, ``track``, ``page``, ``screen``, ``group`` or ``alias``
    exactly one: the call to make, with its fields (snake_case or the API's camelCase).

Field values are constants, or strings with references in braces:

``{args[0]}``
    the log call's first argument (``{args[name]}`` for ``"%(name)s"`` templates)
``{groups[name]}``
    a named group of the rule's regex
``{extra[attribute]}``
    an attribute the log call passed in ``extra``
``{record[levelname]}``
    a standard record attribute (``name``, ``levelname``, ``lineno``, ``message``, ...)

A string that is exactly one reference keeps the value's type (an int stays an int);
``|int``, ``|float`` or ``|str`` after the key converts it (``{groups[total]|float}``).
References inside a longer string are interpolated; ``{{`` and ``}}`` are literal braces. A
reference the record cannot fill (an ``extra`` attribute it lacks, a group that took no part
in the match) leaves its field out.

The first matching rule wins. Rules are indexed by message template and by logger, so a
record no rule can match costs a dictionary look-up or two however many rules there are.

Log lines may be written by an attacker (a user name, a URL), so no pattern may take more
than linear time in the message: regexes run on RE2 (``google-re2``), which never
backtracks, and one RE2 set finds which of a logger's regex rules match in a single pass.
RE2 has no backreferences and no lookaround; a rule using them is invalid.

An invalid rule never stops the application: it is skipped, with one WARNING on the
``cdp_logging`` logger for an unknown key (with the key meant: ``mesage``, did you mean
``message``?) and one ERROR for any other fault, each naming the file, the rule and the
fault; the other rules work. A rules file that cannot be read or parsed leaves the handler
without rules, with one ERROR. Where a developer wants to hear of it at once (under pytest
with the cdp-logging plugin, ``CDP_STRICT=true``, ``cdp_logging.events.strict = True``; see
:func:`cdp_logging.events.is_strict`) the first fault raises :class:`cdp_logging.RulesError`
instead, when logging is configured.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Union
from collections.abc import Callable

import re2

from .. import events
from ..constants import CALL_TYPES
from ..errors import InvalidEventError, RulesError
from ..messages import CAMEL_CASE, FIELDS
from ..reporting import warn

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

__all__ = ["Rule", "RuleMatch", "RuleSet", "faults_of", "load_rules"]

#: What ``rules=`` accepts: rules, the path of a JSON or TOML file, or a RuleSet.
RulesSource = Union["RuleSet", Sequence[Mapping[str, Any]], str, "os.PathLike[str]"]

#: The keys a rule may have besides its call.
RULE_KEYS = ("logger", "level", "message", "regex")
#: What ``{record[...]}`` may name: the attributes logging sets on every record.
RECORD_ATTRIBUTES = frozenset((
    "name", "msg", "levelname", "levelno", "pathname", "filename", "module", "lineno",
    "funcName", "created", "msecs", "relativeCreated", "thread", "threadName", "process",
    "processName", "taskName", "message",
))
#: Attributes of every record: never in ``extra`` (logging refuses to overwrite them).
_STANDARD_ATTRIBUTES = frozenset((*logging.makeLogRecord({}).__dict__, "message", "asctime",
                                  "taskName"))
_ROOTS = ("args", "groups", "extra", "record")
_CONVERSIONS: dict[str, Callable[[Any], Any]] = {"int": int, "float": float, "str": str}
#: Distinct logger names remembered with their regex rules; far above any real application.
_LOGGER_CACHE_LIMIT = 10_000
#: A pattern compiled by RE2 (google-re2 ships no type information).
LinearPattern = Any


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the error is raised, with its rule: nothing on stderr
    return options


_RE2_OPTIONS = _re2_options()


def linear_pattern(pattern: str) -> LinearPattern:
    """Compile ``pattern`` with RE2, whose matching time is linear in the text: an attacker
    who writes the text cannot make it backtrack. Raises :class:`RulesError` for what RE2
    lacks (backreferences, lookaround) or cannot parse.

    Example::

        linear_pattern("^user (?P<u>[a-z]+)$").search("user ann")["u"]   # "ann"
    """
    try:
        re.compile(pattern)  # only to say where the syntax is wrong, as Python would
    except re.error as err:
        raise RulesError(f"invalid regex {pattern!r}: {err}") from None
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as err:
        reason = err.args[0] if err.args else err
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RulesError(
            f"the regex {pattern!r} cannot run on RE2: {reason}. Rules run on RE2, which matches "
            "in time linear in the message, so that a log line an attacker writes cannot stall "
            "the logging call; it has no backreferences (\\1, (?P=name)) and no lookaround "
            "((?=...), (?!...), (?<=...), (?<!...)): write the rule without them"
        ) from None


def _set_of(patterns: Sequence[str]) -> Any:
    """One RE2 set searching for all ``patterns`` in a single pass; ``Match`` gives the
    indices of those found."""
    searched = re2.Set.SearchSet(_RE2_OPTIONS)
    for pattern in patterns:
        searched.Add(pattern)
    searched.Compile()
    return searched


class _Missing:
    """A reference the record cannot fill; its field is left out."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

#: A compiled field value: ``(record, groups) -> value or MISSING``.
Resolver = Callable[[logging.LogRecord, Mapping[str, Any]], Any]


class _ConversionError(Exception):
    def __init__(self, reference: str, value: Any, conversion: str) -> None:
        super().__init__(f"{reference} is {value!r}, which |{conversion} cannot convert")


# -- message templates ----------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?[hlL]?"
    r"(?P<type>[diouxXeEfFgGcrsa%])"
)


#: What gunicorn passes as the arguments of every access record (``glogging.Logger.atoms``),
#: whichever of them ``--access-logformat`` shows; request headers come as ``{name}i``.
GUNICORN_ACCESS_ATOMS = frozenset(
    ["h", "l", "u", "t", "r", "s", "m", "U", "q", "H", "b", "B", "f", "a", "T", "D", "M", "L", "p"]
)


class _Template:
    """What a %-style message template expects: a number of arguments, or named ones."""

    def __init__(self, template: str, given: frozenset[str] = frozenset()) -> None:
        self.text = template
        #: Keys the logger always passes, whatever the template shows (gunicorn's atoms).
        self.given = given
        self.count = 0
        self.names: list[str] = []
        self.starred = False
        for placeholder in _PLACEHOLDER.finditer(template):
            if placeholder["type"] == "%":
                continue
            if placeholder["width"] == "*" or placeholder["precision"] == "*":
                self.starred = True
            if placeholder["key"] is not None:
                self.names.append(placeholder["key"])
            else:
                self.count += 1

    def check(self, key: str) -> str | None:
        """Why ``{args[key]}`` cannot work with this template, or None."""
        if self.starred or key in self.given:
            return None
        if self.names:
            if key not in self.names:
                return (f"the message {self.text!r} has no placeholder %({key})s; it has "
                        + ", ".join(f"%({name})s" for name in dict.fromkeys(self.names)))
            return None
        if not key.isdigit():
            return (f"the message {self.text!r} takes positional arguments: write "
                    "{args[0]}, {args[1]}, ...")
        if int(key) >= self.count:
            have = "no placeholders" if self.count == 0 else (
                "1 placeholder" if self.count == 1 else f"{self.count} placeholders")
            return (f"{{args[{key}]}} is argument {int(key) + 1}, but the message "
                    f"{self.text!r} has {have}")
        return None

    def text_pattern(self) -> tuple[LinearPattern, list[tuple[str, Callable[[str], Any]]],
                                    list[tuple[str, str]]] | None:
        """A pattern that recovers the arguments from the formatted text (for ``check``):
        RE2, so that however many placeholders, a line costs time linear in its length. Also
        the pairs of groups a repeated ``%(key)s`` fills, which must hold the same text (RE2
        has no backreferences)."""
        if self.starred or (self.names and self.count):
            return None
        parts: list[str] = []
        groups: list[tuple[str, Callable[[str], Any]]] = []
        same: list[tuple[str, str]] = []
        seen: dict[str, str] = {}
        position = 0
        for placeholder in _PLACEHOLDER.finditer(self.text):
            parts.append(re.escape(self.text[position:placeholder.start()]))
            position = placeholder.end()
            kind = placeholder["type"]
            if kind == "%":
                parts.append("%")
                continue
            key = placeholder["key"]
            pattern, convert = _TEXT_CONVERSIONS.get(kind, (r".*?", str))
            if key is not None and key in seen:
                again = f"_again{len(same)}"
                same.append((seen[key], again))
                parts.append(f"(?P<{again}>{pattern})")
                continue
            group = f"_{len(groups)}"
            if key is not None:
                seen[key] = group
            parts.append(f"(?P<{group}>{pattern})")
            groups.append((key if key is not None else str(len(groups)), convert))
        parts.append(re.escape(self.text[position:]))
        return linear_pattern("(?s)" + "".join(parts)), groups, same


_INTEGER = r"[-+]?\d+"
_FLOAT = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf|nan)"
_TEXT_CONVERSIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "d": (_INTEGER, int), "i": (_INTEGER, int), "u": (_INTEGER, int),
    "x": (r"[-+]?[0-9a-f]+", lambda text: int(text, 16)),
    "X": (r"[-+]?[0-9A-F]+", lambda text: int(text, 16)),
    "o": (r"[-+]?[0-7]+", lambda text: int(text, 8)),
    **{kind: (_FLOAT, float) for kind in "eEfFgG"},
}


# -- references and field values ------------------------------------------------------------

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_REFERENCE = re.compile(r"(\w+)\[([^\[\]]*)\](?:\|(\w+))?")


class _FieldCompiler:
    """Turns a rule's field values into resolvers, checking every reference."""

    def __init__(self, template: _Template | None, regex: re.Pattern[str] | None) -> None:
        self.template = template
        self.regex = regex

    def value(self, value: Any, where: str) -> Resolver | None:
        """The resolver of a value; None for a constant (then use the value itself)."""
        if isinstance(value, str):
            return self.text(value, where)
        if isinstance(value, Mapping):
            items = [(str(key), item, self.value(item, f"{where}.{key}"))
                     for key, item in value.items()]
            if all(resolver is None for _, _, resolver in items):
                return None
            return _mapping_resolver(items)
        if isinstance(value, (list, tuple)):
            elements = [(item, self.value(item, f"{where}[{i}]")) for i, item in enumerate(value)]
            if all(resolver is None for _, resolver in elements):
                return None
            return _list_resolver(elements)
        if value is None or isinstance(value, (bool, int, float)):
            return None
        raise RulesError(f"{where}: {type(value).__name__} {value!r} is not a value a rule can send")

    def text(self, text: str, where: str) -> Resolver | None:
        parts: list[str | Resolver] = []
        position = 0
        for token in _TOKEN.finditer(text):
            if token.start() > position:
                _append_literal(parts, text[position:token.start()])
            position = token.end()
            matched = token.group(0)
            if matched in ("{{", "}}"):
                _append_literal(parts, matched[0])
            elif matched in ("{", "}"):
                raise RulesError(
                    f"{where}: unmatched {matched!r} in {text!r}; write {matched * 2!r} for a "
                    "literal brace"
                )
            else:
                parts.append(self.reference(token.group(1), where))
        if position < len(text):
            _append_literal(parts, text[position:])
        if all(isinstance(part, str) for part in parts):
            literal = "".join(parts)  # type: ignore[arg-type]
            return None if literal == text else _constant(literal)   # {{ and }} made single
        if len(parts) == 1:
            return parts[0]  # type: ignore[return-value]
        return _interpolation(parts)

    def reference(self, body: str, where: str) -> Resolver:
        found = _REFERENCE.fullmatch(body.strip())
        if found is None:
            raise RulesError(
                f"{where}: {{{body}}} is not a reference; write {{args[0]}}, {{groups[name]}}, "
                "{extra[attribute]} or {record[levelname]}"
            )
        root, key, conversion = found.groups()
        shown = "{" + body.strip() + "}"
        if root not in _ROOTS:
            raise RulesError(
                f"{where}: {shown} refers to {root!r}, which is unknown; references start with "
                + ", ".join(_ROOTS)
            )
        if not key or key != key.strip() or key[0] in "'\"" or key[-1] in "'\"":
            raise RulesError(f"{where}: {shown}: write the key bare, without quotes or spaces, "
                             f"as in {{{root}[name]}}")
        if conversion is not None and conversion not in _CONVERSIONS:
            raise RulesError(f"{where}: {shown}: unknown conversion |{conversion}; use "
                             + ", ".join(f"|{name}" for name in _CONVERSIONS))
        problem = self._check(root, key)
        if problem:
            raise RulesError(f"{where}: {problem}")
        resolver = _REFERENCE_RESOLVERS[root](key)
        if conversion is None:
            return resolver
        return _converting(resolver, _CONVERSIONS[conversion], conversion, shown)

    def _check(self, root: str, key: str) -> str | None:
        if root == "args":
            return None if self.template is None else self.template.check(key)
        if root == "groups":
            if self.regex is None:
                return f"{{groups[{key}]}} needs a rule with a regex"
            if key not in self.regex.groupindex:
                names = ", ".join(self.regex.groupindex) or "none"
                return (f"the regex has no group named {key!r} (its named groups: {names}); "
                        "name a group with (?P<name>...)")
            return None
        if root == "extra":
            if key in _STANDARD_ATTRIBUTES:
                return f"{key!r} is a standard record attribute: write {{record[{key}]}}"
            return None
        if key not in RECORD_ATTRIBUTES:
            return (f"{{record[{key}]}}: records have no attribute {key!r}; use one of "
                    + ", ".join(sorted(RECORD_ATTRIBUTES)))
        return None


def _append_literal(parts: list[str | Resolver], text: str) -> None:
    if parts and isinstance(parts[-1], str):
        parts[-1] += text
    else:
        parts.append(text)


def _constant(value: Any) -> Resolver:
    return lambda record, groups: value


def _interpolation(parts: list[str | Resolver]) -> Resolver:
    compiled = tuple(parts)

    def interpolate(record: logging.LogRecord, groups: Mapping[str, Any]) -> Any:
        pieces = []
        for part in compiled:
            if isinstance(part, str):
                pieces.append(part)
                continue
            value = part(record, groups)
            if value is MISSING:
                return MISSING
            pieces.append(value if type(value) is str else str(value))
        return "".join(pieces)

    return interpolate


def _mapping_resolver(items: list[tuple[str, Any, Resolver | None]]) -> Resolver:
    def resolve(record: logging.LogRecord, groups: Mapping[str, Any]) -> Any:
        result = {}
        for key, constant, resolver in items:
            value = constant if resolver is None else resolver(record, groups)
            if value is not MISSING:
                result[key] = value
        return result

    return resolve


def _list_resolver(elements: list[tuple[Any, Resolver | None]]) -> Resolver:
    def resolve(record: logging.LogRecord, groups: Mapping[str, Any]) -> Any:
        result = []
        for constant, resolver in elements:
            value = constant if resolver is None else resolver(record, groups)
            if value is not MISSING:
                result.append(value)
        return result

    return resolve


def _converting(resolver: Resolver, convert: Callable[[Any], Any], name: str, shown: str) -> Resolver:
    def resolve(record: logging.LogRecord, groups: Mapping[str, Any]) -> Any:
        value = resolver(record, groups)
        if value is MISSING or value is None:
            return value
        try:
            converted = convert(value)
        except (TypeError, ValueError, OverflowError) as err:
            raise _ConversionError(shown, value, name) from err
        if type(converted) is float and not math.isfinite(converted):
            raise _ConversionError(shown, value, name)
        return converted

    return resolve


def _argument(key: str) -> Resolver:
    if key.isdigit():
        index = int(key)

        def positional(record: logging.LogRecord, groups: Mapping[str, Any]) -> Any:
            args = record.args
            if isinstance(args, (tuple, list)) and index < len(args):
                return args[index]
            return MISSING

        return positional

    def named(record: logging.LogRecord, groups: Mapping[str, Any]) -> Any:
        args = record.args
        if isinstance(args, Mapping):
            return args.get(key, MISSING)
        return MISSING

    return named


def _group(key: str) -> Resolver:
    def group(record: logging.LogRecord, groups: Mapping[str, Any]) -> Any:
        value = groups.get(key)
        return MISSING if value is None else value

    return group


def _extra(key: str) -> Resolver:
    return lambda record, groups: record.__dict__.get(key, MISSING)


def _record_attribute(key: str) -> Resolver:
    if key == "message":
        return lambda record, groups: record.getMessage()
    return lambda record, groups: getattr(record, key, MISSING)


_REFERENCE_RESOLVERS: dict[str, Callable[[str], Resolver]] = {
    "args": _argument, "groups": _group, "extra": _extra, "record": _record_attribute,
}


# -- rules ----------------------------------------------------------------------------------

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
        self._template = None if self.message is None else _Template(
            self.message, GUNICORN_ACCESS_ATOMS if self.logger == "gunicorn.access" else frozenset())
        self._text_pattern: Any = None
        self._fields = self._compile_fields(spec[self.call])

    def _compile_fields(self, payload: Any) -> list[tuple[str, Any, Resolver | None]]:
        call = self.call
        if not isinstance(payload, Mapping):
            raise RulesError(f"{call!r} must be a table of the call's fields, got {payload!r}")
        compiler = _FieldCompiler(self._template, self.regex)
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
            except _ConversionError as err:
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


class RuleSet:
    """Checked, indexed rules; :meth:`find` gives the first rule a record matches.

    A rule that cannot work (an unknown key, call or field, a bad reference, an invalid
    regex) is skipped and reported on the ``cdp_logging`` logger, naming the rule and the
    fault; :attr:`skipped` keeps the faults. With ``strict`` (default:
    :func:`cdp_logging.events.is_strict`) the first fault raises
    :class:`cdp_logging.RulesError` instead.

    Example::

        rules = RuleSet([{"logger": "shop.orders", "message": "Order %s placed by %s",
                          "track": {"event": "Order Placed", "user_id": "{args[1]}",
                                    "properties": {"order_id": "{args[0]}"}}}])
        record = logging.makeLogRecord({"name": "shop.orders", "levelno": 20,
                                        "msg": "Order %s placed by %s", "args": (7, "ann")})
        rules.calls(record)
        # [("track", {"event": "Order Placed", "user_id": "ann",
        #             "properties": {"order_id": 7}, "timestamp": ...})]
    """

    def __init__(self, rules: Iterable[Mapping[str, Any]], *, source: str | None = None,
                 strict: bool | None = None) -> None:
        self.source = source
        try:
            compiled, faults = _compile(rules, source)
        except RulesError as err:
            faults, compiled = [err], []
        if faults and (events.is_strict() if strict is None else strict):
            raise faults[0]
        _report(faults)
        #: The faults of the rules left out (or of the whole file), in order; empty when
        #: every rule works.
        self.skipped: tuple[RulesError, ...] = tuple(faults)
        self.rules: tuple[Rule, ...] = tuple(compiled)
        by_message: dict[str, list[Rule]] = {}
        for rule in compiled:
            if rule.message is not None:
                by_message.setdefault(rule.message, []).append(rule)
        self._by_message = {message: tuple(found) for message, found in by_message.items()}
        #: Rules without a message template: tried in order for the loggers they cover.
        self._scanned = tuple(rule for rule in compiled if rule.message is None)
        self._scanned_by_logger: dict[str, _Scanned] = {}
        self._scanned_by_rules: dict[tuple[Rule, ...], _Scanned] = {}
        self._lowest_level = min((rule.level for rule in compiled), default=logging.CRITICAL + 1)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, strict: bool | None = None) -> RuleSet:
        """Read rules from a JSON file (a list, or ``{"rules": [...]}``) or a TOML file
        (``[[rules]]`` tables); the format follows the file's extension (``.json``,
        ``.toml``). A file that cannot be read or parsed gives no rules, reported as an
        ERROR (raised with ``strict``, as in :class:`RuleSet`)."""
        source = os.fspath(path)
        try:
            loaded = _read_file(source)
        except RulesError as err:
            if events.is_strict() if strict is None else strict:
                raise
            empty = cls([], source=source)
            empty.skipped = (err,)
            _report([err])
            return empty
        return cls(loaded, source=source, strict=strict)

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        where = f" from {self.source!r}" if self.source else ""
        return f"<RuleSet of {len(self.rules)} rules{where}>"

    # -- the hot path -----------------------------------------------------------------------

    def find(self, record: logging.LogRecord) -> RuleMatch | None:
        """The first rule ``record`` matches, or None.

        A record whose template no rule names, from a logger no regex rule covers, costs a
        level comparison and two dictionary look-ups.

        Example (``rules`` and ``record`` as in the class example)::

            matched = rules.find(record)
            assert matched is not None and matched.call(record)[0] == "track"
        """
        levelno = record.levelno
        if levelno < self._lowest_level:
            return None
        found: Rule | None = None
        msg = record.msg
        if isinstance(msg, str):
            candidates = self._by_message.get(msg)
            if candidates is not None:
                name = record.name
                for rule in candidates:
                    if levelno >= rule.level and rule.covers(name):
                        found = rule
                        break
        if self._scanned:
            scanned = self._scanned_by_logger.get(record.name)
            if scanned is None:
                scanned = self._scanned_for(record.name)
            if scanned:
                before = len(self.rules) + 1 if found is None else found.number
                matched = _scan(scanned, record, levelno, before)
                if matched is not None:
                    return matched
        return None if found is None else RuleMatch(found, None)

    def _scanned_for(self, name: str) -> _Scanned:
        rules = tuple(rule for rule in self._scanned if rule.covers(name))
        # Loggers covered by the same rules share one RE2 set.
        scanned = self._scanned_by_rules.get(rules)
        if scanned is None:
            scanned = self._scanned_by_rules[rules] = _Scanned(rules)
        if len(self._scanned_by_logger) >= _LOGGER_CACHE_LIMIT:
            self._scanned_by_logger.clear()
        self._scanned_by_logger[name] = scanned
        return scanned

    def calls(self, record: logging.LogRecord) -> list[tuple[str, dict[str, Any]]]:
        """``[(call, fields)]`` for the first rule ``record`` matches; ``[]`` for none.

        Example::

            call, fields = rules.calls(record)[0]   # ("track", {"event": "Order Placed", ...})
        """
        matched = self.find(record)
        return [] if matched is None else [matched.call(record)]

    # -- dry runs ---------------------------------------------------------------------------

    def find_in_text(self, logger_name: str, levelno: int, message: str
                     ) -> tuple[RuleMatch, logging.LogRecord] | None:
        """Match a formatted log line (for ``cdp-logging check``): template rules recover
        their arguments from the text. Returns the match and the record rebuilt from the
        line, whose arguments are text unless the placeholder was numeric (``%d``, ``%f``).

        Example::

            found = rules.find_in_text("shop.orders", logging.INFO, "Order 7 placed by ann")
            if found:
                matched, record = found
                print(matched.call(record))   # ("track", {... "user_id": "ann", ...})
        """
        record = logging.makeLogRecord({
            "name": logger_name, "levelno": levelno, "levelname": logging.getLevelName(levelno),
            "msg": message, "args": (),
        })
        for rule in self.rules:
            if levelno < rule.level or not rule.covers(logger_name):
                continue
            if rule.message is not None:
                args = rule.args_from_text(message)
                if args is None:
                    continue
                record.msg, record.args = rule.message, args
                return RuleMatch(rule, None), record
            if rule.regex is None:
                return RuleMatch(rule, None), record
            found = rule.regex.search(message)
            if found is not None:
                return RuleMatch(rule, found.groupdict()), record
        return None


class _Scanned:
    """A logger's regex (and any-message) rules, in order, and one RE2 set of their regexes:
    a message is searched once however many rules, in time linear in its length."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        #: Each rule, its index in the set and its regex (None, None for an any-message rule).
        self.steps: list[tuple[Rule, int | None, LinearPattern]] = []
        patterns: list[str] = []
        for rule in rules:
            if rule.regex is None:
                self.steps.append((rule, None, None))
            else:
                self.steps.append((rule, len(patterns), rule.regex))
                patterns.append(rule.regex.pattern)
        self.only_regexes = len(patterns) == len(rules)
        self.set: Any = _set_of(patterns) if patterns else None

    def __bool__(self) -> bool:
        return bool(self.rules)


def _scan(scanned: _Scanned, record: logging.LogRecord, levelno: int, before: int
          ) -> RuleMatch | None:
    """The first of the logger's regex (or any-message) rules numbered below ``before``."""
    message: str | None = None
    found_in: frozenset[int] = frozenset()
    for rule, index, regex in scanned.steps:
        if rule.number >= before:
            return None
        if levelno < rule.level:
            continue
        if index is None:
            return RuleMatch(rule, None)
        if message is None:
            try:
                message = record.getMessage()
            except Exception:
                # The application's own handlers report a record that cannot be formatted.
                message = ""
            found_in = frozenset(scanned.set.Match(message) or ())  # None when nothing matched
            if not found_in and scanned.only_regexes:
                return None
        if index in found_in:
            found = regex.search(message)
            if found is not None:
                return RuleMatch(rule, found.groupdict())
    return None


def _read_file(source: str) -> list[Any]:
    """The list of rules in a rules file; raises RulesError naming the file."""
    extension = os.path.splitext(source)[1].lower()
    if extension not in (".json", ".toml"):
        raise RulesError("a rules file must end in .json or .toml", source=source)
    try:
        with open(source, "rb") as file:
            data = file.read()
    except OSError as err:
        raise RulesError(f"cannot read the rules file: {err.strerror or err}", source=source) from None
    try:
        if extension == ".json":
            loaded = json.loads(data)
        else:
            loaded = tomllib.loads(data.decode("utf-8"))
    except json.JSONDecodeError as err:
        raise RulesError(f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}",
                         source=source) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise RulesError(f"not valid TOML: {err}", source=source) from None
    if isinstance(loaded, Mapping):
        unknown = sorted(set(loaded) - {"rules"})
        if unknown or "rules" not in loaded:
            raise RulesError(
                "the file must hold the rules under 'rules' (TOML: [[rules]] tables)"
                + (f"; unknown key {unknown[0]!r}" if unknown else ""), source=source)
        loaded = loaded["rules"]
    if not isinstance(loaded, list):
        raise RulesError(f"'rules' must be a list, got {type(loaded).__name__}", source=source)
    return loaded


def _compile(rules: Iterable[Mapping[str, Any]], source: str | None
             ) -> tuple[list[Rule], list[RulesError]]:
    """The rules that work, and the fault of each one that does not, naming it."""
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Iterable):
        raise RulesError(f"rules must be a list of rules, got {type(rules).__name__}",
                         source=source)
    compiled: list[Rule] = []
    faults: list[RulesError] = []
    for number, spec in enumerate(rules, 1):
        try:
            compiled.append(Rule(number, spec))
        except RulesError as err:
            faults.append(type(err)(err.problem, rule=number, described=_describe_spec(spec),
                                    source=source))
    return compiled, faults


def faults_of(rules: RulesSource) -> list[RulesError]:
    """Every fault of ``rules`` (as ``CDPHandler(rules=...)`` takes them), reporting and
    raising none: empty when every rule works. ``cdp-logging check`` lists them.

    Example::

        for fault in faults_of("rules.toml"):
            print(fault)   # rules.toml: rule 2 (logger 'shop'): unknown key 'mesage' (...)
    """
    if isinstance(rules, RuleSet):
        return list(rules.skipped)
    try:
        if isinstance(rules, (str, os.PathLike)):
            source: str | None = os.fspath(rules)
            rules = _read_file(os.fspath(rules))
        else:
            source = None
        return _compile(rules, source)[1]
    except RulesError as err:
        return [err]


#: Set in the environment once rules faults were reported, so the processes this one starts
#: (gunicorn's workers, those of ``cdp-logging run``) load the same rules without repeating it.
_REPORTED_FAULTS = "_CDP_LOGGING_RULES_REPORTED"


def _report(faults: Sequence[RulesError]) -> None:
    """One WARNING for a misspelt key, one ERROR for any other fault; once per process tree."""
    if not faults:
        return
    said = hashlib.sha256("\n".join(map(str, faults)).encode()).hexdigest()[:16]
    if os.environ.get(_REPORTED_FAULTS) == said:
        return
    os.environ[_REPORTED_FAULTS] = said
    for fault in faults:
        if fault.rule is None:
            warn("cdp-logging: %s; using no rules: only records with a payload in extra are sent",
                 fault, level=logging.ERROR)
        else:
            warn("cdp-logging: %s; this rule is skipped, the other rules are used", fault,
                 level=logging.WARNING if isinstance(fault, _UnknownKey) else logging.ERROR)


def _describe_spec(spec: Any) -> str:
    if not isinstance(spec, Mapping):
        return ""
    parts = []
    if isinstance(spec.get("logger"), str):
        parts.append(f"logger {spec['logger']!r}")
    for key in ("message", "regex"):
        if isinstance(spec.get(key), str):
            parts.append(f"{key} {spec[key]!r}")
    return ", ".join(parts)


def load_rules(rules: RulesSource | None) -> RuleSet | None:
    """A :class:`RuleSet` from what ``CDPHandler(rules=...)`` accepts: a list of rules, the
    path of a JSON or TOML file, or a RuleSet (returned as it is). Invalid rules are skipped
    and reported (raised when strict), as :class:`RuleSet` says.

    Example::

        handler = CDPHandler(rules=load_rules("/etc/shop/cdp-rules.toml"))
    """
    if rules is None or isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, (str, os.PathLike)):
        return RuleSet.from_file(rules)
    return RuleSet(rules)
