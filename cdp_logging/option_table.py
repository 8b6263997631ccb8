"""Every option in one table: its name, its ``CDP_*`` variable, its kind, default and range,
and one line saying what it does.

The table is what the checks use (a value given in code that is out of range raises, naming
the option), what the environment is read by (a value from a ``CDP_*`` variable that is out of
range is one WARNING naming the variable and the default used instead, an error when strict),
and what ``docs/configuration.md`` is generated from (:mod:`cdp_logging.cli.reference`; a
test fails when the file differs). To add an option: add its parameter to ``Analytics.__init__`` and one
:class:`Option` row to :data:`OPTIONS`; its variable, its check, its line in
``cdp-logging --help`` and its row in the docs follow (then run
``python -m cdp_logging.cli.reference > docs/configuration.md``).
"""

from __future__ import annotations

import importlib
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Literal

from .constants import (
    DEFAULT_HOST, ENV_STRICT, EU_HOST, FALSE_WORDS,
    TRUE_WORDS,
)
from .environment import once_per_process_tree, pytest_plugin_active
from .delivery.endpoint import check_host
from .errors import ConfigurationError
from .redaction import parse_redact_keys
from .reporting import warn

#: What an option holds, and so how its variable is read and its value checked.
Kind = Literal["key", "url", "int", "float", "bool", "choice", "path", "callable", "timeout", "level", "object", "keys"]
#: Each kind in words, for ``--help`` and the docs.
KINDS: dict[Kind, str] = {
    "key": "text", "url": "URL", "int": "integer", "float": "seconds",
    "bool": "true/false", "choice": "one of", "path": "path", "callable": "module.path:function",
    "timeout": "seconds, or connect,read seconds", "level": "level", "object": "object",
    "keys": "key,key,... (+key,...: added to the default list; none: off)",
}


@dataclass(frozen=True)
class Option:
    """One option: what :class:`~cdp_logging.Analytics` (``scope="client"``) or
    ``cdp-logging run``'s handler (``scope="handler"``) takes, or the whole process
    (``scope="process"``: ``CDP_STRICT``), and how its variable is read.

    ``minimum`` and ``maximum`` bound a number (both included); ``choices`` list what a
    ``"choice"`` may be; ``shown_default`` says the default in words where the value alone
    would not; ``from_environment`` is False for an option that cannot come from the
    environment (an object).

    Example::

        Option("flush_interval", "float", 10.0, "send what is queued at least this often",
               minimum=0.001, maximum=3600)
    """

    name: str
    kind: Kind
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    shown_default: str | None = None
    scope: str = "client"
    from_environment: bool = True

    @property
    def variable(self) -> str | None:
        """``CDP_`` and the name in capitals, or None for an option the environment cannot set."""
        return f"CDP_{self.name.upper()}" if self.from_environment else None

    @property
    def allowed(self) -> str:
        """What a value must be, in words: "a number of seconds from 0.001 to 3600"."""
        if self.kind in ("int", "float", "timeout"):
            what = {"int": "a whole number", "float": "a number of seconds",
                    "timeout": "a number of seconds"}[self.kind]
            return f"{what} from {self.minimum} to {self.maximum}"
        if self.kind == "choice":
            return " or ".join(repr(choice) for choice in self.choices)
        return {"key": "text", "url": "an http(s) URL", "bool": "true or false",
                "path": "a path", "callable": "a callable or its dotted path",
                "level": "a level name or number", "object": "an object",
                "keys": "key names"}[self.kind]

    @property
    def default_text(self) -> str:
        """The default as the docs and ``--help`` show it."""
        if self.shown_default is not None:
            return self.shown_default
        if isinstance(self.default, bool):
            return str(self.default).lower()
        return str(self.default)


