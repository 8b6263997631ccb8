"""LocalCollector, specified over real HTTP on 127.0.0.1: nothing here is mocked."""

from __future__ import annotations

import base64
import doctest
import gzip
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

import cdp_logging
from cdp_logging.testing import collector as collector_module
from cdp_logging.testing.collector import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    LocalCollector,
    format_event_line,
)

WRITE_KEY = "test-write-key"
AUTH = (WRITE_KEY, "")


def track(event: str = "Order Completed", user_id: str = "42", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "userId": user_id, **fields}


def new_session() -> requests.Session:
    session = requests.Session()
    # Proxy settings in the environment must not divert requests meant for 127.0.0.1.
    session.trust_env = False
    return session


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with new_session() as session:
        yield session


@pytest.fixture
def collector() -> Iterator[LocalCollector]:
    with LocalCollector(write_key=WRITE_KEY) as collector:
        yield collector


def post(
    session: requests.Session,
    collector: LocalCollector,
    payload: Any = None,
    *,
    path: str = "/v1/batch",
    body: bytes | None = None,
    auth: tuple[str, str] | None = AUTH,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> requests.Response:
    data = body if body is not None else json.dumps(payload).encode()
    return session.post(
        collector.url + path,
        data=data,
        auth=auth,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=timeout,
    )


def post_batch(
    session: requests.Session, collector: LocalCollector, *messages: Any, **options: Any
) -> requests.Response:
    return post(
        session, collector, {"batch": list(messages), "sentAt": "2024-05-01T12:00:00Z"}, **options
    )


def strict(
    session: requests.Session, collector: LocalCollector, *messages: Any
) -> requests.Response:
    return post_batch(session, collector, *messages, headers={"X-Strict-Mode": "1"})


# -- starting, stopping, ports -----------------------------------------------------------------


def test_port_zero_listens_on_a_free_port() -> None:
    with LocalCollector() as collector:
        assert collector.port > 0
        assert collector.url == f"http://127.0.0.1:{collector.port}"


def test_a_chosen_port_is_used(session: requests.Session) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with LocalCollector(free_port, write_key=WRITE_KEY) as collector:
        assert collector.port == free_port
        assert post_batch(session, collector, track()).status_code == 200


def test_port_is_unknown_before_start() -> None:
    collector = LocalCollector()

    with pytest.raises(RuntimeError, match="not been started"):
        _ = collector.url


def test_start_and_stop_without_with() -> None:
    collector = LocalCollector().start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            collector.start()
    finally:
        collector.stop()
    collector.stop()


def test_a_stopped_collector_can_start_again(session: requests.Session) -> None:
    collector = LocalCollector(write_key=WRITE_KEY)
    with collector:
        post_batch(session, collector, track("Before"))
    with collector:
        assert post_batch(session, collector, track("After")).status_code == 200

    assert [message["event"] for message in collector.messages] == ["Before", "After"]


def test_stop_closes_the_listening_socket() -> None:
    with LocalCollector() as collector:
        port = collector.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2.0).close()


def test_stop_ends_kept_alive_connections(session: requests.Session) -> None:
    with LocalCollector(write_key=WRITE_KEY) as collector:
        assert post_batch(session, collector, track()).status_code == 200
    with pytest.raises(requests.ConnectionError):
        post_batch(session, collector, track())


def test_repr_shows_where_and_whether_it_runs_but_not_the_write_key() -> None:
    with LocalCollector(write_key=WRITE_KEY) as collector:
        assert repr(collector) == f"<LocalCollector {collector.url} running>"
    assert repr(collector).endswith("stopped>")
    assert WRITE_KEY not in repr(collector)


# -- endpoints ---------------------------------------------------------------------------------


def test_batch_messages_are_kept_in_arrival_order(
    session: requests.Session, collector: LocalCollector
) -> None:
    first = [track("One", messageId="m1"), track("Two", messageId="m2")]
    second = [{"type": "identify", "userId": "42", "messageId": "m3", "traits": {"plan": "pro"}}]

    assert post_batch(session, collector, *first).status_code == 200
    assert post_batch(session, collector, *second).status_code == 200

    assert collector.messages == first + second
    assert collector.message_ids() == ["m1", "m2", "m3"]


