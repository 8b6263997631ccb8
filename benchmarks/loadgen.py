"""A deliberately cheap HTTP load generator, to measure the benchmark server's own capacity.

Each connection is a thread with a raw keep-alive socket that sends one pre-built request
(head and body encoded once) and reads the reply, in a loop, for a fixed time. Almost all of
its time is spent in system calls, so it leaves the server as much CPU as two cores allow.

Run: ``python -m benchmarks.loadgen --port P --seconds S --connections C --batch N``; prints
one JSON line ``{"requests": ..., "errors": ...}``.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import threading
import time

from .common import WRITE_KEY, sample_batch_body


def build_request(port: int, body: bytes) -> bytes:
    """One complete ``POST /v1/batch`` request, as bytes."""
    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    head = (
        "POST /v1/batch HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Authorization: Basic {auth}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _read_response(sock: socket.socket, buffer: bytearray) -> int:
    """Read one response off ``sock``; returns its status. Leftover bytes stay in buffer."""
    while True:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    head = bytes(buffer[:head_end]).decode("latin-1").lower()
    status = int(head.split(" ", 2)[1])
    length = 0
    for line in head.split("\r\n")[1:]:
        if line.startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    end = head_end + 4 + length
    while len(buffer) < end:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    del buffer[:end]
    return status


def _connection_loop(port: int, request: bytes, deadline: float, totals: list[int],
                     lock: threading.Lock) -> None:
    requests = errors = 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = bytearray()
            while time.monotonic() < deadline:
                sock.sendall(request)
                if _read_response(sock, buffer) == 200:
                    requests += 1
                else:
                    errors += 1
    except OSError:
        errors += 1
    with lock:
        totals[0] += requests
        totals[1] += errors


def run_load(port: int, seconds: float, connections: int, batch: int) -> dict[str, int]:
    """Post the same batch over ``connections`` sockets for ``seconds``; count answers."""
    request = build_request(port, sample_batch_body(batch))
    deadline = time.monotonic() + seconds
    totals = [0, 0]
    lock = threading.Lock()
    threads = [threading.Thread(target=_connection_loop, args=(port, request, deadline, totals, lock),
                                daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    return {"requests": totals[0], "errors": totals[1], "events": totals[0] * batch}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="load generator for benchmarks.server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args(argv)
    print(json.dumps(run_load(args.port, args.seconds, args.connections, args.batch)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
