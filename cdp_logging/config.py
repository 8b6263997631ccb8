"""Options from environment variables, for ``cdp-logging run`` and ``cdp-logging check``.

Every option of :class:`cdp_logging.Analytics` has a variable, ``CDP_`` and the option's
name in capitals (``max_events_in_batch``: ``CDP_MAX_EVENTS_IN_BATCH``); the list is read
from ``Analytics.__init__`` so that a new option gets its variable. Two more configure the
handler: ``CDP_RULES`` (the rules file) and ``CDP_LEVEL``; ``CDP_STRICT`` is read by
:mod:`cdp_logging.events`. Values are checked here, and a bad one raises
:class:`cdp_logging.ConfigurationError` naming the variable. Any other ``CDP_*`` variable is
reported once, with the one probably meant (:func:`cdp_logging.environment.warn_about_unknown_variables`).
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Mapping

from .client import Analytics
from .secret import Secret
from .constants import (
    DEFAULT_HOST, ENV_ENABLE, ENV_HOST, ENV_LEVEL, ENV_RULES, ENV_STRICT, ENV_WRITE_KEY, EU_HOST,
    FALSE_WORDS, TRUE_WORDS,
)
from .environment import NOT_FROM_ENVIRONMENT, known_variables, variable_of
from .errors import ConfigurationError, RulesError
from .handler import CDPHandler, resolve_callable
from .rules import RuleSet

#: What each Analytics option means, for ``cdp-logging --help`` and the README.
_DESCRIPTIONS = {
    "write_key": "the write key of your Data Pipelines source (unset: one warning, nothing sent)",
    "host": "the API host; https://cdp-eu.customer.io for the EU region",
    "max_events_in_batch": "send a batch when this many events are queued; no request carries more",
    "max_concurrent_requests": "while a backlog lasts, at most this many requests in flight at once",
    "flush_interval": "send what is queued at least this often, in seconds",
    "enable": "false: match and check events but send nothing (every client, those made "
              "in code included)",
    "require_write_key": "true: a missing write key is an error; unset, it is one warning and "
                         "nothing is sent",
    "error_handler": "a function given each problem (module.path:function); "
                     "unset: warnings on the cdp_logging logger",
    "max_queue_size": "events held while waiting to be sent; beyond it new events are dropped",
    "max_queue_bytes": "bytes of events held while waiting to be sent",
    "overflow": "when the queue is full: drop (the new event) or wait (up to CDP_OVERFLOW_TIMEOUT)",
    "overflow_timeout": "seconds a log call may wait for room with CDP_OVERFLOW=wait",
    "timeout": "seconds to wait for the API to answer one request",
    "gzip": "true: compress request bodies",
    "max_retries": "retries of a failed request before its events are given up",
    "max_retry_time": "seconds after which a failing request is given up",
    "initial_backoff": "seconds before the first retry (the wait doubles each retry)",
    "max_backoff": "the longest wait between two retries, in seconds",
    "max_retry_after": "the longest a server's Retry-After is honoured, in seconds",
    "shutdown_timeout": "seconds the process may spend at exit delivering what is queued",
    "spool_path": "a file on local disk where events wait until delivered, surviving kill -9 "
                  "and long outages (several processes may share it)",
    "spool_max_bytes": "the spool file's size bound, in bytes (its WAL, up to 4 MB, is extra)",
    "spool_full": "when the spool is full: drop_oldest or drop_newest",
    "spool_sync_interval": "seconds an event may wait in memory before it is written to the "
                           "spool: what kill -9 can lose",
}

@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, the option it sets, how to read it, its default."""

    name: str
    option: str
    kind: str
    default: str
    description: str
    parse: Callable[[str], Any]


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"must be true or false ({'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)})")


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("must be a whole number") from None


def _number(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError("must be a number (seconds may have decimals: 0.5)") from None


def _text(text: str) -> str:
    return text.strip()


def _level(text: str) -> int:
    value = text.strip()
    if value.isdigit():
        return int(value)
    level = logging.getLevelName(value.upper())
    if isinstance(level, int):
        return level
    raise ValueError("must be a level name (DEBUG, INFO, WARNING, ERROR, CRITICAL) or a number")


def _callable(text: str) -> Any:
    return resolve_callable(text.strip(), "error_handler")


_KINDS: dict[type, tuple[str, Callable[[str], Any]]] = {
    bool: ("true/false", _boolean), int: ("integer", _integer), float: ("seconds", _number),
    str: ("text", _text),
}
#: Options whose default does not say what they hold.
_KINDS_OF_OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "write_key": ("text", _text), "host": ("URL", _text),
    "error_handler": ("module.path:function", _callable), "overflow": ("drop or wait", _text),
    "spool_path": ("path", _text), "spool_full": ("drop_oldest or drop_newest", _text),
}
_SHOWN_DEFAULTS = {"write_key": "(none)",
                   "host": f"the write key's region's: {EU_HOST} for a pk_eu_/sk_eu_ key, else {DEFAULT_HOST}",
                   "error_handler": "(none)",
                   "spool_path": "(none: events wait in memory only)"}