def test_accepted_request_answers_200_with_an_empty_object(
    session: requests.Session, collector: LocalCollector
) -> None:
    # The OpenAPI description: "A successful request returns an empty object response."
    response = post_batch(session, collector, track())

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {}


@pytest.mark.parametrize(
    ("call_type", "message"),
    [
        ("identify", {"userId": "42", "traits": {"email": "ada@example.com"}}),
        ("track", {"userId": "42", "event": "Order Completed"}),
        ("page", {"anonymousId": "anon-1", "name": "Home"}),
        ("screen", {"userId": "42", "name": "Settings"}),
        ("group", {"userId": "42", "groupId": "acme", "traits": {"name": "Acme"}}),
        ("alias", {"previousId": "anon-1", "userId": "42"}),
    ],
)
def test_single_call_endpoint_takes_its_type_from_the_path(
    session: requests.Session, collector: LocalCollector, call_type: str, message: dict[str, Any]
) -> None:
    response = post(session, collector, message, path=f"/v1/{call_type}")

    assert response.status_code == 200
    assert collector.messages == [{**message, "type": call_type}]
    assert collector.requests[0].payload == message


def test_single_call_with_another_type_is_rejected(
    session: requests.Session, collector: LocalCollector
) -> None:
    response = post(session, collector, {"type": "identify", "userId": "42"}, path="/v1/page")

    assert response.status_code == 200
    assert collector.messages == []
    [rejected] = collector.rejected
    [error] = rejected.errors
    assert (error.field, error.reason) == ("type", "type_mismatch")
    assert error.detail == "'identify' sent to the page endpoint"


def test_unknown_path_answers_404_with_a_json_error(
    session: requests.Session, collector: LocalCollector
) -> None:
    response = post(session, collector, {"batch": []}, path="/v2/batch")

    assert response.status_code == 404
    assert "/v1/batch" in response.json()["meta"]["errors"][0]


def test_get_answers_404(session: requests.Session, collector: LocalCollector) -> None:
    response = session.get(collector.url + "/v1/batch", auth=AUTH, timeout=5.0)

    assert response.status_code == 404
    assert response.json()["meta"]["errors"]


def test_query_string_is_ignored(session: requests.Session, collector: LocalCollector) -> None:
    assert post_batch(session, collector, track(), path="/v1/batch?source=test").status_code == 200
    assert len(collector.messages) == 1


# -- authentication ----------------------------------------------------------------------------


def test_missing_authorization_answers_401(
    session: requests.Session, collector: LocalCollector
) -> None:
    response = post_batch(session, collector, track(), auth=None)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "Authorization" in response.json()["meta"]["errors"][0]
    assert collector.messages == []


def test_wrong_write_key_answers_401_without_revealing_the_key(
    session: requests.Session, collector: LocalCollector
) -> None:
    response = post_batch(session, collector, track(), auth=("another-key", ""))

    assert response.status_code == 401
    assert WRITE_KEY not in response.text
    assert collector.messages == []


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer test-write-key",
        "Basic !!not-base64!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":").decode(),
        "Basic " + base64.b64encode(b"test-write-key:a-password").decode(),
    ],
    ids=["bearer", "not-base64", "no-colon", "empty-user", "password-given"],
)
def test_malformed_basic_auth_answers_401(
    session: requests.Session, collector: LocalCollector, authorization: str
) -> None:
    response = post_batch(
        session, collector, track(), auth=None, headers={"Authorization": authorization}
    )

    assert response.status_code == 401


def test_without_a_write_key_any_user_name_is_accepted(session: requests.Session) -> None:
    with LocalCollector() as collector:
        assert post_batch(session, collector, track(), auth=("whatever", "")).status_code == 200
        assert post_batch(session, collector, track(), auth=None).status_code == 401


def test_a_region_api_key_is_accepted_as_the_bearer_token_a_client_sends() -> None:
    with LocalCollector(write_key="pk_eu_collector") as collector:
        client = cdp_logging.Analytics("pk_eu_collector\n", host=collector.url)
        client.track(user_id="42", event="Signed Up")
        assert client.close_and_flush(timeout=15.0)
        assert [m["event"] for m in collector.messages] == ["Signed Up"]
        with new_session() as session:
            wrong = post_batch(session, collector, track(), auth=None,
                               headers={"Authorization": "Bearer pk_eu_another"})
        assert wrong.status_code == 401
        assert "pk_eu_collector" not in wrong.text


