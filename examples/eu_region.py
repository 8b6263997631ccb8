"""The EU region: send to https://cdp-eu.customer.io (``cdp_logging.EU_HOST``).

Try it:     CDP_WRITE_KEY=... python examples/eu_region.py
            (CDP_HOST, when set, wins over the EU host: CDP_HOST=http://127.0.0.1:PORT sends to a
            local collector instead)

A workspace in the EU data center sends its events to the EU host, not to the default US one.
The simplest way needs no code at all: set CDP_HOST=https://cdp-eu.customer.io in the
environment. In code, pass ``host=cdp_logging.EU_HOST`` to the client, or
``"host": "https://cdp-eu.customer.io"`` in a handler's configuration.
"""

from __future__ import annotations

import logging
import logging.config
import os

import cdp_logging

# An explicit host wins over CDP_HOST; this example lets CDP_HOST override it, so that it can
# be pointed at a local collector.
HOST = os.environ.get("CDP_HOST") or cdp_logging.EU_HOST

# With a client.
analytics = cdp_logging.Analytics(host=HOST)                 # CDP_WRITE_KEY

# With logging.
logging.config.dictConfig({
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "level": "INFO", "host": HOST}},
    "root": {"handlers": ["cdp"], "level": "INFO"},
})


def main() -> None:
    print(f"sending to {analytics.host}")
    analytics.identify(user_id="eu-42", traits={"country": "DE"})
    logging.getLogger("shop").info("paid", extra={"event": "Order Paid", "user_id": "eu-42"})
    analytics.close_and_flush()
    # The handler's client delivers at exit, when logging.shutdown() closes the handler.


if __name__ == "__main__":
    main()
