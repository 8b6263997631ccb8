"""FastAPI under uvicorn: add the CDPHandler in the app's lifespan, close it when the app stops.

Serve it:   CDP_WRITE_KEY=... uvicorn --app-dir examples fastapi_app:app
Try it:     CDP_WRITE_KEY=... python examples/fastapi_app.py   (starts uvicorn on a free port of
            127.0.0.1, makes two requests, stops; CDP_HOST=http://127.0.0.1:PORT sends to a local
            collector instead)

Why the lifespan: uvicorn applies its own logging configuration with dictConfig as it starts,
and dictConfig closes every handler that exists at that moment: a CDPHandler added when the
module was imported before (as with ``uvicorn.run(app)``) would then drop every event ("client
is closed"). The lifespan runs after that, in each process that serves (each worker, with
``--workers``), and its end delivers what is still queued before the process exits.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.request
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request

import cdp_logging

log = logging.getLogger("shop")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    handler = cdp_logging.CDPHandler(level="INFO")      # CDP_WRITE_KEY, CDP_HOST
    logging.getLogger().addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()                                 # delivers what is still queued


app = FastAPI(lifespan=lifespan)


@app.post("/orders/{order_id}")
async def complete_order(order_id: int, request: Request) -> dict[str, object]:
    user_id = request.headers.get("x-user-id", "anonymous")
    # Logging never waits for the network: the event is queued and sent by a background thread.
    log.info("order completed", extra={
        "event": "Order Completed", "user_id": user_id, "order_id": order_id, "total": 39.95,
    })
    return {"order_id": order_id, "status": "completed"}


def main() -> None:
    """Serve on a free port of 127.0.0.1, make two requests, stop."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    # Requests to 127.0.0.1 must not go through a proxy set in the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        for order_id in (7, 8):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/orders/{order_id}", method="POST",
                headers={"X-User-Id": "42"},
            )
            with opener.open(request, timeout=10) as response:
                print(response.status, response.read().decode())
    finally:
        server.should_exit = True
        thread.join()


if __name__ == "__main__":
    main()
