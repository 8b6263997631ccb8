"""cdp_logging.messages: from a call's fields to the CDP message, validated and encoded."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import re
import uuid
from typing import Any

import numpy
import pytest

import cdp_logging
from cdp_logging import CDPHandler, EventTooLargeError, InvalidEventError
from cdp_logging.constants import MAX_MESSAGE_BYTES
from cdp_logging.messages import SHOWN_CHARS, build_message, encode_message
from cdp_logging.fast import fast_message
from cdp_logging.testing import capture_events

ISO_UTC_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LIBRARY = {"name": "cdp-logging", "version": cdp_logging.__version__}

#: The least each call needs.
MINIMAL: dict[str, dict[str, Any]] = {
    "identify": {"user_id": "u1"},
    "track": {"user_id": "u1", "event": "Signed Up"},
    "page": {"user_id": "u1"},
    "screen": {"user_id": "u1"},
    "group": {"user_id": "u1", "group_id": "g1"},
    "alias": {"user_id": "u1", "previous_id": "anon-1"},
}

#: Each call with every field it takes, the way a caller writes it.
FULL: dict[str, dict[str, Any]] = {
    "identify": {"user_id": "u1", "anonymous_id": "a1", "traits": {"email": "ann@example.com"}},
    "track": {"anonymous_id": "a1", "event": "Added to Cart", "properties": {"qty": 2}},
    "page": {"user_id": "u1", "name": "Pricing", "category": "Docs", "properties": {"url": "https://x.test/p"}},
    "screen": {"anonymous_id": "a1", "name": "Checkout", "category": "Shop", "properties": {"step": 2}},
    "group": {"user_id": "u1", "group_id": "acme", "object_type_id": 2, "traits": {"name": "Acme"}},
    "alias": {"user_id": "u1", "previous_id": "anon-1"},
}
COMMON = {
    "context": {"ip": "203.0.113.9", "locale": "en-US"},
    "integrations": {"All": True, "Salesforce": False},
    "timestamp": dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=dt.timezone.utc),
    "message_id": "8f6c0f5e-2d1c-4a7e-9b1a-0c3d5e7f9a1b",
}


def no_nulls(value: Any, path: str = "message") -> list[str]:
    """The paths in ``value`` that hold None."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in no_nulls(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in no_nulls(item, f"{path}[{index}]")]
    return []


def sent(message: dict[str, Any]) -> dict[str, Any]:
    """The message as the API will read it (encoded, then parsed)."""
    return json.loads(encode_message(message))


# -- the fields of a message ----------------------------------------------------------------


@pytest.mark.parametrize("call", list(MINIMAL))
def test_each_call_builds_a_message_of_its_type(call: str) -> None:
    assert build_message(call, **MINIMAL[call])["type"] == call


@pytest.mark.parametrize("call", list(MINIMAL))
def test_message_id_is_a_random_uuid_unless_given(call: str) -> None:
    first = build_message(call, **MINIMAL[call])["messageId"]
    second = build_message(call, **MINIMAL[call])["messageId"]
    assert uuid.UUID(first).version == 4
    assert first != second
    assert build_message(call, **MINIMAL[call], message_id="my-id-1")["messageId"] == "my-id-1"


def test_timestamp_defaults_to_now_in_iso_utc_with_milliseconds() -> None:
    before = dt.datetime.now(dt.timezone.utc)
    stamp = build_message("track", user_id="u1", event="E")["timestamp"]
    after = dt.datetime.now(dt.timezone.utc)
    assert ISO_UTC_MILLIS.match(stamp), stamp
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before - dt.timedelta(milliseconds=1) <= when <= after


def test_aware_datetime_timestamp_is_converted_to_utc() -> None:
    cest = dt.timezone(dt.timedelta(hours=2))
    given = dt.datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=cest)
    assert build_message("track", user_id="u1", event="E", timestamp=given)["timestamp"] == "2024-05-01T12:30:15.123Z"


