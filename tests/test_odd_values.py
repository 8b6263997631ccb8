"""Values a user moving from the official client passes: ids of any number type, timestamps
out of range, values whose repr() or str() raises, and huge values. Each is sent as the
official client sends it, or refused with an InvalidEventError naming the field, counted,
with a message that does not grow with the value."""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import uuid
from typing import Any

import numpy
import pytest

import cdp_logging
from cdp_logging import CDPHandler, InvalidEventError
from cdp_logging.messages import SHOWN_CHARS, build_message
from cdp_logging.testing import capture_events

#: Longest error message any input may make: the fixed text plus SHOWN_CHARS of the value.
MESSAGE_LIMIT = 400


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken")


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("str is broken")

    def __repr__(self) -> str:
        raise RuntimeError("repr is broken too")


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (numpy.int64(42), "42"),
        (numpy.float64(1.5), "1.5"),
        (decimal.Decimal(42), "42"),
        (decimal.Decimal("42.50"), "42.50"),
        (42.0, "42.0"),
        (0, "0"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ],
)
@pytest.mark.parametrize("field", ["user_id", "anonymous_id"])
def test_any_number_is_an_id_sent_as_str_of_it(value: Any, sent: str, field: str) -> None:
    message = build_message("identify", **{field: value})
    assert message["userId" if field == "user_id" else "anonymousId"] == sent
    assert str(value) == sent  # what the official client's stringify_id sends


@pytest.mark.parametrize("value", [numpy.int64(7), 7, decimal.Decimal(7)])
def test_numeric_group_and_previous_ids_are_strings(value: Any) -> None:
    assert build_message("group", user_id="u", group_id=value)["groupId"] == "7"
    assert build_message("alias", user_id="u", previous_id=value)["previousId"] == "7"


@pytest.mark.parametrize(("value", "sent"), [(123, "123"), (numpy.int64(5), "5"), (uuid.UUID(int=2), str(uuid.UUID(int=2)))])
def test_a_numeric_message_id_is_sent_as_a_string(value: Any, sent: str) -> None:
    assert build_message("track", user_id="u", event="E", message_id=value)["messageId"] == sent


@pytest.mark.parametrize("field", ["user_id", "event", "timestamp", "message_id"])
def test_a_value_whose_repr_raises_is_an_invalid_event_error_naming_the_field(field: str) -> None:
    fields: dict[str, Any] = {"user_id": "u1", "event": "E", field: BadRepr()}
    with capture_events():
        analytics = cdp_logging.Analytics("key", enable=False)
        with pytest.raises(InvalidEventError) as caught:
            analytics.track(**fields)
    assert caught.value.field == field
    assert "BadRepr (its repr raised RuntimeError)" in str(caught.value)
    assert analytics.stats()["invalid"] == 1


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 1e20, -1e20, 10**400,
                                   numpy.float64("nan"), dt.datetime(1, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))])
def test_a_timestamp_out_of_range_is_an_invalid_event_error_naming_it(value: Any) -> None:
    analytics = cdp_logging.Analytics("key", enable=False)
    with pytest.raises(InvalidEventError) as caught:
        analytics.track(user_id="u1", event="E", timestamp=value)
    assert (caught.value.call, caught.value.field) == ("track", "timestamp")
    assert len(str(caught.value)) < MESSAGE_LIMIT
    assert analytics.stats()["invalid"] == 1


