"""The shop as a WSGI application, for gunicorn; it too knows nothing of cdp-logging."""

import logging
import os
from urllib.parse import parse_qs

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
orders = logging.getLogger("shop.orders")
logging.getLogger("shop.workers").info("Worker %s ready", os.getpid())


def application(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    order, customer = int(query["order"][0]), query["customer"][0]
    orders.info("Order %s placed by %s", order, customer)
    body = f"order {order} placed by worker {os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
