"""structlog as the CDP front, both ways: over the standard library (structlog's own
ProcessorFormatter recipe, with CDPHandler beside the console handler) and natively (the
send_to_cdp processor in structlog's chain, no standard library).

Run it with CDP_WRITE_KEY and CDP_HOST set (``cdp-logging collect`` starts a local collector).
"""

from __future__ import annotations

import logging
import logging.config

import structlog

import cdp_logging
from cdp_logging.structlog import send_to_cdp

SHARED = [
    structlog.contextvars.merge_contextvars,   # values bound per request fill unset user_id etc.
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso"),
]


def over_the_standard_library() -> None:
    logging.config.dictConfig({
        "version": 1,
        "formatters": {"console": {"()": structlog.stdlib.ProcessorFormatter,
                                   "processor": structlog.dev.ConsoleRenderer(colors=False)}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "console"},
            "cdp": {"class": "cdp_logging.CDPHandler", "level": "INFO"},   # CDP_WRITE_KEY, CDP_HOST
        },
        "root": {"handlers": ["console", "cdp"], "level": "INFO"},
    })
    structlog.configure(
        processors=[*SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    log = structlog.get_logger("shop")
    structlog.contextvars.bind_contextvars(user_id="019mr8mf4r")   # once per request, say
    log.info("added to cart", track={"event": "Added To Cart", "properties": {"sku": "shoe-42", "qty": 1}})
    log.info("signed up", identify={"traits": {"plan": "pro"}})
    log.info("an ordinary line: not sent", order_id=7)
    structlog.contextvars.clear_contextvars()


def natively() -> None:
    structlog.configure(processors=[*SHARED, send_to_cdp, structlog.processors.JSONRenderer()])
    log = structlog.get_logger()
    with cdp_logging.scope(anonymous_id="visitor-7", context={"ip": "203.0.113.7"}):
        log.info("viewed pricing", page={"name": "Pricing"})


if __name__ == "__main__":
    over_the_standard_library()
    natively()
    send_to_cdp.client.close_and_flush()   # logging.shutdown() delivers the handler's at exit
