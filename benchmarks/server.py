"""A small, fast, CDP-compatible HTTP server for the benchmarks, and a handle to run it.

The server runs in its own process (``python -m benchmarks.server``) so that parsing and
counting batches never competes for the GIL with the client being measured. It is a single
asyncio loop with a minimal HTTP/1.1 parser: ``http.server`` spends most of its time in
``email``-based header parsing and per-connection threads, and on a two-core machine that
made the server, not the client, the bottleneck.

Endpoints:

- ``POST /v1/batch`` (also ``/batch``): the CDP batch call. Gzip bodies are accepted. Events
  are counted per request (``len(body["batch"])``) and their ``messageId`` values kept, so
  duplicates from retries show up. Answers ``{"success": true}`` after the configured delay.
- ``GET /stats``: the counters, as JSON; ``?acks=1`` adds ``acks``, one
  ``[acknowledged at, events, body bytes]`` per request.
- ``POST /reset``: zero the counters.
- ``POST /config``: JSON ``{"delay": seconds, "hang": bool, "status": int}``; ``hang`` holds
  every later batch request unanswered (the worker stays blocked) until the server stops.
- ``GET /wait?events=N&timeout=S``: answers when N events have been acknowledged or after S
  seconds, whichever comes first; a long poll, so waiting costs the client no CPU.

Events count as delivered when their response is written, so a slow server's in-flight
batches are not counted early. Timestamps are ``time.monotonic()``, which on Linux is the
system-wide CLOCK_MONOTONIC and can be compared with the client process's own clock.

The server stops by itself after ``--max-seconds`` or when its parent process goes away, so
an interrupted benchmark never leaves it behind.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable
from urllib.parse import parse_qs

try:
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # the server still works, only slower, without orjson
    _loads = json.loads

#: Request heads larger than this are refused; real clients send well under 1 KB.
MAX_HEAD_BYTES = 64 * 1024
#: Bodies larger than this are refused; the API's own limit is 500 KB per batch.
MAX_BODY_BYTES = 8 * 1024 * 1024
_OK_BODY = b'{"success":true}'
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


@dataclass
class Counters:
    """What the server has seen since the last reset."""

    requests: int = 0
    events: int = 0
    unique_events: int = 0
    events_without_id: int = 0
    body_bytes: int = 0
    wire_bytes: int = 0
    gzip_requests: int = 0
    requests_without_auth: int = 0
    bad_requests: int = 0
    pending_requests: int = 0
    first_ack_at: float | None = None
    last_ack_at: float | None = None
    message_ids: set[str] = field(default_factory=set)
    #: One ``(acknowledged at, events, body bytes)`` per request, for ``GET /stats?acks=1``.
    acks: list[tuple[float, int, int]] = field(default_factory=list)

    def as_dict(self, acks: bool = False) -> dict[str, Any]:
        """The counters as plain JSON-friendly data (without the id set; with the
        per-request log only when ``acks``)."""
        data = {k: v for k, v in self.__dict__.items() if k not in ("message_ids", "acks")}
        if acks:
            data["acks"] = self.acks
        data["now"] = time.monotonic()
        data["body_bytes_per_event"] = self.body_bytes / self.events if self.events else None
        # An event with an id that did not grow the id set repeats an earlier delivery (a retry).
        data["duplicate_events"] = self.events - self.unique_events - self.events_without_id
        return data


@dataclass
class Config:
    """How the server answers batch requests; changed at run time through ``/config``."""

    delay: float = 0.0
    hang: bool = False
    status: int = 200


class State:
    """Counters, configuration and the long-poll waiters, shared by all connections."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.counters = Counters()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def acknowledge(self, events: int, ids: list[Any], body_bytes: int) -> None:
        """Count a batch as delivered, now that its response is being written."""
        c = self.counters
        now = time.monotonic()
        c.acks.append((now, events, body_bytes))
        c.events += events
        c.message_ids.update(i for i in ids if isinstance(i, str))
        c.unique_events = len(c.message_ids)
        c.events_without_id += sum(1 for i in ids if not isinstance(i, str))
        c.first_ack_at = c.first_ack_at or now
        c.last_ack_at = now
        self._wake()

    def add_waiter(self, target: int) -> asyncio.Future[None]:
        """A future that completes once ``target`` events have been acknowledged."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        self._wake()
        return future

    def _wake(self) -> None:
        still_waiting = []
        for target, future in self._waiters:
            if future.done():
                continue
            if self.counters.events >= target:
                future.set_result(None)
            else:
                still_waiting.append((target, future))
        self._waiters = still_waiting


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes
    wire_size: int


class HTTPProtocol(asyncio.Protocol):
    """One keep-alive connection: parse requests in order, answer each before the next.

    Requests on a connection are answered strictly in order; while one is delayed, later
    bytes are only buffered. That is what HTTP/1.1 requires and what keeps a "slow server"
    slow per connection, like the real one behind a slow network.
    """

    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._process()

    def _process(self) -> None:
        while not self.busy and not self.closing:
            try:
                request = self._parse()
            except ValueError as err:
                self.state.counters.bad_requests += 1
                self._respond(400, json.dumps({"success": False, "error": str(err)}).encode(), True)
                return
            if request is None:
                return
            self._dispatch(request)

    def _parse(self) -> Request | None:
        """Take one complete request off the buffer, or None if more bytes are needed."""
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise ValueError("request head too large")
            return None
        lines = bytes(self.buffer[:head_end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            raise ValueError(f"bad request line {lines[0]!r}") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = head_end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parsed = _parse_chunked(self.buffer, start)
            if parsed is None:
                return None
            body, end = parsed
        else:
            length = int(headers.get("content-length", "0") or 0)
            if length > MAX_BODY_BYTES:
                raise ValueError("body too large")
            end = start + length
            if len(self.buffer) < end:
                return None
            body = bytes(self.buffer[start:end])
        del self.buffer[:end]
        return Request(method, target, version, headers, body, end)

    def _dispatch(self, request: Request) -> None:
        path, _, query = request.target.partition("?")
        keep_alive = not (
            request.headers.get("connection", "").lower() == "close"
            or (request.version == "HTTP/1.0"
                and request.headers.get("connection", "").lower() != "keep-alive")
        )
        if request.method == "POST" and path in ("/v1/batch", "/batch"):
            self._batch(request, keep_alive)
        elif request.method == "GET" and path == "/stats":
            acks = parse_qs(query).get("acks") == ["1"]
            self._respond(200, _json(self.state.counters.as_dict(acks)), keep_alive)
        elif request.method == "POST" and path == "/reset":
            self.state.counters = Counters()
            self._respond(200, _json({"success": True}), keep_alive)
        elif request.method == "POST" and path == "/config":
            self._configure(request, keep_alive)
        elif request.method == "GET" and path == "/wait":
            self._wait(parse_qs(query), keep_alive)
        else:
            self._respond(404, _json({"success": False, "error": "not found"}), keep_alive)

    def _batch(self, request: Request, keep_alive: bool) -> None:
        counters = self.state.counters
        counters.requests += 1
        counters.wire_bytes += request.wire_size
        if "authorization" not in request.headers:
            counters.requests_without_auth += 1
        body = request.body
        try:
            if request.headers.get("content-encoding", "").lower() == "gzip":
                counters.gzip_requests += 1
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            items = _loads(body)["batch"]
            if not isinstance(items, list):
                raise TypeError("batch is not a list")
        except (ValueError, TypeError, KeyError, zlib.error) as err:
            counters.bad_requests += 1
            self._respond(400, _json({"success": False, "error": repr(err)}), keep_alive)
            return
        counters.body_bytes += len(body)
        ids = [item.get("messageId") if isinstance(item, dict) else None for item in items]
        config = self.state.config
        if config.hang:
            # Hold the request: the client's worker stays blocked in its POST, so everything
            # the application logs from now on stays queued in the client.
            counters.pending_requests += 1
            self.busy = True
            return
        if config.delay > 0:
            counters.pending_requests += 1
            self.busy = True
            asyncio.get_running_loop().call_later(
                config.delay, self._finish_batch, len(items), ids, len(body), config.status,
                keep_alive)
            return
        self._finish_batch(len(items), ids, len(body), config.status, keep_alive, pending=False)

    def _finish_batch(
        self, events: int, ids: list[Any], body_bytes: int, status: int, keep_alive: bool,
        pending: bool = True,
    ) -> None:
        if pending:
            self.state.counters.pending_requests -= 1
        if self.closing:
            return
        if status == 200:
            self.state.acknowledge(events, ids, body_bytes)
            self._respond(200, _OK_BODY, keep_alive)
        else:
            self._respond(status, _json({"success": False, "error": "configured"}), keep_alive)
        self.busy = False
        self._process()

    def _configure(self, request: Request, keep_alive: bool) -> None:
        try:
            changes = _loads(request.body or b"{}")
            config = self.state.config
            config.delay = float(changes.get("delay", config.delay))
            config.hang = bool(changes.get("hang", config.hang))
            config.status = int(changes.get("status", config.status))
        except (ValueError, TypeError, AttributeError) as err:
            self._respond(400, _json({"success": False, "error": repr(err)}), keep_alive)
            return
        self._respond(200, _json(self.state.config.__dict__), keep_alive)

    def _wait(self, query: dict[str, list[str]], keep_alive: bool) -> None:
        target = int(query.get("events", ["0"])[0])
        timeout = float(query.get("timeout", ["10"])[0])
        self.busy = True
        asyncio.get_running_loop().create_task(self._wait_then_answer(target, timeout, keep_alive))

    async def _wait_then_answer(self, target: int, timeout: float, keep_alive: bool) -> None:
        future = self.state.add_waiter(target)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            pass
        if self.closing:
            return
        self._respond(200, _json(self.state.counters.as_dict()), keep_alive)
        self.busy = False
        self._process()

    def _respond(self, status: int, body: bytes, keep_alive: bool) -> None:
        if self.transport is None:
            return
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        ).encode("latin-1")
        self.transport.write(head + body)
        if not keep_alive:
            self.closing = True
            self.transport.close()


def _parse_chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``start``; None if it is not complete yet."""
    chunks: list[bytes] = []
    pos = start
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", pos)
            if trailer_end < 0:
                return None
            return b"".join(chunks), trailer_end + 2
        if len(buffer) < pos + size + 2:
            return None
        chunks.append(bytes(buffer[pos:pos + size]))
        pos += size + 2


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