#: Every option, in the order ``Analytics.__init__`` takes them, then those of ``cdp-logging run``.
OPTIONS: tuple[Option, ...] = (
    Option("write_key", "key", None, "the write key of your Data Pipelines source (unset: one "
           "warning, nothing sent)", shown_default="(none)"),
    Option("host", "url", None, "the API host; https://cdp-eu.customer.io for the EU region",
           shown_default=f"the write key's region's: {EU_HOST} for a pk_eu_/sk_eu_ key, else {DEFAULT_HOST}"),
    Option("max_events_in_batch", "int", 20, "send a batch when this many events are queued; no "
           "request carries more",
           minimum=1, maximum=10_000),
    Option("flush_interval", "float", 10.0, "send what is queued at least this often, in seconds",
           minimum=0.001, maximum=3600),
    Option("max_concurrent_requests", "int", 8, "while a backlog lasts, at most this many requests in "
           "flight at once, each on its own connection (within the API's rate limit)",
           minimum=1, maximum=64),
    Option("enable", "bool", True, "false: match and check events but send nothing (CDP_ENABLE=false "
           "turns off every client, those made in code included)"),
    Option("require_write_key", "bool", False, "true: a missing write key is an error; unset, it is "
           "one warning and nothing is sent (CDP_REQUIRE_WRITE_KEY=true applies to every client)"),
    Option("error_handler", "callable", None, "a function given each problem (module.path:function); "
           "unset: warnings on the cdp_logging logger", shown_default="(none)"),
    Option("max_queue_size", "int", 50_000, "events held while waiting to be sent; beyond it new "
           "events are dropped", minimum=1, maximum=10_000_000),
    Option("max_queue_bytes", "int", 20_000_000, "bytes of events held while waiting to be sent",
           minimum=1, maximum=10_000_000_000),
    Option("overflow", "choice", "drop", "when the queue is full: drop (the new event) or wait (up "
           "to overflow_timeout)", choices=("drop", "wait")),
    Option("overflow_timeout", "float", 1.0, "seconds a log call may wait for room with "
           "overflow=wait", minimum=0, maximum=60),
    Option("timeout", "timeout", 10.0, "seconds one request may take; or connect,read: connecting, "
           "then the rest", minimum=0.001, maximum=600),
    Option("gzip", "bool", False, "true: compress request bodies"),
    Option("max_retries", "int", 5, "retries of a failed request before its events are given up",
           minimum=0, maximum=10_000),
    Option("max_retry_time", "float", 60.0, "seconds after which a failing request is given up",
           minimum=0, maximum=86_400),
    Option("initial_backoff", "float", 0.5, "seconds before the first retry (the wait doubles "
           "each retry)", minimum=0, maximum=3600),
    Option("max_backoff", "float", 10.0, "the longest wait between two retries, in seconds",
           minimum=0, maximum=3600),
    Option("max_retry_after", "float", 30.0, "the longest a server's Retry-After is honoured, in "
           "seconds", minimum=0, maximum=3600),
    Option("shutdown_timeout", "float", 5.0, "seconds the process may spend at exit delivering "
           "what is queued", minimum=0, maximum=3600),
    Option("spool_path", "path", None, "a file on local disk where events wait until delivered, "
           "surviving kill -9 and long outages (several processes may share it)",
           shown_default="(none: events wait in memory only)"),
    Option("spool_max_bytes", "int", 100_000_000, "the spool file's size bound, in bytes (its WAL, "
           "up to 4 MB, is extra)", minimum=1, maximum=1_000_000_000_000),
    Option("spool_full", "choice", "drop_oldest", "when the spool is full: drop_oldest or "
           "drop_newest", choices=("drop_oldest", "drop_newest")),
    Option("spool_sync_interval", "float", 0.2, "seconds an event may wait in memory before it is "
           "written to the spool: what kill -9 can lose", minimum=0.001, maximum=60),
    Option("transport", "object", None, "a cdp_logging.Transport to send with instead of HTTP "
           "(tests, custom delivery)", shown_default="(none: HTTP)", from_environment=False),
    Option("redact_keys", "keys", None, "keys whose values are sent as [redacted], at any depth of "
           "properties, traits and context (docs/privacy.md)",
           shown_default="cdp_logging.DEFAULT_REDACT_KEYS (password, token, authorization, ...)"),
    Option("before_send", "callable", None, "a function given each message before it is encoded, "
           "returning it (changed or not) or None to drop it", shown_default="(none)"),
    Option("rules", "path", None, "the rules file (.json or .toml) that makes log lines calls",
           shown_default="(none: only records with a payload in extra)", scope="handler"),
    Option("level", "level", "NOTSET", "the lowest level of record considered (DEBUG, INFO, ...)",
           scope="handler"),
    Option("strict", "bool", False, "true: the cdp_logging.events helpers raise for a bad payload, "
           "and a bad CDP_* value is an error instead of a warning",
           shown_default="false (true under pytest)", scope="process"),
)

#: The rows by option name.
BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
#: The options of ``Analytics.__init__``, in its order.
CLIENT_OPTIONS: tuple[Option, ...] = tuple(option for option in OPTIONS if option.scope == "client")


def option_error(option: str, expected: str, value: Any) -> TypeError:
    """The TypeError for a value of the wrong type given in code, naming the option."""
    return TypeError(f"cdp_logging option {option!r} must be {expected}, got {value!r}")


def check_value(name: str, value: Any) -> Any:
    """``value`` for the option ``name`` if its row allows it; else TypeError or ValueError
    naming the option and what it must be. Numbers must be finite and in the row's range.

    Example::

        >>> check_value("flush_interval", 0.5)
        0.5
        >>> check_value("flush_interval", float("inf"))
        Traceback (most recent call last):
        ValueError: cdp_logging option 'flush_interval' must be a number of seconds from 0.001 to 3600, got inf
    """
    option = BY_NAME[name]
    if option.kind == "timeout" and isinstance(value, tuple) and len(value) == 2:
        for part, which in zip(value, ("connect", "read"), strict=True):
            _check_number(option, part, integer=False, shown=f"timeout ({which})")
        return value
    if option.kind in ("int", "float", "timeout"):
        return _check_number(option, value, integer=option.kind == "int", shown=name)
    if option.kind == "bool" and not isinstance(value, bool):
        raise option_error(name, "True or False", value)
    if option.kind == "choice" and value not in option.choices:
        raise ValueError(f"cdp_logging option {name!r} must be {option.allowed}, got {value!r}")
    if option.kind == "url":
        if not isinstance(value, str):
            raise ValueError(f"cdp_logging option {name!r} must be an http(s) URL, got {value!r}")
        return check_host(value)  # one parse for every part of the library; no password shown
    return value