def test_the_last_and_first_representable_times_are_accepted() -> None:
    assert build_message("track", user_id="u", event="E", timestamp=253_402_300_799.0)["timestamp"] == "9999-12-31T23:59:59.000Z"
    assert build_message("track", user_id="u", event="E", timestamp=-62_135_596_800.0)["timestamp"] == "0001-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"user_id": 10**5000, "event": "E"}, "user_id"),
        ({"user_id": None, "event": "E"}, "user_id"),
        ({"user_id": "u1", "event": None}, "event"),
        ({"user_id": True, "event": "E"}, "user_id"),
        ({"user_id": float("nan"), "event": "E"}, "user_id"),
        ({"user_id": "u1", "event": "E", "message_id": 10**5000}, "message_id"),
        ({"user_id": "u1", "event": "E", "message_id": BadRepr()}, "message_id"),
        ({"user_id": "u1", "event": "E", "message_id": ""}, "message_id"),
    ],
)
def test_each_refused_value_is_an_invalid_event_error_naming_the_field_and_counted(
    fields: dict[str, Any], field: str
) -> None:
    analytics = cdp_logging.Analytics("key", enable=False)
    with pytest.raises(InvalidEventError) as caught:
        analytics.track(**fields)
    assert caught.value.field == field
    assert len(str(caught.value)) < MESSAGE_LIMIT
    assert analytics.stats()["invalid"] == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"user_id": b"\xff" * 10_000_000, "event": "E"}, "user_id"),
        ({"user_id": ["x" * 10_000_000], "event": "E"}, "user_id"),
        ({"user_id": "u1", "event": b"e" * 10_000_000}, "event"),
        ({"user_id": "u1", "event": "E", "timestamp": "x" * 10_000_000}, "timestamp"),
        ({"user_id": "u1", "event": "E", "message_id": ["m" * 10_000_000]}, "message_id"),
    ],
)
def test_no_error_message_grows_with_the_input(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        build_message("track", **fields)
    assert caught.value.field == field
    text = str(caught.value)
    assert len(text) < MESSAGE_LIMIT
    assert "10000000 long" in text or "(" in text  # says how long the value was
    assert len(text.split(" got ", 1)[1]) < SHOWN_CHARS + 100


def test_a_huge_bad_id_logged_through_the_handler_is_reported_briefly() -> None:
    reported: list[cdp_logging.CDPError] = []
    handler = CDPHandler(write_key="key", enable=False, error_handler=reported.append)
    logger = logging.getLogger("test_odd_values.huge")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("hi", extra={"track": {"user_id": b"\xff" * 10_000_000, "event": "E"}})
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert len(reported) == 1 and isinstance(reported[0], InvalidEventError)
    assert reported[0].field == "user_id"
    assert len(str(reported[0])) < MESSAGE_LIMIT + 200  # with the origin: logger, file and line
    assert handler.client.stats()["invalid"] == 1


def test_a_value_whose_str_raises_is_sent_substituted_reported_once_naming_the_field_and_counted() -> None:
    reported: list[cdp_logging.CDPError] = []
    with capture_events() as captured:
        analytics = cdp_logging.Analytics("key", error_handler=reported.append)
        analytics.track(user_id="u1", event="E", properties={"price": BadStr(), "items": [1, BadStr()]})
        analytics.track(user_id="u1", event="Fine", properties={"price": 1})
    assert [e["properties"] for e in captured.messages] == [
        {"price": "<unprintable BadStr>", "items": [1, "<unprintable BadStr>"]}, {"price": 1}]
    assert len(reported) == 1
    error = reported[0]
    assert isinstance(error, InvalidEventError)
    assert error.field == "properties.price, properties.items[1]"
    assert error.message_id == captured.messages[0]["messageId"]
    assert "str() raised for BadStr" in str(error)
    assert analytics.stats()["substituted"] == 1
    assert analytics.stats()["invalid"] == 0
    analytics.close()


def test_a_substitution_in_a_log_record_is_reported_with_the_field(api: Any) -> None:
    reported: list[cdp_logging.CDPError] = []
    handler = CDPHandler(write_key="key", host=api.url_for("").rstrip("/"), error_handler=reported.append)
    logger = logging.getLogger("test_odd_values.substituted")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("hi", extra={"identify": {"user_id": "u1", "traits": {"plan": BadStr()}}})
        assert handler.client.flush(timeout=15.0)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert [(type(e), getattr(e, "field", None)) for e in reported] == [(InvalidEventError, "traits.plan")]
    assert handler.client.stats()["substituted"] == 1