async def serve(host: str, port: int, config: Config, max_seconds: float) -> None:
    """Run the server until SIGTERM/SIGINT, ``max_seconds``, or the parent process exits."""
    loop = asyncio.get_running_loop()
    state = State(config)
    server = await loop.create_server(lambda: HTTPProtocol(state), host, port, backlog=256)
    bound_port = server.sockets[0].getsockname()[1]
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop)
    # Tell the parent where we listen; it reads exactly this line.
    print(f"READY {bound_port}", flush=True)
    parent = os.getppid()
    deadline = time.monotonic() + max_seconds
    async with server:
        while not stop.done():
            await asyncio.wait([stop], timeout=0.5)
            if os.getppid() != parent or time.monotonic() > deadline:
                break


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.server [--port 0] [--delay S] [--hang]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each batch answer")
    parser.add_argument("--hang", action="store_true", help="never answer batch requests")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="stop after this long")
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        parser.error("the benchmark server only listens on the loopback interface")
    config = Config(delay=args.delay, hang=args.hang)
    asyncio.run(serve(args.host, args.port, config, args.max_seconds))
    return 0


class ServerProcess:
    """Start ``benchmarks.server`` in a child process and talk to its control endpoints.

    Use it as a context manager so the child is stopped whatever happens::

        with ServerProcess(delay=0.0) as server:
            client = Client("key", host=server.url)
            ...
            stats = server.wait_events(1000, timeout=30)
    """

    def __init__(
        self, *, delay: float = 0.0, hang: bool = False, start_timeout: float = 10.0,
        max_seconds: float = 1800.0,
    ) -> None:
        self.delay = delay
        self.hang = hang
        self.start_timeout = start_timeout
        self.max_seconds = max_seconds
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL to give a client as its ``host``."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Launch the child and wait (bounded) for its READY line."""
        command = [sys.executable, "-m", "benchmarks.server", "--port", "0",
                   "--delay", str(self.delay), "--max-seconds", str(self.max_seconds)]
        if self.hang:
            command.append("--hang")
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(self.start_timeout):
                self.stop()
                raise RuntimeError("benchmark server did not start in time")
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "READY":
            self.stop()
            raise RuntimeError(f"benchmark server said {line!r} instead of READY <port>")
        self.port = int(line[1])

    def stop(self) -> None:
        """Terminate the child, then kill it if it does not exit within a few seconds."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process.stdout is not None:
            process.stdout.close()

    def _call(self, method: str, path: str, body: Any = None,
              timeout: float = 10.0) -> dict[str, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            connection.request(method, path, body=data)
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} {payload[:200]!r}")
            answer: dict[str, Any] = json.loads(payload)
            return answer
        finally:
            connection.close()

    def stats(self, acks: bool = False) -> dict[str, Any]:
        """The server's counters (see :class:`Counters`); ``acks``: with the per-request log."""
        return self._call("GET", "/stats?acks=1" if acks else "/stats")

    def reset(self) -> None:
        """Zero the counters."""
        self._call("POST", "/reset", {})

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change delay/hang/status for the batch requests that arrive from now on."""
        return self._call("POST", "/config", changes)

    def wait_events(self, events: int, timeout: float) -> dict[str, Any]:
        """Block (without polling) until ``events`` are acknowledged or ``timeout`` passes."""
        return self._call("GET", f"/wait?events={events}&timeout={timeout}", timeout=timeout + 10)


if __name__ == "__main__":
    raise SystemExit(main())
