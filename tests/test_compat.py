"""Moving from customerio-cdp-analytics 1.1: the same calls through the official client and
through cdp_logging (its compat module and Analytics), captured by one local server and
compared field by field; the differences allowed are exactly those docs/migration.md's
table names."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import decimal
import enum
import json
import logging
import threading
import uuid
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import numpy
import pytest
from customerio import analytics as official_module
from customerio.analytics import Client as OfficialClient
from customerio.analytics import request as official_request
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import cdp_logging
from cdp_logging import compat
from cdp_logging.delivery.transport import default_host
from support.helpers import DEADLINE, batch_requests, raw_body

#: The official client 1.1.0 calls datetime.utcnow(), deprecated since Python 3.12.
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning:customerio")

OFFICIAL_AGENT = "analytics-python/"
MIGRATION = Path(__file__).resolve().parents[1] / "docs" / "migration.md"


class Plan(enum.Enum):
    PRO = "pro"


AWARE = dt.datetime(2024, 5, 1, 14, 30, 15, 250000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
CONTEXT = {"ip": "203.0.113.9", "locale": "en-US", "page": {"path": "/pricing"}}
INTEGRATIONS = {"All": False, "Mixpanel": True}
ODD_PROPERTIES = {
    "price": decimal.Decimal("9.50"), "tags": ("a", "b"), "when": dt.date(2024, 5, 1),
    "at": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc), "plan": Plan.PRO,
    "raw": b"bytes", "nested": {"list": [1, 2.5, None, True]}, "empty": {},
}


def cases() -> list[tuple[str, str, tuple[Any, ...]]]:
    """(case, call, positional arguments in the official order, the message_id last)."""
    least = [
        ("identify", ("u1",)), ("track", ("u1", "Signed Up")), ("page", ("u1",)),
        ("screen", ("u1",)), ("group", (None, "g1")), ("alias", ("anon-1", "u1")),
    ]
    every = [
        ("identify", ("u1", {"email": "ann@example.com"}, CONTEXT, AWARE, "a1", INTEGRATIONS)),
        ("track", ("u1", "Order Completed", {"total": 9.5}, CONTEXT, AWARE, "a1", INTEGRATIONS)),
        ("page", ("u1", "Docs", "Pricing", {"url": "https://x.test/p"}, CONTEXT, AWARE, "a1", INTEGRATIONS)),
        ("screen", ("u1", "Shop", "Checkout", {"step": 2}, CONTEXT, AWARE, "a1", INTEGRATIONS)),
        ("group", ("u1", "acme", {"name": "Acme"}, CONTEXT, AWARE, "a1", INTEGRATIONS)),
        ("alias", ("anon-1", "u1", CONTEXT, AWARE, INTEGRATIONS)),
    ]
    odd = [
        ("numpy id", "track", (numpy.int64(42), "E", ODD_PROPERTIES)),
        ("Decimal id", "identify", (decimal.Decimal(42), {"n": decimal.Decimal("1.25")})),
        ("float id", "identify", (42.0,)),
        ("int id", "identify", (0, None, None, None, "anon-0")),
        ("UUID id, numeric group id", "group", (uuid.UUID(int=7), 12, {"size": 3})),
        ("numeric alias", "alias", (7, 8)),
        ("naive now", "track", ("u1", "E", None, None, dt.datetime.now())),
        ("anonymous only", "page", (None, None, "Home", None, None, None, "anon-9")),
    ]
    made = [(f"least {call}", call, args) for call, args in least]
    made += [(f"every field of {call}", call, args) for call, args in every]
    made += odd
    return made


def with_message_id(call: str, args: tuple[Any, ...], message_id: str) -> tuple[Any, ...]:
    """The arguments with message_id, the last positional argument of every call."""
    arity = {"identify": 7, "track": 8, "page": 9, "screen": 9, "group": 8, "alias": 6}[call]
    return (*args, *([None] * (arity - 1 - len(args))), message_id)


def comparable(message: dict[str, Any], *, ours: bool) -> dict[str, Any]:
    """The message less the differences the migration table (docs/migration.md) names; each is checked here."""
    message = json.loads(json.dumps(message))
    library = message["context"].pop("library")
    assert library["name"] == ("cdp-logging" if ours else "analytics-python")  # "context.library"
    stamp = message.pop("timestamp")
    if ours:
        assert stamp.endswith("Z") and len(stamp) == 24, stamp  # "UTC Z timestamps"
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    message["instant"] = when.timestamp()
    # "Absent fields are left out": the official client sends them as null, or as {}.
    for key in ("anonymousId", "userId", "name", "category"):
        if message.get(key) is None:
            message.pop(key, None)
    for key in ("properties", "traits", "integrations"):
        if message.get(key) == {}:
            message.pop(key)
    # "group_id and previous_id are sent as strings": the official client sends numbers as given.
    for key in ("groupId", "previousId"):
        if not ours and isinstance(message.get(key), (int, float)):
            message[key] = str(message[key])
    return message


@pytest.fixture
def capture(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/v1/batch", method="POST").respond_with_json({})
    return httpserver


def sent_by(server: HTTPServer, agent_prefix: str) -> list[tuple[Any, dict[str, Any]]]:
    """(request, body) of every batch request made by the client with that User-Agent."""
    return [(request, json.loads(raw_body(request))) for request in batch_requests(server)
            if request.headers["User-Agent"].startswith(agent_prefix)]


def messages_by_id(server: HTTPServer, agent_prefix: str) -> dict[str, dict[str, Any]]:
    return {m["messageId"]: m for _, body in sent_by(server, agent_prefix) for m in body["batch"]}


@pytest.mark.parametrize("key", ["legacy-write-key", "pk_eu_5e3b9d71", "sk_us_0a4c1e\n"])
def test_the_same_calls_send_the_same_messages_as_the_official_client(capture: HTTPServer, key: str) -> None:
    host = capture.url_for("").rstrip("/")
    official = OfficialClient(key, host=host, sync_mode=True)
    ours = compat.Client(key, host=host, upload_size=100, upload_interval=60.0)
    analytics = cdp_logging.Analytics(key, host=host, max_events_in_batch=100, flush_interval=60.0)
    expected: dict[str, str] = {}
    stamped: set[str] = set()
    for number, (case, call, args) in enumerate(cases()):
        message_id = f"case-{number}"
        expected[message_id] = case
        if with_message_id(call, args, message_id)[official_positional_names(call).index("timestamp")] is not None:
            stamped.add(message_id)
        # Copies: the official client adds its library to the caller's context dict.
        success, _ = getattr(official, call)(*copy.deepcopy(with_message_id(call, args, message_id)))
        assert success
        success, mine = getattr(ours, call)(*copy.deepcopy(with_message_id(call, args, message_id)))
        assert success and mine["messageId"] == message_id, case
        names = official_positional_names(call)
        analytics_id = getattr(analytics, call)(**{
            name: value for name, value in zip(names, copy.deepcopy(with_message_id(call, args, message_id + "-kw")))
            if value is not None
        })
        assert analytics_id == message_id + "-kw"
    ours.shutdown()
    assert analytics.close_and_flush(timeout=DEADLINE)

    theirs = messages_by_id(capture, OFFICIAL_AGENT)
    mine = messages_by_id(capture, "cdp-logging/")
    assert set(theirs) == set(expected)
    assert set(mine) == set(expected) | {f"{m}-kw" for m in expected}
    for message_id, case in expected.items():
        ours_now, theirs_now = comparable(mine[message_id], ours=True), comparable(theirs[message_id], ours=False)
        if message_id not in stamped:  # each stamped the call with its own "now"
            assert abs(ours_now.pop("instant") - theirs_now.pop("instant")) < DEADLINE, case
        assert ours_now == theirs_now, case
        keyword = dict(mine[message_id + "-kw"], messageId=message_id)
        if message_id not in stamped:
            keyword["timestamp"] = mine[message_id]["timestamp"]
        assert keyword == mine[message_id], f"{case}: Analytics and compat differ"

    # The requests: same path, content type, auth, and the same envelope.
    official_requests = sent_by(capture, OFFICIAL_AGENT)
    our_requests = sent_by(capture, "cdp-logging/")
    for request, body in official_requests + our_requests:
        assert request.path == "/v1/batch"
        assert request.headers["Content-Type"] == "application/json"
        assert set(body) == {"batch", "sentAt"}
    auth = {request.headers["Authorization"] for request, _ in official_requests + our_requests}
    stripped = key.strip()
    if stripped.startswith(("pk_", "sk_")):
        assert auth == {f"Bearer {stripped}"}
    else:
        assert auth == {"Basic " + base64.b64encode(f"{stripped}:".encode()).decode()}


def official_positional_names(call: str) -> list[str]:
    """The official method's parameter names, in order."""
    code = getattr(OfficialClient, call).__code__
    return list(code.co_varnames[1:code.co_argcount])