# -- bodies: encoding, JSON, sizes -------------------------------------------------------------


def test_gzip_body_is_decompressed(session: requests.Session, collector: LocalCollector) -> None:
    compressed = gzip.compress(json.dumps({"batch": [track()]}).encode())

    response = post(session, collector, body=compressed, headers={"Content-Encoding": "gzip"})

    assert response.status_code == 200
    assert collector.messages == [track()]
    [request] = collector.requests
    assert request.body == compressed
    assert request.payload == {"batch": [track()]}
    assert request.header("content-encoding") == "gzip"


def test_bad_gzip_answers_400(session: requests.Session, collector: LocalCollector) -> None:
    response = post(
        session, collector, body=b"not gzip at all", headers={"Content-Encoding": "gzip"}
    )

    assert response.status_code == 400
    assert "gzip" in response.json()["meta"]["errors"][0]


def test_truncated_gzip_answers_400(session: requests.Session, collector: LocalCollector) -> None:
    compressed = gzip.compress(json.dumps({"batch": [track()]}).encode())

    response = post(session, collector, body=compressed[:-8], headers={"Content-Encoding": "gzip"})

    assert response.status_code == 400


def test_unsupported_content_encoding_answers_415(
    session: requests.Session, collector: LocalCollector
) -> None:
    response = post(session, collector, body=b"{}", headers={"Content-Encoding": "br"})

    assert response.status_code == 415


def test_body_that_is_not_json_answers_400(
    session: requests.Session, collector: LocalCollector
) -> None:
    response = post(session, collector, body=b'{"batch": [')

    assert response.status_code == 400
    assert "not valid JSON" in response.json()["meta"]["errors"][0]


def test_nan_is_not_json(session: requests.Session, collector: LocalCollector) -> None:
    # Python's json.dumps writes NaN by default; the API's JSON parser does not accept it.
    response = post(session, collector, body=b'{"batch": [{"type": "track", "total": NaN}]}')

    assert response.status_code == 400


def test_body_that_is_not_utf8_answers_400(
    session: requests.Session, collector: LocalCollector
) -> None:
    body = json.dumps({"batch": [track("Café")]}, ensure_ascii=False).encode("latin-1")

    assert post(session, collector, body=body).status_code == 400


def test_batch_body_must_hold_a_batch_list(
    session: requests.Session, collector: LocalCollector
) -> None:
    assert post(session, collector, [track()]).status_code == 400
    assert post(session, collector, {"batch": track()}).status_code == 400
    assert post(session, collector, ["not", "a", "message"], path="/v1/track").status_code == 400


def test_empty_batch_is_accepted(session: requests.Session, collector: LocalCollector) -> None:
    assert post_batch(session, collector).status_code == 200
    assert collector.messages == []


