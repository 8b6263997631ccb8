"""CDPHandler: log records with an event payload become CDP calls.

Real logging configuration, a real HTTP server on 127.0.0.1 (pytest-httpserver), real
subprocesses for what happens at interpreter exit.
"""

from __future__ import annotations

import inspect
import logging
import logging.config
import logging.handlers
import queue
import re
import textwrap
import threading
import time
import timeit
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import cdp_logging
import cdp_logging.testing
from cdp_logging import CDPHandler, InvalidEventError, events
from cdp_logging.mapping import PAYLOAD_KEYS
from support.handlers import (  # noqa: F401  (fixtures)
    DELIVERY_TIMEOUT,
    REMEMBERED_ERRORS,
    ListHandler,
    RecordCapture,
    assert_timestamp_is,
    basic_auth,
    batches,
    host_of,
    messages,
    new_write_key,
    parse_timestamp,
    restore_logging,
    run_python,
    server,
    subprocess_env,
    write_key,
)
from support.helpers import wait_for_messages, wait_until

pytestmark = pytest.mark.usefixtures("restore_logging")

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

#: One payload for each of the six calls, as an application would write them in ``extra``.
SIX_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("identify", {"user_id": "019mr8mf4r", "traits": {"email": "cool@example.com", "plan": "Enterprise"}}),
    ("track", {"user_id": "019mr8mf4r", "event": "added_to_cart",
               "properties": {"product": "shoes", "revenue": 39.95}}),
    ("page", {"user_id": "019mr8mf4r", "category": "Docs", "name": "CDP",
              "properties": {"url": "https://customer.io/cdp/"}}),
    ("screen", {"anonymous_id": "anon-7", "name": "Checkout", "category": "Store", "properties": {"step": 2}}),
    ("group", {"user_id": "019mr8mf4r", "group_id": "56", "object_type_id": 1, "traits": {"name": "Initech"}}),
    ("alias", {"previous_id": "anonymous_user", "user_id": "identified@example.com"}),
]

#: What the server must receive for each of SIX_CALLS, besides messageId, timestamp and context.
SIX_MESSAGES: list[dict[str, Any]] = [
    {"type": "identify", "userId": "019mr8mf4r", "traits": {"email": "cool@example.com", "plan": "Enterprise"}},
    {"type": "track", "userId": "019mr8mf4r", "event": "added_to_cart",
     "properties": {"product": "shoes", "revenue": 39.95}},
    {"type": "page", "userId": "019mr8mf4r", "category": "Docs", "name": "CDP",
     "properties": {"url": "https://customer.io/cdp/"}},
    {"type": "screen", "anonymousId": "anon-7", "name": "Checkout", "category": "Store", "properties": {"step": 2}},
    {"type": "group", "userId": "019mr8mf4r", "groupId": "56", "objectTypeId": "1", "traits": {"name": "Initech"}},
    {"type": "alias", "previousId": "anonymous_user", "userId": "identified@example.com"},
]


def log_six_calls(logger: logging.Logger) -> None:
    for call, fields in SIX_CALLS:
        logger.info("%s call", call, extra={call: fields})


def assert_six_messages_arrived(received: list[dict[str, Any]], records: list[logging.LogRecord]) -> None:
    """Field by field: the six calls, with the timestamps of their log records."""
    # Batches may go side by side (max_concurrent_requests), so they may arrive in any order.
    order = [message["type"] for message in SIX_MESSAGES]
    received = sorted(received, key=lambda message: order.index(message.get("type")))
    assert len(received) == 6
    assert len(records) == 6
    for message, expected, record in zip(received, SIX_MESSAGES, records):
        assert set(message) == {*expected, "messageId", "timestamp", "context"}, message
        for field, value in expected.items():
            assert message[field] == value, (field, message)
        assert UUID.match(message["messageId"]), message["messageId"]
        assert message["context"] == {"library": {"name": "cdp-logging", "version": cdp_logging.__version__}}
        assert_timestamp_is(message["timestamp"], record.created)
    assert len({m["messageId"] for m in received}) == 6


def new_logger(name: str) -> logging.Logger:
    """A logger no other test uses (dictConfig disables loggers that existed before it), at
    DEBUG so that the root logger's level decides nothing."""
    logger = logging.getLogger(f"{name}.{new_write_key()[-6:]}")
    logger.setLevel(logging.DEBUG)
    return logger


@pytest.fixture
def attached(server: HTTPServer, write_key: str) -> Iterator[tuple[logging.Logger, CDPHandler]]:
    """A logger (not propagating) with a CDPHandler pointed at the test server."""
    logger = new_logger("app")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = CDPHandler(write_key=write_key, host=host_of(server), flush_interval=0.05)
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)
    handler.close()


# -- configuration ----------------------------------------------------------------------------

def test_dictconfig_sends_each_of_the_six_calls_with_the_records_timestamps(
    server: HTTPServer, write_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDP_WRITE_KEY", write_key)
    monkeypatch.setenv("CDP_HOST", host_of(server))
    capture = RecordCapture()
    logger = new_logger("shop")
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"capture": {"()": lambda: capture}},
        "handlers": {
            "cdp": {
                "class": "cdp_logging.CDPHandler",
                "level": "INFO",
                "filters": ["capture"],
                "flush_interval": 0.05,
                "max_events_in_batch": 3,
            },
        },
        "loggers": {logger.name: {"handlers": ["cdp"], "level": "INFO", "propagate": False}},
    })

    log_six_calls(logger)

    assert_six_messages_arrived(wait_for_messages(server, 6, write_key=write_key), capture.records)


