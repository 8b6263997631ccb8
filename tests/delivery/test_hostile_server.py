"""The HTTP path against servers that misbehave, on purpose or not: raw and TLS sockets on
127.0.0.1 that trickle, never end, announce absurd lengths, bomb, redirect or speak another
protocol. For each: the worker is free within the timeout plus a small margin, memory stays
bounded, the batch is failed and reported (never lost in silence), and the next batch goes
on a new connection."""

from __future__ import annotations

import base64
import gzip
import logging
import logging.config
import socket
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import pytest
import requests

import cdp_logging
from cdp_logging import compat
from cdp_logging.config import handler_from_environment, read_environment
from cdp_logging.delivery.connection import describe_failure
from cdp_logging.delivery.transport import RESPONSE_TEXT_LIMIT, HTTPTransport, Response, TransportError
from support.helpers import WRITE_KEY, wait_until
from support.leaks import describe_object as _describe_object, texts_reachable_from as _texts_reachable_from
from support.raw_server import OK, Behaviour, RawServer, make_certificate, server_context

#: The client's timeout in these tests, and what the worker may take beyond it on a loaded
#: machine (connecting, reporting, the thread being scheduled).
TIMEOUT = 1.0
MARGIN = 1.5
#: The most the Python heap may grow while a hostile answer is read.
MEMORY_BOUND = 4 * 1024 * 1024
BODY = b'{"batch":[],"sentAt":"2024-05-01T00:00:00.000Z"}'


def trickle(data: bytes, pause: float = 0.05) -> Behaviour:
    """Send ``data`` one byte at a time, then keep the connection open."""
    def behave(sock: socket.socket, stop: threading.Event) -> None:
        for byte in data:
            if stop.wait(pause):
                return
            sock.sendall(bytes([byte]))
        stop.wait(30)
    return behave


