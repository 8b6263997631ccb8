"""mapping: which log records carry a payload, and the calls and fields each one asks for."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cdp_logging import InvalidEventError
from cdp_logging.mapping import PAYLOAD_KEYS, calls_from_record, extra_fields, has_payload


class Keep(logging.Handler):
    """Keeps the last record a real logging call produced."""

    record: logging.LogRecord

    def emit(self, record: logging.LogRecord) -> None:
        self.record = record


@pytest.fixture
def log() -> Any:
    """Log through a real logger and return the record it made: ``log(msg, **kwargs)``."""
    logger = logging.getLogger("test_mapping.shop")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    keep = Keep()
    logger.addHandler(keep)

    def record_of(message: str, *args: Any, **kwargs: Any) -> logging.LogRecord:
        logger.info(message, *args, **kwargs)
        return keep.record

    yield record_of
    logger.removeHandler(keep)


def calls(record: logging.LogRecord) -> list[tuple[str, dict[str, Any]]]:
    return list(calls_from_record(record))


@pytest.mark.parametrize("call", ["identify", "track", "page", "screen", "group", "alias", "event"])
def test_a_record_carries_a_payload_when_extra_holds_a_call_key_or_event(call: str, log: Any) -> None:
    assert call in PAYLOAD_KEYS
    assert has_payload(log("x", extra={call: {}}))


def test_a_record_without_call_key_or_event_carries_no_payload(log: Any) -> None:
    assert not has_payload(log("plain"))
    assert not has_payload(log("other extra", extra={"user_id": "1", "properties": {}, "category": "c"}))
    assert calls(log("plain")) == []


def test_each_call_key_gives_its_fields_in_snake_case_with_the_records_timestamp(log: Any) -> None:
    record = log("cart", extra={"track": {"userId": "42", "event": "Added", "properties": {"qty": 1}}})

    assert calls(record) == [("track", {"user_id": "42", "event": "Added", "properties": {"qty": 1},
                                        "timestamp": record.created})]


@pytest.mark.parametrize("camel, snake", [
    ("userId", "user_id"), ("anonymousId", "anonymous_id"), ("groupId", "group_id"),
    ("objectTypeId", "object_type_id"), ("messageId", "message_id"),
])
def test_camel_case_field_names_are_read_as_snake_case(camel: str, snake: str, log: Any) -> None:
    [(_, fields)] = calls(log("group", extra={"group": {camel: "v"}}))
    assert fields[snake] == "v"


def test_alias_reads_previous_id_in_either_case(log: Any) -> None:
    [(_, camel)] = calls(log("a", extra={"alias": {"previousId": "old", "userId": "new"}}))
    [(_, snake)] = calls(log("a", extra={"alias": {"previous_id": "old", "user_id": "new"}}))
    assert {k: v for k, v in camel.items() if k != "timestamp"} == {"previous_id": "old", "user_id": "new"}
    assert {k: v for k, v in snake.items() if k != "timestamp"} == {"previous_id": "old", "user_id": "new"}


def test_a_timestamp_in_the_payload_wins_over_the_records(log: Any) -> None:
    [(_, fields)] = calls(log("x", extra={"identify": {"user_id": "1", "timestamp": "2024-05-01T00:00:00Z"}}))
    assert fields["timestamp"] == "2024-05-01T00:00:00Z"


def test_a_field_the_call_does_not_have_is_refused_naming_it_and_the_fields_it_has(log: Any) -> None:
    record = log("x", extra={"identify": {"user_id": "1", "properties": {}}})

    with pytest.raises(InvalidEventError) as refused:
        calls(record)

    assert (refused.value.call, refused.value.field) == ("identify", "properties")
    assert "expected one of" in str(refused.value) and "traits" in str(refused.value)


def test_a_payload_that_is_not_a_dict_is_refused(log: Any) -> None:
    with pytest.raises(InvalidEventError, match=r"extra\['page'\] must be a dict of the call's fields, got str"):
        calls(log("x", extra={"page": "Home"}))


def test_a_call_key_set_to_none_asks_for_no_call(log: Any) -> None:
    assert calls(log("x", extra={"track": None})) == []


def test_several_call_keys_give_several_calls_in_the_apis_order(log: Any) -> None:
    record = log("x", extra={"track": {"user_id": "1", "event": "E"}, "identify": {"user_id": "1"}})
    assert [call for call, _ in calls(record)] == ["identify", "track"]


def test_a_call_key_takes_precedence_over_the_short_form(log: Any) -> None:
    record = log("x", extra={"identify": {"user_id": "1"}, "event": "Ignored"})
    assert [call for call, _ in calls(record)] == ["identify"]


# -- the short track form ------------------------------------------------------------------------

def test_short_form_is_a_track_call_whose_other_extra_fields_are_properties(log: Any) -> None:
    record = log("order", extra={"event": "Order Completed", "user_id": "42", "order_id": 7, "total": 9.5})

    assert calls(record) == [("track", {"event": "Order Completed", "user_id": "42",
                                        "properties": {"order_id": 7, "total": 9.5},
                                        "timestamp": record.created})]


def test_short_form_reads_track_fields_in_either_case(log: Any) -> None:
    record = log("x", extra={"event": "E", "userId": "1", "anonymousId": "a", "messageId": "m",
                             "context": {"ip": "1.2.3.4"}, "integrations": {"All": False},
                             "timestamp": 1_700_000_000.0})

    [(_, fields)] = calls(record)
    assert fields == {"event": "E", "user_id": "1", "anonymous_id": "a", "message_id": "m",
                      "context": {"ip": "1.2.3.4"}, "integrations": {"All": False},
                      "timestamp": 1_700_000_000.0}


def test_short_form_keeps_fields_of_other_calls_as_properties(log: Any) -> None:
    record = log("x", extra={"event": "Joined", "user_id": "1", "groupId": "acme", "traits": {"plan": "pro"},
                             "category": "Store"})

    [(_, fields)] = calls(record)
    assert fields["properties"] == {"groupId": "acme", "traits": {"plan": "pro"}, "category": "Store"}


def test_short_form_with_properties_given_sends_those_properties_only(log: Any) -> None:
    record = log("x", extra={"event": "E", "user_id": "1", "properties": {"a": 1}, "request_id": "r-1"})

    [(_, fields)] = calls(record)
    assert fields["properties"] == {"a": 1}


def test_short_form_without_other_fields_sends_no_properties(log: Any) -> None:
    [(_, fields)] = calls(log("x", extra={"event": "E", "user_id": "1"}))
    assert "properties" not in fields


def test_what_logging_and_formatters_put_on_a_record_is_not_extra(log: Any) -> None:
    try:
        raise ValueError("x")
    except ValueError:
        record = log("x %s", "arg", extra={"event": "E", "user_id": "1", "sku": "A1"}, exc_info=True,
                     stack_info=True)
    logging.Formatter("%(asctime)s %(message)s").format(record)  # sets message, asctime, exc_text
    record._private_attribute = "set by a tool"  # type: ignore[attr-defined]

    assert extra_fields(record) == {"event": "E", "user_id": "1", "sku": "A1"}


def test_a_record_made_by_makelogrecord_maps_the_same_as_a_logged_one() -> None:
    record = logging.makeLogRecord({"msg": "m", "track": {"userId": 42, "event": "Added"}, "created": 5.0})
    assert calls(record) == [("track", {"user_id": 42, "event": "Added", "timestamp": 5.0})]