def test_fileconfig_sends_each_of_the_six_calls_with_the_records_timestamps(
    server: HTTPServer, write_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CDP_WRITE_KEY", write_key)
    logger = new_logger("shop")
    ini = tmp_path / "logging.ini"
    ini.write_text(textwrap.dedent(f"""\
        [loggers]
        keys=root,shop

        [handlers]
        keys=cdp

        [formatters]
        keys=

        [logger_root]
        level=WARNING
        handlers=

        [logger_shop]
        qualname={logger.name}
        level=INFO
        handlers=cdp
        propagate=0

        [handler_cdp]
        class=cdp_logging.CDPHandler
        level=INFO
        args=()
        kwargs={{'host': '{host_of(server)}', 'flush_interval': 0.05, 'max_events_in_batch': 3}}
        """))
    logging.config.fileConfig(ini, disable_existing_loggers=False)
    capture = RecordCapture()
    logger.handlers[0].addFilter(capture)

    log_six_calls(logger)

    assert_six_messages_arrived(wait_for_messages(server, 6, write_key=write_key), capture.records)


def test_fileconfig_accepts_the_level_as_the_positional_argument(
    server: HTTPServer, write_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CDP_WRITE_KEY", write_key)
    monkeypatch.setenv("CDP_HOST", host_of(server))
    logger = new_logger("shop")
    ini = tmp_path / "logging.ini"
    ini.write_text(textwrap.dedent(f"""\
        [loggers]
        keys=root,shop
        [handlers]
        keys=cdp
        [formatters]
        keys=
        [logger_root]
        handlers=
        [logger_shop]
        qualname={logger.name}
        level=DEBUG
        handlers=cdp
        propagate=0
        [handler_cdp]
        class=cdp_logging.CDPHandler
        args=('WARNING',)
        kwargs={{'flush_interval': 0.05}}
        """))
    logging.config.fileConfig(ini, disable_existing_loggers=False)

    logger.info("below the handler's level", extra={"event": "Ignored", "user_id": "1"})
    logger.warning("at the handler's level", extra={"event": "Sent", "user_id": "1"})

    [handler] = logger.handlers
    assert handler.level == logging.WARNING
    handler.flush()
    assert [m["event"] for m in messages(server, write_key)] == ["Sent"]


@pytest.mark.parametrize("error_handler", [
    "ext://support.handlers.remember_error",
    "support.handlers.remember_error",
    "support.handlers:remember_error",
])
def test_dictconfig_resolves_error_handler_given_as_a_dotted_path(
    server: HTTPServer, write_key: str, error_handler: str
) -> None:
    logger = new_logger("shop")
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"cdp": {
            "class": "cdp_logging.CDPHandler", "write_key": write_key, "host": host_of(server),
            "error_handler": error_handler,
        }},
        "loggers": {logger.name: {"handlers": ["cdp"], "level": "INFO", "propagate": False}},
    })

    logger.info("no user", extra={"track": {"event": "Signed Up"}})

    [error] = REMEMBERED_ERRORS
    assert isinstance(error, InvalidEventError)
    assert error.field == "user_id"


def test_fileconfig_resolves_error_handler_given_as_a_dotted_path(
    server: HTTPServer, write_key: str, tmp_path: Path
) -> None:
    logger = new_logger("shop")
    ini = tmp_path / "logging.ini"
    ini.write_text(textwrap.dedent(f"""\
        [loggers]
        keys=root,shop
        [handlers]
        keys=cdp
        [formatters]
        keys=
        [logger_root]
        handlers=
        [logger_shop]
        qualname={logger.name}
        level=INFO
        handlers=cdp
        propagate=0
        [handler_cdp]
        class=cdp_logging.CDPHandler
        kwargs={{'write_key': '{write_key}', 'host': '{host_of(server)}',
                'error_handler': 'ext://support.handlers.remember_error'}}
        """))
    logging.config.fileConfig(ini, disable_existing_loggers=False)

    logger.info("no user", extra={"identify": {"traits": {"plan": "pro"}}})

    [error] = REMEMBERED_ERRORS
    assert (error.call, error.field) == ("identify", "user_id")


@pytest.mark.parametrize("option, value, named", [
    ("flush_intervall", 1.0, "'flush_intervall'"),
    ("writekey", "k", "'writekey'"),
    ("flush_interval", "soon", "'flush_interval'"),
    ("max_events_in_batch", 0, "'max_events_in_batch'"),
    ("max_events_in_batch", 2.5, "'max_events_in_batch'"),
    ("enable", "yes", "'enable'"),
    ("host", "cdp.customer.io", "'host'"),
    ("error_handler", "no_such_module_here.report", "'error_handler'"),
    ("error_handler", 42, "'error_handler'"),
    ("overflow", "block", "'overflow'"),
])
def test_a_configuration_mistake_fails_at_configuration_naming_the_option(
    option: str, value: Any, named: str, write_key: str
) -> None:
    options = {"write_key": write_key, option: value}
    with pytest.raises((TypeError, ValueError)) as direct:
        CDPHandler(**options)
    assert named in str(direct.value)

    with pytest.raises(ValueError, match="Unable to configure handler 'cdp'") as configured:
        logging.config.dictConfig({
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", **options}},
        })
    assert named in str(configured.value.__cause__)


def test_an_unknown_option_suggests_the_option_it_resembles(write_key: str) -> None:
    with pytest.raises(TypeError, match="did you mean 'flush_interval'"):
        CDPHandler(write_key=write_key, flush_intervall=1.0)


def test_a_handler_whose_configuration_failed_leaves_nothing_for_exit_to_trip_over(
    server: HTTPServer, write_key: str
) -> None:
    script = textwrap.dedent("""\
        import logging.config
        from cdp_logging import CDPHandler
        kept = []  # as a traceback kept for a report would: the frames stay alive until exit
        for options in ({"flush_intervall": 1}, {"flush_interval": "soon"}, {"level": "LOUD"}):
            try:
                CDPHandler(**options)
            except (TypeError, ValueError) as err:
                print("refused:", err)
                kept.append(err)
        try:
            logging.config.dictConfig({"version": 1, "handlers": {"cdp": {
                "class": "cdp_logging.CDPHandler", "enable": "yes"}}})
        except ValueError as err:
            print("refused by dictConfig")
            kept.append(err)
        logging.config.dictConfig({"version": 1})  # closes the handlers of the last configuration
    """)

    result = run_python(["-c", script], subprocess_env(server, write_key))

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("refused") == 4, result.stdout
    assert "Unknown level: 'LOUD'" in result.stdout
    assert result.stderr == ""


