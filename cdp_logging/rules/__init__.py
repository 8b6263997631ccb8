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

from .patterns import LinearPattern, linear_pattern
from .rule import Rule, RuleMatch
from .ruleset import RuleSet, RulesSource, faults_of, load_rules

__all__ = ["LinearPattern", "Rule", "RuleMatch", "RuleSet", "RulesSource", "faults_of", "linear_pattern", "load_rules"]