@pytest.mark.parametrize("call", ["identify", "track", "page", "screen", "group", "alias"])
def test_every_call_takes_the_official_arguments_in_the_official_order(call: str) -> None:
    ours = getattr(compat.Client, call).__code__
    assert list(ours.co_varnames[1:ours.co_argcount]) == official_positional_names(call)


def test_the_client_takes_the_official_options_in_the_official_order() -> None:
    theirs = OfficialClient.__init__.__code__
    ours = compat.Client.__init__.__code__
    assert ours.co_varnames[:ours.co_argcount] == theirs.co_varnames[:theirs.co_argcount]
    assert OfficialClient.__init__.__defaults__ == compat.Client.__init__.__defaults__
    for name in vars(OfficialClient.DefaultConfig):
        if not name.startswith("_"):
            assert getattr(compat.Client.DefaultConfig, name) == getattr(OfficialClient.DefaultConfig, name), name


def test_the_module_has_the_official_settings_and_functions() -> None:
    for name in ("write_key", "host", "on_error", "debug", "send", "sync_mode", "max_queue_size",
                 "gzip", "timeout", "max_retries", "default_client"):
        assert getattr(compat, name) == getattr(official_module, name), name
    for name in ("track", "identify", "group", "alias", "page", "screen", "flush", "join", "shutdown"):
        assert callable(getattr(compat, name)), name


