"""Quick start: start a local CDP-compatible collector, send real calls to it, print what arrived.

Run it with ``make demo`` (or ``python examples/quickstart.py`` where cdp-logging is installed).
Nothing leaves the machine: the collector listens on 127.0.0.1.
"""

from __future__ import annotations

import logging
import logging.config

import cdp_logging
from cdp_logging.testing import LocalCollector, format_event_line

WRITE_KEY = "demo-write-key"


def main() -> None:
    with LocalCollector(write_key=WRITE_KEY) as collector:
        # 1. The application's own logging configuration gains one handler.
        logging.config.dictConfig({
            "version": 1,
            "handlers": {
                "console": {"class": "logging.StreamHandler", "level": "INFO"},
                "cdp": {
                    "class": "cdp_logging.CDPHandler",
                    "write_key": WRITE_KEY,  # in production: CDP_WRITE_KEY in the environment
                    "host": collector.url,
                },
            },
            "root": {"handlers": ["console", "cdp"], "level": "INFO"},
        })
        log = logging.getLogger("shop")

        # 2. Log lines that carry a payload become CDP calls; the rest stay plain logging.
        log.info("user signed up", extra=cdp_logging.events.identify(
            user_id="019mr8mf4r", traits={"email": "cool.person@example.com", "plan": "Enterprise"},
        ))
        log.info("added to cart", extra={"track": {
            "user_id": "019mr8mf4r", "event": "added_to_cart",
            "properties": {"product": "shoes", "revenue": 39.95, "qty": 1},
        }})
        log.info("order completed", extra={"event": "Order Completed", "user_id": "019mr8mf4r",
                                           "order_id": 7, "total": 39.95})
        log.info("an ordinary log line: not sent")

        # 3. Or call the client directly.
        with cdp_logging.Analytics(WRITE_KEY, host=collector.url) as analytics:
            analytics.page(user_id="019mr8mf4r", category="Docs", name="Customer.io CDP")
            analytics.group(user_id="019mr8mf4r", group_id="56", object_type_id=1,
                            traits={"name": "Initech"})
            analytics.alias(previous_id="anonymous_user", user_id="019mr8mf4r")

        for handler in logging.getLogger().handlers:
            handler.flush()
        arrived = collector.wait_for(6, timeout=10.0)
        print(f"\nThe collector at {collector.url} received {len(arrived)} events:")
        for message in arrived:
            print("  " + format_event_line(message))


if __name__ == "__main__":
    main()
