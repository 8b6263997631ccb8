"""cdp_logging.testing and its pytest plugin, as a user's test suite meets them.

Delivery is checked against a LocalCollector over real HTTP on 127.0.0.1; the plugin through
pytester, in process and in a subprocess that loads it from the installed entry point.
"""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import cdp_logging
from cdp_logging import calls as calls_module
from cdp_logging.testing import collector as collector_module
from cdp_logging import testing
from cdp_logging.testing import CapturedEvents, LocalCollector, capture_events

pytest_plugins = ["pytester"]

WRITE_KEY = "test-write-key"


@pytest.fixture
def analytics() -> Iterator[cdp_logging.Analytics]:
    """A client that would send to a host that does not exist: it must never need to."""
    client = cdp_logging.Analytics(WRITE_KEY, host="http://127.0.0.1:9", flush_interval=60.0)
    yield client
    client.close_and_flush(timeout=0)


@pytest.fixture
def collector() -> Iterator[LocalCollector]:
    with LocalCollector(write_key=WRITE_KEY) as collector:
        yield collector


@pytest.fixture
def shop_log() -> Iterator[logging.Logger]:
    """The logger "shop", with a CDPHandler of a disabled client (it can only be captured)."""
    log = logging.getLogger("test_testing.shop")
    handler = cdp_logging.CDPHandler(enable=False)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log
    log.removeHandler(handler)
    handler.close()


@pytest.fixture(autouse=True)
def no_capture_left_behind() -> Iterator[None]:
    yield
    assert calls_module.capture_sinks == [], "a capture was left running"


def every_call(analytics: cdp_logging.Analytics) -> None:
    analytics.identify(user_id=42, traits={"plan": "pro"})
    analytics.track(user_id=42, event="Signed Up", properties={"plan": "pro"})
    analytics.page(user_id=42, name="Pricing", category="Docs")
    analytics.screen(anonymous_id="anon-1", name="Checkout")
    analytics.group(user_id=42, group_id="acme", object_type_id=2, traits={"name": "Acme"})
    analytics.alias(previous_id="anon-1", user_id=42)


# -- capturing --------------------------------------------------------------------------------


def test_calls_are_captured_as_the_messages_that_would_be_sent(analytics):
    with capture_events() as events:
        every_call(analytics)

    assert [message["type"] for message in events] == [
        "identify", "track", "page", "screen", "group", "alias",
    ]
    identify = events[0]
    assert identify["userId"] == "42" and identify["traits"] == {"plan": "pro"}
    assert identify["context"]["library"]["name"] == "cdp-logging"
    assert identify["timestamp"].endswith("Z") and len(identify["messageId"]) == 36
    assert events.groups()[0]["objectTypeId"] == "2"
    assert events.aliases()[0]["previousId"] == "anon-1"


def test_nothing_is_sent_while_capturing_and_sending_resumes_after(collector):
    with cdp_logging.Analytics(WRITE_KEY, host=collector.url) as analytics:
        with capture_events() as events:
            analytics.track(user_id="42", event="Captured")
            assert analytics.flush(timeout=5.0)
        analytics.track(user_id="42", event="Sent")
        analytics.flush(timeout=5.0)

    assert [message["event"] for message in collector.wait_for(1)] == ["Sent"]
    assert len(collector.requests) == 1
    assert [message["event"] for message in events] == ["Captured"]
    assert analytics.stats()["queued"] == 1


def test_calls_queued_before_the_capture_are_delivered_as_usual(collector):
    analytics = cdp_logging.Analytics(WRITE_KEY, host=collector.url, flush_interval=60.0)
    analytics.track(user_id="42", event="First")
    analytics.track(user_id="42", event="Queued")
    with capture_events() as events:
        analytics.close_and_flush(timeout=5.0)
    assert [message["event"] for message in collector.wait_for(2)] == ["First", "Queued"]
    assert len(events) == 0


def test_log_records_with_a_payload_are_captured(shop_log):
    with capture_events() as events:
        shop_log.info("joined", extra=cdp_logging.events.identify(user_id="7", traits={"a": 1}))
        shop_log.info("paid", extra={"event": "Order Paid", "user_id": 7, "total": 9.5})
        shop_log.info("no payload: not a call")
        shop_log.debug("below the level", extra={"event": "Never", "user_id": 7})

    assert events.format().splitlines() == [
        "identify  user=7  a=1",
        'track  "Order Paid"  user=7  total=9.5',
    ]


