"""Values beside a call key (structlog's bound values, loguru's, a standard library record's
extra) fill the fields the call leaves unset; the call's own always win."""

from __future__ import annotations

import logging

import cdp_logging
from cdp_logging.nested import calls_from_values, nested_values
from cdp_logging.testing import capture_events


def test_values_beside_the_call_key_fill_what_it_leaves_unset() -> None:
    values = {"user_id": "42", "anonymous_id": "a-1", "context": {"ip": "1.2.3.4", "page": {"path": "/"}},
              "track": {"event": "A", "anonymous_id": "own", "context": {"page": {"url": "u"}}}}
    assert calls_from_values(values, 5.0) == [("track", {
        "event": "A", "anonymous_id": "own", "user_id": "42", "timestamp": 5.0,
        "context": {"ip": "1.2.3.4", "page": {"path": "/", "url": "u"}}})]
    assert values["track"] == {"event": "A", "anonymous_id": "own", "context": {"page": {"url": "u"}}}


def test_several_calls_come_in_the_order_of_the_calls_and_none_asks_for_nothing() -> None:
    values = {"track": {"event": "A"}, "identify": {"traits": {}}, "page": None, "user_id": "42"}
    assert [call for call, _ in calls_from_values(values, None)] == ["identify", "track"]


def test_a_standard_library_record_uses_them_too_and_ignores_a_context_that_is_not_a_dict() -> None:
    analytics = cdp_logging.Analytics(write_key="k", host="http://127.0.0.1:9")
    log = logging.getLogger("nested.stdlib")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = cdp_logging.CDPHandler(client=analytics)
    log.addHandler(handler)
    try:
        with capture_events() as captured:
            log.info("a", extra={"track": {"event": "A"}, "user_id": "42"})
            log.info("b", extra={"track": {"event": "B", "user_id": "7"}, "context": "billing"})
    finally:
        log.removeHandler(handler)
    first, second = captured.messages
    assert (first["userId"], second["userId"]) == ("42", "7")
    assert second["context"] == {"library": first["context"]["library"]}


def test_only_a_dict_with_a_call_key_is_a_records_nested_values() -> None:
    assert nested_values(logging.makeLogRecord({"msg": {"event": "x"}})) is None
    assert nested_values(logging.makeLogRecord({"msg": {"track": {}}, "_logger": None})) == {"track": {}}
    assert nested_values(logging.makeLogRecord({"extra": "not a dict"})) is None