def test_a_required_write_key_that_is_missing_fails_at_configuration_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CDP_WRITE_KEY", raising=False)
    with pytest.raises(ValueError, match="CDP_WRITE_KEY"):
        CDPHandler(require_write_key=True)
    with pytest.raises(ValueError) as configured:
        logging.config.dictConfig({
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "require_write_key": True}},
        })
    assert "CDP_WRITE_KEY" in str(configured.value.__cause__)


def test_write_key_and_host_come_from_the_environment(
    server: HTTPServer, write_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDP_WRITE_KEY", write_key)
    monkeypatch.setenv("CDP_HOST", host_of(server))
    handler = CDPHandler(flush_interval=0.05)
    logger = new_logger("env")
    logger.propagate = False
    logger.addHandler(handler)

    logger.warning("signed up", extra={"event": "Signed Up", "user_id": "7"})
    handler.flush()

    [(request, _)] = [(r, s) for r, s in server.log if r.headers.get("Authorization") == basic_auth(write_key)]
    assert request.path == "/v1/batch"
    assert write_key not in repr(handler)
    handler.close()


def test_handlers_given_one_client_share_its_pipeline_and_leave_it_open(
    server: HTTPServer, write_key: str
) -> None:
    client = cdp_logging.Analytics(write_key, host=host_of(server), flush_interval=0.05)
    first, second = CDPHandler(client=client), CDPHandler(client=client)
    orders, accounts = new_logger("orders"), new_logger("accounts")
    for logger, handler in ((orders, first), (accounts, second)):
        logger.propagate = False
        logger.addHandler(handler)

    orders.info("order", extra={"event": "Order Completed", "user_id": "1"})
    accounts.info("login", extra=events.identify(user_id="1", traits={"plan": "pro"}))
    first.close()
    second.close()

    assert not client.closed
    client.track(user_id="1", event="After Close")
    assert client.flush(timeout=DELIVERY_TIMEOUT)
    assert [m.get("event", m["type"]) for m in messages(server, write_key)] == [
        "Order Completed", "identify", "After Close"]
    assert client.stats()["delivered"] == 3
    client.close_and_flush()


def test_client_and_client_options_together_are_refused(write_key: str) -> None:
    client = cdp_logging.Analytics(write_key, enable=False)
    with pytest.raises(TypeError, match="either client= or client options"):
        CDPHandler(client=client, flush_interval=1.0)
    with pytest.raises(TypeError, match="'client' must be a cdp_logging.Analytics"):
        CDPHandler(client="analytics")
    client.close_and_flush()


# -- which records become which calls --------------------------------------------------------

def test_short_track_form_sends_the_other_extra_fields_as_properties(
    attached: tuple[logging.Logger, CDPHandler], server: HTTPServer, write_key: str
) -> None:
    logger, handler = attached

    logger.info("order completed", extra={"event": "Order Completed", "user_id": "42",
                                          "order_id": 7, "total": 9.5})
    handler.flush()

    [message] = messages(server, write_key)
    assert message["type"] == "track"
    assert message["event"] == "Order Completed"
    assert message["userId"] == "42"
    assert message["properties"] == {"order_id": 7, "total": 9.5}


def test_short_track_form_ignores_what_formatters_and_logging_add_to_the_record(
    server: HTTPServer, write_key: str
) -> None:
    logger = new_logger("formatted")
    logger.propagate = False
    console = ListHandler()
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler = CDPHandler(write_key=write_key, host=host_of(server))
    logger.addHandler(console)  # formats first: sets record.message and record.asctime
    logger.addHandler(handler)

    try:
        raise KeyError("sku")
    except KeyError:
        logger.exception("order failed", extra={"event": "Order Failed", "user_id": "42", "sku": "A1"},
                         stack_info=True)
    handler.flush()

    [message] = messages(server, write_key)
    assert message["properties"] == {"sku": "A1"}
    handler.close()


def test_snake_case_and_camel_case_payloads_send_the_same_message(
    attached: tuple[logging.Logger, CDPHandler], server: HTTPServer, write_key: str
) -> None:
    logger, handler = attached
    snake = {"user_id": 5, "anonymous_id": "a-5", "group_id": "g", "object_type_id": 2, "message_id": "m-1"}
    camel = {"userId": 5, "anonymousId": "a-5", "groupId": "g", "objectTypeId": 2, "messageId": "m-2"}

    logger.info("snake", extra={"group": snake})
    logger.info("camel", extra={"group": camel})
    logger.info("alias", extra={"alias": {"previousId": "old", "userId": "new"}})
    logger.info("short", extra={"event": "Short", "userId": "9", "anonymousId": "a-9", "messageId": "m-3"})
    handler.flush()

    first, second, alias, short = messages(server, write_key)
    assert first["messageId"] == "m-1" and second["messageId"] == "m-2"
    for message in (first, second):
        assert {k: message[k] for k in ("type", "userId", "anonymousId", "groupId", "objectTypeId")} == {
            "type": "group", "userId": "5", "anonymousId": "a-5", "groupId": "g", "objectTypeId": "2"}
    assert (alias["previousId"], alias["userId"]) == ("old", "new")
    assert (short["userId"], short["anonymousId"], short["messageId"]) == ("9", "a-9", "m-3")
    assert "properties" not in short


def test_events_helpers_build_the_extra_of_each_call(
    attached: tuple[logging.Logger, CDPHandler], server: HTTPServer, write_key: str
) -> None:
    logger, handler = attached
    helpers = {"identify": events.identify, "track": events.track, "page": events.page,
               "screen": events.screen, "group": events.group, "alias": events.alias}
    capture = RecordCapture()
    handler.addFilter(capture)

    for call, fields in SIX_CALLS:
        logger.info("%s call", call, extra=helpers[call](**fields))
    handler.flush()

    assert_six_messages_arrived(messages(server, write_key), capture.records)


def test_a_record_carrying_several_calls_sends_each_of_them(
    attached: tuple[logging.Logger, CDPHandler], server: HTTPServer, write_key: str
) -> None:
    logger, handler = attached

    logger.info("signed up", extra={**events.identify(user_id="3", traits={"plan": "pro"}),
                                    **events.track(user_id="3", event="Signed Up")})
    handler.flush()

    assert [m["type"] for m in messages(server, write_key)] == ["identify", "track"]


def test_the_timestamp_is_the_moment_of_the_log_call_not_of_sending(
    attached: tuple[logging.Logger, CDPHandler], server: HTTPServer, write_key: str
) -> None:
    logger, handler = attached
    an_hour_ago = time.time() - 3600
    # A record made earlier and handled now, as a QueueListener or a socket receiver does.
    record = logging.makeLogRecord({
        "name": logger.name, "levelno": logging.INFO, "levelname": "INFO", "msg": "late",
        "created": an_hour_ago, "track": {"user_id": "1", "event": "Backfilled"},
    })

    logger.handle(record)
    logger.info("explicit", extra={"track": {"user_id": "1", "event": "Dated",
                                             "timestamp": "2024-05-01T12:00:00.250Z"}})
    handler.flush()

    first, *_ = bodies = batches(server, write_key)
    late, dated = [message for body in bodies for message in body["batch"]]
    assert_timestamp_is(late["timestamp"], an_hour_ago)
    assert parse_timestamp(first["sentAt"]) - parse_timestamp(late["timestamp"]) > 3500
    assert dated["timestamp"] == "2024-05-01T12:00:00.250Z"


def test_records_without_payload_are_ignored(
    attached: tuple[logging.Logger, CDPHandler], server: HTTPServer, write_key: str
) -> None:
    logger, handler = attached

    logger.info("plain message")
    logger.info("with other extra", extra={"request_id": "r-1", "user_id": "42"})
    logger.error("with an exception", exc_info=ValueError("x"))
    logger.info("the one payload", extra={"event": "Counted", "user_id": "42"})
    handler.flush()

    assert [m["event"] for m in messages(server, write_key)] == ["Counted"]
    stats = handler.client.stats()
    assert (stats["queued"], stats["invalid"], stats["dropped"]) == (1, 0, 0)


_ONE_CALL_EXTRA = {
    "identify": {"identify": {"user_id": "42"}},
    "track": {"track": {"user_id": "42", "event": "Added"}},
    "page": {"page": {"user_id": "42", "name": "Home"}},
    "screen": {"screen": {"user_id": "42", "name": "Home"}},
    "group": {"group": {"user_id": "42", "group_id": "g1"}},
    "alias": {"alias": {"user_id": "42", "previous_id": "anon-1"}},
    "event": {"event": "Added", "user_id": "42"},  # the short form of track
}


@pytest.mark.parametrize("key", sorted(PAYLOAD_KEYS))
@pytest.mark.parametrize("with_track", [False, True])
def test_every_payload_key_is_seen_by_the_handler(key: str, with_track: bool) -> None:
    # handle() looks the payload keys up one by one, for every record and again to find
    # the commonest record (track alone): none may be missed on either path.
    assert set(_ONE_CALL_EXTRA) == PAYLOAD_KEYS
    extra = dict(_ONE_CALL_EXTRA[key])
    if with_track:
        extra.update(_ONE_CALL_EXTRA["track"])
    with cdp_logging.testing.capture_events() as captured:
        handler = CDPHandler(write_key="k")
        try:
            # Taken: true (the record itself, where logging's filter() returns records).
            assert handler.handle(logging.makeLogRecord(extra))
            assert not handler.handle(logging.makeLogRecord({"other": 1}))
            stats = handler.client.stats()
        finally:
            handler.close()
    expected = {"track"} if key in ("track", "event") else {key, "track"} if with_track else {key}
    assert {message["type"] for message in captured.messages} == expected
    assert stats["invalid"] == 0


def test_a_record_without_payload_never_reaches_filters_or_emit() -> None:
    class Counting(CDPHandler):
        filtered = emitted = 0

        def filter(self, record: logging.LogRecord) -> Any:
            Counting.filtered += 1
            return super().filter(record)

        def emit(self, record: logging.LogRecord) -> None:
            Counting.emitted += 1

    handler = Counting(write_key="k", enable=False)
    logger = new_logger("busy")
    logger.propagate = False
    logger.addHandler(handler)

    for n in range(100):
        logger.info("request %d served", n, extra={"path": "/", "status": 200})
    assert (Counting.filtered, Counting.emitted) == (0, 0)

    logger.info("payload", extra={"event": "E", "user_id": "1"})
    assert (Counting.filtered, Counting.emitted) == (1, 1)
    handler.close()


def test_overridden_calls_and_added_filters_see_records_of_the_common_shape_too() -> None:
    class Renaming(CDPHandler):
        def calls(self, record: logging.LogRecord) -> Any:
            return [(call, {**fields, "event": "Renamed"}) for call, fields in super().calls(record)]

    seen: list[str] = []
    with cdp_logging.testing.capture_events() as captured:
        renaming = Renaming(write_key="k")
        filtered = CDPHandler(write_key="k")
        filtered.addFilter(lambda record: seen.append(record.getMessage()) or False)
        logger = new_logger("shapes")
        logger.propagate = False
        logger.addHandler(renaming)
        logger.addHandler(filtered)
        logger.info("added", extra={"track": {"user_id": "42", "event": "Added", "properties": {"n": 1}}})
    assert [m["event"] for m in captured.messages] == ["Renamed"]
    assert seen == ["added"]
    renaming.close()
    filtered.close()


def test_ordinary_logging_costs_about_the_same_with_the_handler_on_the_root_logger() -> None:
    """Measured as best of several runs against a logger with two NullHandlers; the
    figure printed is the ratio (about 1.1 on a laptop)."""
    def logger_with(second: logging.Handler) -> logging.Logger:
        logger = new_logger("busy")
        logger.propagate = False
        logger.addHandler(logging.NullHandler())
        logger.addHandler(second)
        return logger

    baseline = logger_with(logging.NullHandler())
    handler = CDPHandler(write_key="k", enable=False)
    with_cdp = logger_with(handler)

    def cost(logger: logging.Logger) -> float:
        return min(timeit.repeat(lambda: logger.info("served %s in %d ms", "/", 12, extra={"path": "/"}),
                                 number=1000, repeat=7))

    ratio = min(cost(with_cdp) / cost(baseline) for _ in range(3))
    print(f"ordinary record with CDPHandler / with NullHandler: {ratio:.2f}")
    assert ratio < 1.5
    handler.close()


def test_levels_filters_and_propagation_decide_as_for_any_handler(
    server: HTTPServer, write_key: str
) -> None:
    root = logging.getLogger()
    handler = CDPHandler(level="INFO", write_key=write_key, host=host_of(server))
    handler.addFilter(lambda record: getattr(record, "user_id", None) != "filtered-out")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    quiet = new_logger("quiet")
    quiet.setLevel(logging.WARNING)
    private = new_logger("private")
    private.propagate = False
    app = new_logger("app")

    quiet.info("below the logger's level", extra={"event": "Quiet", "user_id": "1"})
    app.debug("below the handler's level", extra={"event": "Debug", "user_id": "1"})
    app.info("filtered out", extra={"event": "Filtered", "user_id": "filtered-out"})
    private.info("not propagated", extra={"event": "Private", "user_id": "1"})
    app.info("sent", extra={"event": "Sent", "user_id": "1"})
    quiet.warning("at the logger's level", extra={"event": "Loud", "user_id": "1"})
    handler.flush()

    assert [m["event"] for m in messages(server, write_key)] == ["Sent", "Loud"]


# -- never hurt the application ----------------------------------------------------------------

def _deeply_nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


#: Each kind of bad payload, and what its report must say.
BAD_PAYLOADS = {
    "missing user id": ({"track": {"event": "Signed Up"}}, "track.user_id: user_id or anonymous_id is required"),
    "id of the wrong type": ({"identify": {"user_id": ["42"]}}, "identify.user_id: must be a string, a finite number or a UUID"),
    "name of the wrong type": ({"page": {"user_id": "1", "name": 404}}, "page.name: must be a string"),
    "properties not a dict": ({"track": {"user_id": "1", "event": "E", "properties": [1]}},
                              "track.properties: must be a dict"),
    "payload not a dict": ({"screen": "Checkout"}, "extra['screen'] must be a dict of the call's fields"),
    "unknown field": ({"track": {"user_id": "1", "event": "E", "propertys": {}}},
                      "track.propertys: is not a field of track"),
    "over 32 KB": ({"track": {"user_id": "1", "event": "Big", "properties": {"blob": "x" * 40_000}}},
                   "over the API's limit of 32768 bytes"),
    "not encodable": ({"track": {"user_id": "1", "event": "Deep", "properties": {"v": _deeply_nested(20_000)}}},
                      "nested deeper than 100 levels (or holding itself)"),
    "short form without user": ({"event": "Order Completed", "total": 9.5},
                                "track.user_id: user_id or anonymous_id is required"),
    "short form event not text": ({"event": 42, "user_id": "1"}, "track.event: must be a non-empty string"),
}


@pytest.mark.parametrize("reported_through", ["error_handler", "warning"])
@pytest.mark.parametrize("kind", list(BAD_PAYLOADS))
def test_each_bad_payload_is_reported_once_with_its_origin_and_counted(
    kind: str, reported_through: str, server: HTTPServer, write_key: str
) -> None:
    extra, problem = BAD_PAYLOADS[kind]
    errors: list[Exception] = []
    warnings = ListHandler()
    library_logger = logging.getLogger("cdp_logging")
    library_logger.addHandler(warnings)
    handler = CDPHandler(write_key=write_key, host=host_of(server),
                         error_handler=errors.append if reported_through == "error_handler" else None)
    logger = new_logger("shop.checkout")
    logger.propagate = False
    logger.addHandler(handler)

    line = _lineno() + 1
    logger.info("checkout", extra=extra)  # returns normally: nothing raised into the application

    if reported_through == "error_handler":
        [error] = errors
        assert isinstance(error, InvalidEventError)
        report = str(error)
        assert warnings.records == []
    else:
        [record] = warnings.records
        assert (record.name, record.levelno) == ("cdp_logging", logging.WARNING)
        report = record.getMessage()
    assert problem in report
    assert f"logger '{logger.name}'" in report
    assert f"{__file__}:{line}" in report
    stats = handler.client.stats()
    assert (stats["invalid"], stats["queued"], stats["dropped"]) == (1, 0, 0)
    library_logger.removeHandler(warnings)
    handler.close()


def _lineno() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def test_a_flood_of_bad_records_is_counted_in_full_and_reported_rate_limited(
    server: HTTPServer, write_key: str
) -> None:
    warnings = ListHandler()
    library_logger = logging.getLogger("cdp_logging")
    library_logger.addHandler(warnings)
    handler = CDPHandler(write_key=write_key, host=host_of(server))
    logger = new_logger("flood")
    logger.propagate = False
    logger.addHandler(handler)

    for n in range(500):
        logger.info("bad", extra={"track": {"event": f"No User {n}"}})

    assert handler.client.stats()["invalid"] == 500
    assert 1 <= len(warnings.records) <= 10
    library_logger.removeHandler(warnings)
    handler.close()


def test_error_handler_hears_of_every_bad_record_however_many(server: HTTPServer, write_key: str) -> None:
    errors: list[Exception] = []
    handler = CDPHandler(write_key=write_key, host=host_of(server), error_handler=errors.append)
    logger = new_logger("flood")
    logger.propagate = False
    logger.addHandler(handler)

    for n in range(200):
        logger.info("bad", extra={"track": {"event": f"No User {n}"}})

    assert len(errors) == 200
    assert handler.client.stats()["invalid"] == 200
    handler.close()


class _Exploding(Mapping):
    """A payload that fails in a way no validation foresaw."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


def test_an_unforeseen_failure_in_emit_is_reported_counted_and_never_raised(
    server: HTTPServer, write_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    errors: list[Exception] = []
    handler = CDPHandler(write_key=write_key, host=host_of(server), error_handler=errors.append)
    logger = new_logger("odd")
    logger.propagate = False
    logger.addHandler(handler)

    logger.info("odd payload", extra={"track": _Exploding()})
    logger.info("odd properties", extra={"track": {"user_id": "1", "event": "E", "properties": _Exploding()}})

    assert len(errors) == 2
    assert all("RuntimeError: boom" in str(error) and f"logger '{logger.name}'" in str(error)
               for error in errors)
    assert handler.client.stats()["invalid"] == 2
    assert "--- Logging error ---" in capsys.readouterr().err  # logging's own report, as for any handler
    handler.close()


def test_logging_after_close_is_counted_as_dropped_and_never_raises(server: HTTPServer, write_key: str) -> None:
    errors: list[Exception] = []
    handler = CDPHandler(write_key=write_key, host=host_of(server), error_handler=errors.append)
    logger = new_logger("late")
    logger.propagate = False
    logger.addHandler(handler)
    handler.close()

    logger.info("too late", extra={"event": "Late", "user_id": "1"})

    assert handler.client.stats()["dropped"] == 1
    [error] = errors
    assert isinstance(error, cdp_logging.EventDroppedError)


def test_logging_never_waits_for_the_network(httpserver_ipv4: HTTPServer, write_key: str) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(request: Request) -> Response:
        entered.set()
        release.wait(DELIVERY_TIMEOUT)
        return Response("{}", status=200, content_type="application/json")

    httpserver_ipv4.expect_request("/v1/batch").respond_with_handler(slow)
    handler = CDPHandler(write_key=write_key, host=host_of(httpserver_ipv4), flush_interval=0.05,
                         max_events_in_batch=5)
    logger = new_logger("slow")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.info("first", extra={"event": "E0", "user_id": "1"})
        wait_until(entered.is_set, message="the first batch to reach the server")

        started = time.monotonic()
        for n in range(1, 200):
            logger.info("more", extra={"event": f"E{n}", "user_id": "1"})
        elapsed = time.monotonic() - started
    finally:
        release.set()

    assert elapsed < DELIVERY_TIMEOUT / 3, f"logging took {elapsed:.1f}s while the server held a request"
    handler.flush()
    assert len(messages(httpserver_ipv4, write_key)) == 200
    handler.close()


def test_flush_delivers_what_is_queued(server: HTTPServer, write_key: str) -> None:
    handler = CDPHandler(write_key=write_key, host=host_of(server), flush_interval=3600)
    logger = new_logger("flush")
    logger.propagate = False
    logger.addHandler(handler)

    for n in range(7):
        logger.info("e", extra={"event": f"E{n}", "user_id": "1"})
    handler.flush()

    assert [m["event"] for m in messages(server, write_key)] == [f"E{n}" for n in range(7)]
    handler.close()


def test_close_delivers_stops_the_worker_and_is_safe_twice(server: HTTPServer, write_key: str) -> None:
    handler = CDPHandler(write_key=write_key, host=host_of(server), flush_interval=3600)
    logger = new_logger("close")
    logger.propagate = False
    logger.addHandler(handler)
    threads_before = set(_cdp_threads())
    for n in range(5):
        logger.info("e", extra={"event": f"E{n}", "user_id": "1"})
    [worker] = set(_cdp_threads()) - threads_before

    handler.close()
    handler.close()
    handler.flush()

    assert len(messages(server, write_key)) == 5
    assert not worker.is_alive()
    assert handler.client.closed


def test_logging_shutdown_delivers_and_closes(server: HTTPServer, write_key: str) -> None:
    handler = CDPHandler(write_key=write_key, host=host_of(server), flush_interval=3600)
    logger = new_logger("exit")
    logger.propagate = False
    logger.addHandler(handler)
    for n in range(5):
        logger.info("e", extra={"event": f"E{n}", "user_id": "1"})

    logging.shutdown([weakref.ref(handler)])  # what logging runs at exit, for this handler only

    assert len(messages(server, write_key)) == 5
    assert handler.client.closed


def test_records_passed_through_a_queue_listener_keep_their_payload_and_timestamp(
    server: HTTPServer, write_key: str
) -> None:
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = CDPHandler(write_key=write_key, host=host_of(server))
    capture = RecordCapture()
    listener = logging.handlers.QueueListener(records, handler)
    logger = new_logger("queued")
    logger.propagate = False
    queue_handler = logging.handlers.QueueHandler(records)
    queue_handler.addFilter(capture)
    logger.addHandler(queue_handler)
    listener.start()

    logger.info("order", extra={"event": "Order Completed", "user_id": "1", "total": 9.5})
    logger.info("signed up", extra=events.identify(user_id="1", traits={"plan": "pro"}))
    listener.stop()
    handler.flush()

    track, identify = messages(server, write_key)
    assert (track["event"], track["properties"]) == ("Order Completed", {"total": 9.5})
    assert identify["traits"] == {"plan": "pro"}
    for message, record in zip((track, identify), capture.records):
        assert_timestamp_is(message["timestamp"], record.created)
    handler.close()


def test_close_is_bounded_when_the_server_does_not_answer(httpserver_ipv4: HTTPServer, write_key: str) -> None:
    release = threading.Event()

    def hang(request: Request) -> Response:
        release.wait(DELIVERY_TIMEOUT)
        return Response("{}", status=200, content_type="application/json")

    httpserver_ipv4.expect_request("/v1/batch").respond_with_handler(hang)
    handler = CDPHandler(write_key=write_key, host=host_of(httpserver_ipv4), flush_interval=3600,
                         shutdown_timeout=0.5, timeout=1.0, max_retries=0)
    logger = new_logger("hang")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for n in range(5):
            logger.info("e", extra={"event": f"E{n}", "user_id": "1"})
        started = time.monotonic()
        handler.close()
        elapsed = time.monotonic() - started
    finally:
        release.set()

    assert elapsed < 3.0, f"close took {elapsed:.1f}s with shutdown_timeout=0.5"
    wait_until(lambda: handler.client.stats()["pending"] == 0, message="the in-flight batch to end")
    stats = handler.client.stats()
    assert stats["delivered"] + stats["failed"] + stats["unconfirmed"] == 5


def test_records_logged_while_sending_are_not_fed_back_even_at_debug_on_root(
    httpserver_ipv4: HTTPServer, write_key: str
) -> None:
    httpserver_ipv4.expect_request("/v1/batch").respond_with_data("unavailable", status=500)
    everything = ListHandler()
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    root.addHandler(everything)
    handler = CDPHandler(write_key=write_key, host=host_of(httpserver_ipv4), flush_interval=0.05,
                         max_retries=1, max_retry_time=5)
    root.addHandler(handler)

    for n in range(3):
        logging.getLogger("app").info("e", extra={"event": f"E{n}", "user_id": "1"})
    handler.flush()

    stats = handler.client.stats()
    assert (stats["failed"], stats["delivered"]) == (3, 0)
    sent = [m["event"] for body in batches(httpserver_ipv4, write_key) for m in body["batch"]]
    assert sorted(set(sent)) == ["E0", "E1", "E2"]
    assert len(sent) <= 3 * 2  # each event at most once per attempt: nothing recursed
    names = {record.name for record in everything.records}
    # The HTTP client (urllib3 under requests, or cdp_logging's own) logged at DEBUG, to root,
    # while sending.
    assert names & {"urllib3.connectionpool", "cdp_logging"}
    assert any(record.levelno == logging.DEBUG for record in everything.records)
    assert any("not delivered" in line for line in everything.lines)  # the failure was reported
    root.removeHandler(handler)
    handler.close()


def test_a_record_logged_from_error_handler_does_not_loop(server: HTTPServer, write_key: str) -> None:
    calls: list[Exception] = []
    errors_logger = new_logger("app.errors")

    def error_handler(error: Exception) -> None:
        calls.append(error)
        errors_logger.error("analytics problem: %s", error,
                            extra={"track": {"event": "Also Bad"}})  # itself a bad payload
        errors_logger.error("analytics problem", extra={"event": "CDP Problem", "user_id": "ops"})

    everything = ListHandler()
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    handler = CDPHandler(write_key=write_key, host=host_of(server), error_handler=error_handler)
    root.addHandler(handler)
    root.addHandler(everything)

    logging.getLogger("app").info("bad", extra={"track": {"event": "No User"}})
    logging.getLogger("app").info("good", extra={"track": {"event": "Good", "user_id": "1"}})
    handler.flush()

    assert len(calls) == 1
    assert [m["event"] for m in messages(server, write_key)] == ["Good"]
    assert [r.getMessage().split(":")[0] for r in everything.records if r.name == errors_logger.name] == [
        "analytics problem", "analytics problem"]
    root.removeHandler(handler)
    handler.close()


# -- lifecycle under configuration changes ---------------------------------------------------------

def _cdp_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("cdp-logging")]


def _current_cdp_handler() -> CDPHandler:
    [handler] = [h for h in logging.getLogger().handlers if isinstance(h, CDPHandler)]
    return handler


def test_reconfiguring_logging_twice_leaves_no_worker_behind_and_loses_no_event(
    server: HTTPServer, write_key: str
) -> None:
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "write_key": write_key,
                             "host": host_of(server), "flush_interval": 3600}},
        # DEBUG on root: urllib3 logs while the old handlers deliver during reconfiguration.
        "root": {"handlers": ["cdp"], "level": "DEBUG"},
    }
    logger = new_logger("app")
    threads_before = set(_cdp_threads())
    sent = 0
    durations = []
    for _round in range(3):
        started = time.monotonic()
        logging.config.dictConfig(config)
        logging.config.dictConfig(config)  # twice in a row
        durations.append(time.monotonic() - started)
        for _ in range(4):
            logger.info("order", extra={"event": "Order Completed", "user_id": "1", "n": sent})
            sent += 1

    _current_cdp_handler().flush()
    received = wait_for_messages(server, sent, write_key=write_key)
    assert sorted(m["properties"]["n"] for m in received) == list(range(sent))
    wait_until(lambda: len(set(_cdp_threads()) - threads_before) == 1,
               message="the workers of replaced handlers to end, leaving the current handler's")
    assert max(durations) < 3.0, f"reconfiguring took {max(durations):.1f}s"


def test_a_handler_left_attached_by_a_later_dictconfig_keeps_sending(
    server: HTTPServer, write_key: str
) -> None:
    # uvicorn and other frameworks call dictConfig for their own loggers: it closes every
    # handler, yet leaves the ones on loggers it does not name attached.
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "write_key": write_key,
                             "host": host_of(server), "flush_interval": 3600}},
        "loggers": {"shop": {"handlers": ["cdp"], "level": "INFO"}},
    })
    shop = logging.getLogger("shop")
    [handler] = shop.handlers
    shop.info("before", extra={"event": "Before", "user_id": "1"})
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                               "loggers": {"framework": {"level": "INFO"}}})
    shop.info("after", extra={"event": "After", "user_id": "1"})
    handler.flush()

    received = wait_for_messages(server, 2, write_key=write_key)
    assert sorted(m["event"] for m in received) == ["After", "Before"]
    assert handler.client.stats()["dropped"] == 0
    shop.removeHandler(handler)
    handler.close()


def test_reconfiguring_with_fileconfig_delivers_what_the_old_handler_held(
    server: HTTPServer, write_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CDP_WRITE_KEY", write_key)
    monkeypatch.setenv("CDP_HOST", host_of(server))
    ini = tmp_path / "logging.ini"
    ini.write_text(textwrap.dedent("""\
        [loggers]
        keys=root
        [handlers]
        keys=cdp
        [formatters]
        keys=
        [logger_root]
        level=DEBUG
        handlers=cdp
        [handler_cdp]
        class=cdp_logging.CDPHandler
        kwargs={'flush_interval': 3600}
        """))
    logger = new_logger("app")
    threads_before = set(_cdp_threads())

    for n in range(3):
        logging.config.fileConfig(ini, disable_existing_loggers=False)
        logger.info("order", extra={"event": "Order Completed", "user_id": "1", "n": n})
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "root": {"handlers": []}})

    received = wait_for_messages(server, 3, write_key=write_key)
    assert sorted(m["properties"]["n"] for m in received) == [0, 1, 2]
    wait_until(lambda: not set(_cdp_threads()) - threads_before, message="every cdp-logging thread to end")


# -- at interpreter exit: real subprocesses ------------------------------------------------------

EXIT_SCRIPT = """
import logging.config, sys
logging.config.dictConfig({{
    "version": 1,
    "handlers": {{"cdp": {{"class": "cdp_logging.CDPHandler", "flush_interval": 3600}}}},
    "root": {{"handlers": ["cdp"], "level": "INFO"}},
}})
log = logging.getLogger("shop")
for n in range({count}):
    log.info("order", extra={{"event": "Order Completed", "user_id": str(n), "order_id": n}})
{ending}
"""


@pytest.mark.parametrize("ending, returncode", [
    ("", 0),
    ("sys.exit(3)", 3),
    ("raise RuntimeError('the application failed')", 1),
], ids=["normal exit", "sys.exit(3)", "uncaught exception"])
def test_every_event_arrives_when_the_process_exits_without_calling_anything(
    ending: str, returncode: int, server: HTTPServer, write_key: str
) -> None:
    count = 45
    result = run_python(["-c", EXIT_SCRIPT.format(count=count, ending=ending)], subprocess_env(server, write_key))

    assert result.returncode == returncode, result.stderr
    received = messages(server, write_key)
    assert sorted(m["properties"]["order_id"] for m in received) == list(range(count))
    if returncode == 1:
        assert "RuntimeError: the application failed" in result.stderr


DEBUG_ROOT_SCRIPT = """
import logging.config
logging.config.dictConfig({
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "level": "DEBUG"},
        "cdp": {"class": "cdp_logging.CDPHandler", "flush_interval": 0.05, "max_retries": 2,
                "max_retry_time": 5, "shutdown_timeout": 3},
    },
    "root": {"handlers": ["console", "cdp"], "level": "DEBUG"},
})
log = logging.getLogger("shop")
for n in range(5):
    log.info("order", extra={"event": "Order Completed", "user_id": str(n)})