def endless(head: bytes, chunk: bytes) -> Behaviour:
    """Send ``head``, then ``chunk`` over and over until the client goes."""
    def behave(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(head)
        while not stop.is_set():
            sock.sendall(chunk)
    return behave


def then_wait(data: bytes) -> Behaviour:
    """Send ``data`` and keep the connection open without a word more."""
    def behave(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(data)
        stop.wait(30)
    return behave


def then_close(data: bytes) -> Behaviour:
    def behave(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(data)
    return behave


_BOMB = gzip.compress(b"\0" * 50_000_000, compresslevel=9)  # 50 MB inflated, about 50 KB sent

HOSTILE: dict[str, Behaviour] = {
    "trickling head": trickle(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 500),
    "trickling body": trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + b"a" * 500),
    "endless 1xx": endless(b"", b"HTTP/1.1 100 Continue\r\n\r\n"),
    "endless 103": endless(b"", b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"),
    "slow endless 1xx": trickle(b"HTTP/1.1 100 Continue\r\n\r\n" * 100, pause=0.01),
    "endless body": endless(b"HTTP/1.1 503 Busy\r\n\r\n", b"x" * 65536),
    "endless header": endless(b"HTTP/1.1 200 OK\r\n", b"X-Pad: " + b"p" * 1000 + b"\r\n"),
    "absurd length": endless(b"HTTP/1.1 503 Busy\r\nContent-Length: 100000000000\r\n\r\n", b"x" * 65536),
    "absurd length, then silence": then_wait(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\nok"),
    "absurd chunk size": endless(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFF\r\n",
                                 b"x" * 65536),
    "chunk size overflow": then_wait(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     b"FFFFFFFFFFFFFFFFFFFFFF\r\nx"),
    "gzip bomb": then_close(b"HTTP/1.1 500 Oops\r\nContent-Encoding: gzip\r\nContent-Type: text/plain\r\n"
                            b"Content-Length: %d\r\n\r\n%b" % (len(_BOMB), _BOMB)),
    "negative length": then_wait(b"HTTP/1.1 200 OK\r\nContent-Length: -16\r\n\r\n" + OK),
    "conflicting lengths": then_wait(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\nok"),
    "length 2_00": then_wait(b"HTTP/1.1 200 OK\r\nContent-Length: 2_00\r\n\r\nok"),
    "length 0_2": then_wait(b"HTTP/1.1 200 OK\r\nContent-Length: 0_2\r\n\r\nok"),
    "length and chunked": then_wait(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    b"2\r\nok\r\n0\r\n\r\n"),
    "redirect to another host": then_close(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://elsewhere.test/v1/batch\r\n"
                                          b"Content-Length: 0\r\n\r\n"),
    "HTTP/2 preface": then_wait(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64"
                                b"\x00\x04\x00\x01\x00\x00\x00\x05\x00\xff\xff\xff"),
    "switching protocols": then_wait(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"),
    "close mid-body": then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"succ"),
    "close mid-head": then_close(b"HTTP/1.1 200 OK\r\nContent-Le"),
    "not HTTP": then_wait(b"SSH-2.0-OpenSSH_9.6\r\n"),
    "odd charset": then_close(b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain; charset=punycode\r\n"
                              b"Content-Length: 6\r\n\r\n\xff-\xfe\x80zz"),
}


class Collected:
    """What error_handler and the callbacks received."""

    def __init__(self) -> None:
        self.errors: list[cdp_logging.CDPError] = []
        self.callbacks: list[Any] = []

    def error_handler(self, error: cdp_logging.CDPError) -> None:
        self.errors.append(error)

    def callback(self, error: Any, batch: Any) -> None:
        self.callbacks.append(error)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(params=["plain", "tls"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[RawServer]:
    if request.param == "tls":
        certificate = request.getfixturevalue("certificate")
        # The library's own way to trust a CA, as requests does: verification stays on.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
        server = RawServer(tls=server_context(certificate))
    else:
        server = RawServer()
    yield server
    server.stop()


@pytest.fixture
def make_client() -> Iterator[Callable[..., cdp_logging.Analytics]]:
    clients: list[cdp_logging.Analytics] = []

    def make(host: str, **options: Any) -> cdp_logging.Analytics:
        options = {"timeout": TIMEOUT, "max_retries": 0, "flush_interval": 60, **options}
        client = cdp_logging.Analytics(WRITE_KEY, host=host, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close_and_flush(timeout=1.0)


@pytest.mark.parametrize("behaviour", list(HOSTILE), ids=list(HOSTILE))
def test_a_hostile_answer_frees_the_worker_in_time_in_bounded_memory_and_fails_the_batch_loudly(
    behaviour: str, server: RawServer, make_client: Callable[..., cdp_logging.Analytics]
) -> None:
    server.first_then_ok(HOSTILE[behaviour])
    collected = Collected()
    client = make_client(server.url, error_handler=collected.error_handler)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        started = time.monotonic()
        message_id = client.track(user_id="u1", event="Hostile", callback=collected.callback)
        assert client.flush(timeout=TIMEOUT + 10) is False
        took = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert took < TIMEOUT + MARGIN, f"the worker was held {took:.2f}s"
    assert peak < MEMORY_BOUND, f"reading the answer took {peak} bytes"
    [error] = collected.errors
    assert isinstance(error, cdp_logging.DeliveryError) and error.message_ids == [message_id]
    assert collected.callbacks == [error]
    # Sent in full, then a broken or missing answer: "unconfirmed" (the API may have it).
    stats = client.stats()
    assert stats["failed"] + stats["unconfirmed"] == 1
    assert "127.0.0.1:" in str(error) or error.status is not None
    # The next batch goes on a new connection, and is delivered.
    client.track(user_id="u1", event="After")
    assert client.flush(timeout=TIMEOUT + 10) is True
    assert server.request_connections[-1] == 2 and server.connections == 2
    assert client.close(timeout=5) is True


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFF\r\n",
], ids=["no length", "absurd length", "absurd chunk"])
def test_an_acceptance_with_an_endless_body_is_read_no_further_than_the_bound(
    head: bytes, make_client: Callable[..., cdp_logging.Analytics]
) -> None:
    server = RawServer()
    server.first_then_ok(endless(head, b"x" * 65536))
    try:
        client = make_client(server.url)
        tracemalloc.start()
        try:
            started = time.monotonic()
            client.track(user_id="u1", event="E")
            assert client.flush(timeout=10) is True
            took = time.monotonic() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert took < TIMEOUT + MARGIN and peak < MEMORY_BOUND
        client.track(user_id="u1", event="E2")
        assert client.flush(timeout=10) is True
        assert server.request_connections == [1, 2]
    finally:
        server.stop()


@pytest.mark.parametrize("late", [False, True], ids=["with the answer", "after it"])
def test_bytes_past_an_answer_never_pass_for_the_next_answer(late: bool) -> None:
    unsolicited = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    sent = threading.Event()

    def answer_twice(sock: socket.socket, stop: threading.Event) -> None:
        if late:
            sock.sendall(OK)
            stop.wait(0.05)
            sock.sendall(unsolicited)  # on loopback, in the client's socket once this returns
        else:
            sock.sendall(OK + unsolicited)
        sent.set()
        stop.wait(30)

    server = RawServer()
    server.answer = lambda head, body: answer_twice if len(server.requests) == 1 else b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
    transport = HTTPTransport(server.url, WRITE_KEY, timeout=5.0)
    try:
        assert transport.post("/v1/batch", BODY).status == 200
        if late:
            wait_until(sent.is_set, message="the server to send the unsolicited bytes")
        assert transport.post("/v1/batch", BODY).status == 202
        assert server.request_connections == [1, 2]
    finally:
        transport.close()
        server.stop()


def test_a_redirect_is_reported_with_its_status_and_location_and_not_followed(
    make_client: Callable[..., cdp_logging.Analytics]
) -> None:
    server = RawServer()
    elsewhere = RawServer()
    try:
        server.answer = lambda head, body: (
            b"HTTP/1.1 308 Permanent Redirect\r\nLocation: %b/v1/batch\r\nContent-Length: 0\r\n\r\n"
            % elsewhere.url.encode())
        collected = Collected()
        client = make_client(server.url, error_handler=collected.error_handler)
        client.track(user_id="u1", event="E")
        assert client.flush(timeout=10) is False
        [error] = collected.errors
        assert error.status == 308 and f"{elsewhere.url}/v1/batch" in str(error)
        assert "not followed" in str(error)
        assert elsewhere.requests == [] and len(server.requests) == 1
    finally:
        server.stop()
        elsewhere.stop()


def _use_proxy(monkeypatch: pytest.MonkeyPatch, url: str, *schemes: str) -> None:
    """Requests for ``schemes`` go through the proxy at ``url`` (for every host)."""
    for scheme in schemes:
        for name in (f"{scheme.upper()}_PROXY", f"{scheme}_proxy"):
            monkeypatch.setenv(name, url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_the_requests_path_follows_no_redirect_either(
    status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Through a proxy (the server itself), batches go through requests.
    proxy = RawServer()
    elsewhere = RawServer()
    try:
        proxy.answer = lambda head, body: (
            b"HTTP/1.1 %d Moved\r\nLocation: %b/v1/batch\r\nContent-Length: 0\r\n\r\n"
            % (status, elsewhere.url.encode()))
        _use_proxy(monkeypatch, proxy.url, "http")
        transport = HTTPTransport("http://cdp.example.test", WRITE_KEY, timeout=5.0)
        try:
            response = transport.post("/v1/batch", BODY)
        finally:
            transport.close()
        assert response.status == status
        assert len(proxy.requests) == 1 and elsewhere.requests == []
        assert response.headers["location"] == f"{elsewhere.url}/v1/batch"
    finally:
        proxy.stop()
        elsewhere.stop()


def test_the_requests_path_reads_a_bounded_answer_and_asks_for_no_compression(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = RawServer()
    proxy.first_then_ok(HOSTILE["endless body"])
    try:
        _use_proxy(monkeypatch, proxy.url, "http")
        transport = HTTPTransport("http://cdp.example.test", WRITE_KEY, timeout=TIMEOUT)
        try:
            started = time.monotonic()
            answer = transport.post("/v1/batch", BODY)
            assert (answer.status, len(answer.text)) == (503, RESPONSE_TEXT_LIMIT)
            assert time.monotonic() - started < TIMEOUT + MARGIN
            assert transport.post("/v1/batch", BODY).status == 200
        finally:
            transport.close()
        assert b"\r\nAccept-Encoding: identity" in proxy.requests[0][0]
        assert proxy.connections == 2
    finally:
        proxy.stop()


@pytest.mark.parametrize("behaviour", ["trickling head", "trickling body", "slow endless 1xx", "absurd length, then silence"])
def test_the_requests_path_is_bounded_by_one_deadline_too(behaviour: str, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = RawServer()
    proxy.first_then_ok(HOSTILE[behaviour])
    try:
        _use_proxy(monkeypatch, proxy.url, "http")
        transport = HTTPTransport("http://cdp.example.test", WRITE_KEY, timeout=TIMEOUT)
        # The proxy is named when urllib3 was still reaching it as its socket was shut.
        _fails_within_the_timeout_then_sends(transport, r"no complete answer from (the proxy 127\.0\.0\.1:\d+ "
                                             r"\(on the way to cdp\.example\.test:80\)|cdp\.example\.test:80) "
                                             "within the timeout")
        assert proxy.request_connections == [1, 2]
    finally:
        proxy.stop()


def test_the_requests_path_ends_a_trickling_answer_at_its_deadline_over_tls_too(server: RawServer) -> None:
    server.first_then_ok(HOSTILE["trickling head"])
    transport = HTTPTransport(server.url, WRITE_KEY, timeout=TIMEOUT)
    transport._route = False  # through requests, as with a proxy: its connections are watched
    _fails_within_the_timeout_then_sends(transport, r"no complete answer from 127\.0\.0\.1:\d+ within the timeout")
    assert server.request_connections == [1, 2]


def _fails_within_the_timeout_then_sends(transport: HTTPTransport, error: str) -> None:
    """The first batch fails with ``error`` (a regex) within the timeout; the next is sent."""
    try:
        started = time.monotonic()
        with pytest.raises(TransportError, match=error) as caught:
            transport.post("/v1/batch", BODY)
        assert time.monotonic() - started < TIMEOUT + MARGIN
        # On either path (the lean connection, requests), the library's own error.
        assert isinstance(caught.value.cause, cdp_logging.ReadTimeout), repr(caught.value.cause)
        assert transport.post("/v1/batch", BODY).status == 200
    finally:
        transport.close()


def test_a_timeout_pair_bounds_connecting_and_the_rest_each(
    make_client: Callable[..., cdp_logging.Analytics]
) -> None:
    server = RawServer()
    server.first_then_ok(HOSTILE["trickling body"])
    try:
        transport = HTTPTransport(server.url, WRITE_KEY, timeout=(0.5, 0.8))
        started = time.monotonic()
        with pytest.raises(TransportError, match="no complete answer from 127.0.0.1:"):
            transport.post("/v1/batch", BODY)
        assert time.monotonic() - started < 0.5 + 0.8 + MARGIN
        assert transport.post("/v1/batch", BODY).status == 200
        transport.close()
        client = make_client(server.url, timeout=(0.5, 0.8))
        client.track(user_id="u1", event="E")
        assert client.flush(timeout=10) is True
    finally:
        server.stop()


# -- errors that say what happened, and where -------------------------------------------------


def test_a_refused_connection_names_the_host_and_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    transport = HTTPTransport(f"http://127.0.0.1:{port}", WRITE_KEY, timeout=TIMEOUT)
    with pytest.raises(TransportError) as caught:
        transport.post("/v1/batch", BODY)
    assert str(caught.value) == f"ConnectError: could not connect to 127.0.0.1:{port}: connection refused"
    assert isinstance(caught.value.cause, cdp_logging.ConnectError)


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        return int(placeholder.getsockname()[1])


@pytest.mark.parametrize("host", ["https://cdp.example.test", "http://cdp.example.test:8080"])
def test_a_refused_proxy_is_named_as_the_proxy(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _closed_port()
    _use_proxy(monkeypatch, f"http://user:pass@127.0.0.1:{port}", "https", "http")
    transport = HTTPTransport(host, WRITE_KEY, timeout=TIMEOUT)
    try:
        with pytest.raises(TransportError) as caught:
            transport.post("/v1/batch", BODY)
    finally:
        transport.close()
    where = host.split("//")[1] + ("" if host.startswith("http:") else ":443")
    assert str(caught.value) == (f"ProxyError: could not connect to the proxy 127.0.0.1:{port} "
                                 f"(on the way to {where}): connection refused")
    # Through requests too, the cause is the library's own error, requests' behind it.
    cause = caught.value.cause
    assert isinstance(cause, cdp_logging.ConnectError) and str(cause) == str(caught.value).split(": ", 1)[1]
    assert isinstance(cause.__cause__, requests.exceptions.ProxyError)


def test_a_proxy_that_refuses_the_tunnel_is_named_with_its_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = RawServer(lambda head, body: b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
    where = proxy.url.split("//")[1]
    try:
        _use_proxy(monkeypatch, proxy.url, "https")
        transport = HTTPTransport("https://cdp.example.test", WRITE_KEY, timeout=TIMEOUT)
        try:
            with pytest.raises(TransportError) as caught:
                transport.post("/v1/batch", BODY)
        finally:
            transport.close()
        assert proxy.requests[0][0].startswith(b"CONNECT cdp.example.test:443 ")
    finally:
        proxy.stop()
    assert str(caught.value) == (
        f"ProxyError: connection to the proxy {where} (on the way to cdp.example.test:443) "
        "failed: Tunnel connection failed: 407 Proxy Authentication Required")


def test_the_compat_clients_refused_proxy_is_named_in_its_error() -> None:
    port = _closed_port()
    errors: list[cdp_logging.CDPError] = []
    client = compat.Client(WRITE_KEY, host="https://cdp.example.test", max_retries=0, sync_mode=True,
                           proxies={"https": f"127.0.0.1:{port}"}, on_error=lambda error, batch: errors.append(error))
    try:
        success, _ = client.track("u1", "E")
    finally:
        client.shutdown()
    assert success is False
    [error] = errors
    assert f"could not connect to the proxy 127.0.0.1:{port} (on the way to cdp.example.test:443)" in str(error)


def test_tls_to_a_plain_http_server_says_so() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def answer_in_plain_http() -> None:
            sock, _ = listener.accept()
            with sock:
                sock.recv(65536)  # the ClientHello
                sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        threading.Thread(target=answer_in_plain_http, daemon=True).start()
        transport = HTTPTransport(f"https://127.0.0.1:{port}", WRITE_KEY, timeout=TIMEOUT)
        with pytest.raises(TransportError) as caught:
            transport.post("/v1/batch", BODY)
    assert f"TLS handshake with 127.0.0.1:{port} failed (plain HTTP server?)" in str(caught.value)


def test_an_untrusted_certificate_says_so(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    server = RawServer(tls=server_context(certificate))
    try:
        transport = HTTPTransport(server.url, WRITE_KEY, timeout=TIMEOUT)
        with pytest.raises(TransportError, match="certificate not trusted"):
            transport.post("/v1/batch", BODY)
        assert server.requests == []
    finally:
        server.stop()


def test_a_name_that_does_not_resolve_is_told_from_a_refused_connection() -> None:
    # getaddrinfo's own error, as the lean connection and urllib3 both wrap it (resolving a
    # real name would leave the machine).
    unresolved = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    wrapped = requests.ConnectionError(OSError("wrapper"))
    wrapped.__cause__ = unresolved
    for error in (unresolved, wrapped):
        assert describe_failure(error, "cdp.customer.oi:443") == (
            "could not connect to cdp.customer.oi:443: the host name could not be resolved "
            "(Name or service not known)")


# -- no silent loss, whatever a transport does -------------------------------------------------


class BrokenResponse(Response):
    """A Response (it passes ``isinstance``) whose status raises when read."""

    def __init__(self) -> None:  # the dataclass's __init__ would set ``status``
        pass

    @property  # type: ignore[override]
    def status(self) -> int:
        return 1 // 0


class Raising:
    """A custom transport that raises what it is given to raise."""

    def __init__(self, error: BaseException | None = None, returns: Any = None) -> None:
        self.error = error
        self.returns = returns
        self.calls = 0

    def post(self, path: str, body: bytes) -> Response:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.returns  # type: ignore[no-any-return]

    def close(self) -> None:
        pass


@pytest.mark.parametrize("transport", [
    Raising(RuntimeError("the transport broke")),
    Raising(UnicodeDecodeError("punycode", b"\xff", 0, 1, "bad")),
    Raising(returns=None),
], ids=["RuntimeError", "UnicodeDecodeError", "returns None"])
def test_a_custom_transport_that_raises_loses_nothing_in_silence(transport: Raising) -> None:
    collected = Collected()
    client = cdp_logging.Analytics(transport=transport, max_retries=1, initial_backoff=0.01,
                                   max_backoff=0.02, error_handler=collected.error_handler)
    message_id = client.track(user_id="u1", event="E", callback=collected.callback)
    assert client.flush(timeout=10) is False
    [error] = collected.errors
    assert isinstance(error, cdp_logging.DeliveryError)
    assert error.message_ids == [message_id] and error.attempts == 2 and transport.calls == 2
    assert "the transport raised" in str(error) and error.cause is not None
    assert collected.callbacks == [error]
    stats = client.stats()
    assert (stats["failed"], stats["retries"]) == (1, 1)
    client.track(user_id="u1", event="E2")
    assert client.close(timeout=5) is False
    assert client.stats()["failed"] == 2


def test_a_deliver_function_that_raises_fails_its_batch_loudly(caplog: pytest.LogCaptureFixture) -> None:
    collected = Collected()
    # An answer that breaks when read: a fault past the transport, in the library's own handling
    # of the batch; the worker's last line of defence must still fail the batch loudly.
    client = cdp_logging.Analytics(transport=Raising(returns=BrokenResponse()), error_handler=collected.error_handler)
    message_id = client.track(user_id="u1", event="E", callback=collected.callback)
    assert client.flush(timeout=10) is False
    [error] = collected.errors
    assert error.message_ids == [message_id] and "ZeroDivisionError" in str(error)
    assert collected.callbacks == [error] and client.stats()["failed"] == 1


# -- the key stays hidden ----------------------------------------------------------------------


@pytest.mark.parametrize("key", [WRITE_KEY, "pk_us_5e3b9d71c0a4b8f2"], ids=["Basic", "Bearer"])
@pytest.mark.parametrize("how", ["refused", "timeout", "broken answer", "tls", "proxy refused"])
def test_the_key_is_in_no_local_attribute_or_message_of_a_delivery_failure(
    how: str, key: str, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = RawServer()
    url = server.url
    if how == "refused":
        with socket.create_server(("127.0.0.1", 0)) as placeholder:
            url = f"http://127.0.0.1:{placeholder.getsockname()[1]}"
    elif how == "timeout":
        server.answer = lambda head, body: HOSTILE["trickling head"]
    elif how == "broken answer":
        server.answer = lambda head, body: HOSTILE["length 2_00"]
    elif how == "tls":
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
        server.stop()
        server = RawServer(tls=server_context(certificate))
        url = server.url
    else:
        _use_proxy(monkeypatch, "http://127.0.0.1:1", "https")
        url = "https://cdp.example.test"
    collected = Collected()
    client = cdp_logging.Analytics(key, host=url, timeout=TIMEOUT, max_retries=0,
                                   error_handler=collected.error_handler)
    try:
        client.track(user_id="u1", event="E")
        assert client.flush(timeout=10) is False
        [error] = collected.errors
        encoded = base64.b64encode(f"{key}:".encode()).decode()
        texts = list(_texts_reachable_from(error)) + list(_describe_object(client, depth=3))
        assert any("HTTPTransport" in text for text in texts)  # the client's transport was looked into
        assert len(texts) > 5
        for text in texts:
            assert key not in text and encoded not in text, text
    finally:
        client.close(timeout=1)
        server.stop()


def _dict_config(key: str) -> None:
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "handlers": {
        "cdp": {"class": "cdp_logging.CDPHandler", "write_key": key, "max_retries": -1}}})


#: Constructions that fail on a bad option after the key was given.
_BAD_CONSTRUCTIONS: dict[str, Callable[[str], Any]] = {
    "Analytics, bad number": lambda key: cdp_logging.Analytics(key, max_retries=-1),
    "Analytics, bad host": lambda key: cdp_logging.Analytics(key, host="ftp://h"),
    "Analytics, key of bytes": lambda key: cdp_logging.Analytics(key.encode()),
    "HTTPTransport": lambda key: HTTPTransport(None, key),  # type: ignore[arg-type]
    "CDPHandler": lambda key: cdp_logging.CDPHandler(write_key=key, overflow="never"),
    "dictConfig": _dict_config,
    "compat.Client": lambda key: compat.Client(key, thread=0),
    "compat.Client, proxies": lambda key: compat.Client(key, proxies={}, timeout="soon"),
    "environment, bad text": lambda key: handler_from_environment(
        {"CDP_WRITE_KEY": key, "CDP_TIMEOUT": "soon"}),
    "environment, bad value": lambda key: handler_from_environment(
        {"CDP_WRITE_KEY": key, "CDP_MAX_RETRIES": "-1"}),
    "read_environment": lambda key: read_environment({"CDP_WRITE_KEY": key, "CDP_GZIP": "maybe"}),
}


@pytest.mark.parametrize("key", [WRITE_KEY, "pk_eu_5e3b9d71c0a4b8f2"], ids=["Basic", "Bearer"])
@pytest.mark.parametrize("construction", list(_BAD_CONSTRUCTIONS))
def test_the_key_is_in_no_local_of_a_construction_that_fails(construction: str, key: str) -> None:
    with pytest.raises(Exception) as caught:
        _BAD_CONSTRUCTIONS[construction](key)
    frames: list[str] = []
    texts = list(_texts_reachable_from(caught.value, frames))
    # Raised inside cdp_logging (dictConfig re-raises it from its own frame): the library's
    # frames the key passed through are among those whose locals are checked.
    assert frames, "no frame of cdp_logging in the traceback"
    encoded = base64.b64encode(f"{key}:".encode()).decode()
    for text in texts:
        assert key not in text and encoded not in text, text


def test_plain_http_to_another_machine_warns_once_that_the_key_travels_unencrypted(
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cdp_logging")
    for host in ("http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9", "https://cdp.example.test"):
        HTTPTransport(host, WRITE_KEY)
    assert caplog.records == []
    HTTPTransport("http://cdp.example.test", WRITE_KEY)
    [record] = caplog.records
    assert "http://cdp.example.test" in record.getMessage() and "unencrypted" in record.getMessage()
    assert WRITE_KEY not in caplog.text