def test_naive_datetime_timestamp_is_local_time(local_time_is_not_utc: None) -> None:
    # Local time is nine hours ahead of UTC here; Python's datetime.timestamp() reads naive
    # datetimes as local time, and so does the client (datetime.now() is the commonest).
    given = dt.datetime(2024, 5, 1, 14, 30, 15, 999999)
    assert build_message("identify", user_id="u1", timestamp=given)["timestamp"] == "2024-05-01T05:30:15.999Z"
    assert given.timestamp() == dt.datetime(2024, 5, 1, 5, 30, 15, 999999, tzinfo=dt.timezone.utc).timestamp()
    naive_text = "2024-05-01T14:30:15.500"
    assert build_message("identify", user_id="u1", timestamp=naive_text)["timestamp"] == "2024-05-01T05:30:15.500Z"
    now = dt.datetime.now()
    stamp = build_message("identify", user_id="u1", timestamp=now)["timestamp"]
    assert abs(dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - now.timestamp()) < 0.001


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (dt.date(2024, 5, 1), "2024-05-01T00:00:00.000Z"),
        (1714564800.5, "2024-05-01T12:00:00.500Z"),
        ("2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00.000Z"),
        ("2024-05-01T12:00:00.125Z", "2024-05-01T12:00:00.125Z"),
    ],
)
def test_other_timestamp_forms_become_iso_utc_with_milliseconds(given: Any, expected: str) -> None:
    assert build_message("track", user_id="u1", event="E", timestamp=given)["timestamp"] == expected


@pytest.mark.parametrize("call", list(MINIMAL))
def test_context_carries_the_library_name_and_version(call: str) -> None:
    assert sent(build_message(call, **MINIMAL[call]))["context"] == {"library": LIBRARY}


def test_caller_context_is_laid_over_the_library_without_changing_the_callers_dict() -> None:
    context = {"ip": "203.0.113.9", "page": {"path": "/pricing"}}
    original = json.loads(json.dumps(context))
    message = sent(build_message("page", user_id="u1", context=context))
    assert message["context"] == {"library": LIBRARY, "ip": "203.0.113.9", "page": {"path": "/pricing"}}
    assert context == original


def test_caller_context_wins_over_the_library_entry() -> None:
    mine = {"name": "my-wrapper", "version": "9"}
    assert sent(build_message("track", user_id="u1", event="E", context={"library": mine}))["context"] == {"library": mine}


def test_integrations_are_sent_as_given() -> None:
    integrations = {"All": False, "Customer.io": True}
    assert sent(build_message("track", user_id="u1", event="E", integrations=integrations))["integrations"] == integrations


@pytest.mark.parametrize("call", list(FULL))
def test_snake_case_fields_become_the_apis_camel_case_fields(call: str) -> None:
    message = sent(build_message(call, **FULL[call], **COMMON))
    camel = {
        "user_id": "userId", "anonymous_id": "anonymousId", "group_id": "groupId",
        "object_type_id": "objectTypeId", "previous_id": "previousId",
    }
    for field, value in FULL[call].items():
        expected = str(value) if field in camel else value
        assert message[camel.get(field, field)] == expected, field
    assert message["messageId"] == COMMON["message_id"]
    assert message["timestamp"] == "2024-05-01T12:00:00.250Z"
    assert message["integrations"] == COMMON["integrations"]
    assert message["context"] == {"library": LIBRARY, **COMMON["context"]}


def test_group_sends_object_type_id_as_a_top_level_string() -> None:
    message = build_message("group", user_id="u1", group_id="acme", object_type_id=3)
    assert message["objectTypeId"] == "3"


def test_group_accepts_object_type_id_in_traits_and_sends_it_as_a_string() -> None:
    traits = {"name": "Acme", "object_type_id": 2}
    message = sent(build_message("group", user_id="u1", group_id="acme", traits=traits))
    assert message["traits"] == {"name": "Acme", "object_type_id": "2"}
    assert traits == {"name": "Acme", "object_type_id": 2}, "the caller's traits must not change"


@pytest.mark.parametrize("call", list(MINIMAL))
def test_absent_fields_are_left_out_never_sent_as_null(call: str) -> None:
    message = sent(build_message(call, **MINIMAL[call]))
    assert no_nulls(message) == []
    camel = {"user_id": "userId", "event": "event", "group_id": "groupId", "previous_id": "previousId"}
    expected = {"type", "messageId", "timestamp", "context"} | {camel[field] for field in MINIMAL[call]}
    assert set(message) == expected


@pytest.mark.parametrize("call", list(MINIMAL))
def test_explicit_none_fields_are_left_out(call: str) -> None:
    nones = {field: None for field in ("traits", "properties", "name", "category", "context", "integrations",
                                       "object_type_id", "anonymous_id")}
    message = sent(build_message(call, **MINIMAL[call], **nones))
    assert no_nulls(message) == []


# -- ids -------------------------------------------------------------------------------------


