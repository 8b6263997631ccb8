"""What users need in their own tests: capture the calls their code makes, and a local collector.

:func:`capture_events` catches every call made through any :class:`~cdp_logging.Analytics` or
:class:`~cdp_logging.CDPHandler` while it is open, as the message that would have been sent
(validated, normalised and encoded exactly as for delivery, then decoded back to a dict), and
sends nothing::

    from cdp_logging.testing import capture_events

    def test_signup_is_tracked():
        with capture_events() as events:
            signup(user_id="42", email="ada@example.com")      # the code under test
        events.assert_tracked("Signed Up", user_id="42", properties={"plan": "free"})

With pytest the ``cdp_events`` fixture does the same for the length of a test, and
``cdp_collector`` starts a :class:`LocalCollector` (a real HTTP server on 127.0.0.1) for tests
that want the whole way over the network; both come with the package (see
``cdp_logging.testing.plugin``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .capture import CallType, CapturedEvents, capture_events
    from .collector import LocalCollector, format_event_line

__all__ = [
    "CallType",
    "CapturedEvents",
    "LocalCollector",
    "capture_events",
    "format_event_line",
]

# Imported on first use: pytest imports the plugin (a module of this package) at every start of
# every project that has cdp-logging installed, and that start must not pay for the engine.
_MODULES = {
    "CallType": "capture",
    "CapturedEvents": "capture",
    "capture_events": "capture",
    "LocalCollector": "collector",
    "format_event_line": "collector",
}


__getattr__, __dir__ = lazy_names(__name__, _MODULES, __all__)
