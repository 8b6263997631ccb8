"""Several clients: two CDP sources side by side, each with its own write key and batching, and
a logger of its own for each.

Try it:     CDP_WRITE_KEY=... MARKETING_CDP_WRITE_KEY=... python examples/several_clients.py
            (CDP_HOST=http://127.0.0.1:PORT sends to a local collector instead)

Each client has its own queue and background thread. Handlers can share a client (``client=``),
so one source can be fed from several loggers without a second pipeline.
"""

from __future__ import annotations

import logging
import os

import cdp_logging

# The application's source: the defaults (20 events a batch, every 10 s).
app_analytics = cdp_logging.Analytics()                       # CDP_WRITE_KEY, CDP_HOST
# The marketing team's source: its own key, each event sent at once. (Without
# MARKETING_CDP_WRITE_KEY, write_key is None and the client reads CDP_WRITE_KEY.)
marketing_analytics = cdp_logging.Analytics(
    os.environ.get("MARKETING_CDP_WRITE_KEY"), max_events_in_batch=1,
)

# Logs of "shop" go to the application's source, logs of "campaigns" to marketing's.
for name, client in (("shop", app_analytics), ("campaigns", marketing_analytics)):
    logger = logging.getLogger(name)
    logger.addHandler(cdp_logging.CDPHandler(client=client))
    logger.setLevel(logging.INFO)


def main() -> None:
    logging.getLogger("shop").info("checkout", extra={
        "event": "Checkout Started", "user_id": "42", "cart_value": 39.95,
    })
    logging.getLogger("campaigns").info("clicked", extra={
        "event": "Newsletter Clicked", "user_id": "42", "campaign": "spring-sale",
    })
    app_analytics.identify(user_id="42", traits={"plan": "pro"})
    marketing_analytics.identify(user_id="42", traits={"newsletter": True})

    # At exit every client delivers by itself; closing explicitly bounds the wait and tells
    # whether everything arrived.
    for name, client in (("app", app_analytics), ("marketing", marketing_analytics)):
        delivered = client.close_and_flush(timeout=5.0)
        print(f"{name}: delivered={delivered} {client.stats()}")


if __name__ == "__main__":
    main()
