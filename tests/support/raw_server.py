"""A raw HTTP/1.1 socket server on 127.0.0.1 (plain or TLS) that answers with whatever bytes a
test chooses, or lets the test write to the socket itself: for the lean connection's tests
and the hostile-server ones. And a self-signed certificate for it, made with openssl."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from collections.abc import Callable

import pytest

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"success\":true}"

#: Writes an answer (or misbehaves) on the socket itself; ``stop`` is set when the server stops.
Behaviour = Callable[[socket.socket, threading.Event], None]
#: Given the request head and body: the bytes to answer with, a Behaviour, or None to close
#: without answering.
Answerer = Callable[[bytes, bytes], "bytes | Behaviour | None"]


class RawServer:
    """A tiny HTTP/1.1 server on 127.0.0.1 that counts connections and requests and answers
    with whatever the test chooses (``answer``), each request in turn."""

    def __init__(self, answer: Answerer = lambda head, body: OK,
                 tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        #: The connection (counting from 1) each request came on.
        self.request_connections: list[int] = []
        self.close_after_each = False
        self.stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._open: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def first_then_ok(self, first: bytes | Behaviour) -> None:
        """Answer the next request with ``first``, every later one with OK."""
        answers = [first]
        self.answer = lambda head, body: answers.pop() if answers else OK

    def close_idle_connections(self) -> None:
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def stop(self) -> None:
        self.stopped.set()
        self.close_idle_connections()
        with contextlib.suppress(OSError):
            # Closing alone leaves accept() blocked, and its thread alive for the whole session.
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(timeout=10)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock, self.connections), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            if self.tls is not None:
                sock.settimeout(10)
                sock = self.tls.wrap_socket(sock, server_side=True)
                sock.settimeout(None)
        except (OSError, ssl.SSLError):
            sock.close()
            return
        self._open.append(sock)
        buffer = b""
        with contextlib.suppress(OSError), sock:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)  # CONNECT has none
                while len(buffer) < length:
                    buffer += sock.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                self.requests.append((head, body))
                self.request_connections.append(number)
                reply = self.answer(head, body)
                if reply is None:
                    return
                if callable(reply):
                    reply(sock, self.stopped)
                    return
                sock.sendall(reply)
                if self.close_after_each:
                    return


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with the openssl command
    (the test is skipped without it)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = folder / "cert.pem", folder / "key.pem"
    result = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {result.stderr[-300:]}")
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context
