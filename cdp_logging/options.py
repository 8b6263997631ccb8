"""Checking the options of :class:`~cdp_logging.Analytics`, and what a missing write key or an
unknown ``CDP_*`` variable says, once per process."""

from __future__ import annotations



import os
from typing import TYPE_CHECKING, Any
from collections.abc import Iterable, Mapping


from .delivery.connection import Timeout
from .secret import Secret
from .constants import (
    BATCH_PATH, ENV_ENABLE, ENV_HOST, ENV_REQUIRE_WRITE_KEY, ENV_WRITE_KEY, FALSE_WORDS, TRUE_WORDS,
)
from . import environment
from .reporting import ErrorHandler, warn
from .delivery.transport import (
    default_host,
)

if TYPE_CHECKING:
    # Imported when a client has a spool: a client without one never loads sqlite3.
    pass
from .outcomes import logger


def _option_error(option: str, expected: str, value: Any) -> TypeError:
    return TypeError(f"cdp_logging option {option!r} must be {expected}, got {value!r}")


_warned_missing_write_key = False


_environment_checked = False


def _check_environment(options: Iterable[str]) -> None:
    """Once per process, at the first client: warn of CDP_* variables nothing reads."""
    global _environment_checked
    if _environment_checked:
        return
    _environment_checked = True
    environment.warn_about_unknown_variables(
        environment.known_variables(options)
    )


def _missing_write_key() -> None:
    """Say once per process that nothing is sent for want of a key (under pytest with the
    plugin a test needs none, so it is only logged at DEBUG there)."""
    global _warned_missing_write_key
    if environment.pytest_plugin_active():
        logger.debug("cdp-logging: no write key: sending nothing (pytest)")
        return
    if _warned_missing_write_key:
        return
    _warned_missing_write_key = True
    warn(
        "cdp-logging: %s is not set: sending nothing. Set it to the write key of your Customer.io "
        "Data Pipelines source (or pass write_key=...); %s=false silences this, and "
        "require_write_key=True (%s=true) makes it an error.",
        ENV_WRITE_KEY, ENV_ENABLE, ENV_REQUIRE_WRITE_KEY,
    )


def _without_api_path(host: str) -> str:
    """The host without a trailing ``/v1`` or ``/v1/batch``: the client adds the path, and
    ``https://cdp.customer.io/v1`` would otherwise be posted to at ``/v1/v1/batch`` (404)."""
    host = host.rstrip("/")
    for path in (BATCH_PATH, BATCH_PATH.rpartition("/")[0]):
        if host.endswith(path):
            return host[: -len(path)]
    return host


def _number(option: str, value: Any, *, minimum: float, integer: bool = False) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise _option_error(option, "an integer" if integer else "a number", value)
    if value < minimum:
        raise ValueError(f"cdp_logging option {option!r} must be at least {minimum}, got {value!r}")
    return value


#: The least each number option may be, and whether it must be whole.
_MINIMA: dict[str, tuple[float, bool]] = {
    "max_events_in_batch": (1, True), "max_queue_size": (1, True), "max_queue_bytes": (1, True),
    "max_concurrent_requests": (1, True),
    "max_retries": (0, True), "flush_interval": (0.001, False), "overflow_timeout": (0, False),
    "max_retry_time": (0, False), "initial_backoff": (0, False), "max_backoff": (0, False),
    "max_retry_after": (0, False), "shutdown_timeout": (0, False), "spool_max_bytes": (1, True),
    "spool_sync_interval": (0.001, False),
}


def check_options(
    key: Secret, options: Iterable[str], *, host: str | None, enable: bool, require_write_key: bool,
    error_handler: ErrorHandler | None, overflow: str, spool_path: object, spool_full: str, gzip: bool,
    transport: object, numbers: Mapping[str, Any], timeout: Timeout,
) -> tuple[str, bool, float]:
    """Check the options of ``Analytics.__init__`` (``options``: its parameter names), raising
    TypeError or ValueError naming the first one wrong; strips the key (``key.value``) and
    warns of unknown ``CDP_*`` variables. Returns the host, whether the client is enabled (a
    missing key or ``CDP_ENABLE=false`` turn it off), and the longest one request may take.

    Example::

        host, enable, longest = check_options(Secret("key"), ["write_key"], host=None, ...)
    """
    if key.value is not None and not isinstance(key.value, str):
        raise _option_error("write_key", "a string", type(key.value).__name__)
    if key.value is not None:
        # A key read from a mounted secret file, or $(cat file), ends in a newline.
        key.value = key.value.strip() or None
    _check_environment(options)
    if not isinstance(require_write_key, bool):
        raise _option_error("require_write_key", "True or False", require_write_key)
    if os.environ.get(ENV_ENABLE, "").strip().lower() in FALSE_WORDS:
        enable = False  # the switch for every client, those made in code included
    if enable and not key.value and transport is None:
        if require_write_key or os.environ.get(ENV_REQUIRE_WRITE_KEY, "").strip().lower() in TRUE_WORDS:
            raise ValueError(
                "cdp_logging needs a write key: pass write_key=... or set the environment "
                f"variable {ENV_WRITE_KEY}."
            )
        # Analytics must never be what stops an application starting: send nothing.
        _missing_write_key()
        enable = False
    if host is None:
        host = os.environ.get(ENV_HOST) or default_host(key.value)
    if not isinstance(host, str) or not host.startswith(("http://", "https://")):
        raise ValueError(f"cdp_logging option 'host' must be an http(s) URL, got {host!r}")
    if error_handler is not None and not callable(error_handler):
        raise _option_error("error_handler", "a callable", error_handler)
    if overflow not in ("drop", "wait"):
        raise ValueError(f"cdp_logging option 'overflow' must be 'drop' or 'wait', got {overflow!r}")
    if spool_path is not None and not isinstance(spool_path, (str, os.PathLike)):
        raise _option_error("spool_path", "a path", spool_path)
    if spool_full not in ("drop_oldest", "drop_newest"):
        raise ValueError(
            f"cdp_logging option 'spool_full' must be 'drop_oldest' or 'drop_newest', got {spool_full!r}"
        )
    for option, flag in (("enable", enable), ("gzip", gzip)):
        if not isinstance(flag, bool):
            raise _option_error(option, "True or False", flag)
    for option, (minimum, integer) in _MINIMA.items():
        _number(option, numbers[option], minimum=minimum, integer=integer)
    if isinstance(timeout, tuple) and len(timeout) == 2:
        _number("timeout[0] (connect)", timeout[0], minimum=0.001)
        _number("timeout[1] (read)", timeout[1], minimum=0.001)
        longest_request = float(timeout[0]) + float(timeout[1])
    else:
        longest_request = float(_number("timeout", timeout, minimum=0.001))
    return host, enable, longest_request