def test_body_over_500_kb_answers_413(session: requests.Session, collector: LocalCollector) -> None:
    message = track(properties={"padding": "x" * 10_000})
    messages = [message] * (MAX_BATCH_BYTES // 10_000 + 1)

    response = post_batch(session, collector, *messages)

    assert response.status_code == 413
    assert str(MAX_BATCH_BYTES) in response.json()["meta"]["errors"][0]
    assert collector.messages == []


def test_gzip_body_over_500_kb_once_decompressed_answers_413(
    session: requests.Session, collector: LocalCollector
) -> None:
    messages = [track(properties={"padding": "x" * 10_000})] * 60
    compressed = gzip.compress(json.dumps({"batch": messages}).encode())
    assert len(compressed) < MAX_BATCH_BYTES

    response = post(session, collector, body=compressed, headers={"Content-Encoding": "gzip"})

    assert response.status_code == 413


def test_single_call_body_over_32_kb_answers_413(
    session: requests.Session, collector: LocalCollector
) -> None:
    message = track(properties={"padding": "x" * MAX_MESSAGE_BYTES})

    assert post(session, collector, message, path="/v1/track").status_code == 413


def test_message_over_32_kb_in_a_batch_is_rejected_and_the_rest_kept(
    session: requests.Session, collector: LocalCollector
) -> None:
    too_big = track("Too Big", properties={"padding": "x" * MAX_MESSAGE_BYTES}, messageId="big")

    response = post_batch(session, collector, track("Small"), too_big)

    assert response.status_code == 200
    assert [message["event"] for message in collector.messages] == ["Small"]
    [rejected] = collector.rejected
    [error] = rejected.errors
    assert (error.index, error.message_id, error.reason) == (1, "big", "too_large")


def test_message_of_exactly_32_kb_is_accepted(
    session: requests.Session, collector: LocalCollector
) -> None:
    def encoded_size(message: dict[str, Any]) -> int:
        return len(json.dumps(message, separators=(",", ":")).encode())

    message = track(properties={"padding": ""})
    message["properties"]["padding"] = "x" * (MAX_MESSAGE_BYTES - encoded_size(message))
    assert encoded_size(message) == MAX_MESSAGE_BYTES

    response = post_batch(
        session, collector, message, track("Second"), headers={"X-Strict-Mode": "1"}
    )

    assert response.status_code == 200
    assert len(collector.messages) == 2


def test_limits_can_be_lowered(session: requests.Session) -> None:
    with LocalCollector(max_message_bytes=200, max_batch_bytes=1000) as collector:
        assert post_batch(session, collector, track()).status_code == 200
        assert post_batch(session, collector, *[track()] * 20).status_code == 413
        post_batch(session, collector, track(properties={"padding": "x" * 200}), track())
        assert collector.rejected[0].errors[0].reason == "too_large"


# -- checking messages: strict and lenient -----------------------------------------------------


@pytest.mark.parametrize(
    ("message", "field", "reason"),
    [
        ({"type": "identify", "traits": {"plan": "pro"}}, "userId", "missing"),
        ({"type": "page", "userId": ""}, "userId", "missing"),
        ({"type": "screen", "anonymousId": 7}, "anonymousId", "wrong_type"),
        ({"type": "track", "userId": "42"}, "event", "missing"),
        ({"type": "track", "userId": "42", "event": ""}, "event", "empty"),
        ({"type": "track", "userId": "42", "event": 7}, "event", "wrong_type"),
        ({"type": "track", "event": "Signed Up"}, "userId", "missing"),
        ({"type": "track", "userId": 42, "event": "Signed Up"}, "userId", "wrong_type"),
        ({"type": "group", "userId": "42"}, "groupId", "missing"),
        ({"type": "group", "userId": "42", "groupId": 7}, "groupId", "wrong_type"),
        ({"type": "alias", "userId": "42"}, "previousId", "missing"),
        ({"type": "alias", "previousId": "anon-1", "anonymousId": "anon-1"}, "userId", "missing"),
        (
            {"type": "track", "userId": "42", "event": "E", "messageId": 1},
            "messageId",
            "wrong_type",
        ),
        ({"type": "page", "userId": "42", "name": ["Home"]}, "name", "wrong_type"),
        (
            {"type": "track", "userId": "42", "event": "E", "properties": [1]},
            "properties",
            "wrong_type",
        ),
        ({"type": "identify", "userId": "42", "traits": "pro"}, "traits", "wrong_type"),
        ({"type": "identify", "userId": "42", "context": 1}, "context", "wrong_type"),
        (
            {"type": "identify", "userId": "42", "timestamp": "yesterday"},
            "timestamp",
            "bad_timestamp",
        ),
        (
            {"type": "identify", "userId": "42", "timestamp": "2024-05-01T12:00:00"},
            "timestamp",
            "bad_timestamp",
        ),
        (
            {"type": "identify", "userId": "42", "timestamp": "2024-13-01T12:00:00Z"},
            "timestamp",
            "bad_timestamp",
        ),
        (
            {"type": "identify", "userId": "42", "timestamp": 1714564800},
            "timestamp",
            "bad_timestamp",
        ),
        ({"type": "purchase", "userId": "42"}, "type", "unknown_type"),
        ({"userId": "42", "event": "No Type"}, "type", "missing"),
        ("not a message", "", "not_object"),
    ],
)
def test_invalid_message_fails_a_strict_request(
    session: requests.Session, collector: LocalCollector, message: Any, field: str, reason: str
) -> None:
    response = strict(session, collector, message)

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["index"], error["field"], error["reason"]) == (0, field, reason)
    [line] = response.json()["meta"]["errors"]
    assert line.startswith("message 0") and line.endswith(error["message"])
    assert collector.messages == []