def test_a_naive_datetime_long_past_is_local_time_where_the_official_client_guesses_utc(
    capture: HTTPServer, local_time_is_not_utc: None
) -> None:
    host = capture.url_for("").rstrip("/")
    naive = dt.datetime(2024, 5, 1, 14, 30)
    OfficialClient("key", host=host, sync_mode=True).track("u1", "E", timestamp=naive, message_id="old")
    ours = compat.Client("key", host=host)
    ours.track("u1", "E", timestamp=naive, message_id="old")
    ours.shutdown()
    assert messages_by_id(capture, OFFICIAL_AGENT)["old"]["timestamp"] == "2024-05-01T14:30:00.000+00:00"
    # Nine hours ahead of UTC here: 14:30 local is 05:30 UTC, as naive.timestamp() says.
    assert messages_by_id(capture, "cdp-logging/")["old"]["timestamp"] == "2024-05-01T05:30:00.000Z"


@pytest.mark.parametrize(
    ("field", "args"),
    [
        ("user_id", (True, "E")),            # the official client sends "True"
        ("user_id", (float("nan"), "E")),    # and "nan"
        ("event", ("u1", "")),
        ("message_id", ("u1", "E", None, None, None, None, None, "")),
    ],
)
def test_values_the_official_client_sends_and_the_table_names_are_refused(field: str, args: tuple[Any, ...]) -> None:
    official = OfficialClient("key", send=False)
    assert official.track(*args)[0]
    with pytest.raises(cdp_logging.InvalidEventError) as caught:
        compat.Client("key", send=False).track(*args)
    assert caught.value.field == field


def test_the_migration_table_names_every_difference_the_comparison_allows() -> None:
    section = MIGRATION.read_text(encoding="utf-8").split("# Moving from customerio-cdp-analytics", 1)[1]
    for named in ("null", "`{}`", "`Z`", "context.library", "first call is sent at once",
                  "naive", "`True`", "NaN", "`event`", "`message_id`", "cdp_logging.compat"):
        assert named in section, named
    assert compat.__doc__ is not None
    for named in ("null", "``Z``", "first call is sent at once", "naive"):
        assert named in compat.__doc__, named


# -- the compat module used as the official README uses it -----------------------------------


