"""Message templates: a %-style or gunicorn access-log format turned into a pattern whose
named groups the rule's fields can reference."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from collections.abc import Callable

from .patterns import LinearPattern, linear_pattern


class _Missing:
    """A reference the record cannot fill; its field is left out."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


#: A compiled field value: ``(record, groups) -> value or MISSING``.
Resolver = Callable[[logging.LogRecord, Mapping[str, Any]], Any]


class ConversionError(Exception):
    def __init__(self, reference: str, value: Any, conversion: str) -> None:
        super().__init__(f"{reference} is {value!r}, which |{conversion} cannot convert")


_PLACEHOLDER = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?[hlL]?"
    r"(?P<type>[diouxXeEfFgGcrsa%])"
)


#: What gunicorn passes as the arguments of every access record (``glogging.Logger.atoms``),
#: whichever of them ``--access-logformat`` shows; request headers come as ``{name}i``.
GUNICORN_ACCESS_ATOMS = frozenset(
    ["h", "l", "u", "t", "r", "s", "m", "U", "q", "H", "b", "B", "f", "a", "T", "D", "M", "L", "p"]
)


class Template:
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
