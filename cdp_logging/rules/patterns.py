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


def _set_of(patterns: Sequence[str]) -> Any:
    """One RE2 set searching for all ``patterns`` in a single pass; ``Match`` gives the
    indices of those found."""
    searched = re2.Set.SearchSet(_RE2_OPTIONS)
    for pattern in patterns:
        searched.Add(pattern)
    searched.Compile()
    return searched