@pytest.fixture
def module_settings() -> Iterator[None]:
    """The module's settings and default client, put back after the test."""
    names = ("write_key", "host", "on_error", "debug", "send", "sync_mode", "max_queue_size",
             "gzip", "timeout", "max_retries", "default_client")
    saved = {name: getattr(compat, name) for name in names}
    yield
    logging.getLogger("cdp_logging").setLevel(logging.NOTSET)
    client = compat.default_client
    if client is not None:
        client.analytics.close_and_flush(timeout=DEADLINE)
    for name, value in saved.items():
        setattr(compat, name, value)


def test_the_module_level_api_as_the_official_readme_uses_it(capture: HTTPServer, module_settings: None) -> None:
    errors: list[Any] = []
    compat.write_key = "pk_us_readme\n"
    compat.host = capture.url_for("").rstrip("/")
    compat.on_error = lambda error, batch: errors.append((error, batch))
    compat.debug = True

    # The official README's usage, word for word but the host ("Other Regions" sets it so).
    assert compat.track(user_id=4, event="order_complete")[0]
    assert compat.identify("019mr8mf4r", {"email": "cool.person@example.com", "plan": "Enterprise"})[0]
    assert compat.track("019mr8mf4r", "added_to_cart", {"product": "shoes", "revenue": 39.95})[0]
    assert compat.page("019mr8mf4r", "Docs", "Customer.io CDP", {"url": "https://customer.io/cdp/"})[0]
    assert compat.screen("019mr8mf4r", "Shop", "Checkout")[0]
    assert compat.group("019mr8mf4r", "56", {"name": "Initech", "object_type_id": 1})[0]
    success, message = compat.alias("anonymous_user", "identified@example.com")
    assert success and message["type"] == "alias" and message["userId"] == "identified@example.com"
    assert compat.flush() is None
    compat.shutdown()

    messages = messages_by_id(capture, "cdp-logging/")
    assert sorted(m["type"] for m in messages.values()) == sorted(
        ["track", "identify", "track", "page", "screen", "group", "alias"])
    assert any(m.get("event") == "order_complete" and m["userId"] == "4" for m in messages.values())
    page = next(m for m in messages.values() if m["type"] == "page")
    assert (page["category"], page["name"]) == ("Docs", "Customer.io CDP")
    assert {r.headers["Authorization"] for r in batch_requests(capture)} == {"Bearer pk_us_readme"}
    assert isinstance(compat.default_client, compat.Client)
    assert logging.getLogger("cdp_logging").level == logging.DEBUG
    assert errors == []


def test_on_error_gets_each_failed_batch_once_with_its_status_and_the_servers_message(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/v1/batch", method="POST").respond_with_json(
        {"code": "unauthorized", "message": "invalid write key"}, status=401)
    errors: list[tuple[Any, list]] = []
    client = compat.Client("wrong-key", host=httpserver.url_for("").rstrip("/"),
                           on_error=lambda error, batch: errors.append((error, batch)),
                           upload_size=3, upload_interval=60.0)
    for events in ("ABC", "DEF", "G"):
        for event in events:
            client.track("u1", event)
        client.flush()
    client.shutdown()
    # One on_error call per request refused, with the messages of that request.
    assert [[m["event"] for m in batch] for _, batch in errors] == [
        [m["event"] for m in body["batch"]] for _, body in sent_by(httpserver, "cdp-logging/")]
    assert [m["event"] for _, batch in errors for m in batch] == list("ABCDEFG")
    assert len(errors) >= 3  # a request at least per flush
    for error, _ in errors:
        assert isinstance(error, cdp_logging.DeliveryError)
        assert (error.status, error.message, error.cause) == (401, "invalid write key", None)


def test_a_full_queue_returns_false_as_the_official_client_does(
    httpserver: HTTPServer, server_release: threading.Event
) -> None:
    arrived = threading.Event()

    def hold(request: Request) -> Response:
        arrived.set()
        server_release.wait(DEADLINE)
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/v1/batch", method="POST").respond_with_handler(hold)
    client = compat.Client("key", host=httpserver.url_for("").rstrip("/"), max_queue_size=1,
                           upload_interval=60.0)
    assert client.track("u1", "sent at once")[0]
    assert arrived.wait(DEADLINE)
    assert client.track("u1", "queued")[0]
    success, message = client.track("u1", "no room")
    assert not success and message["event"] == "no room"
    assert client.analytics.stats()["dropped"] == 1
    server_release.set()
    client.shutdown()


