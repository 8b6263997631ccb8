"""Celery's carry_scope with an in-process worker (memory broker): the scope of the code that
queued a task is open while the task runs, and only for that task."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

celery = pytest.importorskip("celery")

from celery.contrib.testing.worker import start_worker  # noqa: E402 - after the skip

import cdp_logging  # noqa: E402
from cdp_logging.integrations.celery import carry_scope  # noqa: E402
from cdp_logging.testing import LocalCollector  # noqa: E402

from support.fronts import arrived, client, collector, context  # noqa: E402, F401 - fixtures
from support.helpers import DEADLINE  # noqa: E402

log = logging.getLogger("shop.tasks")

app = celery.Celery("shop", broker="memory://", backend="cache+memory://")
app.conf.update(task_always_eager=False, worker_hijack_root_logger=False)


@app.task(name="shop.send_welcome_email")
def send_welcome_email(email: str) -> str:
    log.info("welcome sent", extra={"track": {"event": "Welcome Email Sent", "properties": {"email": email}}})
    return "sent"


@pytest.fixture
def worker(client: cdp_logging.Analytics) -> Iterator[None]:
    carry_scope()
    cdp = cdp_logging.CDPHandler(client=client)
    log.addHandler(cdp)
    log.setLevel(logging.INFO)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=DEADLINE):
            yield
    finally:
        log.removeHandler(cdp)
        # The test worker sets the root logger's level (to ERROR): later tests need it back.
        root.setLevel(level)
        root.handlers[:] = handlers


def test_a_task_runs_inside_the_scope_it_was_queued_in(
        collector: LocalCollector, client: cdp_logging.Analytics, worker: None) -> None:
    request = {"ip": "203.0.113.7", "page": {"url": "https://shop.example/signup", "path": "/signup"}}
    with cdp_logging.scope(user_id="42", anonymous_id="visitor-1", context=request):
        first = send_welcome_email.delay("ada@example.com")
    with cdp_logging.scope(user_id="43"):
        second = send_welcome_email.delay("bob@example.com")
    third = send_welcome_email.delay("nobody@example.com")   # outside any scope
    assert [result.get(timeout=DEADLINE) for result in (first, second, third)] == ["sent"] * 3
    assert arrived(collector, client, 2) == [
        {"type": "track", "userId": "42", "anonymousId": "visitor-1", "event": "Welcome Email Sent",
         "properties": {"email": "ada@example.com"}, "context": context(**request)},
        {"type": "track", "userId": "43", "event": "Welcome Email Sent",
         "properties": {"email": "bob@example.com"}, "context": context()},
    ]
    # The third task ran with no scope left over from the first two: it names nobody.
    assert client.stats()["invalid"] == 1


def test_an_eager_task_runs_inside_the_callers_scope(
        collector: LocalCollector, client: cdp_logging.Analytics) -> None:
    carry_scope()
    cdp = cdp_logging.CDPHandler(client=client)
    log.addHandler(cdp)
    log.setLevel(logging.INFO)
    try:
        with cdp_logging.scope(user_id="42"):
            assert send_welcome_email.apply(args=("ada@example.com",)).get() == "sent"
    finally:
        log.removeHandler(cdp)
    [sent] = arrived(collector, client, 1)
    assert sent["userId"] == "42"