def test_invalid_calls_raise_and_are_not_captured(analytics):
    with capture_events() as events, pytest.raises(cdp_logging.InvalidEventError):
        analytics.track(user_id="42")
    assert events.messages == []


def test_a_message_is_a_snapshot_of_the_payload_at_the_call(analytics):
    properties: dict[str, Any] = {"items": ["shoes"]}
    with capture_events() as events:
        analytics.track(user_id="42", event="Cart", properties=properties,
                        timestamp=dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc))
    properties["items"].append("hat")
    assert events.one("track")["properties"] == {"items": ["shoes"]}
    assert events.one("track")["timestamp"] == "2024-05-01T12:00:00.000Z"


def test_a_callback_is_called_at_once_as_delivered(analytics):
    calls: list[tuple[Any, list[dict[str, Any]]]] = []
    with capture_events():
        message_id = analytics.track(user_id="42", event="Cb",
                                     callback=lambda error, batch: calls.append((error, batch)))
    [(error, [message])] = calls
    assert error is None and message["messageId"] == message_id


def test_a_callback_that_raises_is_reported_not_raised():
    reported: list[cdp_logging.CDPError] = []
    analytics = cdp_logging.Analytics(enable=False, error_handler=reported.append)

    def broken(error: Any, batch: Any) -> None:
        raise RuntimeError("boom")

    with capture_events() as events:
        analytics.track(user_id="42", event="Cb", callback=broken)
    assert len(events) == 1
    [error] = reported
    assert isinstance(error, cdp_logging.CallbackError) and "boom" in str(error)


def test_captures_nest_each_seeing_the_calls_made_while_it_is_open(analytics):
    with capture_events() as outer:
        analytics.track(user_id="1", event="Outer only")
        with capture_events() as inner:
            analytics.track(user_id="1", event="Both")
        analytics.track(user_id="1", event="Outer again")
    assert [m["event"] for m in outer] == ["Outer only", "Both", "Outer again"]
    assert [m["event"] for m in inner] == ["Both"]


def test_the_capture_ends_when_its_block_raises(analytics):
    with pytest.raises(ZeroDivisionError), capture_events():
        1 / 0
    assert calls_module.capture_sinks == []


def test_start_and_stop(analytics):
    events = CapturedEvents()
    assert not events.capturing
    events.start()
    with pytest.raises(RuntimeError, match="already running"):
        events.start()
    analytics.track(user_id="1", event="x")
    events.stop()
    events.stop()
    assert not events.capturing and len(events) == 1
    assert repr(events) == "<CapturedEvents 1 messages, stopped>"


