"""Typed references in a rule's fields (``{groups[user]}``, ``{extra[plan]|int}``): compiled once into
resolvers that read a record."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any
from collections.abc import Callable

from ..constants import MAX_MESSAGE_BYTES
from ..errors import RulesError
from .templates import MISSING, Resolver, ConversionError, Template


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


_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


_REFERENCE = re.compile(r"(\w+)\[([^\[\]]*)\](?:\|(\w+))?")


#: References one rule may hold, all its fields together. Each copies the text it refers
#: to into the event: 10,000 references to one group of a 100 KB line once took 3.8 s and
#: 1.9 GB per log call. With a matched prefix of 32 KiB, 64 references stay under 2 MB.
MAX_REFERENCES = 64


class FieldCompiler:
    """Turns a rule's field values into resolvers, checking every reference."""

    def __init__(self, template: Template | None, regex: re.Pattern[str] | None) -> None:
        self.template = template
        self.regex = regex
        self.references = 0

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
        self.references += 1
        if self.references > MAX_REFERENCES:
            raise RulesError(f"{where}: more than {MAX_REFERENCES} references in one rule; each "
                             "copies text into the event, so a rule may hold at most "
                             f"{MAX_REFERENCES}")
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


class _TooLong(ConversionError):
    def __init__(self, length: int) -> None:  # its own wording, not ConversionError's
        Exception.__init__(self, f"the text made is over {length} characters, more than the "
                                 f"API takes in a whole event ({MAX_MESSAGE_BYTES} bytes)")


def _interpolation(parts: list[str | Resolver]) -> Resolver:
    compiled = tuple(parts)

    def interpolate(record: logging.LogRecord, groups: Mapping[str, Any]) -> Any:
        pieces = []
        length = 0
        for part in compiled:
            if isinstance(part, str):
                piece = part
            else:
                value = part(record, groups)
                if value is MISSING:
                    return MISSING
                piece = value if type(value) is str else str(value)
            length += len(piece)
            if length > MAX_MESSAGE_BYTES:
                # Stop copying: the event would be refused as too large whatever came next.
                raise _TooLong(length)
            pieces.append(piece)
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
            raise ConversionError(shown, value, name) from err
        if type(converted) is float and not math.isfinite(converted):
            raise ConversionError(shown, value, name)
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
