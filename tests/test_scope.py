"""cdp_logging.scope: every call made inside it gets its fields where the call leaves them unset,
through every front, and nowhere else (other threads, other tasks, after it closes)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

import cdp_logging
from cdp_logging import events
from cdp_logging.testing import LocalCollector, capture_events

from support.fronts import arrived, cdp_logger, client, collector, context  # noqa: F401 - fixtures

REQUEST = {"ip": "203.0.113.7", "page": {"url": "https://shop.example/cart", "path": "/cart"}}


def test_every_front_gets_the_scope_where_the_call_leaves_fields_unset(
        collector: LocalCollector, client: cdp_logging.Analytics, cdp_logger: logging.Logger) -> None:
    with cdp_logging.scope(user_id="42", anonymous_id="anon-1", context=REQUEST):
        cdp_logger.info("added", extra={"track": {"event": "Added To Cart", "properties": {"sku": "s1"}}})
        cdp_logger.info("viewed", extra={"page": {"name": "Cart"}})
        cdp_logger.info("order", extra={"event": "Order Completed", "order_id": 7})  # short form
        cdp_logger.info("events", extra=events.identify(traits={"plan": "pro"}))
        client.track(event="Checkout Started")
        client.group(group_id="acme")
        client.alias(previous_id="anon-1")
    ids = {"userId": "42", "anonymousId": "anon-1"}
    assert arrived(collector, client, 7) == [
        {"type": "track", **ids, "event": "Added To Cart", "properties": {"sku": "s1"}, "context": context(**REQUEST)},
        {"type": "page", **ids, "name": "Cart", "context": context(**REQUEST)},
        {"type": "track", **ids, "event": "Order Completed", "properties": {"order_id": 7}, "context": context(**REQUEST)},
        {"type": "identify", **ids, "traits": {"plan": "pro"}, "context": context(**REQUEST)},
        {"type": "track", **ids, "event": "Checkout Started", "context": context(**REQUEST)},
        {"type": "group", **ids, "groupId": "acme", "context": context(**REQUEST)},
        {"type": "alias", **ids, "previousId": "anon-1", "context": context(**REQUEST)},
    ]


def test_an_explicit_field_wins_and_contexts_merge_with_the_calls_keys_winning(
        collector: LocalCollector, client: cdp_logging.Analytics, cdp_logger: logging.Logger) -> None:
    with cdp_logging.scope(user_id="42", context=REQUEST):
        cdp_logger.info("added", extra={"track": {"event": "A", "user_id": "7",
                                                  "context": {"ip": "10.0.0.1", "page": {"referrer": "r"}}}})
        client.track(event="B", anonymous_id="anon-9", context={"locale": "fr"})
    assert arrived(collector, client, 2) == [
        {"type": "track", "userId": "7", "event": "A", "context": context(
            ip="10.0.0.1", page={"url": "https://shop.example/cart", "path": "/cart", "referrer": "r"})},
        {"type": "track", "userId": "42", "anonymousId": "anon-9", "event": "B",
         "context": context(**REQUEST, locale="fr")},
    ]


def test_scopes_nest_the_inner_one_winning_and_close_with_their_block() -> None:
    analytics = cdp_logging.Analytics(write_key="k", host="http://127.0.0.1:9")
    with capture_events() as captured:
        with cdp_logging.scope(user_id="outer", anonymous_id="anon", context={"ip": "1.1.1.1", "page": {"path": "/"}}):
            with cdp_logging.scope(user_id="inner", context={"page": {"url": "u"}}):
                analytics.track(event="Inner")
            analytics.track(event="Outer")
        analytics.track(event="After", user_id="nobody")
    inner, outer, after = captured.messages
    assert (inner["userId"], inner["anonymousId"]) == ("inner", "anon")
    assert inner["context"] == context(ip="1.1.1.1", page={"path": "/", "url": "u"})
    assert (outer["userId"], outer["context"]) == ("outer", context(ip="1.1.1.1", page={"path": "/"}))
    assert "anonymousId" not in after and after["context"] == context()
    assert cdp_logging.scoping.active_scope() is None


def test_a_decorated_function_and_coroutine_run_inside_the_scope_each_call() -> None:
    analytics = cdp_logging.Analytics(write_key="k", host="http://127.0.0.1:9")

    @cdp_logging.scope(user_id="sync-user")
    def work() -> None:
        analytics.track(event="Sync")

    @cdp_logging.scope(anonymous_id="async-visitor")
    async def work_async() -> None:
        await asyncio.sleep(0)
        analytics.track(event="Async")

    with capture_events() as captured:
        work()
        asyncio.run(work_async())
        work()
    assert [(m["event"], m.get("userId"), m.get("anonymousId")) for m in captured.messages] == [
        ("Sync", "sync-user", None), ("Async", None, "async-visitor"), ("Sync", "sync-user", None)]
    assert cdp_logging.scoping.active_scope() is None


def test_no_scope_leaks_into_another_thread() -> None:
    analytics = cdp_logging.Analytics(write_key="k", host="http://127.0.0.1:9")
    seen: list[Any] = []
    inside = threading.Event()
    may_leave = threading.Event()

    def scoped() -> None:
        with cdp_logging.scope(user_id="thread-a"):
            inside.set()
            may_leave.wait(10)
            analytics.track(event="A")

    with capture_events() as captured:
        thread = threading.Thread(target=scoped)
        thread.start()
        assert inside.wait(10)
        seen.append(cdp_logging.scoping.active_scope())   # this thread, while the other is inside
        analytics.track(event="B", anonymous_id="b")
        may_leave.set()
        thread.join(10)
    assert seen == [None]
    by_event = {m["event"]: m for m in captured.messages}
    assert by_event["A"]["userId"] == "thread-a" and "userId" not in by_event["B"]


def test_asyncio_tasks_keep_their_own_scopes() -> None:
    analytics = cdp_logging.Analytics(write_key="k", host="http://127.0.0.1:9")
    inside: list[str] = []

    async def request(user: str, both_inside: asyncio.Event) -> None:
        with cdp_logging.scope(user_id=user):
            inside.append(user)
            if len(inside) == 2:
                both_inside.set()
            await both_inside.wait()   # both tasks are inside their scopes at once
            analytics.track(event=f"For {user}")

    async def main() -> None:
        both_inside = asyncio.Event()
        await asyncio.gather(request("u1", both_inside), request("u2", both_inside))
        analytics.track(event="Outside", anonymous_id="x")

    with capture_events() as captured:
        asyncio.run(main())
    assert {m["event"]: m.get("userId") for m in captured.messages} == {
        "For u1": "u1", "For u2": "u2", "Outside": None}


def test_numbers_and_uuids_are_ids_and_a_wrong_type_is_refused_at_once() -> None:
    import uuid
    assert cdp_logging.scope(user_id=42).user_id == "42"
    assert cdp_logging.scope(anonymous_id=uuid.UUID(int=1)).anonymous_id == str(uuid.UUID(int=1))
    assert cdp_logging.scope(user_id="").user_id is None
    with pytest.raises(TypeError, match="user_id must be a string, a number or a UUID"):
        cdp_logging.scope(user_id=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="context must be a dict"):
        cdp_logging.scope(context="ip=1")  # type: ignore[arg-type]


def test_a_call_the_scope_completes_passes_the_strict_check_of_events() -> None:
    events.strict = True
    try:
        with cdp_logging.scope(user_id="42"):
            assert events.track(event="Added") == {"track": {"event": "Added"}}
        with pytest.raises(cdp_logging.InvalidEventError, match="user_id or anonymous_id is required"):
            events.track(event="Added")
    finally:
        events.strict = None
