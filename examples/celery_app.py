"""Celery: take over logging with the setup_logging signal, deliver when a worker process ends.

Run a worker:   CDP_WRITE_KEY=... celery --app examples.celery_app worker --loglevel INFO
Send it a task: python examples/celery_app.py --send        (from another shell)
Try it alone:   CDP_WRITE_KEY=... python examples/celery_app.py   (runs the task in this process,
                with task_always_eager; CDP_HOST=http://127.0.0.1:PORT sends to a local collector)

The broker defaults to Kombu's ``filesystem://`` transport, which carries tasks between the
process that sends them and a worker process on the same machine with no server to run (its
folder: ``CELERY_BROKER_FOLDER``, default ``celery-broker`` in the temporary directory). In
production set ``CELERY_BROKER_URL`` to your Redis or RabbitMQ (``redis://localhost:6379/0``,
``amqp://guest@localhost//``). ``memory://`` cannot carry a task from one process to another.

Two things matter under Celery:

* Celery replaces the root logger's handlers when a worker starts, unless a function is
  connected to ``setup_logging``: then it leaves logging to that function, which applies the
  application's configuration, CDPHandler included.
* The prefork pool's child processes end without running ``atexit``, so connect
  ``worker_process_shutdown`` to deliver what a child still holds. (Forked children start with
  an empty queue of their own; events queued in the parent are sent once, by the parent.)
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
import tempfile

from celery import Celery
from celery.signals import setup_logging, worker_process_shutdown
from celery.utils.log import get_task_logger

import cdp_logging

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "cdp": {"class": "cdp_logging.CDPHandler", "level": "INFO"},   # CDP_WRITE_KEY, CDP_HOST
    },
    "root": {"handlers": ["console", "cdp"], "level": "INFO"},
}

BROKER_FOLDER = os.environ.get("CELERY_BROKER_FOLDER") or os.path.join(tempfile.gettempdir(), "celery-broker")

app = Celery("shop", broker=os.environ.get("CELERY_BROKER_URL", "filesystem://"))
if app.conf.broker_url == "filesystem://":
    os.makedirs(BROKER_FOLDER, mode=0o700, exist_ok=True)
    # The sender writes each task as a file in the folder; the worker reads it from there.
    app.conf.broker_transport_options = {
        "data_folder_in": BROKER_FOLDER, "data_folder_out": BROKER_FOLDER,
        "control_folder": os.path.join(BROKER_FOLDER, "control"),
    }
log = get_task_logger(__name__)


@setup_logging.connect
def configure_logging(**kwargs: object) -> None:
    logging.config.dictConfig(LOGGING)


@worker_process_shutdown.connect
def deliver_queued_events(**kwargs: object) -> None:
    cdp_logging.close_all_clients()


@app.task(name="shop.send_welcome_email")  # the same name where it is sent (__main__) and run
def send_welcome_email(user_id: str, email: str) -> str:
    log.info("welcome email sent", extra={
        "event": "Welcome Email Sent", "user_id": user_id, "email": email,
    })
    return f"sent to {email}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--send"]:
        # To a worker running beside this process: it logs the event, its handler sends it.
        print("queued task", send_welcome_email.delay("42", "ada@example.com").id)
    else:
        # No worker here: the task runs in this process, logging configured as a worker would
        # have it.
        configure_logging()
        app.conf.task_always_eager = True
        print(send_welcome_email.delay("42", "ada@example.com").get())
