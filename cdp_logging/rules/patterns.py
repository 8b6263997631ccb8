"""Regular expressions matched in time linear in the text (RE2), for patterns in rules and
for ``cdp-logging check``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import re2

from ..errors import RulesError


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


#: Patterns in one RE2 set at most. A set is one automaton for all its patterns: past a dozen
#: or so ordinary access-log patterns (bounded repeats, ``[^"]{0,256}``) it outgrows RE2's
#: memory bound and fails to compile; such a set is halved until each half compiles.
SET_MAX_PATTERNS = 64

#: The characters of a message that rules match: its first 32 KiB (the API's limit for a
#: whole event). A longer message is matched on this prefix, so a 10 MB line costs what a
#: 32 KiB one does; a rule anchored at the end (``$``) does not match such a message.
MATCHED_CHARS = 32 * 1024


_SURROGATE = re.compile(r"[\ud800-\udfff]")  # re reads the escapes: no lone surrogate in the source


def matched_text(message: str) -> str:
    """What rules match of ``message``: its first :data:`MATCHED_CHARS` characters, with each
    lone surrogate (an undecodable file name, as ``os.listdir`` gives it) made U+FFFD, as RE2
    matches UTF-8 text only. Never raises.

    Example::

        matched_text("file \\udcff.txt")   # "file \ufffd.txt"
    """
    if len(message) > MATCHED_CHARS:
        message = message[:MATCHED_CHARS]
    return valid_text(message)


def valid_text(text: str) -> str:
    """``text`` with each lone surrogate made U+FFFD: text RE2 can match. Never raises.

    Example::

        valid_text("caf\\udce9")   # "caf\ufffd"
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


class PatternSets:
    """Patterns searched together: RE2 sets of at most :data:`SET_MAX_PATTERNS` patterns,
    each split again until it compiles, and the patterns no set can hold (each compiles
    alone, but not within RE2's memory bound for a set) searched one by one. All decided
    here, at configuration: :meth:`search` compiles nothing.

    Example::

        sets = PatternSets(["order (?P<id>\\d+)", "refund (?P<id>\\d+)"])
        sets.search("refund 7")   # {1}
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self.sets: list[tuple[Any, tuple[int, ...]]] = []
        #: Indices of the patterns matched one by one, with their compiled regex.
        self.alone: list[tuple[int, LinearPattern]] = []
        for start in range(0, len(patterns), SET_MAX_PATTERNS):
            self._add(patterns, tuple(range(start, min(start + SET_MAX_PATTERNS, len(patterns)))))

    def _add(self, patterns: Sequence[str], indices: tuple[int, ...]) -> None:
        try:
            self.sets.append((_set_of([patterns[i] for i in indices]), indices))
            return
        except re2.error:
            pass
        if len(indices) == 1:
            self.alone.append((indices[0], linear_pattern(patterns[indices[0]])))
            return
        half = len(indices) // 2
        self._add(patterns, indices[:half])
        self._add(patterns, indices[half:])

    def search(self, text: str) -> set[int]:
        """The indices of the patterns found in ``text`` (as :func:`matched_text` gives it)."""
        found: set[int] = set()
        for searched, indices in self.sets:
            for index in searched.Match(text) or ():  # None when nothing matched
                found.add(indices[index])
        for index, pattern in self.alone:
            if pattern.search(text) is not None:
                found.add(index)
        return found


def _set_of(patterns: Sequence[str]) -> Any:
    """One RE2 set searching for all ``patterns`` in a single pass; ``Match`` gives the
    indices of those found. Raises ``re2.error`` when the set outgrows RE2's memory bound."""
    searched = re2.Set.SearchSet(_RE2_OPTIONS)
    for pattern in patterns:
        searched.Add(pattern)
    searched.Compile()
    return searched
