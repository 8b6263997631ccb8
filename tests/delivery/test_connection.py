"""cdp_logging.delivery.connection: the kept-alive HTTP/1.1 connection HTTPTransport sends through,
and when HTTPTransport goes through requests instead."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from collections.abc import Callable, Iterator

import pytest
import requests

from cdp_logging import ProtocolError, ReadTimeout, TLSError
from cdp_logging.delivery.transport import HTTPTransport, TransportError
from support.helpers import closed_by_peer, wait_until
from support.raw_server import OK, RawServer, make_certificate, server_context

BODY = b'{"batch":[],"sentAt":"2024-05-01T00:00:00.000Z"}'


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.stop()


@pytest.fixture
def transport_for() -> Iterator[Callable[..., HTTPTransport]]:
    made: list[HTTPTransport] = []

    def make(url: str, **options: object) -> HTTPTransport:
        transport = HTTPTransport(url, "key", **{"timeout": 5.0, **options})  # type: ignore[arg-type]
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


def test_batches_go_one_after_another_on_one_kept_alive_connection(
    raw_server: RawServer, transport_for: Callable[..., HTTPTransport]
) -> None:
    transport = transport_for(raw_server.url)
    statuses = [transport.post("/v1/batch", BODY).status for _ in range(5)]
    assert statuses == [200] * 5
    assert raw_server.connections == 1
    head, body = raw_server.requests[0]
    assert head.startswith(b"POST /v1/batch HTTP/1.1\r\n") and body == BODY
    assert b"\r\nAuthorization: Basic a2V5Og==" in head  # "key:" as the Basic auth user


def test_a_connection_the_server_closed_while_idle_is_replaced_without_losing_the_batch(
    raw_server: RawServer, transport_for: Callable[..., HTTPTransport]
) -> None:
    transport = transport_for(raw_server.url)
    assert transport.post("/v1/batch", BODY).status == 200
    raw_server.close_idle_connections()
    # The server's close has reached the kept-alive socket: it is now readable (at its end).
    wait_until(lambda: closed_by_peer(raw_server.port), message="the server's close to reach the idle connection")
    assert transport.post("/v1/batch", BODY).status == 200
    assert raw_server.connections == 2 and len(raw_server.requests) == 2


def test_a_server_that_closes_after_each_answer_gets_a_new_connection_each_time(
    raw_server: RawServer, transport_for: Callable[..., HTTPTransport]
) -> None:
    raw_server.close_after_each = True
    raw_server.answer = lambda head, body: b"HTTP/1.0 200 OK\r\n\r\n{\"success\":true}"
    transport = transport_for(raw_server.url)
    replies = [transport.post("/v1/batch", BODY) for _ in range(3)]
    assert [(r.status, r.text) for r in replies] == [(200, '{"success":true}')] * 3
    assert raw_server.connections == 3


def test_chunked_answers_and_interim_answers_are_read_whole(
    raw_server: RawServer, transport_for: Callable[..., HTTPTransport]
) -> None:
    raw_server.answer = lambda head, body: (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nRetry-After: 2\r\n\r\n"
        b"4\r\nslow\r\n5;x=1\r\n down\r\n0\r\n\r\n"
    )
    transport = transport_for(raw_server.url)
    first = transport.post("/v1/batch", BODY)
    second = transport.post("/v1/batch", BODY)
    assert (first.status, first.text, first.headers["retry-after"]) == (503, "slow down", "2")
    assert second.status == 503 and raw_server.connections == 1


def test_no_answer_is_a_transport_error_caused_by_the_libraries_own_protocol_error(
    raw_server: RawServer, transport_for: Callable[..., HTTPTransport]
) -> None:
    raw_server.answer = lambda head, body: None
    transport = transport_for(raw_server.url)
    with pytest.raises(TransportError) as caught:
        transport.post("/v1/batch", BODY)
    # The lean connection raises the library's own errors, not requests' types.
    assert isinstance(caught.value.cause, ProtocolError)
    assert not isinstance(caught.value.cause, requests.RequestException)
    assert str(caught.value).startswith("ProtocolError: bad answer from 127.0.0.1:")


def test_a_slow_answer_is_a_timeout(raw_server: RawServer, transport_for: Callable[..., HTTPTransport]) -> None:
    release = threading.Event()
    raw_server.answer = lambda head, body: release.wait(10) and OK
    transport = transport_for(raw_server.url, timeout=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(TransportError) as caught:
            transport.post("/v1/batch", BODY)
    finally:
        release.set()
    assert isinstance(caught.value.cause, ReadTimeout)
    assert not isinstance(caught.value.cause, requests.RequestException)
    assert time.monotonic() - started < 3


def test_a_proxy_in_the_environment_sends_through_requests(
    raw_server: RawServer, transport_for: Callable[..., HTTPTransport], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The "proxy" is the server itself: a proxied request names the whole URL in its first line.
    monkeypatch.setenv("HTTP_PROXY", raw_server.url)
    monkeypatch.setenv("http_proxy", raw_server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    transport = transport_for("http://cdp.example.test")
    assert transport.post("/v1/batch", BODY).status == 200
    head, _ = raw_server.requests[0]
    assert head.startswith(b"POST http://cdp.example.test/v1/batch HTTP/1.1")


def test_while_requests_is_patched_by_a_test_library_batches_go_through_it(
    raw_server: RawServer, transport_for: Callable[..., HTTPTransport],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A user's own tests may patch requests (the `responses` library does): then their patch,
    # not the lean connection, must see the batches.
    transport = transport_for(raw_server.url)
    fake = requests.Response()
    fake.status_code = 202
    sent: list[object] = []

    def patched_send(adapter: object, request: object, **kwargs: object) -> requests.Response:
        sent.append(request)
        return fake

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", patched_send)
    assert transport.post("/v1/batch", BODY).status == 202
    monkeypatch.undo()
    assert sent and raw_server.requests == []
    assert transport.post("/v1/batch", BODY).status == 200


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[RawServer]:
    server = RawServer(tls=server_context(certificate))
    yield server
    server.stop()


def test_tls_certificates_are_verified(
    tls_server: RawServer, transport_for: Callable[..., HTTPTransport], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(TransportError) as caught:
        transport_for(tls_server.url).post("/v1/batch", BODY)
    assert isinstance(caught.value.cause, TLSError) and "certificate not trusted" in str(caught.value)
    assert not isinstance(caught.value.cause, requests.RequestException)
    assert tls_server.requests == []


def test_tls_trusts_the_ca_bundle_requests_would_use(
    tls_server: RawServer, transport_for: Callable[..., HTTPTransport], monkeypatch: pytest.MonkeyPatch,
    certificate: tuple[Path, Path],
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    transport = transport_for(tls_server.url)
    assert [transport.post("/v1/batch", BODY).status for _ in range(3)] == [200] * 3
    assert tls_server.connections == 1 and tls_server.requests[0][1] == BODY
