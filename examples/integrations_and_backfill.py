"""Selecting destinations with ``integrations``, backfilling history with ``timestamp``, and
groups (Customer.io objects) with ``object_type_id``.

Try it:     CDP_WRITE_KEY=... python examples/integrations_and_backfill.py
            (CDP_HOST=http://127.0.0.1:PORT sends to a local collector instead)
"""

from __future__ import annotations

import datetime as dt
import logging

import cdp_logging
from cdp_logging import events

analytics = cdp_logging.Analytics()                            # CDP_WRITE_KEY, CDP_HOST
logging.basicConfig(level=logging.INFO, handlers=[cdp_logging.CDPHandler(client=analytics)])
log = logging.getLogger("billing")

UTC = dt.timezone.utc
# Historical orders (user, order, total, paid at), e.g. read from the database when moving to
# Customer.io.
PAST_ORDERS = [
    ("42", 1, 12.0, dt.datetime(2023, 3, 1, 9, 30, tzinfo=UTC)),
    ("42", 2, 30.5, dt.datetime(2023, 6, 2, 17, 5, tzinfo=UTC)),
    ("43", 3, 8.25, dt.datetime(2024, 1, 15, 12, 0, tzinfo=UTC)),
]


def main() -> None:
    # Destinations: every destination is on by default; "All": False turns them all off except
    # those named true. Names are case sensitive, as in each destination's documentation.
    analytics.track(
        user_id="42", event="Membership Upgraded",
        integrations={"All": False, "Mixpanel": True, "Google Analytics": False},
    )
    # The same from logging: any call's fields, integrations included, go in its extra key.
    log.info("alias", extra=events.alias(previous_id="anon-7", user_id="42",
                                         integrations={"All": False, "Customer.io": True}))

    # Backfilling: give each call the time it happened (a datetime, epoch seconds or an
    # ISO-8601 string); without a timestamp, the time of the call (or of the log record) is used.
    for user_id, order_id, total, paid_at in PAST_ORDERS:
        analytics.track(
            user_id=user_id, event="Order Completed", timestamp=paid_at,
            properties={"order_id": order_id, "total": total},
        )
    log.info("imported", extra=events.identify(user_id="43", traits={"plan": "basic"},
                                               timestamp="2024-01-15T12:00:00Z"))

    # Groups are objects in Customer.io Journeys; object_type_id picks the object type (1, the
    # first type, when left out). It is sent as the top-level objectTypeId.
    analytics.group(user_id="42", group_id="acme", object_type_id=2,
                    traits={"name": "Acme Inc.", "plan": "enterprise"})
    log.info("joined", extra=events.group(user_id="43", group_id="course-101", object_type_id=3,
                                          traits={"name": "Python 101"}))

    print("delivered:", analytics.close_and_flush(timeout=5.0), analytics.stats())


if __name__ == "__main__":
    main()
