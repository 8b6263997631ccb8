"""structlog as a front, real structlog: over the standard library in each configuration its docs
show, and natively through cdp_logging.structlog's processor; checked at the local collector."""

from __future__ import annotations

import io
import json
import logging
import textwrap
from collections.abc import Iterator

import pytest

structlog = pytest.importorskip("structlog")

import cdp_logging  # noqa: E402 - after the skip
from cdp_logging.structlog import CDPProcessor  # noqa: E402
from cdp_logging.testing import LocalCollector  # noqa: E402

from support.fronts import arrived, client, collector, context  # noqa: E402, F401 - fixtures
from support.handlers import run_python  # noqa: E402
from support.helpers import WRITE_KEY  # noqa: E402

CHAIN = [structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level,
         structlog.processors.TimeStamper(fmt="iso")]


@pytest.fixture(autouse=True)
def fresh_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def root_handler(client: cdp_logging.Analytics) -> Iterator[cdp_logging.CDPHandler]:
    """CDPHandler on the root logger, as structlog's docs set up logging's handlers."""
    root = logging.getLogger()
    handler = cdp_logging.CDPHandler(client=client)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def log_three_calls() -> None:
    structlog.contextvars.bind_contextvars(user_id="42", context={"ip": "203.0.113.7"})
    log = structlog.get_logger("shop")
    log.info("added to cart", track={"user_id": "7", "event": "Added To Cart", "properties": {"sku": "s1"}})
    log.info("signed up", identify={"traits": {"plan": "pro"}})
    log.info("viewed", page={"name": "Cart", "context": {"locale": "fr"}})
    log.info("an ordinary line", order_id=3)
    log.info("Order Completed", user_id="42")   # structlog's event key is its message: no call


EXPECTED = [
    {"type": "track", "userId": "7", "event": "Added To Cart", "properties": {"sku": "s1"},
     "context": context(ip="203.0.113.7")},
    {"type": "identify", "userId": "42", "traits": {"plan": "pro"}, "context": context(ip="203.0.113.7")},
    {"type": "page", "userId": "42", "name": "Cart", "context": context(ip="203.0.113.7", locale="fr")},
]


def test_processor_formatter_wrap_for_formatter_delivers_every_call(
        collector: LocalCollector, client: cdp_logging.Analytics, root_handler: cdp_logging.CDPHandler) -> None:
    console = io.StringIO()
    formatted = logging.StreamHandler(console)
    formatted.setFormatter(structlog.stdlib.ProcessorFormatter(processor=structlog.dev.ConsoleRenderer(colors=False)))
    logging.getLogger().addHandler(formatted)
    try:
        structlog.configure(processors=[*CHAIN, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
                            logger_factory=structlog.stdlib.LoggerFactory(),
                            wrapper_class=structlog.stdlib.BoundLogger)
        log_three_calls()
    finally:
        logging.getLogger().removeHandler(formatted)
    assert arrived(collector, client, 3) == EXPECTED
    assert "added to cart" in console.getvalue() and "an ordinary line" in console.getvalue()


def test_render_to_log_kwargs_delivers_every_call(
        collector: LocalCollector, client: cdp_logging.Analytics, root_handler: cdp_logging.CDPHandler) -> None:
    structlog.configure(processors=[*CHAIN, structlog.stdlib.render_to_log_kwargs],
                        logger_factory=structlog.stdlib.LoggerFactory(),
                        wrapper_class=structlog.stdlib.BoundLogger)
    log_three_calls()
    assert arrived(collector, client, 3) == EXPECTED


def test_a_renderer_last_with_send_to_cdp_before_it_delivers_once(
        collector: LocalCollector, client: cdp_logging.Analytics, root_handler: cdp_logging.CDPHandler) -> None:
    structlog.configure(processors=[*CHAIN, CDPProcessor(client=client), structlog.processors.JSONRenderer()],
                        logger_factory=structlog.stdlib.LoggerFactory(),
                        wrapper_class=structlog.stdlib.BoundLogger)
    log_three_calls()
    assert arrived(collector, client, 3) == EXPECTED


def test_the_native_processor_sends_and_passes_the_event_dict_on_unchanged(
        collector: LocalCollector, client: cdp_logging.Analytics) -> None:
    renderer = structlog.processors.JSONRenderer(sort_keys=True)
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, CDPProcessor(client=client), renderer],
                        logger_factory=structlog.ReturnLoggerFactory())
    structlog.contextvars.bind_contextvars(anonymous_id="visitor-1")
    track = {"event": "Added To Cart", "properties": {"sku": "s1"}}
    line = structlog.get_logger().info("added", track=track, order_id=3)
    assert json.loads(line) == {"event": "added", "track": track, "order_id": 3, "anonymous_id": "visitor-1"}
    assert track == {"event": "Added To Cart", "properties": {"sku": "s1"}}
    structlog.contextvars.clear_contextvars()
    camel = {"userId": 42, "event": "Signed Up", "messageId": "m-1", "timestamp": "2024-05-01T00:00:00Z"}
    assert json.loads(structlog.get_logger().info("in the API's spelling", track=camel))["track"] == camel
    messages = arrived(collector, client, 2)
    assert messages[0] == {"type": "track", "anonymousId": "visitor-1", "event": "Added To Cart",
                           "properties": {"sku": "s1"}, "context": context()}
    assert messages[1] == {"type": "track", "userId": "42", "event": "Signed Up", "context": context()}
    assert collector.messages[1]["messageId"] == "m-1"
    assert collector.messages[1]["timestamp"] == "2024-05-01T00:00:00.000Z"


