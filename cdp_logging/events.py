"""Build a log call's ``extra`` for each CDP call, checked the way the client checks calls.

::

    log.info("signed up", extra=cdp_logging.events.identify(user_id="42", traits={"plan": "pro"}))
    log.info("added to cart", extra=cdp_logging.events.track(user_id="42", event="Added"))

Each function returns ``{"<call>": {fields...}}``; fields left out are left out of the dict.
The event's timestamp stays the moment of the log call unless ``timestamp`` is given.

Input the API would refuse (a missing id, a wrong type, a value that cannot be encoded, more
than 32 KB) never breaks the application: the function returns the payload as given, and the
handler that receives the log call counts it as invalid and reports it (``error_handler``,
else a WARNING on the ``cdp_logging`` logger) naming the logger and line. Where a developer
wants to hear of it at once, the functions raise :class:`cdp_logging.InvalidEventError`
(:class:`cdp_logging.EventTooLargeError` over 32 KB) instead: under pytest with the
cdp-logging plugin (installed with the package), with ``CDP_STRICT=true`` in the environment,
or after ``cdp_logging.events.strict = True``.
"""

from __future__ import annotations

import os
from typing import Any
from collections.abc import Mapping

from . import environment
from .constants import ENV_STRICT, FALSE_WORDS
from .errors import InvalidEventError
from .messages import build_message, encode_message

__all__ = ["alias", "group", "identify", "is_strict", "page", "screen", "strict", "track"]

#: True: raise :class:`~cdp_logging.InvalidEventError` for a bad payload; False: return it for
#: the handler to count and report; None (the default): ``CDP_STRICT``, else True under
#: pytest with the cdp-logging plugin and False everywhere else.
strict: bool | None = None


def is_strict() -> bool:
    """Whether the functions raise for a bad payload now (see :data:`strict`).

    Example::

        >>> cdp_logging.events.strict = False
        >>> cdp_logging.events.is_strict()
        False
    """
    if strict is not None:
        return strict
    setting = os.environ.get(ENV_STRICT, "").strip().lower()
    if setting:
        return setting not in FALSE_WORDS
    return environment.pytest_plugin_active()


def _extra(call: str, fields: dict[str, Any]) -> dict[str, dict[str, Any]]:
    given = {k: v for k, v in fields.items() if v is not None}
    try:
        encode_message(build_message(call, **given))  # the client's checks, the size limit included
    except InvalidEventError:
        if is_strict():
            raise
        # The handler checks the payload again, and counts and reports it with the logger
        # and line of the log call: the application's request goes on.
    return {call: given}


def identify(
    *,
    user_id: str | int | None = None,
    anonymous_id: str | int | None = None,
    traits: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    integrations: Mapping[str, Any] | None = None,
    timestamp: Any = None,
    message_id: str | None = None,
) -> dict[str, dict[str, Any]]:
    """``extra`` for an identify call.

    Example::

        log.info("login", extra=events.identify(user_id="42", traits={"email": "a@b.c"}))
    """
    return _extra("identify", dict(
        user_id=user_id, anonymous_id=anonymous_id, traits=traits, context=context,
        integrations=integrations, timestamp=timestamp, message_id=message_id,
    ))


def track(
    *,
    event: str | None = None,
    user_id: str | int | None = None,
    anonymous_id: str | int | None = None,
    properties: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    integrations: Mapping[str, Any] | None = None,
    timestamp: Any = None,
    message_id: str | None = None,
) -> dict[str, dict[str, Any]]:
    """``extra`` for a track call.

    Example::

        log.info("cart", extra=events.track(user_id="42", event="Added", properties={"qty": 1}))
    """
    return _extra("track", dict(
        event=event, user_id=user_id, anonymous_id=anonymous_id, properties=properties,
        context=context, integrations=integrations, timestamp=timestamp, message_id=message_id,
    ))


def page(
    *,
    user_id: str | int | None = None,
    anonymous_id: str | int | None = None,
    name: str | None = None,
    category: str | None = None,
    properties: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    integrations: Mapping[str, Any] | None = None,
    timestamp: Any = None,
    message_id: str | None = None,
) -> dict[str, dict[str, Any]]:
    """``extra`` for a page call.

    Example::

        log.info("viewed", extra=events.page(user_id="42", name="Pricing"))
    """
    return _extra("page", dict(
        user_id=user_id, anonymous_id=anonymous_id, name=name, category=category,
        properties=properties, context=context, integrations=integrations,
        timestamp=timestamp, message_id=message_id,
    ))


def screen(
    *,
    user_id: str | int | None = None,
    anonymous_id: str | int | None = None,
    name: str | None = None,
    category: str | None = None,
    properties: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    integrations: Mapping[str, Any] | None = None,
    timestamp: Any = None,
    message_id: str | None = None,
) -> dict[str, dict[str, Any]]:
    """``extra`` for a screen call.

    Example::

        log.info("screen", extra=events.screen(user_id="42", name="Checkout"))
    """
    return _extra("screen", dict(
        user_id=user_id, anonymous_id=anonymous_id, name=name, category=category,
        properties=properties, context=context, integrations=integrations,
        timestamp=timestamp, message_id=message_id,
    ))


def group(
    *,
    group_id: str | int | None = None,
    user_id: str | int | None = None,
    anonymous_id: str | int | None = None,
    traits: Mapping[str, Any] | None = None,
    object_type_id: str | int | None = None,
    context: Mapping[str, Any] | None = None,
    integrations: Mapping[str, Any] | None = None,
    timestamp: Any = None,
    message_id: str | None = None,
) -> dict[str, dict[str, Any]]:
    """``extra`` for a group call.

    Example::

        log.info("joined", extra=events.group(user_id="42", group_id="acme", object_type_id=1))
    """
    return _extra("group", dict(
        group_id=group_id, user_id=user_id, anonymous_id=anonymous_id, traits=traits,
        object_type_id=object_type_id, context=context, integrations=integrations,
        timestamp=timestamp, message_id=message_id,
    ))


def alias(
    *,
    previous_id: str | int | None = None,
    user_id: str | int | None = None,
    context: Mapping[str, Any] | None = None,
    integrations: Mapping[str, Any] | None = None,
    timestamp: Any = None,
    message_id: str | None = None,
) -> dict[str, dict[str, Any]]:
    """``extra`` for an alias call.

    Example::

        log.info("merged", extra=events.alias(previous_id="anon-1", user_id="42"))
    """
    return _extra("alias", dict(
        previous_id=previous_id, user_id=user_id, context=context,
        integrations=integrations, timestamp=timestamp, message_id=message_id,
    ))