def test_numeric_ids_become_strings_and_zero_is_a_valid_id() -> None:
    assert build_message("identify", user_id=0)["userId"] == "0"
    assert build_message("track", anonymous_id=0, event="E")["anonymousId"] == "0"
    assert build_message("group", user_id=42, group_id=0, object_type_id=0)["groupId"] == "0"
    assert build_message("group", user_id=42, group_id=0, object_type_id=0)["objectTypeId"] == "0"
    alias = build_message("alias", user_id=0, previous_id=0)
    assert (alias["userId"], alias["previousId"]) == ("0", "0")
    assert build_message("page", user_id=12345678901234567890)["userId"] == "12345678901234567890"


def test_uuid_ids_become_strings() -> None:
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert build_message("identify", user_id=value)["userId"] == str(value)


# -- validation ------------------------------------------------------------------------------

INVALID = [
    ("identify", {}, "user_id"),
    ("identify", {"user_id": ""}, "user_id"),
    ("page", {"name": "Home"}, "user_id"),
    ("screen", {"name": "Home"}, "user_id"),
    ("track", {"user_id": "u1"}, "event"),
    ("track", {"user_id": "u1", "event": ""}, "event"),
    ("track", {"user_id": "u1", "event": 7}, "event"),
    ("track", {"event": "Signed Up"}, "user_id"),
    ("group", {"user_id": "u1"}, "group_id"),
    ("alias", {"user_id": "u1"}, "previous_id"),
    ("alias", {"previous_id": "anon-1"}, "user_id"),
    ("identify", {"user_id": float("nan")}, "user_id"),
    ("identify", {"user_id": float("inf")}, "user_id"),
    ("identify", {"user_id": True}, "user_id"),
    ("identify", {"anonymous_id": ["a"]}, "anonymous_id"),
    ("group", {"user_id": "u1", "group_id": {"id": 1}}, "group_id"),
    ("group", {"user_id": "u1", "group_id": "g1", "object_type_id": 1.5}, "object_type_id"),
    ("group", {"user_id": "u1", "group_id": "g1", "traits": {"object_type_id": [1]}}, "object_type_id"),
    ("identify", {"user_id": "u1", "traits": "vip"}, "traits"),
    ("track", {"user_id": "u1", "event": "E", "properties": [1, 2]}, "properties"),
    ("page", {"user_id": "u1", "name": 5}, "name"),
    ("page", {"user_id": "u1", "category": 5}, "category"),
    ("track", {"user_id": "u1", "event": "E", "context": "web"}, "context"),
    ("track", {"user_id": "u1", "event": "E", "integrations": True}, "integrations"),
    ("track", {"user_id": "u1", "event": "E", "timestamp": "last tuesday"}, "timestamp"),
    ("track", {"user_id": "u1", "event": "E", "message_id": ""}, "message_id"),
]


@pytest.mark.parametrize(("call", "fields", "field"), INVALID)
def test_wrong_input_raises_invalid_event_error_naming_the_call_and_field(
    call: str, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidEventError) as caught:
        build_message(call, **fields)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.call, error.field) == (call, field)
    assert call in str(error) and field in str(error)


def test_identify_page_and_screen_accept_an_anonymous_id_alone() -> None:
    for call in ("identify", "page", "screen"):
        assert build_message(call, anonymous_id="a1")["anonymousId"] == "a1"
    assert build_message("track", anonymous_id="a1", event="E")["anonymousId"] == "a1"


# -- the 32 KB limit -------------------------------------------------------------------------


def message_of_size(size: int) -> dict[str, Any]:
    """A track message whose encoding is exactly ``size`` bytes."""
    base = build_message(
        "track", user_id="u1", event="Big", properties={"blob": ""},
        message_id="size-probe", timestamp="2024-05-01T12:00:00.000Z",
    )
    padding = size - len(encode_message(base, limit=10**9))
    base["properties"] = {"blob": "x" * padding}
    return base


def test_message_of_exactly_32_kb_is_accepted() -> None:
    assert len(encode_message(message_of_size(MAX_MESSAGE_BYTES))) == MAX_MESSAGE_BYTES == 32 * 1024


def test_message_over_32_kb_raises_event_too_large_naming_its_message_id_and_size() -> None:
    with pytest.raises(EventTooLargeError) as caught:
        encode_message(message_of_size(MAX_MESSAGE_BYTES + 1))
    error = caught.value
    assert isinstance(error, InvalidEventError) and isinstance(error, ValueError)
    assert (error.message_id, error.size, error.limit) == ("size-probe", MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES)
    assert "size-probe" in str(error) and str(MAX_MESSAGE_BYTES + 1) in str(error)


# -- the API's own description ---------------------------------------------------------------

