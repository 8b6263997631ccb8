"""An application whose logging is its Customer.io Data Pipelines source: dictConfig.

The write key comes from the environment, so the configuration holds no secret::

    CDP_WRITE_KEY=your-write-key python examples/dictconfig_app.py

``CDP_HOST`` points it elsewhere (the EU data center, a local collector). Nothing is called
at the end: ``logging.shutdown()``, which runs at interpreter exit, delivers what is queued.
"""

import logging
import logging.config

from cdp_logging import events

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "cdp": {
            "class": "cdp_logging.CDPHandler",
            "level": "INFO",
            # Any option of cdp_logging.Analytics; write_key defaults to $CDP_WRITE_KEY.
            "max_events_in_batch": 20,
            "flush_interval": 10,
        },
    },
    # On the root logger: records without a payload cost it a dictionary look-up or two.
    "root": {"handlers": ["console", "cdp"], "level": "INFO"},
}

log = logging.getLogger("shop")


def main() -> None:
    logging.config.dictConfig(LOGGING)
    user = "019mr8mf4r"

    log.info("signed up", extra={"identify": {"user_id": user, "traits": {"email": "cool@example.com"}}})
    log.info("added to cart", extra={"track": {
        "user_id": user, "event": "added_to_cart", "properties": {"product": "shoes", "revenue": 39.95},
    }})
    # The short form of track: the other extra fields become the properties.
    log.info("order completed", extra={"event": "Order Completed", "user_id": user, "order_id": 7, "total": 39.95})
    # The helpers check the fields at the call site, as the client's methods do.
    log.info("viewed pricing", extra=events.page(user_id=user, name="Pricing"))
    log.info("joined a company", extra=events.group(user_id=user, group_id="56", object_type_id=1,
                                                    traits={"name": "Initech"}))
    log.info("served /checkout in 12 ms")  # no payload: the console shows it, CDP never sees it


if __name__ == "__main__":
    main()
