"""cdp_logging.delivery.transport: one POST to {host}/v1/batch, its headers, and what a failure becomes."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import socket
import threading
import time
from typing import Any
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import cdp_logging
from cdp_logging import DeliveryError
from cdp_logging.delivery.transport import HTTPTransport, authorization, default_host, key_region
from cdp_logging.delivery.retry import RetryPolicy, send_with_retries
from support.leaks import describe_object
from support.helpers import DEADLINE, WRITE_KEY, batch_requests, raw_body, received_bodies, wait_for_messages, wait_until

Client = Callable[..., cdp_logging.Analytics]


class Recorder:
    """Collects what error_handler and callbacks receive, from whatever thread."""

    def __init__(self) -> None:
        self.errors: list[cdp_logging.CDPError] = []
        self.callbacks: list[tuple[Any, list[dict[str, Any]]]] = []

    def error_handler(self, error: cdp_logging.CDPError) -> None:
        self.errors.append(error)

    def callback(self, error: Any, batch: list[dict[str, Any]]) -> None:
        self.callbacks.append((error, batch))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the request -----------------------------------------------------------------------------


def test_batches_are_posted_to_v1_batch_with_the_write_key_as_basic_auth_user(
    api: HTTPServer, make_client: Client
) -> None:
    make_client().track(user_id="u1", event="E")
    wait_for_messages(api, 1)
    request = batch_requests(api)[0]
    assert (request.method, request.path) == ("POST", "/v1/batch")
    expected = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"


def test_requests_say_json_and_cdp_logging_with_its_version(api: HTTPServer, make_client: Client) -> None:
    make_client().identify(user_id="u1")
    wait_for_messages(api, 1)
    request = batch_requests(api)[0]
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"cdp-logging/{cdp_logging.__version__}"
    assert "Content-Encoding" not in request.headers
    json.loads(request.get_data())


def test_gzip_body_decompresses_to_the_same_batch(api: HTTPServer, make_client: Client) -> None:
    plain = make_client()
    zipped = make_client(gzip=True)
    properties = {"text": "compress me " * 200, "n": 1}
    plain.track(user_id="u1", event="E", properties=properties, message_id="m1", timestamp="2024-05-01T00:00:00Z")
    assert plain.flush(timeout=10)
    zipped.track(user_id="u1", event="E", properties=properties, message_id="m1", timestamp="2024-05-01T00:00:00Z")
    assert zipped.flush(timeout=10)
    first, second = batch_requests(api)
    assert second.headers["Content-Encoding"] == "gzip"
    compressed = second.get_data()
    assert len(compressed) < len(raw_body(first)) / 4
    assert json.loads(gzip.decompress(compressed))["batch"] == json.loads(first.get_data())["batch"]


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_counts_as_delivered(httpserver: HTTPServer, make_client: Client, recorder: Recorder, status: int) -> None:
    httpserver.expect_request("/v1/batch").respond_with_data("", status=status)
    client = make_client(error_handler=recorder.error_handler)
    client.track(user_id="u1", event="E", callback=recorder.callback)
    assert client.flush(timeout=10) is True
    wait_until(lambda: recorder.callbacks, message="the callback")
    assert recorder.callbacks[0][0] is None
    assert recorder.errors == []
    assert client.stats()["delivered"] == 1 and client.stats()["failed"] == 0


def test_the_request_is_bounded_by_the_timeout(
    httpserver: HTTPServer, make_client: Client, recorder: Recorder, server_release: threading.Event
) -> None:
    def stall(request: Request) -> Response:
        server_release.wait(DEADLINE)
        return Response("{}", status=200)

    httpserver.expect_request("/v1/batch").respond_with_handler(stall)
    client = make_client(timeout=0.3, max_retries=0, error_handler=recorder.error_handler)
    message_id = client.track(user_id="u1", event="E")
    wait_until(lambda: recorder.errors, message="a DeliveryError for the timed-out request")
    server_release.set()
    error = recorder.errors[0]
    assert isinstance(error, DeliveryError)
    assert error.status is None and error.message_ids == [message_id]
    assert isinstance(error.cause, cdp_logging.ReadTimeout)


def test_an_unreachable_host_becomes_a_delivery_error_with_its_cause(
    make_client: Client, recorder: Recorder, closed_port: int
) -> None:
    client = make_client(host=f"http://127.0.0.1:{closed_port}", max_retries=0, error_handler=recorder.error_handler)
    message_id = client.track(user_id="u1", event="E", callback=recorder.callback)
    assert client.flush(timeout=10) is False
    error = recorder.errors[0]
    assert isinstance(error, DeliveryError) and error.status is None
    assert isinstance(error.cause, cdp_logging.ConnectError)
    assert error.message_ids == [message_id]
    assert recorder.callbacks[0][0] is error


def test_http_transport_posts_one_batch_after_another(api: HTTPServer) -> None:
    transport = HTTPTransport(api.url_for("").rstrip("/"), WRITE_KEY, timeout=5.0)
    try:
        first = transport.post("/v1/batch", b'{"batch":[],"sentAt":"2024-05-01T00:00:00.000Z"}')
        second = transport.post("/v1/batch", b'{"batch":[],"sentAt":"2024-05-01T00:00:00.000Z"}')
        assert (first.status, second.status) == (200, 200)
    finally:
        transport.close()
    assert len(batch_requests(api)) == 2


# -- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 401])
def test_an_error_status_goes_to_error_handler_and_callback(
    httpserver: HTTPServer, make_client: Client, recorder: Recorder, status: int
) -> None:
    httpserver.expect_request("/v1/batch").respond_with_data(f"nope: status {status}", status=status)
    client = make_client(max_retries=0, error_handler=recorder.error_handler)
    ids = [client.track(user_id="u1", event=f"E{i}", callback=recorder.callback) for i in range(3)]
    client.flush(timeout=10)
    wait_until(lambda: len(recorder.callbacks) == 3, message="three callbacks")
    failures = [error for error in recorder.errors if isinstance(error, DeliveryError)]
    assert sorted(id_ for error in failures for id_ in error.message_ids) == sorted(ids)
    for error in failures:
        assert error.status == status
        assert f"status {status}" in error.text
        assert error.count == len(error.message_ids)
        assert str(status) in str(error)
    for error, batch in recorder.callbacks:
        assert isinstance(error, DeliveryError) and error in failures
        assert {message["messageId"] for message in batch} == set(error.message_ids)
    stats = client.stats()
    assert (stats["failed"], stats["delivered"], stats["batches"]) == (3, 0, 0)


def test_a_401_is_not_retried(httpserver: HTTPServer, make_client: Client, recorder: Recorder) -> None:
    httpserver.expect_request("/v1/batch").respond_with_data("unauthorized", status=401)
    client = make_client(max_retries=3, error_handler=recorder.error_handler)
    client.track(user_id="u1", event="E")
    assert client.flush(timeout=10) is False
    assert len(batch_requests(httpserver)) == 1
    assert recorder.errors[0].attempts == 1


def test_a_500_is_retried_max_retries_times_with_the_same_message_ids(
    httpserver: HTTPServer, make_client: Client, recorder: Recorder
) -> None:
    httpserver.expect_request("/v1/batch").respond_with_data("down", status=500)
    client = make_client(max_retries=1, error_handler=recorder.error_handler)
    message_id = client.track(user_id="u1", event="E")
    assert client.flush(timeout=15) is False
    bodies = received_bodies(httpserver)
    assert len(bodies) == 2
    assert [body["batch"][0]["messageId"] for body in bodies] == [message_id, message_id]
    error = recorder.errors[0]
    assert (error.status, error.attempts) == (500, 2)
    assert client.stats()["retries"] == 1


def test_a_retried_batch_is_delivered_once_the_server_recovers(
    httpserver: HTTPServer, make_client: Client, recorder: Recorder
) -> None:
    httpserver.expect_oneshot_request("/v1/batch").respond_with_data("busy", status=503)
    httpserver.expect_request("/v1/batch").respond_with_json({})
    client = make_client(max_retries=2, error_handler=recorder.error_handler)
    client.track(user_id="u1", event="E", callback=recorder.callback)
    assert client.flush(timeout=15) is True
    assert recorder.errors == []
    assert recorder.callbacks[0][0] is None
    assert len(batch_requests(httpserver)) == 2


def test_the_response_text_is_cut_short(httpserver: HTTPServer, make_client: Client, recorder: Recorder) -> None:
    httpserver.expect_request("/v1/batch").respond_with_data("x" * 100_000, status=400)
    client = make_client(max_retries=0, error_handler=recorder.error_handler)
    client.track(user_id="u1", event="E")
    client.flush(timeout=10)
    error = recorder.errors[0]
    assert 0 < len(error.text) <= 1000
    assert len(str(error)) < 2000


def test_without_error_handler_a_failure_is_logged_at_warning_on_the_cdp_logging_logger(
    httpserver: HTTPServer, make_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/v1/batch").respond_with_data("boom", status=500)
    caplog.set_level(logging.WARNING, logger="cdp_logging")
    client = make_client(max_retries=0)
    message_id = client.track(user_id="u1", event="E")
    assert client.flush(timeout=10) is False
    warnings = [r for r in caplog.records if r.name == "cdp_logging" and r.levelno == logging.WARNING]
    assert warnings, caplog.text
    assert message_id in warnings[0].getMessage() and "500" in warnings[0].getMessage()


def test_a_failure_is_never_raised_in_the_application(
    httpserver: HTTPServer, make_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(error: cdp_logging.CDPError) -> None:
        raise RuntimeError("error handler broke")

    httpserver.expect_request("/v1/batch").respond_with_data("boom", status=500)
    client = make_client(max_retries=0, error_handler=explode)
    client.track(user_id="u1", event="E", callback=lambda error, batch: 1 / 0)
    assert client.flush(timeout=10) is False
    client.track(user_id="u1", event="E2")
    assert client.close_and_flush(timeout=10) is False
    assert "error handler broke" in caplog.text


def test_the_write_key_appears_in_no_repr_log_line_or_error(
    httpserver: HTTPServer, make_client: Client, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/v1/batch").respond_with_data("bad key", status=401)
    caplog.set_level(logging.DEBUG)
    reported = make_client(max_retries=0, error_handler=recorder.error_handler)
    logged = make_client(max_retries=0)
    for client in (reported, logged):
        client.track(user_id="u1", event="E", callback=recorder.callback)
        client.flush(timeout=10)
    wait_until(lambda: len(recorder.callbacks) == 2, message="both callbacks")
    texts = [repr(reported), str(reported), *describe_object(reported, depth=3), repr(reported.stats()), caplog.text]
    assert any("HTTPTransport" in text for text in texts)  # the client's transport was looked into
    for error in recorder.errors + [error for error, _ in recorder.callbacks]:
        texts += [str(error), repr(error), repr(error.__dict__), repr(error.cause)]
    assert recorder.errors and caplog.text
    for text in texts:
        assert WRITE_KEY not in text
        assert base64.b64encode(f"{WRITE_KEY}:".encode()).decode() not in text


def test_the_write_key_is_not_in_option_errors() -> None:
    with pytest.raises(ValueError) as caught:
        cdp_logging.Analytics(WRITE_KEY, host="ftp://example.test")
    assert WRITE_KEY not in str(caught.value)


# -- send_with_retries, directly ---------------------------------------------------------------


def test_send_with_retries_stops_after_max_retries(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/batch").respond_with_data("down", status=502)
    transport = HTTPTransport(httpserver.url_for("").rstrip("/"), WRITE_KEY, timeout=5.0)
    policy = RetryPolicy(max_retries=2, initial_backoff=0.01, max_backoff=0.02)
    try:
        outcome = send_with_retries(
            transport, "/v1/batch", b'{"batch":[]}', policy, interrupt=threading.Event(), deadline=lambda: None
        )
    finally:
        transport.close()
    assert (outcome.ok, outcome.attempts, outcome.response.status) == (False, 3, 502)
    assert "retries exhausted" in outcome.gave_up
    assert len(batch_requests(httpserver)) == 3


def test_a_batch_refused_as_too_large_is_split_until_it_fits(
    httpserver: HTTPServer, make_client: Client, recorder: Recorder
) -> None:
    def small_batches_only(request: Request) -> Response:
        if len(json.loads(request.get_data())["batch"]) > 2:
            return Response("too large", status=413)
        return Response("{}", status=200)

    httpserver.expect_request("/v1/batch").respond_with_handler(small_batches_only)
    client = make_client(flush_interval=60, max_retries=0, error_handler=recorder.error_handler)
    client.track(user_id="u1", event="First")
    wait_until(lambda: client.stats()["delivered"] == 1, message="the first event")
    ids = [client.track(user_id="u1", event=f"E{i}") for i in range(7)]
    assert client.flush(timeout=DEADLINE) is True
    accepted = [body for body in received_bodies(httpserver) if len(body["batch"]) <= 2]
    assert [m["messageId"] for body in accepted for m in body["batch"]][1:] == ids
    assert recorder.errors == []


def test_close_cuts_retries_short(httpserver: HTTPServer, make_client: Client, recorder: Recorder) -> None:
    httpserver.expect_request("/v1/batch").respond_with_data("down", status=503)
    client = make_client(max_retries=10, max_retry_time=120, error_handler=recorder.error_handler)
    message_id = client.track(user_id="u1", event="E")
    wait_until(lambda: batch_requests(httpserver), message="the first attempt")
    started = time.monotonic()
    assert client.close_and_flush(timeout=1.0) is False
    wait_until(lambda: recorder.errors, message="the DeliveryError")
    assert time.monotonic() - started < 6
    assert recorder.errors[0].message_ids == [message_id]
    assert client.stats()["failed"] == 1


# -- write keys as the official client takes them: region keys as Bearer tokens, stripped keys --


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@pytest.mark.parametrize(
    ("key", "header"),
    [
        ("pk_us_5e3b9d71", "Bearer pk_us_5e3b9d71"),
        ("sk_us_5e3b9d71", "Bearer sk_us_5e3b9d71"),
        ("pk_eu_5e3b9d71", "Bearer pk_eu_5e3b9d71"),
        ("sk_eu_5e3b9d71", "Bearer sk_eu_5e3b9d71"),
        ("legacy-5e3b9d71", basic("legacy-5e3b9d71")),
        ("pk_xx_5e3b9d71", basic("pk_xx_5e3b9d71")),   # not a region the official client knows
        ("xpk_us_5e3b9d71", basic("xpk_us_5e3b9d71")),
    ],
)
def test_region_api_keys_are_sent_as_bearer_tokens_and_other_keys_as_basic_auth(
    api: HTTPServer, make_client: Callable[..., cdp_logging.Analytics], key: str, header: str
) -> None:
    client = make_client(write_key=key)
    client.track(user_id="u1", event="E")
    assert client.flush(timeout=DEADLINE)
    assert [r.headers["Authorization"] for r in batch_requests(api)] == [header]


@pytest.mark.parametrize("key", ["legacy-key\n", "  legacy-key\r\n", "\tlegacy-key "])
def test_a_write_key_with_surrounding_whitespace_is_stripped(
    api: HTTPServer, make_client: Callable[..., cdp_logging.Analytics], key: str
) -> None:
    client = make_client(write_key=key)
    client.track(user_id="u1", event="E")
    assert client.flush(timeout=DEADLINE)
    assert [r.headers["Authorization"] for r in batch_requests(api)] == [basic("legacy-key")]


def test_a_write_key_from_the_environment_ending_in_a_newline_is_stripped(
    api: HTTPServer, make_client: Callable[..., cdp_logging.Analytics], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDP_WRITE_KEY", "pk_eu_from_a_secret_file\n")
    client = make_client(write_key=None)
    client.track(user_id="u1", event="E")
    assert client.flush(timeout=DEADLINE)
    assert [r.headers["Authorization"] for r in batch_requests(api)] == ["Bearer pk_eu_from_a_secret_file"]


def test_the_default_host_follows_the_region_and_an_explicit_or_environment_host_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CDP_HOST", raising=False)
    assert (key_region("pk_eu_1"), key_region("sk_us_1"), key_region("legacy")) == ("eu", "us", None)
    assert default_host(None) == cdp_logging.DEFAULT_HOST
    assert cdp_logging.Analytics("sk_eu_1", enable=False).host == cdp_logging.EU_HOST
    assert cdp_logging.Analytics("pk_us_1", enable=False).host == cdp_logging.DEFAULT_HOST
    assert cdp_logging.Analytics("legacy", enable=False).host == cdp_logging.DEFAULT_HOST
    assert cdp_logging.Analytics("pk_eu_1", host="http://127.0.0.1:9", enable=False).host == "http://127.0.0.1:9"
    monkeypatch.setenv("CDP_HOST", "http://127.0.0.1:8")
    assert cdp_logging.Analytics("pk_eu_1", enable=False).host == "http://127.0.0.1:8"


def test_the_key_stays_out_of_reprs_of_the_transport_and_its_auth() -> None:
    transport = HTTPTransport("https://cdp-eu.customer.io", "pk_eu_secret_5e3b9d71")
    session = transport._new_session()
    assert "secret" not in repr(transport)
    assert "secret" not in repr(session.auth)
    assert authorization("pk_eu_secret_5e3b9d71") == "Bearer pk_eu_secret_5e3b9d71"


# -- DeliveryError: status, message, cause ---------------------------------------------------


def delivery_errors(reported: list[Any]) -> list[cdp_logging.DeliveryError]:
    return [e for e in reported if isinstance(e, cdp_logging.DeliveryError)]


def test_a_refused_batch_reports_the_status_and_the_servers_message(
    httpserver: HTTPServer, make_client: Callable[..., cdp_logging.Analytics]
) -> None:
    httpserver.expect_request("/v1/batch").respond_with_json(
        {"code": "unauthorized", "message": "The write key is not valid"}, status=401)
    reported: list[Any] = []
    client = make_client(error_handler=reported.append)
    client.track(user_id="u1", event="E")
    assert not client.flush(timeout=DEADLINE)
    [error] = delivery_errors(reported)
    assert (error.status, error.message, error.cause) == (401, "The write key is not valid", None)


def test_a_plain_text_error_body_is_the_message(
    httpserver: HTTPServer, make_client: Callable[..., cdp_logging.Analytics]
) -> None:
    httpserver.expect_request("/v1/batch").respond_with_data("bad gateway, try later", status=400)
    reported: list[Any] = []
    client = make_client(error_handler=reported.append)
    client.track(user_id="u1", event="E")
    assert not client.flush(timeout=DEADLINE)
    [error] = delivery_errors(reported)
    assert (error.status, error.message) == (400, "bad gateway, try later")


def test_no_response_reports_no_status_no_message_and_the_cause(
    make_client: Callable[..., cdp_logging.Analytics],
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    # Nothing listens on that port: the connection is refused at once.
    reported: list[Any] = []
    client = make_client(host=f"http://127.0.0.1:{port}", error_handler=reported.append, max_retries=0)
    client.track(user_id="u1", event="E")
    assert not client.flush(timeout=DEADLINE)
    [error] = delivery_errors(reported)
    assert (error.status, error.message) == (None, None)
    assert isinstance(error.cause, Exception)
