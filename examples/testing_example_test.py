"""Testing your code's events: a user's own pytest module, with the fixtures cdp-logging brings.

Run it:     python -m pytest examples/testing_example_test.py
            (or python examples/testing_example_test.py, which runs pytest on itself)

``cdp_events`` captures every call made through any Analytics client or CDPHandler during the
test, as the messages that would be sent, and sends nothing. ``cdp_collector`` is a real HTTP
server on 127.0.0.1 speaking the CDP API, for tests of the whole way. No import is needed for
either: installing cdp-logging registers them with pytest.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

import cdp_logging
from cdp_logging import events
from cdp_logging.testing import capture_events

# -- the code under test (in a real project, imported from the application) --------------------

log = logging.getLogger("shop")


def signup(user_id: str, email: str, plan: str = "free") -> None:
    log.info("signed up", extra=events.identify(user_id=user_id,
                                                traits={"email": email, "plan": plan}))
    log.info("signed up", extra={"event": "Signed Up", "user_id": user_id, "plan": plan})


# -- the tests ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def cdp_handler() -> Iterator[None]:
    """What the application's logging configuration does; enable=False: never sends."""
    handler = cdp_logging.CDPHandler(enable=False)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield
    log.removeHandler(handler)
    handler.close()


def test_signup_identifies_then_tracks(cdp_events):
    signup("42", "ada@example.com")

    cdp_events.assert_identified("42", traits={"email": "ada@example.com"})
    assert cdp_events.tracks("Signed Up")[0]["userId"] == "42"
    assert [message["type"] for message in cdp_events.by_user("42")] == ["identify", "track"]


def test_plan_is_a_property_of_the_track(cdp_events):
    signup("7", "grace@example.com", plan="pro")

    signed_up = cdp_events.one("track", event="Signed Up")
    assert signed_up["properties"] == {"plan": "pro"}
    cdp_events.assert_not_sent("track", event="Payment Failed")


def test_capture_around_part_of_a_test():
    signup("1", "before@example.com")            # not captured: before the block
    with capture_events() as captured:
        signup("2", "during@example.com")
    assert [message["userId"] for message in captured] == ["2", "2"]


def test_delivery_over_http(cdp_collector):
    # CDP_HOST and CDP_WRITE_KEY point at the collector during the test.
    with cdp_logging.Analytics() as analytics:
        analytics.track(user_id="42", event="Order Completed", properties={"total": 9.5})
    [order] = cdp_collector.wait_for(1)
    assert order["properties"] == {"total": 9.5}


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