@pytest.mark.parametrize(
    "timestamp",
    ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123Z", "2024-05-01T12:00:00.123456+02:00"],
)
def test_timestamps_with_an_offset_are_valid(
    session: requests.Session, collector: LocalCollector, timestamp: str
) -> None:
    message = track(timestamp=timestamp, originalTimestamp=timestamp)

    assert strict(session, collector, message).status_code == 200


def test_strict_request_answers_400_listing_every_error_and_keeps_nothing(
    session: requests.Session, collector: LocalCollector
) -> None:
    messages = [
        track("Fine", messageId="m0"),
        {"type": "track", "userId": "42", "messageId": "m1"},
        {"type": "alias", "messageId": "m2"},
    ]

    response = strict(session, collector, *messages)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(error["index"], error["messageId"], error["field"]) for error in errors] == [
        (1, "m1", "event"),
        (2, "m2", "previousId"),
        (2, "m2", "userId"),
    ]
    assert all(error["message"] for error in errors)
    assert len(response.json()["meta"]["errors"]) == 3
    assert collector.messages == []
    assert [rejected.message for rejected in collector.rejected] == messages[1:]


def test_strict_collector_needs_no_header(session: requests.Session) -> None:
    with LocalCollector(strict=True) as collector:
        response = post_batch(session, collector, {"type": "track", "userId": "42"})

        assert response.status_code == 400
        assert collector.messages == []


def test_strict_mode_header_zero_is_lenient(
    session: requests.Session, collector: LocalCollector
) -> None:
    response = post_batch(
        session, collector, {"type": "track", "userId": "42"}, headers={"X-Strict-Mode": "0"}
    )

    assert response.status_code == 200


def test_lenient_request_keeps_valid_messages_and_records_the_rejected(
    session: requests.Session, collector: LocalCollector
) -> None:
    invalid = {"type": "track", "userId": "42", "messageId": "m1"}

    response = post_batch(session, collector, track("First"), invalid, track("Third"))

    assert response.status_code == 200
    assert response.json() == {}
    assert [message["event"] for message in collector.messages] == ["First", "Third"]
    [rejected] = collector.rejected
    assert rejected.message == invalid
    assert rejected.path == "/v1/batch"
    assert [
        (error.index, error.message_id, error.field, error.reason) for error in rejected.errors
    ] == [(1, "m1", "event", "missing")]
    assert collector.requests[0].errors == (
        "message 1 (messageId m1): event: a track call needs an event name",
    )


def test_null_fields_are_errors_only_in_strict_mode(
    session: requests.Session, collector: LocalCollector
) -> None:
    message = track(anonymousId=None, context=None)

    strict_response = strict(session, collector, message)
    lenient_response = post_batch(session, collector, message)

    assert strict_response.status_code == 400
    assert {(error["field"], error["reason"]) for error in strict_response.json()["errors"]} == {
        ("anonymousId", "null"),
        ("context", "null"),
    }
    assert lenient_response.status_code == 200
    assert collector.messages == [message]


# -- failing on purpose ------------------------------------------------------------------------


def test_fail_next_answers_with_the_status_and_retry_after_then_recovers(
    session: requests.Session, collector: LocalCollector
) -> None:
    collector.fail_next(2, status=503, retry_after=7)

    first = post_batch(session, collector, track(messageId="m1"))
    second = post_batch(session, collector, track(messageId="m1"))
    third = post_batch(session, collector, track(messageId="m1"))

    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.headers["Retry-After"] == "7"
    assert "Retry-After" not in third.headers
    assert first.json()["meta"]["errors"]
    assert collector.message_ids() == ["m1"]
    # Failed requests are still recorded, so a test can check that a retry resent the same ids.
    assert [request.status for request in collector.requests] == [503, 503, 200]
    assert collector.requests[0].payload["batch"][0]["messageId"] == "m1"


def test_fail_next_calls_queue_up(session: requests.Session, collector: LocalCollector) -> None:
    collector.fail_next(1, status=500)
    collector.fail_next(1, status=429, retry_after="120", body={"error": "slow down"})

    statuses = [post_batch(session, collector, track()).status_code for _ in range(3)]

    assert statuses == [500, 429, 200]
    assert collector.requests[1].errors == ("failure planned by the test: status 429",)