VARIANTS = [(call, MINIMAL[call]) for call in MINIMAL] + [(call, FULL[call]) for call in FULL] + [
    ("identify", {"anonymous_id": "a1", "traits": {"createdAt": dt.datetime(2024, 1, 1)}}),
    ("track", {"user_id": 7, "event": "E", "properties": {"when": dt.date(2024, 1, 1)}}),
    ("page", {"anonymous_id": "a1", "name": "Home"}),
    ("screen", {"user_id": "u1", "name": "Home", "context": {"app": {"name": "Shop", "version": "1.2"}}}),
    ("group", {"anonymous_id": "a1", "group_id": 5, "traits": {"object_type_id": 2}}),
]


@pytest.mark.parametrize(("call", "fields"), VARIANTS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(VARIANTS)])
def test_each_call_validates_against_the_openapi_description(openapi: Any, call: str, fields: dict[str, Any]) -> None:
    message = sent(build_message(call, **{**COMMON, **fields}))
    openapi.validate_message(message)
    openapi.validate_body({"batch": [message], "sentAt": "2024-05-01T12:00:01.000Z"})
    assert ISO_UTC_MILLIS.match(message["timestamp"])


# -- the fast path ---------------------------------------------------------------------------

#: Fields fast_message builds itself: the shapes a logging payload nearly always has.
COMMON_SHAPES = [
    ("track", {"user_id": "u1", "event": "Added", "properties": {"sku": "A-1", "qty": 2}}),
    ("track", {"anonymous_id": "a1", "event": "Added"}),
    ("track", {"user_id": "u1", "anonymous_id": "a1", "event": "Added", "properties": {}}),
    ("identify", {"user_id": "u1", "traits": {"email": "ann@example.com"}}),
    ("identify", {"anonymous_id": "a1"}),
    ("page", {"user_id": "u1", "name": "Pricing", "category": "Docs", "properties": {"url": "/p"}}),
    ("page", {"anonymous_id": "a1", "name": ""}),
    ("screen", {"user_id": "u1", "name": "Checkout"}),
    ("track", {"user_id": "u1", "event": "Added", "context": {"ip": "203.0.113.9", "page": {"path": "/"}}}),
]
#: Fields it leaves to build_message, which accepts some and refuses others.
OTHER_SHAPES = [
    ("track", {"user_id": 42, "event": "Added"}),
    ("track", {"user_id": "", "anonymous_id": "a1", "event": "Added"}),
    ("track", {"user_id": "u1", "anonymous_id": "", "event": "Added"}),
    ("track", {"user_id": "u1", "event": "Added", "properties": [1, 2]}),
    ("track", {"user_id": "u1", "event": ""}),
    ("track", {"user_id": "u1"}),
    ("track", {"event": "Added"}),
    ("track", {"user_id": None, "anonymous_id": None, "event": "Added"}),
    ("track", {"user_id": "u1", "event": "Added", "timestamp": "2024-05-01T00:00:00Z"}),
    ("track", {"user_id": "u1", "event": "Added", "message_id": "m-1"}),
    ("identify", {"user_id": "u1", "traits": "vip"}),
    ("page", {"user_id": "u1", "name": 5}),
    ("group", {"user_id": "u1", "group_id": "g1"}),
    ("alias", {"user_id": "u1", "previous_id": "a1"}),
]


def without_id(message: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key != "messageId"}


@pytest.mark.parametrize(("call", "fields"), COMMON_SHAPES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(COMMON_SHAPES)])
def test_the_fast_path_builds_the_same_message_and_bytes_as_build_message(call: str, fields: dict[str, Any]) -> None:
    at = 1714564800.25
    fast = fast_message(call, fields, at)
    assert fast is not None
    built = build_message(call, **fields, timestamp=at)
    assert without_id(fast) == without_id(built)
    assert list(fast) == list(built)  # the same key order: the same bytes on the wire
    same_id = {**built, "messageId": fast["messageId"]}
    assert encode_message(fast) == encode_message(same_id)
    assert uuid.UUID(fast["messageId"]).version == 4


@pytest.mark.parametrize(("call", "fields"), OTHER_SHAPES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(OTHER_SHAPES)])
def test_the_fast_path_leaves_every_other_shape_to_build_message(call: str, fields: dict[str, Any]) -> None:
    assert fast_message(call, fields, 1714564800.25) is None


def test_the_fast_path_needs_the_timestamp_as_epoch_seconds() -> None:
    assert fast_message("track", {"user_id": "u1", "event": "E"}, 1714564800) is None  # type: ignore[arg-type]


# -- values from code written for the official client: any number as an id, odd timestamps,
# -- values whose repr() or str() raises, huge values


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
    assert text.split(" got ", 1)[1].split("...")[1].startswith(" (1000000")  # how long it was
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
