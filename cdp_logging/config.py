"""Options from environment variables, for ``cdp-logging run`` and ``cdp-logging check``.

Every option of :class:`cdp_logging.Analytics` has a variable, ``CDP_`` and the option's
name in capitals (``max_events_in_batch``: ``CDP_MAX_EVENTS_IN_BATCH``); the list is read
from ``Analytics.__init__`` so that a new option gets its variable. Two more configure the
handler: ``CDP_RULES`` (the rules file) and ``CDP_LEVEL``; ``CDP_STRICT`` is read by
:mod:`cdp_logging.events`. The variables are the rows of :data:`cdp_logging.option_table.OPTIONS`.
:func:`read_environment` (``check``) raises :class:`cdp_logging.ConfigurationError` naming the
variable of a bad value; :func:`handler_from_environment` (``run``) warns and uses the default
unless strict, as every client does. Any other ``CDP_*`` variable is
reported once, with the one probably meant (:func:`cdp_logging.environment.warn_about_unknown_variables`).
"""

from __future__ import annotations

import functools
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
    ENV_ENABLE, ENV_HOST, ENV_LEVEL, ENV_REQUIRE_WRITE_KEY, ENV_RULES, ENV_STRICT, ENV_WRITE_KEY,
)
from .environment import known_variables
from .option_table import BY_NAME, KINDS, OPTIONS, Option, parse_text, read_variable, shown_value, without_option
from .errors import ConfigurationError, RulesError
from .handler import CDPHandler
from .rules import RuleSet

@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, the option it sets, how to read it, its default
    (a view of one row of :data:`cdp_logging.option_table.OPTIONS`)."""

    name: str
    option: str
    kind: str
    default: str
    description: str
    parse: Callable[[str], Any]


def _variable(option: Option) -> Variable:
    assert option.variable is not None
    kind = " or ".join(option.choices) if option.kind == "choice" else KINDS[option.kind]
    if option.minimum is not None:
        kind += f", {option.minimum} to {option.maximum}"
    return Variable(option.variable, option.name, kind, option.default_text, option.description,
                    functools.partial(parse_text, option.name))


#: Every variable, in the order ``--help`` lists them: one per row of the option table.
VARIABLES: tuple[Variable, ...] = tuple(_variable(option) for option in OPTIONS if option.from_environment)
assert ENV_WRITE_KEY in {v.name for v in VARIABLES} and ENV_HOST in {v.name for v in VARIABLES}
assert {ENV_RULES, ENV_LEVEL, ENV_STRICT} <= {v.name for v in VARIABLES}
# Analytics checks the environment by the same list, without importing this module.
assert [v.name for v in VARIABLES] == known_variables(inspect.signature(Analytics.__init__).parameters)


def read_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The options set in ``environ`` (default: ``os.environ``), parsed and checked; unset
    and empty variables are left out so the defaults apply. What ``cdp-logging check`` reads:
    strict, where a client warns of a bad value and uses the default.

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
            raise ConfigurationError(f"{variable.name}={shown_value(text.value)}: {without_option(err)}") from None
        options[variable.option] = parsed if variable.name == ENV_WRITE_KEY else parsed.value
    _check_required_key(options, has_key="write_key" in options)
    return options


def _check_required_key(options: Mapping[str, Any], *, has_key: bool) -> None:
    if options.get("require_write_key") and options.get("enable") is not False and not has_key:
        raise ConfigurationError(
            f"{ENV_WRITE_KEY} is not set: set it to the write key of your Customer.io Data "
            f"Pipelines source (or set {ENV_ENABLE}=false to try the rules without sending)"
        )


def handler_from_environment(environ: Mapping[str, str] | None = None, *,
                             handler_class: type[CDPHandler] = CDPHandler) -> CDPHandler:
    """A handler configured by the environment (see :data:`VARIABLES`): ``environ``
    (default: ``os.environ``, which the client reads itself, so that its ``option_sources``
    name the variables).

    A bad value is one WARNING naming the variable, and the default (see
    :func:`cdp_logging.option_table.read_variable`); when strict it raises
    :class:`ConfigurationError` naming it, as a missing key that is required does. Invalid
    rules are skipped and reported (see :class:`cdp_logging.RuleSet`); when strict they raise
    :class:`cdp_logging.RulesError` naming ``CDP_RULES`` and the rule.

    Example::

        logging.getLogger().addHandler(handler_from_environment())
    """
    from_process = environ is None
    texts = _texts(os.environ if environ is None else environ)
    del environ  # as in read_environment
    options: dict[str, Any] = {}
    for variable in VARIABLES:
        text = texts.get(variable.name)
        if text is None or (from_process and BY_NAME[variable.option].scope == "client"):
            continue  # the client reads its own variables from the process's environment
        if variable.name == ENV_WRITE_KEY:
            options["write_key"] = text  # hidden, on to the handler
            continue
        found, value = read_variable(variable.option, text.value)
        if found:
            options[variable.option] = value
    switches = {name: read_variable(name, texts[variable].value)[1]
                for name, variable in (("require_write_key", ENV_REQUIRE_WRITE_KEY), ("enable", ENV_ENABLE))
                if variable in texts}
    _check_required_key(switches, has_key=ENV_WRITE_KEY in texts)
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
    return f"{variable}: {without_option(err)}"
