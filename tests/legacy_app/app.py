"""A small shop back end that has never heard of cdp-logging.

It logs with the standard library only and configures logging itself, the way applications
do: ``python app.py basic`` (logging.basicConfig), ``python app.py dict`` (basicConfig early,
dictConfig later, as when a configuration file is read after start-up) or ``python app.py
none`` (no configuration at all).
"""

import logging
import logging.config
import sys

accounts = logging.getLogger("shop.accounts")
orders = logging.getLogger("shop.orders")
payments = logging.getLogger("shop.payments")

DICT_CONFIG = {
    "version": 1,
    "formatters": {"plain": {"format": "[%(levelname)s] %(name)s | %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "stream": "ext://sys.stdout"}},
    "loggers": {"shop": {"handlers": ["console"], "level": "INFO", "propagate": False}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}


def main(mode):
    if mode == "basic":
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    elif mode == "dict":
        logging.basicConfig(level=logging.INFO, format="early %(levelname)s %(name)s: %(message)s")
    elif mode != "none":
        sys.exit("usage: app.py basic|dict|none")

    accounts.info("User %s signed up with plan %s", "alice", "pro")
    if mode == "dict":
        logging.config.dictConfig(DICT_CONFIG)
    orders.info("Order %s placed by %s", 1001, "alice")
    amount, customer, order = 25.5, "alice", 1001
    payments.info(f"Payment of {amount:.2f} EUR from {customer} for order {order}")
    orders.info("Inventory sync took %.1f s", 0.4)
    logging.getLogger("shop.orders.eu").info("Order %s placed by %s", 2001, "carla")
    payments.warning("Payment of %s EUR failed for order %s: %s", "9.99", 1003, "card declined")
    logging.warning("Shop closing for the night")
    print("shop: day closed")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "basic")