def _check_number(option: Option, value: Any, *, integer: bool, shown: str) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise option_error(shown, "an integer" if integer else "a number", value)
    assert option.minimum is not None and option.maximum is not None  # every number row has both
    # A float that is inf or nan compares False with everything: it is asked first.
    if (isinstance(value, float) and not math.isfinite(value)) or not option.minimum <= value <= option.maximum:
        raise ValueError(f"cdp_logging option {shown!r} must be {option.allowed}, got {value!r}")
    return value


def parse_text(name: str, text: str) -> Any:
    """The value the text of option ``name``'s variable sets, checked; ValueError (or
    TypeError) saying what it must be.

    Example::

        >>> parse_text("timeout", "3, 10")
        (3.0, 10.0)
    """
    option = BY_NAME[name]
    text = text.strip()
    value: Any = text
    if option.kind == "int":
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"must be {option.allowed}") from None
    elif option.kind in ("float", "timeout"):
        try:
            parts = tuple(float(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"must be {option.allowed}") from None
        if len(parts) > (2 if option.kind == "timeout" else 1):
            raise ValueError(f"must be {option.allowed}")
        value = parts if len(parts) == 2 else parts[0]
    elif option.kind == "bool":
        value = _boolean(text)
    elif option.kind == "callable":
        value = resolve_callable(text, name)
    elif option.kind == "level":
        value = _level(text)
    elif option.kind == "keys":
        value = parse_redact_keys(text)
    return check_value(name, value)


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"must be true or false ({'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)})")


def _level(text: str) -> int:
    if text.isdigit():
        return int(text)
    level = logging.getLevelName(text.upper())
    if isinstance(level, int):
        return level
    raise ValueError("must be a level name (DEBUG, INFO, WARNING, ERROR, CRITICAL) or a number")


def resolve_callable(value: Any, option: str) -> Any:
    """Accept a callable, or its dotted path (``"pkg.module.function"``, ``"pkg.module:function"``,
    ``"ext://pkg.module.function"``), so INI and dict configurations can name functions."""
    if value is None or callable(value):
        return value
    if not isinstance(value, str):
        raise TypeError(f"cdp_logging option {option!r} must be a callable or its dotted path, got {value!r}")
    path = value.removeprefix("ext://")
    module_name, _, attribute = path.rpartition(":") if ":" in path else path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"cdp_logging option {option!r}: cannot import {value!r}: {err}") from err
    if not callable(found):
        raise TypeError(f"cdp_logging option {option!r}: {value!r} is not callable")
    return found


def without_option(err: BaseException) -> str:
    """An error's message without its "cdp_logging option 'x' " opening, for a variable's."""
    text = str(err)
    if text.startswith("cdp_logging option '"):
        text = text.split("'", 2)[2].lstrip(": ")
    return text


def shown_value(text: str) -> str:
    """The bad value as a warning shows it: quoted (control characters escaped), cut at 80
    characters, and without what comes before an ``@`` (a URL's user and password)."""
    if "@" in text:
        scheme, separator, rest = text.rpartition("://")
        text = f"{scheme}{separator}***@{rest.rpartition('@')[2]}"
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


def read_variable(name: str, text: str) -> tuple[bool, Any]:
    """``(True, value)`` for ``text``, the value of option ``name``'s variable, when it is
    set (not blank) and good; ``(False, None)`` when blank. A bad value is one WARNING naming
    the variable, what is wrong and the default used instead (once per process tree), and
    ``(False, None)``; when strict (``CDP_STRICT=true``; under pytest with the plugin) it
    raises :class:`cdp_logging.ConfigurationError` naming the variable. (Given the text, not
    the environment: no frame that can raise holds the write key.)

    Example::

        >>> read_variable("flush_interval", "2.5")
        (True, 2.5)
    """
    option = BY_NAME[name]
    if not text.strip():
        return False, None
    try:
        return True, parse_text(name, text)
    except (ValueError, TypeError) as err:
        problem = f"{option.variable}={shown_value(text)}: {without_option(err).partition(', got ')[0]}"
    if _strict():
        raise ConfigurationError(problem)
    if once_per_process_tree(f"bad:{option.variable}={text}"):  # hashed: never in the clear
        warn("cdp-logging: %s; using the default, %s", problem, option.default_text)
    return False, None


def _strict() -> bool:
    """``CDP_STRICT`` when set, else whether pytest runs with the plugin (as
    :func:`cdp_logging.events.is_strict` reads it, without its in-code switch)."""
    setting = os.environ.get(ENV_STRICT, "").strip().lower()
    return setting not in FALSE_WORDS if setting else pytest_plugin_active()