def test_sync_mode_delivers_before_the_call_returns(capture: HTTPServer) -> None:
    client = compat.Client("key", host=capture.url_for("").rstrip("/"), sync_mode=True,
                           upload_interval=60.0, upload_size=100)
    for number in range(3):
        success, _ = client.track("u1", f"E{number}")
        # Without sync_mode the second and third would wait a minute for upload_interval.
        assert success
        assert [m["event"] for _, body in sent_by(capture, "cdp-logging/") for m in body["batch"]] == [
            f"E{n}" for n in range(number + 1)]
    client.shutdown()


def test_send_false_checks_calls_and_sends_nothing(capture: HTTPServer) -> None:
    client = compat.Client(None, send=False)
    assert client.track("u1", "E")[0]
    with pytest.raises(cdp_logging.InvalidEventError):
        client.track(None, "E")
    assert client.analytics.stats()["skipped"] == 1
    assert client.analytics.stats()["invalid"] == 1
    client.shutdown()
    assert batch_requests(capture) == []


def test_proxies_are_used_and_a_netrc_entry_never_replaces_bearer_auth(
    capture: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    for key in ("pk_eu_netrc", "legacy-netrc"):
        # An empty proxies dict: requests itself sends (it is the path that reads .netrc).
        client = compat.Client(key, host=capture.url_for("").rstrip("/"), proxies={})
        assert client.track("u1", "E")[0]
        client.shutdown()
    assert [r.headers["Authorization"] for r in batch_requests(capture)] == [
        "Bearer pk_eu_netrc", "Basic " + base64.b64encode(b"legacy-netrc:").decode()]


def test_requests_go_through_the_proxies_given(capture: HTTPServer) -> None:
    # The host's name does not resolve: only the proxy (the local server) can answer.
    client = compat.Client("pk_eu_proxied", host="http://cdp.proxied.invalid",
                           proxies={"http": capture.url_for("").rstrip("/")})
    assert client.track("u1", "Through the proxy")[0]
    client.shutdown()
    [request] = batch_requests(capture)
    assert request.url == "http://cdp.proxied.invalid/v1/batch"
    assert request.headers["Authorization"] == "Bearer pk_eu_proxied"
    assert [m["event"] for m in json.loads(raw_body(request))["batch"]] == ["Through the proxy"]
    assert client.analytics.stats()["delivered"] == 1


# -- region keys without sending: the default host and the warning ---------------------------


@pytest.mark.parametrize("key", ["pk_us_1", "sk_us_1", "pk_eu_1", "sk_eu_1", "legacy", "pk_xx_1", " pk_eu_1\n"])
def test_the_default_host_is_the_official_clients_for_every_kind_of_key(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CDP_HOST", raising=False)
    theirs = official_request._base_url(official_request._API_KEY_PREFIX.match(key.strip()), None)
    assert default_host(key.strip()) == theirs
    assert cdp_logging.Analytics(key, enable=False).host == theirs
    assert compat.Client(key, send=False).host == theirs


def region_warnings(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and "API key" in r.getMessage()]


@pytest.mark.parametrize(
    ("key", "host", "warns"),
    [
        ("pk_eu_1", "https://cdp.customer.io", True),
        ("sk_us_1", "https://cdp-eu.customer.io/", True),
        ("pk_eu_1", "https://cdp-eu.customer.io", False),
        ("pk_us_1", "https://cdp.customer.io", False),
        ("legacy", "https://cdp-eu.customer.io", False),
        ("pk_eu_1", "http://127.0.0.1:9", False),
    ],
)
def test_a_region_key_sent_to_the_other_regions_host_warns_once_per_client_as_the_official_does(
    caplog: pytest.LogCaptureFixture, key: str, host: str, warns: bool
) -> None:
    caplog.set_level(logging.WARNING)
    OfficialClient(key, host=host, send=False)
    client = cdp_logging.Analytics(key, host=host, enable=False)
    client.track(user_id="u1", event="E")
    client.track(user_id="u1", event="E")
    theirs = region_warnings(caplog, "customerio")
    ours = region_warnings(caplog, "cdp_logging")
    assert len(theirs) == len(ours) == (1 if warns else 0)
    if warns:
        assert theirs[0] in ours[0]   # the official's words, then how to fix it
        assert "_1" not in ours[0]  # the key itself is never logged