def test_fail_next_body_can_be_text(session: requests.Session, collector: LocalCollector) -> None:
    collector.fail_next(1, status=502, body="<html>Bad Gateway</html>")

    response = post_batch(session, collector, track())

    assert response.status_code == 502
    assert response.text == "<html>Bad Gateway</html>"
    assert response.headers["Content-Type"].startswith("text/plain")


def test_fail_next_applies_before_authentication(
    session: requests.Session, collector: LocalCollector
) -> None:
    # A proxy or load balancer in front of the API fails requests before the API sees them.
    collector.fail_next(1, status=503)

    assert post_batch(session, collector, track(), auth=None).status_code == 503


def test_fail_when_fails_matching_requests_until_removed(
    session: requests.Session, collector: LocalCollector
) -> None:
    def holds_poison(path: str, payload: Any) -> bool:
        return any(message.get("event") == "Poison" for message in payload["batch"])

    collector.fail_when(holds_poison, status=500)

    assert post_batch(session, collector, track("Poison")).status_code == 500
    assert post_batch(session, collector, track("Fine")).status_code == 200
    collector.fail_when(None)
    assert post_batch(session, collector, track("Poison")).status_code == 200
    assert [message["event"] for message in collector.messages] == ["Fine", "Poison"]


def test_delay_holds_every_answer(session: requests.Session, collector: LocalCollector) -> None:
    collector.set_delay(0.3)

    started = time.monotonic()
    response = post_batch(session, collector, track())
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.3


def test_delay_lets_a_client_time_out_yet_keeps_what_it_sent(
    session: requests.Session, collector: LocalCollector
) -> None:
    # As with the real API, a request the client gave up on may still have been received: this is
    # why a retry must reuse the messageId.
    collector.set_delay(0.5)

    with pytest.raises(requests.Timeout):
        post_batch(session, collector, track(messageId="m1"), timeout=0.1)

    assert collector.wait_for(1, timeout=5.0)[0]["messageId"] == "m1"


