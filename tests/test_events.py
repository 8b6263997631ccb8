"""events: the helpers that build a log call's ``extra``, checked as the client checks calls."""

from __future__ import annotations

import logging
from typing import Any
from collections.abc import Callable

import pytest

from cdp_logging import EventTooLargeError, InvalidEventError, events
from cdp_logging.mapping import calls_from_record
from cdp_logging.messages import build_message

HELPERS: dict[str, Callable[..., dict[str, dict[str, Any]]]] = {
    "identify": events.identify, "track": events.track, "page": events.page,
    "screen": events.screen, "group": events.group, "alias": events.alias,
}

#: The smallest valid fields of each call.
MINIMAL: dict[str, dict[str, Any]] = {
    "identify": {"user_id": "42"},
    "track": {"user_id": "42", "event": "Signed Up"},
    "page": {"anonymous_id": "a-1"},
    "screen": {"user_id": "42"},
    "group": {"group_id": "acme"},
    "alias": {"previous_id": "anon", "user_id": "42"},
}


def test_there_is_one_helper_per_call_and_the_strict_switch_public() -> None:
    assert sorted(events.__all__) == sorted([*HELPERS, "is_strict", "strict"])


@pytest.mark.parametrize("call", list(HELPERS))
def test_a_helper_returns_the_call_key_holding_the_given_fields(call: str) -> None:
    assert HELPERS[call](**MINIMAL[call]) == {call: MINIMAL[call]}


def test_fields_left_out_are_not_sent_as_none() -> None:
    assert events.track(user_id="1", event="E", properties=None, context=None) == {
        "track": {"user_id": "1", "event": "E"}}


def test_the_timestamp_is_left_to_the_log_call_unless_given() -> None:
    assert "timestamp" not in events.identify(user_id="1")["identify"]
    assert events.identify(user_id="1", timestamp=1_700_000_000.0)["identify"]["timestamp"] == 1_700_000_000.0


def test_a_misspelt_field_fails_at_the_call_site() -> None:
    with pytest.raises(TypeError, match="user_idd"):
        events.track(user_idd="1", event="E")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        events.identify("42")  # type: ignore[misc]  # keyword arguments only, as in the client


@pytest.mark.parametrize("helper, fields, field", [
    (events.track, {"user_id": "1"}, "event"),
    (events.track, {"event": "E"}, "user_id"),
    (events.identify, {"traits": {"plan": "pro"}}, "user_id"),
    (events.page, {"name": "Home"}, "user_id"),
    (events.screen, {"name": "Checkout"}, "user_id"),
    (events.group, {"user_id": "1"}, "group_id"),
    (events.alias, {"user_id": "1"}, "previous_id"),
    (events.alias, {"previous_id": "anon"}, "user_id"),
], ids=lambda value: getattr(value, "__name__", None))
def test_a_missing_required_field_is_refused_naming_it(helper: Callable[..., Any], fields: dict[str, Any],
                                                      field: str) -> None:
    with pytest.raises(InvalidEventError) as refused:
        helper(**fields)
    assert refused.value.field == field


@pytest.mark.parametrize("helper, fields, field", [
    (events.identify, {"user_id": ["42"]}, "user_id"),
    (events.identify, {"user_id": "1", "traits": ["plan"]}, "traits"),
    (events.track, {"user_id": "1", "event": ""}, "event"),
    (events.track, {"user_id": "1", "event": "E", "properties": "qty=1"}, "properties"),
    (events.page, {"user_id": "1", "name": 404}, "name"),
    (events.group, {"group_id": [1.5]}, "group_id"),
    (events.track, {"user_id": "1", "event": "E", "timestamp": "yesterday"}, "timestamp"),
    (events.track, {"user_id": "1", "event": "E", "context": "web"}, "context"),
], ids=lambda value: getattr(value, "__name__", None))
def test_a_field_of_the_wrong_type_is_refused_naming_it(helper: Callable[..., Any], fields: dict[str, Any],
                                                       field: str) -> None:
    with pytest.raises(InvalidEventError) as refused:
        helper(**fields)
    assert refused.value.field == field


def test_an_event_over_32_kb_is_refused_as_the_client_refuses_it() -> None:
    with pytest.raises(EventTooLargeError) as refused:
        events.track(user_id="1", event="Big", properties={"blob": "x" * 40_000})
    assert refused.value.limit == 32 * 1024


def test_properties_that_cannot_be_encoded_are_refused() -> None:
    nested: list[Any] = []
    for _ in range(20_000):
        nested = [nested]
    with pytest.raises(InvalidEventError, match="cannot encode as JSON"):
        events.track(user_id="1", event="Deep", properties={"v": nested})


@pytest.mark.parametrize("call", list(HELPERS))
def test_what_a_helper_builds_maps_to_the_message_the_client_would_send(call: str) -> None:
    extra = HELPERS[call](**MINIMAL[call], message_id="m-1", context={"ip": "1.2.3.4"})
    record = logging.makeLogRecord({"msg": "m", "created": 1_700_000_000.5, **extra})

    [(mapped_call, fields)] = calls_from_record(record)

    assert mapped_call == call
    assert build_message(call, **fields) == build_message(
        call, **MINIMAL[call], message_id="m-1", context={"ip": "1.2.3.4"}, timestamp=1_700_000_000.5)


def test_helpers_combine_with_other_extra_keys() -> None:
    extra = {**events.track(user_id="1", event="E"), "request_id": "r-1"}
    record = logging.makeLogRecord({"msg": "m", **extra})
    [(call, fields)] = calls_from_record(record)
    assert (call, fields["event"]) == ("track", "E")