def _analytics_variables() -> list[Variable]:
    variables = []
    for parameter in inspect.signature(Analytics.__init__).parameters.values():
        option = parameter.name
        if option == "self" or option in NOT_FROM_ENVIRONMENT:
            continue
        default = parameter.default
        if option in _KINDS_OF_OPTIONS:
            kind, parse = _KINDS_OF_OPTIONS[option]
        else:
            kind, parse = _KINDS[type(default)]
        shown = _SHOWN_DEFAULTS.get(option, str(default).lower() if isinstance(default, bool)
                                    else str(default))
        variables.append(Variable(
            variable_of(option), option, kind, shown, _DESCRIPTIONS.get(option, ""), parse,
        ))
    return variables


#: Every variable, in the order ``--help`` lists them.
VARIABLES: tuple[Variable, ...] = (
    *_analytics_variables(),
    Variable(ENV_RULES, "rules", "path", "(none: only records with a payload in extra)",
             "the rules file (.json or .toml) that makes log lines calls", _text),
    Variable(ENV_LEVEL, "level", "level", "NOTSET",
             "the lowest level of record considered (DEBUG, INFO, ...)", _level),
    Variable(ENV_STRICT, "strict", "true/false", "false (true under pytest)",
             "true: the cdp_logging.events helpers raise for a bad payload", _boolean),
)
assert ENV_WRITE_KEY in {v.name for v in VARIABLES} and ENV_HOST in {v.name for v in VARIABLES}
# Analytics checks the environment by the same list, without importing this module.
assert [v.name for v in VARIABLES] == known_variables(inspect.signature(Analytics.__init__).parameters)


def read_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The options set in ``environ`` (default: ``os.environ``), parsed; unset and empty
    variables are left out so the defaults apply.

    Raises :class:`ConfigurationError` naming the variable for a value it cannot read, and
    for a missing write key when ``CDP_REQUIRE_WRITE_KEY`` is true (otherwise the client
    warns once and sends nothing).

    Example::

        >>> read_environment({"CDP_WRITE_KEY": "k", "CDP_GZIP": "yes"})
        {'write_key': 'k', 'gzip': True}
    """
    texts = _texts(os.environ if environ is None else environ)
    del environ  # it holds the key in the clear: no error below is raised beside it
    options = _parsed(texts)
    if "write_key" in options:
        options["write_key"] = options["write_key"].value
    return options


def _texts(environ: Mapping[str, str]) -> dict[str, Secret[str]]:
    """The variables set (and not blank) in ``environ``, hidden. The mapping holds the write
    key: callers let it go before reading a value, so that no error is raised in a frame whose
    locals show it (as tracebacks recorded with their locals do)."""
    texts = {variable.name: Secret(environ.get(variable.name, "")) for variable in VARIABLES}
    return {name: text for name, text in texts.items() if text.value.strip()}


def _parsed(texts: dict[str, Secret[str]]) -> dict[str, Any]:
    """The options ``texts`` set, parsed; the write key stays a :class:`Secret`."""
    options: dict[str, Any] = {}
    for variable in VARIABLES:
        text = texts.get(variable.name)
        if text is None:
            continue
        try:
            parsed = Secret.of(variable.parse(text.value))
        except (ValueError, TypeError) as err:
            raise ConfigurationError(f"{variable.name}={text.value!r}: {_without_option(err)}") from None
        options[variable.option] = parsed if variable.name == ENV_WRITE_KEY else parsed.value
    if options.get("require_write_key") and options.get("enable", True) and "write_key" not in options:
        raise ConfigurationError(
            f"{ENV_WRITE_KEY} is not set: set it to the write key of your Customer.io Data "
            f"Pipelines source (or set {ENV_ENABLE}=false to try the rules without sending)"
        )
    return options


def handler_from_environment(environ: Mapping[str, str] | None = None, *,
                             handler_class: type[CDPHandler] = CDPHandler) -> CDPHandler:
    """A handler configured by the environment (see :data:`VARIABLES`).

    Raises :class:`ConfigurationError` naming the variable at fault. Invalid rules are
    skipped and reported (see :class:`cdp_logging.RuleSet`); when strict they raise
    :class:`cdp_logging.RulesError` naming ``CDP_RULES`` and the rule.

    Example::

        logging.getLogger().addHandler(handler_from_environment())
    """
    texts = _texts(os.environ if environ is None else environ)
    del environ  # as in read_environment
    options = _parsed(texts)  # the key stays hidden, on to the handler
    rules = options.pop("rules", None)
    level = options.pop("level", logging.NOTSET)
    options.pop("strict", None)  # read by cdp_logging.events itself
    try:
        loaded = None if rules is None else RuleSet.from_file(rules)
    except RulesError as err:
        raise RulesError(err.problem, rule=err.rule, described=err.described,
                         source=f"{ENV_RULES}={err.source}") from None
    try:
        return handler_class(level, rules=loaded, **options)
    except (TypeError, ValueError) as err:
        raise ConfigurationError(_naming_the_variable(err)) from None


def _naming_the_variable(err: Exception) -> str:
    """Analytics names the option at fault; say which variable set it."""
    found = re.search(r"option '(\w+)'", str(err))
    if found is None:
        return str(err)
    variable = f"CDP_{found.group(1).upper()}"
    return f"{variable}: {_without_option(err)}"


def _without_option(err: Exception) -> str:
    return re.sub(r"^cdp_logging option '\w+':? ", "", str(err))
