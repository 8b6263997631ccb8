"""The WSGI app of the gunicorn --preload test.

Imported once, in the gunicorn master (--preload), where it logs PRELOAD events that are
still queued when the workers are forked. Each request logs one event through the CDPHandler
that gunicorn's --log-config set up, and answers with the worker's pid and that messageId.
CDP_HOST, CDP_WRITE_KEY and CDP_TEST_RUN come from the environment.
"""

from __future__ import annotations

import itertools
import json
import logging
import os

PRELOAD = 5
RUN = os.environ["CDP_TEST_RUN"]

log = logging.getLogger("app.events")
_counter = itertools.count()

for i in range(PRELOAD):
    log.info("app loaded", extra={"track": {
        "user_id": "master", "event": "App loaded", "message_id": f"{RUN}-preload-{i}",
    }})


def app(environ: dict, start_response) -> list[bytes]:
    pid = os.getpid()
    message_id = f"{RUN}-{pid}-{next(_counter)}"
    log.info("request", extra={"track": {
        "user_id": f"pid-{pid}", "event": "Request", "message_id": message_id,
        "properties": {"path": environ.get("PATH_INFO", "")},
    }})
    body = json.dumps({"pid": pid, "message_id": message_id}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