def test_stop_drops_requests_still_being_delayed() -> None:
    held = threading.Event()

    class SignalHeldAnswers(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("holding the answer"):
                held.set()

    collector_logger = logging.getLogger("cdp_logging.testing.collector")
    signal = SignalHeldAnswers()
    collector_logger.addHandler(signal)
    previous_level = collector_logger.level
    collector_logger.setLevel(logging.DEBUG)
    failures: list[BaseException] = []
    delaying = LocalCollector(write_key=WRITE_KEY).start()

    def send() -> None:
        try:
            with new_session() as session:
                post_batch(session, delaying, track(), timeout=10.0)
        except requests.RequestException as error:
            failures.append(error)

    sender = threading.Thread(target=send)
    try:
        delaying.set_delay(30.0)
        sender.start()
        assert held.wait(timeout=5.0)
        started = time.monotonic()
        delaying.stop()
        sender.join(timeout=10.0)
    finally:
        delaying.stop()
        collector_logger.removeHandler(signal)
        collector_logger.setLevel(previous_level)

    assert time.monotonic() - started < 5.0
    assert [type(failure) for failure in failures] == [requests.ConnectionError]
    assert delaying.requests == []


def test_negative_delay_is_refused(collector: LocalCollector) -> None:
    with pytest.raises(ValueError):
        collector.set_delay(-1)


# -- reading what arrived ----------------------------------------------------------------------


def test_wait_for_returns_once_enough_messages_arrived(collector: LocalCollector) -> None:
    def send_in_background() -> None:
        with new_session() as session:
            for event in ("One", "Two", "Three"):
                post_batch(session, collector, track(event))

    sender = threading.Thread(target=send_in_background)
    sender.start()
    try:
        messages = collector.wait_for(3, timeout=5.0)
    finally:
        sender.join(timeout=5.0)

    assert [message["event"] for message in messages] == ["One", "Two", "Three"]


def test_wait_for_timeout_lists_what_did_arrive(
    session: requests.Session, collector: LocalCollector
) -> None:
    post_batch(session, collector, track("Order Completed", properties={"order_id": 7}))
    post_batch(session, collector, {"type": "track", "userId": "42", "messageId": "bad"})

    with pytest.raises(TimeoutError) as raised:
        collector.wait_for(2, timeout=0.2)

    text = str(raised.value)
    assert "expected at least 2 messages within 0.2 s" in text
    assert 'track  "Order Completed"  user=42  order_id=7' in text
    assert "1 rejected" in text
    assert "messageId bad" in text


def test_wait_for_requests_counts_failed_requests_too(
    session: requests.Session, collector: LocalCollector
) -> None:
    collector.fail_next(1, status=500)
    post_batch(session, collector, track())

    [request] = collector.wait_for_requests(1, timeout=1.0)

    assert request.status == 500
    with pytest.raises(TimeoutError, match="expected at least 2 requests"):
        collector.wait_for_requests(2, timeout=0.1)


def test_events_filter_by_type_event_and_user(
    session: requests.Session, collector: LocalCollector
) -> None:
    identify = {"type": "identify", "userId": "7", "traits": {"plan": "pro"}}
    post_batch(session, collector, track("A", "1"), track("B", "1"), track("A", "2"), identify)

    assert len(collector.events()) == 4
    assert collector.events("identify") == [identify]
    assert [m["userId"] for m in collector.events(event="A")] == ["1", "2"]
    assert collector.events("track", event="A", user_id="2") == [track("A", "2")]


def test_clear_forgets_messages_requests_and_rejections(
    session: requests.Session, collector: LocalCollector
) -> None:
    post_batch(session, collector, track(), {"type": "track"})
    collector.fail_next(1)

    collector.clear()

    assert (collector.messages, collector.requests, collector.rejected) == ([], [], [])
    # Planned failures are configuration, not received data: they survive clear().
    assert post_batch(session, collector, track()).status_code == 503


def test_requests_are_recorded_with_headers_body_and_status(
    session: requests.Session, collector: LocalCollector
) -> None:
    before = time.time()
    response = post_batch(
        session, collector, track(), headers={"User-Agent": "analytics-python/1.0"}
    )

    [request] = collector.requests
    assert (request.method, request.path, request.status) == ("POST", "/v1/batch", 200)
    assert request.header("user-agent") == "analytics-python/1.0"
    assert request.header("Authorization") == response.request.headers["Authorization"]
    assert request.body == response.request.body
    assert request.payload["batch"] == [track()]
    assert before <= request.time <= time.time()
    assert request.client_address[0] == "127.0.0.1"
    # The write key travels in Authorization; a record's repr must not show it.
    assert "Authorization" not in repr(request)
    assert base64.b64encode(f"{WRITE_KEY}:".encode()).decode() not in repr(request)


def test_on_message_is_called_with_each_accepted_message(session: requests.Session) -> None:
    seen: list[dict[str, Any]] = []
    with LocalCollector(on_message=seen.append) as collector:
        post_batch(session, collector, track("One"), {"type": "track"}, track("Two"))
        collector.wait_for(2)

    assert [message["event"] for message in seen] == ["One", "Two"]


def test_a_failing_on_message_callback_is_logged_and_the_message_kept(
    session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("display failed")

    with LocalCollector(on_message=broken) as collector:
        with caplog.at_level(logging.ERROR, logger="cdp_logging.testing.collector"):
            response = post_batch(session, collector, track())

        assert response.status_code == 200
        assert len(collector.messages) == 1
    assert "on_message callback raised" in caplog.text


# -- HTTP behaviour and throughput --------------------------------------------------------------


def test_keep_alive_sends_many_requests_on_one_connection(
    session: requests.Session, collector: LocalCollector
) -> None:
    for number in range(5):
        assert post_batch(session, collector, track(str(number))).status_code == 200

    assert len({request.client_address for request in collector.requests}) == 1


def test_error_answers_keep_the_connection_alive(
    session: requests.Session, collector: LocalCollector
) -> None:
    post_batch(session, collector, track(), auth=None)
    post(session, collector, body=b"not json")
    post_batch(session, collector, {"type": "track"}, headers={"X-Strict-Mode": "1"})
    post_batch(session, collector, track())

    assert [request.status for request in collector.requests] == [401, 400, 400, 200]
    assert len({request.client_address for request in collector.requests}) == 1


def test_chunked_body_answers_411(session: requests.Session, collector: LocalCollector) -> None:
    def chunks() -> Iterator[bytes]:
        yield json.dumps({"batch": [track()]}).encode()

    response = session.post(collector.url + "/v1/batch", data=chunks(), auth=AUTH, timeout=5.0)

    assert response.status_code == 411
    assert response.headers["Connection"] == "close"


def test_bad_content_length_answers_400_and_closes_the_connection(
    collector: LocalCollector,
) -> None:
    with socket.create_connection(("127.0.0.1", collector.port), timeout=5.0) as connection:
        connection.sendall(
            b"POST /v1/batch HTTP/1.1\r\nHost: collector\r\nContent-Length: ten\r\n\r\n"
        )
        answer = b""
        while chunk := connection.recv(4096):
            answer += chunk

    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in answer
    assert collector.requests[0].status == 400


def test_concurrent_clients_lose_nothing(collector: LocalCollector) -> None:
    def send(client: int) -> None:
        with new_session() as session:
            for batch in range(10):
                messages = [track(messageId=f"{client}-{batch}-{n}") for n in range(20)]
                assert post_batch(session, collector, *messages).status_code == 200

    senders = [threading.Thread(target=send, args=(client,)) for client in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=30.0)

    messages = collector.wait_for(800, timeout=10.0)
    assert len(messages) == 800
    assert len(set(collector.message_ids())) == 800
    assert len({request.client_address for request in collector.requests}) == 4


def test_many_batches_on_one_connection_are_all_kept(
    session: requests.Session, collector: LocalCollector
) -> None:
    body = gzip.compress(json.dumps({"batch": [track()] * 100}).encode())
    for _ in range(100):
        response = post(session, collector, body=body, headers={"Content-Encoding": "gzip"})
        assert response.status_code == 200

    assert len(collector.messages) == 10_000


# -- one line per event ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "line"),
    [
        (
            {
                "type": "track",
                "event": "Order Completed",
                "userId": "42",
                "properties": {"order_id": 7, "total": 9.5},
            },
            'track  "Order Completed"  user=42  order_id=7 total=9.5',
        ),
        (
            {
                "type": "identify",
                "userId": "42",
                "traits": {"email": "ada@example.com", "vip": True},
            },
            "identify  user=42  email=ada@example.com vip=true",
        ),
        (
            {"type": "page", "name": "Home", "anonymousId": "anon-1", "properties": {"path": "/"}},
            'page  "Home"  anonymous=anon-1  path=/',
        ),
        ({"type": "screen", "userId": "42"}, "screen  user=42"),
        (
            {"type": "group", "groupId": "acme", "userId": "42", "traits": {"name": "Acme Inc"}},
            'group  group=acme  user=42  name="Acme Inc"',
        ),
        (
            {"type": "alias", "previousId": "anon-1", "userId": "42"},
            "alias  user=42  previous=anon-1",
        ),
        (
            {
                "type": "track",
                "event": "Cart",
                "userId": "42",
                "properties": {"items": [1, 2], "coupon": None, "meta": {"a": 1}},
            },
            'track  "Cart"  user=42  items=[1,2] coupon=null meta={"a":1}',
        ),
        ({"event": "No Type"}, "?"),
    ],
)
def test_format_event_line(message: dict[str, Any], line: str) -> None:
    assert format_event_line(message) == line


def test_format_event_line_shows_a_few_properties_and_counts_the_rest() -> None:
    properties = {f"p{number}": number for number in range(6)}

    line = format_event_line(track("Many", properties=properties))

    assert line.endswith("p0=0 p1=1 p2=2 p3=3 (+2 more)")


def test_format_event_line_shortens_long_values() -> None:
    line = format_event_line(track("E", properties={"note": "x" * 500}))

    assert len(line) < 100
    assert line.endswith("…")


def test_format_event_line_escapes_control_characters() -> None:
    message = track("Red\x1b[31m\nAlert", user_id="4\u009b2", properties={"note": "a\tb"})

    line = format_event_line(message)

    assert line.isprintable()
    assert "\\u001b" in line and "\\n" in line and "\\u009b" in line and "\\t" in line


@pytest.mark.server  # the examples start a collector
def test_docstring_examples_run() -> None:
    results = doctest.testmod(collector_module, optionflags=doctest.ELLIPSIS)

    assert results.attempted > 0
    assert results.failed == 0
