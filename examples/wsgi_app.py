"""A WSGI application for ``gunicorn --log-config gunicorn_logging.ini``; from the repository's
top directory (gunicorn reads ``--log-config`` after changing to ``--chdir``)::

    CDP_WRITE_KEY=your-write-key gunicorn --chdir examples \
        --log-config gunicorn_logging.ini wsgi_app:application

Every request is tracked through logging.
"""

import logging

log = logging.getLogger("shop.web")


def application(environ, start_response):
    """Track the page as an event of an anonymous visitor, then answer."""
    visitor = environ.get("HTTP_X_VISITOR", "anonymous-visitor")
    log.info("page served", extra={"page": {"anonymous_id": visitor, "name": environ.get("PATH_INFO", "/")}})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