def test_calls_from_many_threads_are_all_captured_in_each_threads_order(analytics):
    threads_count, per_thread = 4, 200
    churning = threading.Event()

    def send(thread: int) -> None:
        for number in range(per_thread):
            analytics.track(user_id=str(thread), event="e", properties={"n": number})

    def churn() -> None:
        # Captures opening and closing meanwhile must not cost the long-lived one anything.
        while not churning.is_set():
            with capture_events():
                pass

    with capture_events() as events:
        churner = threading.Thread(target=churn)
        churner.start()
        senders = [threading.Thread(target=send, args=(t,)) for t in range(threads_count)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        churning.set()
        churner.join()

    assert len(events) == threads_count * per_thread
    for thread in range(threads_count):
        numbers = [m["properties"]["n"] for m in events.by_user(str(thread))]
        assert numbers == list(range(per_thread))


def test_wait_for_calls_made_on_another_thread(analytics):
    with capture_events() as events:
        threading.Thread(target=every_call, args=(analytics,)).start()
        assert len(events.wait_for(6, timeout=10.0)) == 6
        with pytest.raises(AssertionError, match=r"expected at least 7 messages within 0.05 s"):
            events.wait_for(7, timeout=0.05)


# -- reading ------------------------------------------------------------------------------------


@pytest.fixture
def captured(analytics) -> CapturedEvents:
    with capture_events() as events:
        every_call(analytics)
        analytics.track(user_id=43, event="Signed Up", properties={"plan": "free", "n": {"a": 1}},
                        integrations={"All": False})
    return events


def test_filters_by_call_event_user_and_any_field(captured):
    assert len(captured.tracks()) == 2
    assert [m["userId"] for m in captured.tracks("Signed Up")] == ["42", "43"]
    assert captured.tracks("Signed Up", user_id=43) == captured.tracks(userId="43")
    assert captured.tracks(properties={"n": {"a": 1}})[0]["userId"] == "43"
    assert captured.tracks(properties={"n": {"a": 2}}) == []
    assert captured.filter(integrations={"All": False}) == captured.tracks(user_id="43")
    assert [m["type"] for m in captured.by_user(42)] == [
        "identify", "track", "page", "group", "alias",
    ]
    assert captured.identifies("42")[0]["traits"] == {"plan": "pro"}
    assert captured.pages("Pricing", category="Docs")
    assert captured.screens("Checkout", anonymous_id="anon-1")
    assert captured.groups("acme", object_type_id=2)
    assert captured.aliases(previous_id="anon-1")
    assert captured.filter("page", user_id="nobody") == []


def test_a_sequence_of_messages(captured):
    assert bool(captured) and len(captured) == 7
    assert captured[-1]["event"] == "Signed Up"
    assert list(captured) == captured.messages
    captured.clear()
    assert not captured and captured.messages == []


def test_one_returns_the_single_match(captured):
    assert captured.one("screen")["name"] == "Checkout"
    assert captured.one("track", event="Signed Up", user_id=42)["properties"] == {"plan": "pro"}


def test_one_lists_every_captured_message_when_several_match(captured):
    with pytest.raises(AssertionError) as failure:
        captured.one("track")
    lines = str(failure.value).splitlines()
    assert lines[0] == "expected exactly one track, found 2"
    assert lines[1] == "captured 7 messages:"
    assert lines[2] == "  identify  user=42  plan=pro"
    assert lines[3] == '> track  "Signed Up"  user=42  plan=pro'
    assert lines[-1] == '> track  "Signed Up"  user=43  plan=free n={"a":1}'


def test_assertions_return_the_match(captured):
    assert captured.assert_tracked("Signed Up", user_id=43)["properties"]["plan"] == "free"
    assert captured.assert_identified(42, traits={"plan": "pro"})["type"] == "identify"
    assert captured.assert_sent("group", group_id="acme")["objectTypeId"] == "2"
    captured.assert_not_sent("track", event="Payment Failed")


def test_a_failed_assertion_lists_what_was_captured_and_why_the_closest_differ(captured):
    with pytest.raises(AssertionError) as failure:
        captured.assert_tracked("Signed Up", user_id="44", properties={"plan": "pro"})
    text = str(failure.value)
    assert text.startswith(
        "expected track 'Signed Up' with userId='44', properties={'plan': 'pro'}, found none\n"
        "captured 7 messages:\n  identify  user=42  plan=pro\n"
    )
    assert text.endswith(
        "closest:\n"
        '  track  "Signed Up"  user=42  plan=pro: userId is \'42\', not \'44\'\n'
        '  track  "Signed Up"  user=43  plan=free n={"a":1}: userId is \'43\', not \'44\'; '
        "properties.plan is 'free', not 'pro'"
    )


def test_assert_not_sent_marks_the_calls_it_did_not_expect(captured):
    with pytest.raises(AssertionError, match=r"expected no alias, found 1\n") as failure:
        captured.assert_not_sent("alias")
    assert "> alias  user=42  previous=anon-1" in str(failure.value)


def test_a_failure_with_nothing_captured_says_what_could_explain_it():
    with capture_events() as events:
        pass
    with pytest.raises(AssertionError) as failure:
        events.assert_tracked("Signed Up")
    text = str(failure.value)
    assert text.startswith("expected track 'Signed Up', found none\nno messages were captured.")
    assert "InvalidEventError" in text and "level" in text


def test_a_long_listing_is_cut_short(analytics):
    with capture_events() as events:
        for number in range(60):
            analytics.track(user_id="1", event=f"e{number}")
    with pytest.raises(AssertionError) as failure:
        events.one("identify")
    assert str(failure.value).splitlines()[-1] == "  ... and 10 more"


def test_the_collector_and_its_line_format_are_reexported():
    assert testing.LocalCollector is collector_module.LocalCollector
    assert testing.format_event_line is collector_module.format_event_line
    assert set(testing.__all__) >= {"capture_events", "CapturedEvents", "LocalCollector"}


# -- the pytest plugin ------------------------------------------------------------------------

USER_TESTS = """
import logging, os
import cdp_logging

def test_signup(cdp_events):
    cdp_logging.Analytics(enable=False).track(user_id=42, event="Signed Up")
    assert cdp_events.tracks("Signed Up")[0]["userId"] == "42"

def test_each_test_has_its_own_capture(cdp_events):
    assert cdp_events.messages == []

def test_no_capture_without_the_fixture():
    from cdp_logging.calls import capture_sinks
    assert capture_sinks == []
"""


def test_cdp_events_captures_for_the_length_of_a_test(pytester):
    pytester.makepyfile(USER_TESTS)
    pytester.runpytest().assert_outcomes(passed=3)


def test_a_failure_in_a_users_test_shows_the_captured_calls(pytester):
    pytester.makepyfile("""
        import cdp_logging

        def test_signup(cdp_events):
            analytics = cdp_logging.Analytics(enable=False)
            analytics.identify(user_id=42, traits={"plan": "pro"})
            analytics.track(user_id=41, event="Signed Up")
            cdp_events.assert_tracked("Signed Up", user_id=42)
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: expected track 'Signed Up' with userId='42', found none",
        "*captured 2 messages:",
        "*  identify  user=42  plan=pro",
        '*  track  "Signed Up"  user=41',
        "*closest:",
    ])


def test_cdp_collector_receives_over_http_and_the_environment_is_restored(pytester, monkeypatch):
    pytester.makepyfile("""
        import os
        import cdp_logging

        def test_delivery(cdp_collector):
            assert os.environ["CDP_HOST"] == cdp_collector.url
            analytics = cdp_logging.Analytics()
            analytics.track(user_id="42", event="Order Completed")
            assert analytics.flush(timeout=5.0)
            [order] = cdp_collector.wait_for(1)
            assert order["event"] == "Order Completed"

        def test_environment_restored():
            assert "CDP_HOST" not in os.environ and "CDP_WRITE_KEY" not in os.environ
    """)
    monkeypatch.delenv("CDP_HOST", raising=False)
    monkeypatch.delenv("CDP_WRITE_KEY", raising=False)
    pytester.runpytest().assert_outcomes(passed=2)


def test_cdp_collector_takes_the_tests_last_events_before_it_stops(pytester):
    pytester.makepyfile("""
        import cdp_logging

        collectors = []

        def test_send(cdp_collector):
            collectors.append(cdp_collector)
            analytics = cdp_logging.Analytics(flush_interval=60.0)
            analytics.track(user_id="42", event="First")
            analytics.track(user_id="42", event="Held back by batching")

        def test_both_arrived():
            events = [m["event"] for m in collectors[0].messages]
            assert events == ["First", "Held back by batching"]
    """)
    pytester.runpytest().assert_outcomes(passed=2)


def test_the_plugin_loads_from_the_installed_entry_point(pytester):
    pytester.makepyfile(USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_the_plugin_can_be_turned_off(pytester):
    pytester.makepyfile(USER_TESTS)
    result = pytester.runpytest("-p", "no:cdp_logging")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*fixture 'cdp_events' not found*"])


def test_the_plugin_adds_fixtures_and_no_hooks():
    from cdp_logging.testing import plugin as pytest_plugin

    assert [name for name in vars(pytest_plugin) if name.startswith("pytest_")] == []
    assert pytest_plugin.__all__ == ["cdp_collector", "cdp_events"]


def test_loading_the_plugin_imports_neither_the_engine_nor_the_collector():
    code = (
        "import sys, cdp_logging.testing.plugin\n"
        "heavy = {'requests', 'orjson', 'cdp_logging.client', 'cdp_logging.testing.collector',"
        " 'http.server'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
