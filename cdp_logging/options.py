"""Checking the options of :class:`~cdp_logging.Analytics`, and what a missing write key or an
unknown ``CDP_*`` variable says, once per process."""

from __future__ import annotations



import logging
import os
from typing import Any
from collections.abc import Iterable, Mapping


from .delivery.connection import Timeout
from .secret import Secret
from .constants import (
    BATCH_PATH, ENV_ENABLE, ENV_REQUIRE_WRITE_KEY, ENV_WRITE_KEY, FALSE_WORDS, TRUE_WORDS,
)
from . import environment
from .option_table import CLIENT_OPTIONS, check_value, option_error
from .reporting import ErrorHandler, warn
from .delivery.endpoint import check_write_key
from .delivery.transport import (
    default_host,
)

logger = logging.getLogger("cdp_logging")


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
    """Say once per process tree that nothing is sent for want of a key (under pytest with the
    plugin a test needs none, so it is only logged at DEBUG there)."""
    global _warned_missing_write_key
    if environment.pytest_plugin_active():
        logger.debug("cdp-logging: no write key: sending nothing (pytest)")
        return
    if _warned_missing_write_key:
        return
    _warned_missing_write_key = True
    # Once for the process tree: the processes this one starts, and uvicorn's workers (siblings).
    if not (environment.once_per_process_tree(ENV_WRITE_KEY)
            and environment.first_of_sibling_workers(ENV_WRITE_KEY)):
        return
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


def _unusable_environment_key(key: Secret) -> bool:
    """Refuse a key holding a control character (ValueError, the key not shown); but one read
    from CDP_WRITE_KEY is a bad environment variable, which never stops an application: one
    warning, and no key (True)."""
    try:
        check_write_key(key.value)
    except ValueError as err:
        if key.value != os.environ.get(ENV_WRITE_KEY, "").strip():
            raise
        key.value = None
        warn("cdp-logging: %s; sending nothing", str(err).replace("cdp_logging option 'write_key' (or CDP_WRITE_KEY)",
                                                                  ENV_WRITE_KEY))
        return True
    return False


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
        raise option_error("write_key", "a string", type(key.value).__name__)
    if key.value is not None:
        # A key read from a mounted secret file, or $(cat file), ends in a newline.
        key.value = key.value.strip() or None
    unusable_environment_key = key.value is not None and _unusable_environment_key(key)
    _check_environment(options)
    if not isinstance(require_write_key, bool):
        raise option_error("require_write_key", "True or False", require_write_key)
    if os.environ.get(ENV_ENABLE, "").strip().lower() in FALSE_WORDS:
        enable = False  # the switch for every client, those made in code included
    if enable and not key.value and transport is None:
        if require_write_key or os.environ.get(ENV_REQUIRE_WRITE_KEY, "").strip().lower() in TRUE_WORDS:
            raise ValueError(
                "cdp_logging needs a write key: pass write_key=... or set the environment "
                f"variable {ENV_WRITE_KEY}."
            )
        # Analytics must never be what stops an application starting: send nothing.
        if not unusable_environment_key:  # else said already, naming the variable
            _missing_write_key()
        enable = False
    if host is None:
        host = default_host(key.value)  # CDP_HOST, when set and good, was read with the others
    host = check_value("host", host)  # checked, IDNA-encoded (delivery.endpoint.check_host)
    if error_handler is not None and not callable(error_handler):
        raise option_error("error_handler", "a callable", error_handler)
    if spool_path is not None and not isinstance(spool_path, (str, os.PathLike)):
        raise option_error("spool_path", "a path", spool_path)
    given = {**numbers, "overflow": overflow, "spool_full": spool_full, "enable": enable, "gzip": gzip}
    for option in CLIENT_OPTIONS:
        if option.kind in ("int", "float", "choice", "bool") and option.name in given:
            check_value(option.name, given[option.name])  # finite, in its range (option_table)
    check_value("timeout", timeout)
    longest_request = float(sum(timeout)) if isinstance(timeout, tuple) else float(timeout)
    return host, enable, longest_request
