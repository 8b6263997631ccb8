"""AWS Lambda (and other short-lived processes): deliver at the end of every invocation.

Deploy ``lambda_handler.handler`` with CDP_WRITE_KEY (and, in the EU region,
CDP_HOST=https://cdp-eu.customer.io) in the function's environment.
Try it:     CDP_WRITE_KEY=... python examples/lambda_handler.py   (two invocations, then exit;
            CDP_HOST=http://127.0.0.1:PORT sends to a local collector instead)

Lambda freezes the container as soon as the handler returns, and may reuse it for the next
invocation or drop it without warning: what the background worker has not sent by then is late
or lost. ``@cdp_logging.flush_after`` delivers it before the handler returns, and keeps the
client open for the next invocation. Logging is configured once, when the container starts.
"""

from __future__ import annotations

import logging
from typing import Any

import cdp_logging

# Lambda's Python runtime has already put a handler of its own on the root logger; add ours.
logging.getLogger().addHandler(cdp_logging.CDPHandler(level="INFO"))   # CDP_WRITE_KEY, CDP_HOST
log = logging.getLogger("orders")
log.setLevel(logging.INFO)


@cdp_logging.flush_after(timeout=2.0)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    user_id = event["user_id"]
    log.info("order received", extra={"event": "Order Received", "user_id": user_id,
                                      "order_id": event["order_id"]})
    log.info("order paid", extra={"event": "Order Paid", "user_id": user_id,
                                  "order_id": event["order_id"], "total": event["total"]})
    return {"statusCode": 200, "body": f"order {event['order_id']} paid"}


if __name__ == "__main__":
    for order_id in (1001, 1002):
        print(handler({"user_id": "42", "order_id": order_id, "total": 19.5}, None))
