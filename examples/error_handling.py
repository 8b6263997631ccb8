"""Error handling: what is raised where, and where everything else is reported.

Try it:     CDP_WRITE_KEY=... python examples/error_handling.py
            (CDP_HOST=http://127.0.0.1:PORT sends to a local collector instead)

* A call the API would refuse (no event name, no user, over 32 KB) raises InvalidEventError
  (EventTooLargeError) from the client's methods, at the call site.
* The same mistake in a log call never raises in the application: it is reported.
* Delivery happens later, on a background thread: a failure (after retries) is reported, and
  given to the per-call callbacks of the events concerned.
* "Reported" means: given to ``error_handler`` if there is one, else logged as a WARNING on the
  ``cdp_logging`` logger (rate-limited). ``stats()`` counts everything either way.
"""

from __future__ import annotations

import logging
import socket

import cdp_logging


def report(error: cdp_logging.CDPError) -> None:
    """An error_handler: send it to your error tracker; here, print it."""
    kind = type(error).__name__
    if isinstance(error, cdp_logging.DeliveryError):
        print(f"reported {kind}: status={error.status} events={error.count} ({error})")
    else:
        print(f"reported {kind}: {error}")


def on_delivered(error: cdp_logging.CDPError | None, batch: list[dict]) -> None:
    """A per-call callback, called once the event's batch was delivered or given up on."""
    outcome = "delivered" if error is None else f"failed: {error}"
    print(f"callback: {outcome} ({len(batch)} in batch)")


def nowhere() -> str:
    """The address of a port on this machine where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def main() -> None:
    analytics = cdp_logging.Analytics(error_handler=report)   # CDP_WRITE_KEY, CDP_HOST
    log = logging.getLogger("shop")
    log.addHandler(cdp_logging.CDPHandler(client=analytics))
    log.setLevel(logging.INFO)

    # 1. Invalid calls raise at the call site.
    try:
        analytics.track(user_id="42")                         # no event name
    except cdp_logging.InvalidEventError as err:
        print(f"raised: {err} (call={err.call}, field={err.field})")
    try:
        analytics.track(user_id="42", event="Big", properties={"blob": "x" * 40_000})
    except cdp_logging.EventTooLargeError as err:
        print(f"raised: {err.size} bytes over the {err.limit} byte limit")

    # 2. The same mistake in a log call is reported, never raised.
    log.info("oops", extra={"track": {"user_id": "42"}})

    # 3. A valid call: delivered, then its callback runs on the background thread.
    analytics.track(user_id="42", event="Order Completed", callback=on_delivered)
    print("flushed:", analytics.flush(timeout=5.0))

    # 4. A delivery failure, reported once retries are used up (none here, to be quick).
    unreachable = cdp_logging.Analytics(host=nowhere(), max_retries=0, error_handler=report)
    unreachable.track(user_id="42", event="Lost", callback=on_delivered)
    print("flushed:", unreachable.flush(timeout=5.0))

    for client in (analytics, unreachable):
        client.close_and_flush()
        print(client.stats())


if __name__ == "__main__":
    main()