def test_the_scope_fills_what_neither_the_call_nor_structlogs_context_sets(
        collector: LocalCollector, client: cdp_logging.Analytics) -> None:
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, CDPProcessor(client=client),
                                    structlog.processors.JSONRenderer()],
                        logger_factory=structlog.ReturnLoggerFactory())
    log = structlog.get_logger()
    with cdp_logging.scope(user_id="scope-user", anonymous_id="scope-visitor", context={"ip": "1.2.3.4"}):
        structlog.contextvars.bind_contextvars(user_id="bound-user")
        log.info("a", track={"event": "A"})
    assert arrived(collector, client, 1) == [
        {"type": "track", "userId": "bound-user", "anonymousId": "scope-visitor", "event": "A",
         "context": context(ip="1.2.3.4")}]


def test_a_bad_payload_is_counted_and_reported_and_the_log_call_goes_on(client: cdp_logging.Analytics) -> None:
    errors: list[cdp_logging.CDPError] = []
    analytics = cdp_logging.Analytics(write_key="k", host="http://127.0.0.1:9", error_handler=errors.append,
                                      enable=False)
    structlog.configure(processors=[CDPProcessor(client=analytics), structlog.processors.JSONRenderer()],
                        logger_factory=structlog.ReturnLoggerFactory())
    log = structlog.get_logger()
    assert "oops" in log.info("bad", track="oops")
    log.info("no id", track={"event": "A"})
    assert analytics.stats()["invalid"] == 2
    assert [str(error) for error in errors] == [
        "track: extra['track'] must be a dict of the call's fields, got str [from structlog event 'bad']",
        f"track.user_id: user_id or anonymous_id is required (messageId {errors[1].message_id})"
        " [from structlog event 'no id']",
    ]
    analytics.close_and_flush(timeout=1)


APP = """
import logging, structlog, cdp_logging
logging.basicConfig(level=logging.INFO, handlers=[cdp_logging.CDPHandler()])
structlog.configure(processors=[structlog.stdlib.add_log_level, {last}],
                    logger_factory=structlog.stdlib.LoggerFactory(),
                    wrapper_class=structlog.stdlib.BoundLogger)
log = structlog.get_logger("shop")
for n in range(3):
    log.info("added to cart", track={{"user_id": "42", "event": "Added To Cart"}})
"""


@pytest.mark.parametrize("last", ["structlog.processors.JSONRenderer()", "structlog.processors.KeyValueRenderer()"])
def test_a_renderer_before_logging_is_one_warning_naming_the_fix(collector: LocalCollector, last: str) -> None:
    env = {"CDP_WRITE_KEY": WRITE_KEY, "CDP_HOST": collector.url}
    result = run_python(["-c", textwrap.dedent(APP.format(last=last))], env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "structlog renders each event dict" in line]
    assert len(warnings) == 1, result.stderr
    assert "Fix: add cdp_logging.structlog.send_to_cdp to structlog.configure(processors=[...])" in warnings[0]
    assert last.split(".")[-1].removesuffix("()") in warnings[0]


def test_no_warning_where_the_handler_sees_the_event_dict(collector: LocalCollector) -> None:
    env = {"CDP_WRITE_KEY": WRITE_KEY, "CDP_HOST": collector.url}
    app = APP.format(last="structlog.stdlib.render_to_log_kwargs")
    result = run_python(["-c", textwrap.dedent(app)], env)
    assert result.returncode == 0, result.stderr
    assert "structlog" not in result.stderr
    assert len(collector.wait_for(3)) == 3


