"""The write key and the host, checked at configuration: a key with control characters is
refused without being shown; a host is validated, IDNA-encoded, its path percent-encoded, and
parsed one way; and every error, cause and quoted answer is scrubbed of the key and of URL
passwords (the proxy's included)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import cdp_logging
from support.helpers import WRITE_KEY
from support.leaks import texts_reachable_from
from support.raw_server import RawServer

BEARER_KEY = "pk_us_5e3b9d71c0a4b8f2"


@pytest.fixture
def server() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.stop()


class Errors:
    def __init__(self) -> None:
        self.errors: list[Any] = []

    def __call__(self, error: Any) -> None:
        self.errors.append(error)


def _forms(key: str) -> list[str]:
    return [key, base64.b64encode(f"{key}:".encode()).decode().rstrip("=")]


# -- the key -----------------------------------------------------------------------------------


_CONTROL_KEYS = {
    "CRLF header": BEARER_KEY + "\r\nX-Injected: 1", "smuggled request": BEARER_KEY + "\r\n\r\nGET /smuggled HTTP/1.1",
    "LF": WRITE_KEY + "\nmore", "NUL": WRITE_KEY[:6] + "\x00" + WRITE_KEY[6:], "tab": WRITE_KEY[:6] + "\t" + WRITE_KEY[6:],
    "ESC": WRITE_KEY + "\x1b[2J", "NEL": WRITE_KEY[:6] + "\x85" + WRITE_KEY[6:], "DEL": WRITE_KEY[:6] + "\x7f" + WRITE_KEY[6:],
}


# An environment variable cannot hold NUL (the operating system ends it there): that case is
# the code's alone.
@pytest.mark.parametrize(("key", "source"), [
    pytest.param(key, source, id=f"{name}-{source}") for name, key in _CONTROL_KEYS.items()
    for source in ("code", "environment") if not (source == "environment" and "\x00" in key)
])
def test_a_key_with_a_control_character_is_refused_at_configuration_unshown(
    key: str, source: str, server: RawServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_part = key.split("\r")[0].split("\n")[0][:12]
    if source == "environment":
        # A bad environment variable never stops the application: one warning naming it, no key.
        monkeypatch.setenv("CDP_WRITE_KEY", key)
        client = cdp_logging.Analytics(host=server.url, max_retries=0)
        try:
            client.track(user_id="u1", event="E")
            client.flush(timeout=5)
        finally:
            client.close(timeout=1)
        [warning] = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
        assert warning.startswith("cdp-logging: CDP_WRITE_KEY holds a control character") and "sending nothing" in warning
        assert client.enable is False
        texts = [caplog.text, repr(client)]
    else:
        client = None
        with pytest.raises(ValueError, match="option 'write_key' .* holds a control character") as caught:
            client = cdp_logging.Analytics(key, host=server.url, max_retries=0)
            # Had it been accepted: what went on the wire.
            client.track(user_id="u1", event="E")
            client.flush(timeout=5)
        if client is not None:
            client.close(timeout=1)
        texts = [*texts_reachable_from(caught.value, []), caplog.text]
    for text in texts:
        assert secret_part not in text
    assert server.requests == []


# -- the host ----------------------------------------------------------------------------------


def test_a_non_latin_1_host_is_idna_encoded_and_works_on_the_lean_path(server: RawServer) -> None:
    # Full-width letters: UTS 46 maps them to "localhost", as a browser (and requests) would.
    port = server.url.rpartition(":")[2]
    client = cdp_logging.Analytics(WRITE_KEY, host=f"http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:{port}",
                                   max_retries=0, timeout=5.0)
    try:
        assert client.host == f"http://localhost:{port}"
        client.track(user_id="u1", event="E")
        assert client.flush(timeout=10) is True
        [(head, _)] = server.requests
        assert f"Host: localhost:{port}".encode() in head
    finally:
        client.close(timeout=5)


def test_a_host_name_idna_refuses_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="internationalised domain name"):
        cdp_logging.Analytics(WRITE_KEY, host="https://bad\u200d\u0301name.example")


@pytest.mark.parametrize(("path", "sent"), [("/my api", b"/my%20api/v1/batch"), ("/caf\u00e9", b"/caf%C3%A9/v1/batch"),
                                           ("/a%20b/", b"/a%20b/v1/batch")])
def test_the_host_path_is_percent_encoded_into_a_well_formed_request_line(
    path: str, sent: bytes, server: RawServer
) -> None:
    client = cdp_logging.Analytics(WRITE_KEY, host=server.url + path, max_retries=0, timeout=5.0)
    try:
        client.track(user_id="u1", event="E")
        assert client.flush(timeout=10) is True
        [(head, _)] = server.requests
        assert head.split(b"\r\n")[0] == b"POST " + sent + b" HTTP/1.1"
    finally:
        client.close(timeout=5)


@pytest.mark.parametrize("host", [
    "http://192.0.2.1:8000\\@127.0.0.1:8000",  # local to urllib.parse, 192.0.2.1 to urllib3
    "http://user:PASSWORD@127.0.0.1:8000",
    "https://cdp.example.test/path?query",
    "https://cdp.example.test/path#fragment",
    "https://cdp.example.test:99999",
    "https://cdp example.test",
    "https://cdp.example.test\r\nX: y",
])
def test_a_host_the_parsers_could_read_two_ways_is_refused_without_its_password(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ValueError, match="option 'host'") as caught:
        cdp_logging.Analytics(WRITE_KEY, host=host)
    assert "PASSWORD" not in str(caught.value) and "PASSWORD" not in caplog.text
    assert "192.0.2.1:8000\\" not in caplog.text  # no "plain http" warning naming a local host


# -- scrubbed everywhere -----------------------------------------------------------------------


def test_a_proxy_url_password_is_in_no_error_or_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, "http://user:PASSWORD@127.0.0.1:99999")  # a port typo
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = cdp_logging.Analytics(WRITE_KEY, host="https://cdp.example.test", max_retries=0, timeout=2.0)
    try:
        client.track(user_id="u1", event="E")
        assert client.flush(timeout=10) is False
    finally:
        client.close(timeout=2)
    assert "127.0.0.1:99999" in caplog.text  # the error says which proxy
    assert "PASSWORD" not in caplog.text
    errors = Errors()
    client = cdp_logging.Analytics(WRITE_KEY, host="https://cdp.example.test", max_retries=0, timeout=2.0,
                                   error_handler=errors)
    try:
        client.track(user_id="u1", event="E")
        client.flush(timeout=10)
    finally:
        client.close(timeout=2)
    [error] = errors.errors
    texts = list(texts_reachable_from(error))
    assert len(texts) > 5
    assert not [text for text in texts if "PASSWORD" in text]


@pytest.mark.parametrize("key", [WRITE_KEY, BEARER_KEY], ids=["Basic", "Bearer"])
@pytest.mark.parametrize("route", ["lean", "requests"])
def test_an_error_page_echoing_the_request_head_is_quoted_without_the_key(
    key: str, route: str, server: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def echo(head: bytes, body: bytes) -> bytes:
        page = b"<h1>Bad request</h1><pre>" + head + b"</pre>"
        return b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%b" % (
            len(page), page)

    server.answer = echo
    host = server.url
    if route == "requests":
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, server.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        host = "http://cdp.example.test"
    errors = Errors()
    client = cdp_logging.Analytics(key, host=host, max_retries=0, timeout=5.0, error_handler=errors)
    try:
        client.track(user_id="u1", event="E")
        assert client.flush(timeout=10) is False
    finally:
        client.close(timeout=5)
    [error] = errors.errors
    assert error.status == 400 and "Authorization" in str(error) and "[write key]" in str(error)
    for text in texts_reachable_from(error):
        for form in _forms(key):
            assert form not in text, text


def test_a_transport_made_directly_checks_its_key_and_host_too() -> None:
    from cdp_logging.delivery.transport import HTTPTransport

    with pytest.raises(ValueError, match="control character"):
        HTTPTransport("https://cdp.example.test", BEARER_KEY + "\r\nX: y")
    with pytest.raises(ValueError, match="user name or password"):
        HTTPTransport("https://user:PASSWORD@cdp.example.test", WRITE_KEY)
    assert HTTPTransport("https://B\u00fccher.example/", WRITE_KEY).host == "https://xn--bcher-kva.example"
