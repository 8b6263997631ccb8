"""A set of rules, and finding the rule a record matches."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

from .. import events
from ..errors import RulesError
from .patterns import PatternSets, matched_text, valid_text
from .rule import Rule, RuleMatch
from .loading import compile_rules, read_rules_file, report_faults


#: What ``rules=`` accepts: rules, the path of a JSON or TOML file, or a RuleSet.
RulesSource = Union["RuleSet", Sequence[Mapping[str, Any]], str, "os.PathLike[str]"]


#: Distinct logger names remembered with their regex rules; far above any real application.
_LOGGER_CACHE_LIMIT = 10_000


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
            compiled, faults = compile_rules(rules, source)
        except RulesError as err:
            faults, compiled = [err], []
        if faults and (events.is_strict() if strict is None else strict):
            raise faults[0]
        report_faults(faults)
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
        # Every regex is put in its RE2 sets here, at configuration, grouped by the rule's
        # logger: a log call never compiles anything, so never fails to.
        by_logger: dict[str, list[Rule]] = {}
        for rule in self._scanned:
            by_logger.setdefault(rule.logger, []).append(rule)
        self._groups = {logger: _Group(tuple(rules)) for logger, rules in by_logger.items()}
        self._scanned_by_groups: dict[tuple[int, ...], _Scanned] = {}
        self._lowest_level = min((rule.level for rule in compiled), default=logging.CRITICAL + 1)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, strict: bool | None = None) -> RuleSet:
        """Read rules from a JSON file (a list, or ``{"rules": [...]}``) or a TOML file
        (``[[rules]]`` tables); the format follows the file's extension (``.json``,
        ``.toml``). A file that cannot be read or parsed gives no rules, reported as an
        ERROR (raised with ``strict``, as in :class:`RuleSet`)."""
        source = os.fspath(path)
        try:
            loaded = read_rules_file(source)
        except RulesError as err:
            if events.is_strict() if strict is None else strict:
                raise
            empty = cls([], source=source)
            empty.skipped = (err,)
            report_faults([err])
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
        # The groups of the logger and of its ancestors, the root's ("") first.
        groups = [group for logger, group in self._groups.items()
                  if not logger or logger == name or name.startswith(logger + ".")]
        key = tuple(id(group) for group in groups)
        scanned = self._scanned_by_groups.get(key)
        if scanned is None:  # loggers covered by the same groups share their _Scanned
            scanned = self._scanned_by_groups[key] = _Scanned(groups)
        if len(self._scanned_by_logger) >= _LOGGER_CACHE_LIMIT:
            self._scanned_by_logger.clear()
        self._scanned_by_logger[name] = scanned
        return scanned

    def matching_limits(self) -> list[str]:
        """How the regex rules are searched, one line per rule logger whose rules RE2 could
        not put in one set (for ``cdp-logging check``): decided at configuration, as the
        application does. Empty when every logger's regexes share one set.

        Example::

            for line in rules.matching_limits():
                print(line)   # logger 'web': 40 regex rules in 2 RE2 sets, 0 matched one by one
        """
        lines = []
        for logger, group in self._groups.items():
            sets = group.patterns
            if sets is None or (len(sets.sets) <= 1 and not sets.alone):
                continue
            count = sum(len(indices) for _, indices in sets.sets) + len(sets.alone)
            lines.append(f"logger {logger or '(any)'!r}: {count} regex rules in "
                         f"{len(sets.sets)} RE2 sets, {len(sets.alone)} matched one by one")
        return lines

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
                args = rule.args_from_text(valid_text(message))
                if args is None:
                    continue
                record.msg, record.args = rule.message, args
                return RuleMatch(rule, None), record
            if rule.regex is None:
                return RuleMatch(rule, None), record
            found = rule.regex.search(matched_text(message))
            if found is not None:
                return RuleMatch(rule, found.groupdict()), record
        return None


class _Group:
    """The regex (and any-message) rules of one rule logger, in order, and their regexes in
    RE2 sets (:class:`PatternSets`), compiled once at configuration."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        patterns = [(rule, rule.regex.pattern) for rule in rules if rule.regex is not None]
        regex_rules = tuple(rule for rule, _ in patterns)
        self.patterns = PatternSets([pattern for _, pattern in patterns]) if patterns else None
        #: Each RE2 set and the rules of its patterns, by index; the rules matched one by one.
        self.sets: list[tuple[Any, tuple[Rule, ...]]] = []
        self.alone: list[tuple[Rule, Any]] = []
        if self.patterns is not None:
            self.sets = [(searched, tuple(regex_rules[i] for i in indices))
                         for searched, indices in self.patterns.sets]
            self.alone = [(regex_rules[i], regex) for i, regex in self.patterns.alone]


_NOTHING: frozenset[Rule] = frozenset()


class _Scanned:
    """A logger's regex (and any-message) rules, in order, from the groups covering it: a
    message is searched once per RE2 set however many rules, in time linear in its length."""

    def __init__(self, groups: list[_Group]) -> None:
        self.rules = sorted((rule for group in groups for rule in group.rules),
                            key=lambda rule: rule.number)
        self.only_regexes = all(rule.regex is not None for rule in self.rules)
        self.sets = [entry for group in groups for entry in group.sets]
        self.alone = [entry for group in groups for entry in group.alone]

    def __bool__(self) -> bool:
        return bool(self.rules)

    def search(self, text: str) -> frozenset[Rule] | set[Rule]:
        """The rules whose regex ``text`` (as :func:`matched_text` gives it) holds."""
        found: set[Rule] | None = None
        for searched, rules in self.sets:
            hits = searched.Match(text)  # None when nothing matched
            if hits:
                if found is None:
                    found = set()
                for index in hits:
                    found.add(rules[index])
        for rule, regex in self.alone:
            if regex.search(text) is not None:
                if found is None:
                    found = set()
                found.add(rule)
        return _NOTHING if found is None else found


def _scan(scanned: _Scanned, record: logging.LogRecord, levelno: int, before: int
          ) -> RuleMatch | None:
    """The first of the logger's regex (or any-message) rules numbered below ``before``."""
    message: str | None = None
    found_in: frozenset[Rule] | set[Rule] = _NOTHING
    for rule in scanned.rules:
        if rule.number >= before:
            return None
        if levelno < rule.level:
            continue
        if rule.regex is None:
            return RuleMatch(rule, None)
        if message is None:
            try:
                message = matched_text(record.getMessage())
            except Exception:
                # The application's own handlers report a record that cannot be formatted.
                message = ""
            found_in = scanned.search(message)
            if not found_in and scanned.only_regexes:
                return None
        if rule in found_in:
            found = rule.regex.search(message)
            if found is not None:
                return RuleMatch(rule, found.groupdict())
    return None


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
            rules = read_rules_file(os.fspath(rules))
        else:
            source = None
        return compile_rules(rules, source)[1]
    except RulesError as err:
        return [err]


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
