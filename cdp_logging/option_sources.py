"""Where each option of a client comes from: the argument given in code, else its ``CDP_*``
variable when set and good, else the default (the rows of :data:`cdp_logging.option_table.OPTIONS`).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from .constants import ENV_ENABLE, ENV_REQUIRE_WRITE_KEY, ENV_WRITE_KEY
from .option_table import CLIENT_OPTIONS, read_variable, shown_value
from .secret import Secret


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
        # None given for these is "not set" (compat.Client and CDPHandler pass every option on).
        given = name in options and not (
            name in ("write_key", "host", "redact_keys", "before_send") and _unset(options[name]))
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
        if name == "write_key":
            value = "'(set)'"
        elif name == "host":
            value = shown_value(client.host)  # without a password the URL may hold
        else:
            value = repr(options.get(name))
        shown.append(f"{name}={value} ({source})")
    logger.debug("cdp-logging: client options: %s; the rest are defaults",
                 ", ".join(shown) or "none given")
