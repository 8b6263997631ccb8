"""Reading a rules file (JSON or TOML) and compiling its rules, each fault reported once."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import RulesError
from ..reporting import warn
from .rule import Rule, _UnknownKey


if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def read_rules_file(source: str) -> list[Any]:
    """The list of rules in a rules file; raises RulesError naming the file."""
    extension = os.path.splitext(source)[1].lower()
    if extension not in (".json", ".toml"):
        raise RulesError("a rules file must end in .json or .toml", source=source)
    try:
        with open(source, "rb") as file:
            problem = _writable_by_others(os.fstat(file.fileno()))
            if problem is not None:
                raise RulesError(problem, source=source)
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


def _writable_by_others(status: os.stat_result) -> str | None:
    """Why a rules file is refused, as the spool refuses its file: any user may write it
    (``o+w``), or a user other than this one and root owns it and its group may write it.
    Whoever can write the rules decides what the application sends, and where (a rule can
    copy any ``extra`` attribute into an event). None for a file only trusted users write."""
    mode = stat.S_IMODE(status.st_mode)
    if mode & stat.S_IWOTH:
        return (f"refused: any user may write the rules file (mode {mode:o}), and so decide "
                "what the application sends; make it writable by its owner only (chmod o-w)")
    if status.st_uid not in (os.geteuid(), 0) and mode & stat.S_IWGRP:
        return (f"refused: the rules file belongs to another user (uid {status.st_uid}) and its "
                f"group may write it (mode {mode:o}); make it writable by its owner only (chmod g-w)")
    return None


def compile_rules(rules: Iterable[Mapping[str, Any]], source: str | None
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


#: Set in the environment once rules faults were reported, so the processes this one starts
#: (gunicorn's workers, those of ``cdp-logging run``) load the same rules without repeating it.
_REPORTED_FAULTS = "_CDP_LOGGING_RULES_REPORTED"


def report_faults(faults: Sequence[RulesError]) -> None:
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
