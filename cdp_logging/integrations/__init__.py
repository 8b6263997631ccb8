"""Open a :class:`cdp_logging.scope` for each request or task, so events logged while handling
it are about its user: :mod:`~cdp_logging.integrations.django`,
:mod:`~cdp_logging.integrations.flask`, :mod:`~cdp_logging.integrations.asgi` (Starlette,
FastAPI) and :mod:`~cdp_logging.integrations.celery`. Each imports its framework only when
imported itself."""
