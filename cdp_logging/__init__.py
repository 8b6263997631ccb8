"""cdp-logging: Customer.io Data Pipelines events from Python's logging.

Example::

    import cdp_logging
    analytics = cdp_logging.Analytics("YOUR_WRITE_KEY")
    analytics.track(user_id="42", event="Signed Up")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names

from ._version import __version__

if TYPE_CHECKING:
    from . import events
    from .client import Analytics
    from .constants import DEFAULT_HOST, EU_HOST
    from .errors import (
        BeforeSendError,
        CallbackError,
        CDPError,
        ConfigurationError,
        ConnectError,
        ConnectTimeout,
        DeliveryError,
        EventDroppedError,
        EventTooLargeError,
        InvalidEventError,
        ProtocolError,
        ReadTimeout,
        RulesError,
        SpoolError,
        TLSError,
        TransportError,
    )
    from .delivery.protocol import Response
    from .delivery.protocol import Transport
    from .handler import CDPHandler
    from .lifecycle import flush_after
    from .outcomes import Stats
    from .redaction import DEFAULT_REDACT_KEYS
    from .registry import close_all_clients, flush_all_clients
    from .rules import RuleSet
    from .scoping import scope

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_REDACT_KEYS",
    "EU_HOST",
    "Analytics",
    "BeforeSendError",
    "CDPError",
    "CDPHandler",
    "CallbackError",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeout",
    "DeliveryError",
    "EventDroppedError",
    "EventTooLargeError",
    "InvalidEventError",
    "ProtocolError",
    "ReadTimeout",
    "Response",
    "RuleSet",
    "RulesError",
    "SpoolError",
    "Stats",
    "TLSError",
    "Transport",
    "TransportError",
    "__version__",
    "close_all_clients",
    "events",
    "flush_after",
    "flush_all_clients",
    "scope",
]

# The module each public name comes from. They are imported on first use rather than here, so
# that importing a submodule alone stays light: pytest imports cdp_logging.testing.plugin at
# every start of every project that has cdp-logging installed, and the engine (requests,
# orjson) would cost that start a few hundred milliseconds.
_MODULES = {
    "Analytics": "client",
    "CallbackError": "errors",
    "Stats": "outcomes",
    "close_all_clients": "registry",
    "flush_all_clients": "registry",
    "DEFAULT_HOST": "constants",
    "EU_HOST": "constants",
    "CDPHandler": "handler",
    "flush_after": "lifecycle",
    "CDPError": "errors",
    "BeforeSendError": "errors",
    "DEFAULT_REDACT_KEYS": "redaction",
    "DeliveryError": "errors",
    "EventDroppedError": "errors",
    "EventTooLargeError": "errors",
    "InvalidEventError": "errors",
    "ConfigurationError": "errors",
    "RulesError": "errors",
    "SpoolError": "errors",
    "TransportError": "errors",
    "ConnectError": "errors",
    "ConnectTimeout": "errors",
    "ProtocolError": "errors",
    "ReadTimeout": "errors",
    "TLSError": "errors",
    "RuleSet": "rules",
    "Response": "delivery.protocol",
    "Transport": "delivery.protocol",
    "events": "events",
    "scope": "scoping",
}


__getattr__, __dir__ = lazy_names(__name__, _MODULES, __all__)
