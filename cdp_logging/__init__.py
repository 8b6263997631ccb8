"""cdp-logging: Customer.io Data Pipelines events from Python's logging.

Example::

    import cdp_logging
    analytics = cdp_logging.Analytics("YOUR_WRITE_KEY")
    analytics.track(user_id="42", event="Signed Up")
"""

from . import events
from ._version import __version__
from .client import Analytics, CallbackError, Stats, close_all_clients, flush_all_clients
from .constants import DEFAULT_HOST, EU_HOST
from .handler import CDPHandler
from .lifecycle import flush_after
from .errors import (
    CDPError,
    DeliveryError,
    EventDroppedError,
    EventTooLargeError,
    InvalidEventError,
)

__all__ = [
    "Analytics",
    "CDPHandler",
    "CDPError",
    "CallbackError",
    "DEFAULT_HOST",
    "DeliveryError",
    "EU_HOST",
    "EventDroppedError",
    "EventTooLargeError",
    "InvalidEventError",
    "Stats",
    "__version__",
    "events",
    "close_all_clients",
    "flush_after",
    "flush_all_clients",
]
