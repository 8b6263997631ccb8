"""Every option in one table: its name, its ``CDP_*`` variable, its kind, default and range,
and one line saying what it does.

The table is what the checks use (a value given in code that is out of range raises, naming
the option), what the environment is read by (a value from a ``CDP_*`` variable that is out of
range is one WARNING naming the variable and the default used instead, an error when strict),
and what ``docs/configuration.md`` is generated from (:func:`markdown`; a test fails when the
file differs). To add an option: add its parameter to ``Analytics.__init__`` and one
:class:`Option` row to :data:`OPTIONS`; its variable, its check, its line in
``cdp-logging --help`` and its row in the docs follow (then run
``python -m cdp_logging.option_table > docs/configuration.md``).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .constants import (
    DEFAULT_HOST, ENV_ENABLE, ENV_REQUIRE_WRITE_KEY, ENV_WRITE_KEY, EU_HOST, FALSE_WORDS,
    TRUE_WORDS,
)
from .environment import once_per_process_tree
from .reporting import warn
from .secret import Secret

#: What an option holds, and so how its variable is read and its value checked.
KINDS = {
    "key": "text", "url": "URL", "int": "integer", "float": "seconds",
    "bool": "true/false", "choice": "one of", "path": "path", "callable": "module.path:function",
    "timeout": "seconds, or connect,read seconds", "level": "level", "object": "object",
}


@dataclass(frozen=True)
class Option:
    """One option: what :class:`~cdp_logging.Analytics` (``scope="client"``) or
    ``cdp-logging run``'s handler (``scope="handler"``) takes, or the whole process
    (``scope="process"``: ``CDP_STRICT``), and how its variable is read.

    ``minimum`` and ``maximum`` bound a number (both included); ``choices`` list what a
    ``"choice"`` may be; ``shown_default`` says the default in words where the value alone
    would not; ``variable`` is False for an option that cannot come from the environment (an
    object).

    Example::

        Option("flush_interval", "float", 10.0, "send what is queued at least this often",
               minimum=0.001, maximum=3600)
    """

    name: str
    kind: str
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
            return f"{what} from {_number_text(self.minimum)} to {_number_text(self.maximum)}"
        if self.kind == "choice":
            return " or ".join(repr(choice) for choice in self.choices)
        return {"key": "text", "url": "an http(s) URL", "bool": "true or false",
                "path": "a path", "callable": "a callable or its dotted path",
                "level": "a level name or number", "object": "an object"}[self.kind]

    @property
    def default_text(self) -> str:
        """The default as the docs and ``--help`` show it."""
        if self.shown_default is not None:
            return self.shown_default
        if isinstance(self.default, bool):
            return str(self.default).lower()
        return _number_text(self.default) if isinstance(self.default, (int, float)) else str(self.default)


def _number_text(value: float | None) -> str:
    return "" if value is None else str(value)


#: Every option, in the order ``Analytics.__init__`` takes them, then those of ``cdp-logging run``.
OPTIONS: tuple[Option, ...] = (
    Option("write_key", "key", None, "the write key of your Data Pipelines source (unset: one "
           "warning, nothing sent)", shown_default="(none)"),
    Option("host", "url", None, "the API host; https://cdp-eu.customer.io for the EU region",
           shown_default=f"the write key's region's: {EU_HOST} for a pk_eu_/sk_eu_ key, else {DEFAULT_HOST}"),
    Option("max_events_in_batch", "int", 20, "send a batch when this many events are queued",
           minimum=1, maximum=10_000),
    Option("flush_interval", "float", 10.0, "send what is queued at least this often, in seconds",
           minimum=0.001, maximum=3600),
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
           minimum=0, maximum=100),
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
    Option("rules", "path", None, "the rules file (.json or .toml) that makes log lines calls",
           shown_default="(none: only records with a payload in extra)", scope="handler"),
    Option("level", "level", "NOTSET", "the lowest level of record considered (DEBUG, INFO, ...)",
           scope="handler"),
    Option("strict", "bool", False, "true: the cdp_logging.events helpers raise for a bad payload, "
           "and a bad CDP_* value is an error instead of a warning",
           shown_default="false (true under pytest)", scope="process"),
)

def _table(options: tuple[Option, ...]) -> list[str]:
    lines = ["| Option | Variable | Type | Default | Range | What it does |",
             "| --- | --- | --- | --- | --- | --- |"]
    for option in options:
        variable = f"`{option.variable}`" if option.variable else "(code only)"
        kind = " or ".join(option.choices) if option.kind == "choice" else KINDS[option.kind]
        bounds = (f"{_number_text(option.minimum)} to {_number_text(option.maximum)}"
                  if option.minimum is not None else "")
        cells = [f"`{option.name}`", variable, kind, option.default_text, bounds, option.description]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return lines


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
    if option.kind == "url" and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
        raise ValueError(f"cdp_logging option {name!r} must be an http(s) URL, got {value!r}")
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
        from .handler import resolve_callable  # the handler imports the client, which imports this

        value = resolve_callable(text, name)
    elif option.kind == "level":
        value = _level(text)
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


def without_option(err: BaseException) -> str:
    """An error's message without its "cdp_logging option 'x' " opening, for a variable's."""
    text = str(err)
    if text.startswith("cdp_logging option '"):
        text = text.split("'", 2)[2].lstrip(": ")
    return text


def _shown_text(text: str) -> str:
    shown = repr(text[:80] + ("..." if len(text) > 80 else ""))
    return shown


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
        problem = f"{option.variable}={_shown_text(text)}: {without_option(err).partition(', got ')[0]}"
    if _strict():
        from .errors import ConfigurationError  # the errors module imports the messages

        raise ConfigurationError(problem)
    if once_per_process_tree(f"bad:{option.variable}={text}"):  # hashed: never in the clear
        warn("cdp-logging: %s; using the default, %s", problem, option.default_text)
    return False, None


def _strict() -> bool:
    from .events import is_strict  # the front's setting, read only for a bad value

    return is_strict()


#: The source of an option given in code, and of one left at its default.
CODE, DEFAULT = "code", "default"

_Init = TypeVar("_Init", bound=Callable[..., None])


def from_environment(init: _Init) -> _Init:
    """Wrap ``Analytics.__init__``: every option not given in code takes its ``CDP_*``
    variable's value when that is set and good (``CDP_ENABLE=false`` and
    ``CDP_REQUIRE_WRITE_KEY=true`` apply even over code); the client's ``option_sources``
    says where each came from, and one DEBUG line on ``cdp_logging`` says it too.

    Example::

        class Analytics:
            @from_environment
            def __init__(self, write_key=None, *, flush_interval=10.0): ...
    """
    positional = ("write_key",)

    @functools.wraps(init)
    def reading_the_environment(self: Any, *args: Any, **options: Any) -> None:
        if len(args) > len(positional) or (args and positional[0] in options):
            init(self, *args, **options)  # raises the TypeError Python gives
        if args:  # the write key, hidden before anything can raise
            options[positional[0]] = Secret.of(args[0])
            args = ()
        if "write_key" in options:
            options["write_key"] = Secret.of(options["write_key"])
        sources = _fill_from_environment(options)
        self.option_sources = sources
        init(self, **options)
        _log_sources(self, sources, options)

    return reading_the_environment  # type: ignore[return-value]  # same signature, by wraps


def _fill_from_environment(options: dict[str, Any]) -> dict[str, str]:
    sources: dict[str, str] = {}
    for option in CLIENT_OPTIONS:
        name, variable = option.name, option.variable
        given = name in options and not (name in ("write_key", "host") and _unset(options[name]))
        if name == "write_key":  # read by the client itself, where the key stays hidden
            set_in_environment = bool(os.environ.get(ENV_WRITE_KEY, "").strip())
            sources[name] = CODE if given else (ENV_WRITE_KEY if set_in_environment else DEFAULT)
            continue
        if variable is None:
            sources[name] = CODE if given else DEFAULT
            continue
        found, value = read_variable(name, os.environ.get(variable, ""))
        overrides = found and (
            (variable == ENV_ENABLE and value is False) or (variable == ENV_REQUIRE_WRITE_KEY and value)
        )
        if found and (overrides or not given):
            options[name] = value
            sources[name] = variable
        else:
            sources[name] = CODE if given else DEFAULT
    return sources


def _unset(value: Any) -> bool:
    return (value.value if isinstance(value, Secret) else value) is None


def _log_sources(client: Any, sources: dict[str, str], options: dict[str, Any]) -> None:
    logger = logging.getLogger("cdp_logging")
    if not logger.isEnabledFor(logging.DEBUG):
        return
    shown = []
    for name, source in sources.items():
        if source == DEFAULT:
            continue
        value = "(set)" if name == "write_key" else (client.host if name == "host" else options.get(name))
        shown.append(f"{name}={value!r} ({source})")
    logger.debug("cdp-logging: client options: %s; the rest are defaults",
                 ", ".join(shown) or "none given")


def markdown() -> str:
    """docs/configuration.md: the reference table of every option, generated from :data:`OPTIONS`,
    and where each option's value comes from.

    Example::

        pathlib.Path("docs/configuration.md").write_text(markdown())
    """
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from cdp_logging/option_table.py by "
        "`python -m cdp_logging.option_table > docs/configuration.md`: edit the table, not this file. -->",
        "",
        "Every option of `cdp_logging.Analytics` (and so of `CDPHandler`, which passes its options on, "
        "in code, `dictConfig` or an INI file) has an environment variable: `CDP_` and the option's "
        "name in capitals. Numbers must be finite and within the range shown, both ends included.",
        "",
        *_table(CLIENT_OPTIONS),
        "",
        "Three more variables: `CDP_RULES` and `CDP_LEVEL` configure the handler `cdp-logging run` "
        "installs; `CDP_STRICT` applies everywhere.",
        "",
        *_table(tuple(option for option in OPTIONS if option.scope != "client")),
    ]
    lines += _SOURCES_SECTION
    return "\n".join(lines) + "\n"


_SOURCES_SECTION = [
    "",
    "## Where each option's value comes from",
    "",
    "Wherever a client is made (`Analytics(...)` in code, `CDPHandler` in `dictConfig` or an INI "
    "file, or `cdp-logging run`), each option takes, first to last:",
    "",
    "1. the argument given in code (or the key in `dictConfig`);",
    "2. else its `CDP_*` variable, when set, not blank, and good;",
    "3. else the default in the table above.",
    "",
    "Two variables apply over code too: `CDP_ENABLE=false` turns every client off, and "
    "`CDP_REQUIRE_WRITE_KEY=true` makes a missing key an error for every client. A `None` "
    "`write_key` or `host` counts as not given.",
    "",
    "The client's `option_sources` maps each option to where its value came from "
    "(`\"code\"`, the variable's name, or `\"default\"`), and with the `cdp_logging` logger at "
    "DEBUG each client logs one line naming the options not at their default and their source "
    "(the write key is shown as `(set)`).",
    "",
    "<!-- fragment -->",
    "```python",
    "import cdp_logging",
    "",
    "analytics = cdp_logging.Analytics(\"WRITE_KEY\", max_events_in_batch=50)",
    "print(analytics.option_sources[\"max_events_in_batch\"])   # code",
    "print(analytics.option_sources[\"flush_interval\"])        # CDP_FLUSH_INTERVAL, if set; else default",
    "```",
    "",
    "## What a bad value does",
    "",
    "A bad value in the environment never stops the application. `CDP_FLUSH_INTERVAL=ten`, "
    "`CDP_HOST=127.0.0.1:8711` (no scheme) or `CDP_TIMEOUT=inf` is one WARNING on the "
    "`cdp_logging` logger, once per process tree, naming the variable, what is wrong and the "
    "default used instead:",
    "",
    "```text",
    "cdp-logging: CDP_FLUSH_INTERVAL='ten': must be a number of seconds from 0.001 to 3600; "
    "using the default, 10.0",
    "```",
    "",
    "With `CDP_STRICT=true` (and under pytest with cdp-logging's plugin) a bad value is an "
    "error instead: `cdp_logging.ConfigurationError` naming the variable, raised where the "
    "client is made; `cdp-logging run` then does not start the command. `cdp-logging check` "
    "always reports a bad value as an error.",
    "",
    "A bad value given in code raises `TypeError` or `ValueError` where the client is made, "
    "naming the option: a mistake in code is found the first time it runs.",
    "",
    "Every number is finite and in the range in the table: `inf`, `nan`, `1e12` seconds or a "
    "negative count are refused, from code or environment.",
]


if __name__ == "__main__":  # python -m cdp_logging.option_table > docs/configuration.md
    import sys

    sys.stdout.write(markdown())
