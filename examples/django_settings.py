"""The LOGGING setting of a Django project whose logging feeds Customer.io Data Pipelines.

Copy ``LOGGING`` into ``settings.py``; Django hands it to ``logging.config.dictConfig``. Set
``CDP_WRITE_KEY`` in the environment of the server (the setting holds no secret; without it,
``manage.py`` commands and tests run as usual and nothing is sent). Then, in a view::

    logger = logging.getLogger(__name__)

    def checkout(request):
        if request.user.is_authenticated:
            who = {"user_id": request.user.pk}
        else:  # an anonymous visitor (request.user.pk is None): known by their session
            if request.session.session_key is None:
                request.session.save()
            who = {"anonymous_id": request.session.session_key}
        logger.info("checkout", extra={"track": {
            **who, "event": "Checkout Started", "properties": {"items": 3},
        }})

This module imports nothing from Django: it is the snippet, importable on its own.
"""

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "cdp": {
            "class": "cdp_logging.CDPHandler",
            "level": "INFO",
            # Options of cdp_logging.Analytics; for example, a function of yours to hear of
            # failures: "error_handler": "ext://myproject.monitoring.report_cdp_error".
            "flush_interval": 5,
        },
    },
    "root": {"handlers": ["console", "cdp"], "level": "INFO"},
    "loggers": {
        # Django's own loggers keep their levels; they propagate to root, where the CDP
        # handler ignores their records (no payload).
        "django": {"level": "INFO"},
    },
}
