"""Write keys as the official client takes them: region API keys sent as Bearer tokens to
their region's host, other keys as Basic auth, surrounding whitespace stripped; and what a
DeliveryError tells an error_handler about a refused or failed request."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

import cdp_logging
from cdp_logging.transport import HTTPTransport, authorization, default_host, key_region
from helpers import DEADLINE, batch_requests


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
