"""The pytest plugin of cdp-logging: the ``cdp_events`` and ``cdp_collector`` fixtures.

Installed with the package (entry point ``pytest11``), so a project's tests can use the fixtures
without any import::

    def test_signup_is_tracked(cdp_events):
        signup(user_id="42")
        assert cdp_events.tracks("Signed Up")[0]["userId"] == "42"

Under pytest with this plugin no write key is needed: a client without one sends nothing and
does not warn, and the fixtures capture or collect what it would send. The helpers of
:mod:`cdp_logging.events` raise for a bad payload here, so a test fails where it was made.

It defines fixtures and nothing else: no hooks, options or markers, so a test run that uses
neither fixture is unchanged. The library is imported when a fixture is first used, not when
pytest starts. ``pytest -p no:cdp_logging`` turns the plugin off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from collections.abc import Iterator

import pytest

if TYPE_CHECKING:
    from .capture import CapturedEvents
    from .collector import LocalCollector

__all__ = ["cdp_collector", "cdp_events"]

#: How long the collector waits at the end of a test for the test's clients to deliver.
_TEARDOWN_FLUSH_TIMEOUT = 2.0


@pytest.fixture
def cdp_events() -> Iterator[CapturedEvents]:
    """Every call made through any ``Analytics`` or ``CDPHandler`` during the test, captured
    instead of sent (see :func:`cdp_logging.testing.capture_events`).

    Example::

        def test_order_is_tracked(cdp_events):
            place_order(user_id="42", total=9.5)
            cdp_events.assert_tracked("Order Completed", user_id="42", properties={"total": 9.5})
    """
    from .capture import capture_events

    with capture_events() as events:
        yield events


@pytest.fixture
def cdp_collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCollector]:
    """A :class:`~cdp_logging.testing.LocalCollector` serving on 127.0.0.1 for the test.

    While the test runs, ``CDP_HOST`` points at it and ``CDP_WRITE_KEY`` is set (to
    ``"test-write-key"`` unless the environment has one), so clients and handlers created
    during the test deliver to it over real HTTP. It accepts any write key. At the end of the
    test, the clients pointed at it deliver what they still hold before it stops.

    Example::

        def test_order_is_delivered(cdp_collector):
            analytics = cdp_logging.Analytics()           # CDP_HOST and CDP_WRITE_KEY are set
            analytics.track(user_id="42", event="Order Completed")
            analytics.flush()
            [order] = cdp_collector.wait_for(1)
            assert order["event"] == "Order Completed"
    """
    import os

    from ..registry import live_clients
    from ..constants import ENV_HOST, ENV_WRITE_KEY
    from .collector import LocalCollector

    with LocalCollector() as collector:
        monkeypatch.setenv(ENV_HOST, collector.url)
        if not os.environ.get(ENV_WRITE_KEY):
            monkeypatch.setenv(ENV_WRITE_KEY, "test-write-key")
        yield collector
        # Deliver what the test's clients still hold while the collector is there to take
        # it; left for exit, it would be retried against a closed port.
        for client in list(live_clients):
            if client.host == collector.url and not client.closed:
                client.flush(timeout=_TEARDOWN_FLUSH_TIMEOUT)
