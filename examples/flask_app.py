"""Flask: configure logging with a CDPHandler before the app is made, then log events in views.

Serve it:   CDP_WRITE_KEY=... flask --app examples/flask_app run
Try it:     CDP_WRITE_KEY=... python examples/flask_app.py   (two requests through Flask's test
            client, then exit; CDP_HOST=http://127.0.0.1:PORT sends to a local collector instead)

The write key comes from CDP_WRITE_KEY and the host from CDP_HOST (default: the US region).
Events are sent in the background; at exit, logging.shutdown() delivers what is still queued.
"""

from __future__ import annotations

import logging
import logging.config

from flask import Flask, jsonify, request

import cdp_logging

# Configure logging before making the app, as Flask's documentation advises, so Flask's own
# loggers find the configuration in place.
logging.config.dictConfig({
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        # Flask and werkzeug add no console handler of their own once the root logger has
        # one at their level: this one prints "Running on ...", requests and tracebacks.
        "console": {"class": "logging.StreamHandler"},
        "cdp": {"class": "cdp_logging.CDPHandler", "level": "INFO"},
    },
    "root": {"handlers": ["console", "cdp"], "level": "INFO"},
})

log = logging.getLogger("shop")
app = Flask(__name__)


@app.post("/signup")
def signup():
    data = request.get_json()
    user_id = str(data["user_id"])
    log.info("signed up", extra=cdp_logging.events.identify(
        user_id=user_id, traits={"email": data["email"], "plan": "free"},
        context={"ip": request.remote_addr, "userAgent": request.user_agent.string},
    ))
    log.info("signed up", extra={"event": "Signed Up", "user_id": user_id, "plan": "free"})
    return jsonify(ok=True), 201


@app.get("/pricing")
def pricing():
    # A visitor who is not signed in is known by the anonymous id analytics.js keeps in a
    # cookie; with neither, the helper does not raise: the handler counts and reports it.
    log.info("viewed pricing", extra=cdp_logging.events.page(
        user_id=request.args.get("user_id"), anonymous_id=request.cookies.get("ajs_anonymous_id"),
        name="Pricing", properties={"path": request.path},
    ))
    return jsonify(plans=["free", "pro"])


if __name__ == "__main__":
    with app.test_client() as client:
        print(client.post("/signup", json={"user_id": 42, "email": "ada@example.com"}).status)
        print(client.get("/pricing?user_id=42").status)
        client.set_cookie("ajs_anonymous_id", "visitor-7")
        print(client.get("/pricing").status)
        client.delete_cookie("ajs_anonymous_id")
        print(client.get("/pricing").status)