"""


def test_root_at_debug_with_a_failing_server_finishes_reports_and_does_not_recurse(
    httpserver_ipv4: HTTPServer, write_key: str
) -> None:
    httpserver_ipv4.expect_request("/v1/batch").respond_with_data("unavailable", status=500)

    started = time.monotonic()
    result = run_python(["-c", DEBUG_ROOT_SCRIPT], subprocess_env(httpserver_ipv4, write_key))
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert elapsed < 30
    assert "RecursionError" not in result.stderr
    assert "--- Logging error ---" not in result.stderr
    # The HTTP client logged at DEBUG while sending: urllib3 under requests, or cdp_logging's own.
    assert re.search(r"^DEBUG (urllib3\.connectionpool|cdp_logging) ", result.stderr, re.MULTILINE)
    assert re.search(r"WARNING cdp_logging cdp-logging: \d+ events? not delivered", result.stderr), result.stderr
    sent = [m["event"] for body in batches(httpserver_ipv4, write_key) for m in body["batch"]]
    assert set(sent) == {"Order Completed"}
    assert len(sent) <= 5 * 3


WARNING_SCRIPT = """
import logging.config
logging.config.dictConfig({{
    "version": 1,
    "handlers": {{"cdp": {{"class": "{handler_class}"}}}},
    "root": {{"handlers": ["cdp"], "level": "INFO"}},
}})
assert logging.getLogger("cdp_logging").disabled  # by disable_existing_loggers=True
logging.getLogger("shop").info("signed up", extra={{"track": {{"event": "Signed Up"}}}})
"""


@pytest.mark.parametrize("handler_class", ["cdp_logging.CDPHandler", "support.handlers.CDPHandlerSubclass"])
def test_a_bad_payload_warning_is_visible_when_dictconfig_disabled_the_library_logger(
    handler_class: str, server: HTTPServer, write_key: str
) -> None:
    script = WARNING_SCRIPT.format(handler_class=handler_class)
    line = script.splitlines().index(
        next(s for s in script.splitlines() if s.startswith('logging.getLogger("shop")'))) + 1

    result = run_python(["-c", script], subprocess_env(server, write_key))

    assert result.returncode == 0, result.stderr
    assert "track.user_id: user_id or anonymous_id is required" in result.stderr
    assert f"logger 'shop' at <string>:{line}" in result.stderr
