"""What leaves the process: secret-named keys redacted at any depth, identifiers untouched, and
``before_send`` changing, dropping and surviving failures, through every front (the handler's
short form and call keys, a rule, ``Analytics``, compat) to the local collector."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import logging.config
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import cdp_logging
from cdp_logging import DEFAULT_REDACT_KEYS, Analytics, BeforeSendError, CDPHandler, InvalidEventError, compat
from cdp_logging.testing import LocalCollector, capture_events
from support.handlers import ListHandler

#: Each secret's value is unique, so that finding it anywhere in what arrived is a leak.
PROPERTIES: dict[str, Any] = {
    "password": "pw-secret-1",
    "headers": {"Authorization": "Bearer tok-secret-2", "Accept": "application/json"},
    "items": [{"sku": "a", "cvv": "cvv-secret-3"}, {"sku": "b"}],
    "deep": {"a": {"b": [{"c": {"client_secret": "cs-secret-4"}}]}},
    "email": "ada@example.com",
    "phone": "+15550100",
    "plan": "pro",
}
CONTEXT: dict[str, Any] = {"ip": "203.0.113.9", "Cookie": "sess-secret-5",
                           "headers": {"X-Api-Key": "key-secret-6"}}
SECRETS = ("pw-secret-1", "tok-secret-2", "cvv-secret-3", "cs-secret-4", "sess-secret-5", "key-secret-6")
#: stats()["redacted"] after one event carrying PROPERTIES and CONTEXT.
REDACTED_COUNTS = {"password": 1, "authorization": 1, "cvv": 1, "client_secret": 1, "cookie": 1,
                   "x_api_key": 1}
#: The rule front: a line's arguments become a secret-named property.
RULES = [{"logger": "privacy.rule", "message": "user %s logged in with password %s",
          "track": {"event": "Logged In", "user_id": "{args[0]}",
                    "properties": {"password": "{args[1]}", "email": "ada@example.com",
                                   "headers": {"Authorization": "{args[1]}"}}}}]


class Front:
    """One way into the pipeline; ``send()`` makes one event for user ``user_id``."""

    name = ""
    #: The keys one event redacts through this front.
    counts = REDACTED_COUNTS

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.options = options

    def send(self, user_id: str = "42") -> None:
        raise NotImplementedError

    def stats(self) -> cdp_logging.Stats:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class HandlerFront(Front):
    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.handler = CDPHandler(write_key="key", host=url, rules=RULES, **options)
        self.logger = logging.getLogger(f"privacy.{self.name}.{uuid.uuid4().hex[:6]}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(self.handler)

    def stats(self) -> cdp_logging.Stats:
        return self.handler.client.stats()

    def flush(self) -> None:
        assert self.handler.client.flush(timeout=15.0)

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()


class ShortForm(HandlerFront):
    name = "handler short form"

    def send(self, user_id: str = "42") -> None:
        self.logger.info("login", extra={"event": "Logged In", "user_id": user_id, "context": CONTEXT,
                                         **PROPERTIES})


class CallKeys(HandlerFront):
    name = "handler call keys"

    def send(self, user_id: str = "42") -> None:
        self.logger.info("login", extra={"track": {"event": "Logged In", "user_id": user_id,
                                                   "properties": PROPERTIES, "context": CONTEXT}})


class FastPath(HandlerFront):
    """The handler's fast path: user_id, event and properties only (no context)."""

    name = "handler fast path"
    counts = {key: 1 for key in ("password", "authorization", "cvv", "client_secret")}

    def send(self, user_id: str = "42") -> None:
        self.logger.info("login", extra={"track": {"event": "Logged In", "user_id": user_id,
                                                   "properties": PROPERTIES}})


class Rule(HandlerFront):
    name = "rule"
    counts = {"password": 1, "authorization": 1}

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.rule_logger = logging.getLogger("privacy.rule")
        self.rule_logger.setLevel(logging.INFO)
        self.rule_logger.propagate = False
        self.rule_logger.addHandler(self.handler)

    def send(self, user_id: str = "42") -> None:
        self.rule_logger.info("user %s logged in with password %s", user_id, "pw-secret-1")

    def close(self) -> None:
        self.rule_logger.removeHandler(self.handler)
        super().close()


class AnalyticsFront(Front):
    name = "Analytics"

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.analytics = Analytics("key", host=url, **options)

    def send(self, user_id: str = "42") -> None:
        self.analytics.track(user_id=user_id, event="Logged In", properties=PROPERTIES, context=CONTEXT)

    def stats(self) -> cdp_logging.Stats:
        return self.analytics.stats()

    def flush(self) -> None:
        assert self.analytics.flush(timeout=15.0)

    def close(self) -> None:
        self.analytics.close()


class AnalyticsIdentify(AnalyticsFront):
    name = "Analytics identify (traits)"

    def send(self, user_id: str = "42") -> None:
        self.analytics.identify(user_id=user_id, traits=PROPERTIES, context=CONTEXT)


class Compat(Front):
    name = "compat"

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        error_handler = options.pop("error_handler", None)
        # compat's on_error hears of each event not sent, with the batch it was in (none here).
        self.client = compat.Client("key", host=url, **options, on_error=error_handler and (
            lambda error, batch: error_handler(error)))

    def send(self, user_id: str = "42") -> None:
        self.client.track(user_id, "Logged In", PROPERTIES, CONTEXT)

    def stats(self) -> cdp_logging.Stats:
        return self.client.analytics.stats()

    def flush(self) -> None:
        self.client.flush()

    def close(self) -> None:
        self.client.shutdown()


FRONTS = [ShortForm, CallKeys, FastPath, Rule, AnalyticsFront, AnalyticsIdentify, Compat]


@pytest.fixture
def collector() -> Iterator[LocalCollector]:
    with LocalCollector() as collector:
        yield collector


@pytest.fixture(params=FRONTS, ids=[front.name for front in FRONTS])
def front_class(request: pytest.FixtureRequest) -> type[Front]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def open_front(collector: LocalCollector, front_class: type[Front]) -> Iterator[Callable[..., Front]]:
    opened: list[Front] = []

    def make(**options: Any) -> Front:
        front = front_class(collector.url, **options)
        opened.append(front)
        return front

    yield make
    for front in opened:
        front.close()


def arrived(collector: LocalCollector, count: int) -> list[dict[str, Any]]:
    return [dict(message) for message in collector.wait_for(count, timeout=15.0)]


def body_of(message: dict[str, Any]) -> dict[str, Any]:
    return message.get("properties") or message.get("traits") or {}


# -- redaction --------------------------------------------------------------------------------

def test_no_default_listed_value_arrives_at_any_depth_and_identifiers_arrive_untouched(
    open_front: Callable[..., Front], collector: LocalCollector
) -> None:
    untouched = copy.deepcopy((PROPERTIES, CONTEXT))
    front = open_front()

    front.send()
    front.flush()

    [message] = arrived(collector, 1)
    sent = json.dumps(message)
    assert [secret for secret in SECRETS if secret in sent] == []
    assert message["userId"] == "42"
    body = body_of(message)
    assert (body["email"], body["password"]) == ("ada@example.com", "[redacted]")
    assert body["headers"]["Authorization"] == "[redacted]"
    if "items" in body:
        assert body["items"] == [{"sku": "a", "cvv": "[redacted]"}, {"sku": "b"}]
        assert body["deep"] == {"a": {"b": [{"c": {"client_secret": "[redacted]"}}]}}
        assert (body["phone"], body["plan"], body["headers"]["Accept"]) == ("+15550100", "pro", "application/json")
    if "Cookie" in message["context"]:
        assert message["context"]["Cookie"] == "[redacted]"
        assert message["context"]["headers"] == {"X-Api-Key": "[redacted]"}
        assert message["context"]["ip"] == "203.0.113.9"
    assert untouched == (PROPERTIES, CONTEXT)  # the application's own dicts are not changed
    stats = front.stats()
    assert stats["redacted"] == front.counts
    assert (stats["delivered"], stats["failed"], stats["invalid"]) == (1, 0, 0)


def test_redact_keys_empty_sends_everything(open_front: Callable[..., Front], collector: LocalCollector) -> None:
    front = open_front(redact_keys=())

    front.send()
    front.flush()

    sent = json.dumps(arrived(collector, 1))
    expected = SECRETS[:1] if isinstance(front, Rule) else SECRETS
    if isinstance(front, FastPath):
        expected = SECRETS[:4]
    assert [secret for secret in expected if secret not in sent] == []
    assert front.stats()["redacted"] == {}


def test_keys_match_whatever_their_case_and_separators() -> None:
    spellings = ["PASSWORD", "Access-Token", "accessToken", "ACCESS_TOKEN", "x-api-key", "Set-Cookie",
                 "sessionId", "Session_ID", "apiKey", "API-KEY", "Credit-Card-Number"]
    with capture_events() as events:
        analytics = Analytics("key", host="http://127.0.0.1:9")
        analytics.track(user_id="42", event="E", properties={key: "value" for key in spellings})
        analytics.close(timeout=0)
    assert events[0]["properties"] == {key: "[redacted]" for key in spellings}


def test_only_whole_keys_match_so_similar_names_are_sent() -> None:
    harmless = {"author": "Ann", "tokens_used": 3, "password_changed": True, "session_length": 30,
                "email": "ada@example.com", "phone": "1", "user_id": "42", "userId": "42"}
    with capture_events() as events:
        analytics = Analytics("key", host="http://127.0.0.1:9")
        analytics.identify(user_id="42", traits=harmless)
        analytics.close(timeout=0)
    assert events[0]["traits"] == harmless
    assert analytics.stats()["redacted"] == {}


def test_a_secret_key_holding_a_dict_or_list_is_redacted_whole() -> None:
    with capture_events() as events:
        analytics = Analytics("key", host="http://127.0.0.1:9")
        analytics.track(user_id="42", event="E", properties={
            "auth": {"user": "ann", "pass": "x"}, "cookies": ["a=1", "b=2"], "tuple": ({"token": "t"},)})
        analytics.close(timeout=0)
    assert events[0]["properties"] == {"auth": "[redacted]", "cookies": "[redacted]",
                                       "tuple": [{"token": "[redacted]"}]}


@dataclasses.dataclass
class Login:
    user: str
    password: str


def test_mappings_and_dataclasses_are_looked_into_as_the_encoder_writes_them() -> None:
    with capture_events() as events:
        analytics = Analytics("key", host="http://127.0.0.1:9")
        analytics.track(user_id="42", event="E", properties=MappingProxyType({
            "login": Login("ann", "hunter2"), "proxy": MappingProxyType({"token": "t", "n": 1})}))
        analytics.close(timeout=0)
    assert events[0]["properties"] == {"login": {"user": "ann", "password": "[redacted]"},
                                       "proxy": {"token": "[redacted]", "n": 1}}


def test_redact_keys_extends_and_replaces_the_list() -> None:
    with capture_events() as events:
        extended = Analytics("key", host="http://127.0.0.1:9", redact_keys=(*DEFAULT_REDACT_KEYS, "ssn"))
        replaced = Analytics("key", host="http://127.0.0.1:9", redact_keys=["ssn"])
        for analytics in (extended, replaced):
            analytics.track(user_id="42", event="E", properties={"ssn": "078-05-1120", "password": "pw"})
            analytics.close(timeout=0)
    assert events[0]["properties"] == {"ssn": "[redacted]", "password": "[redacted]"}
    assert events[1]["properties"] == {"ssn": "[redacted]", "password": "pw"}


@pytest.mark.parametrize(("value", "error", "says"), [
    ("password", TypeError, "a tuple or list of key names"),
    ([1], TypeError, "must hold key names"),
    (["email"], ValueError, "'email' is an identifier Customer.io needs"),
    (("user_id",), ValueError, "is an identifier"),
])
def test_a_redact_keys_option_that_cannot_work_is_refused_naming_it(value: Any, error: type, says: str) -> None:
    with pytest.raises(error, match="redact_keys") as raised:
        Analytics("key", redact_keys=value)
    assert says in str(raised.value)


def test_the_first_redaction_of_each_key_is_logged_once_at_info_naming_the_key_never_the_value(
    collector: LocalCollector
) -> None:
    records = ListHandler()
    library = logging.getLogger("cdp_logging")
    library.addHandler(records)
    level = library.level
    library.setLevel(logging.INFO)
    try:
        front = CallKeys(collector.url)
        front.send()
        front.send()
        front.flush()
        front.close()
    finally:
        library.removeHandler(records)
        library.setLevel(level)
    said = [record.getMessage() for record in records.records if record.levelno == logging.INFO]
    assert len(said) == len(REDACTED_COUNTS)
    assert all("[redacted]" in text for text in said)
    assert any("'Authorization'" in text for text in said)
    assert [secret for secret in SECRETS if any(secret in text for text in said)] == []
    assert front.stats()["redacted"] == {key: 2 for key in REDACTED_COUNTS}


def test_nesting_too_deep_to_check_is_refused_as_invalid_and_reported_with_its_origin() -> None:
    nested: dict[str, Any] = {}
    nested["self"] = nested
    errors: list[Exception] = []
    analytics = Analytics("key", host="http://127.0.0.1:9", error_handler=errors.append, enable=False)
    analytics.track(user_id="42", event="Loop", properties=nested)  # returns: nothing raised
    [error] = errors
    assert isinstance(error, InvalidEventError) and "nested deeper than 100 levels" in str(error)
    assert f"{__file__}:" in str(error)
    assert (analytics.stats()["invalid"], analytics.stats()["skipped"]) == (1, 0)


# -- the environment --------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "sent"), [
    ("+ssn", {"ssn": "[redacted]", "password": "[redacted]", "plan": "pro"}),
    ("ssn, plan", {"ssn": "[redacted]", "password": "pw", "plan": "[redacted]"}),
    ("none", {"ssn": "1", "password": "pw", "plan": "pro"}),
    ("NONE", {"ssn": "1", "password": "pw", "plan": "pro"}),
])
def test_cdp_redact_keys_sets_the_list_of_clients_not_given_one(
    value: str, sent: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDP_REDACT_KEYS", value)
    properties = {"ssn": "1", "password": "pw", "plan": "pro"}
    with capture_events() as events:
        from_environment = Analytics("key", host="http://127.0.0.1:9")
        in_code = Analytics("key", host="http://127.0.0.1:9", redact_keys=("plan",))
        for analytics in (from_environment, in_code):
            analytics.track(user_id="42", event="E", properties=properties)
            analytics.close(timeout=0)
    assert events[0]["properties"] == {**properties, **sent}
    assert events[1]["properties"] == {**properties, "plan": "[redacted]"}  # the code's list wins


@pytest.mark.parametrize("value", ['["password"]', "password;token", "email", "pass word", "a,,b"])
def test_a_bad_cdp_redact_keys_is_one_warning_naming_it_and_the_default_list(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = f"{value},x{uuid.uuid4().hex[:6]}"  # a value no other test warned of
    monkeypatch.setenv("CDP_REDACT_KEYS", value)
    monkeypatch.setenv("CDP_STRICT", "false")  # strict (as under pytest) makes it an error
    records = ListHandler()
    logging.getLogger("cdp_logging").addHandler(records)
    try:
        with capture_events() as events:
            for _ in range(2):
                analytics = Analytics("key", host="http://127.0.0.1:9")
                analytics.track(user_id="42", event="E", properties={"password": "pw"})
                analytics.close(timeout=0)
    finally:
        logging.getLogger("cdp_logging").removeHandler(records)
    [warning] = [r.getMessage() for r in records.records if r.levelno == logging.WARNING]
    assert "CDP_REDACT_KEYS" in warning and "using the default, cdp_logging.DEFAULT_REDACT_KEYS" in warning
    assert [event["properties"] for event in events] == [{"password": "[redacted]"}] * 2


# -- before_send ------------------------------------------------------------------------------

def hash_user_and_drop_plan(message: dict[str, Any]) -> dict[str, Any]:
    message["userId"] = "hashed-" + message["userId"]
    body = message.get("properties") or message.get("traits")
    body.pop("plan", None)
    body["seen_redacted"] = body["password"]
    return message


def test_before_send_changes_what_is_sent_after_redaction_without_changing_the_application_s_dicts(
    open_front: Callable[..., Front], collector: LocalCollector
) -> None:
    untouched = copy.deepcopy((PROPERTIES, CONTEXT))
    front = open_front(before_send=hash_user_and_drop_plan)

    front.send()
    front.flush()

    [message] = arrived(collector, 1)
    body = body_of(message)
    assert message["userId"] == "hashed-42"
    assert "plan" not in body
    assert body["seen_redacted"] == "[redacted]"  # it saw the message after redaction
    assert message["context"]["library"]["name"] == "cdp-logging"
    assert untouched == (PROPERTIES, CONTEXT)


def drop_staff(message: dict[str, Any]) -> dict[str, Any] | None:
    return None if message["userId"].startswith("staff-") else message


def test_before_send_returning_none_drops_the_event_and_counts_it(
    open_front: Callable[..., Front], collector: LocalCollector
) -> None:
    front = open_front(before_send=drop_staff)

    front.send(user_id="staff-7")
    front.send(user_id="42")
    front.flush()

    assert [message["userId"] for message in arrived(collector, 1)] == ["42"]
    stats = front.stats()
    assert (stats["dropped_by_before_send"], stats["delivered"], stats["failed"], stats["dropped"]) == (1, 1, 0, 0)


def fail_for_staff(message: dict[str, Any]) -> Any:
    if message["userId"] == "staff-raise":
        raise KeyError("no such team")
    if message["userId"] == "staff-string":
        return "not a message"
    return message


def test_before_send_raising_or_returning_no_message_fails_the_event_and_reports_it_once_with_its_origin(
    front_class: type[Front], collector: LocalCollector
) -> None:
    errors: list[Exception] = []
    front = front_class(collector.url, before_send=fail_for_staff, error_handler=errors.append)
    try:
        front.send(user_id="staff-raise")  # returns: the application carries on
        front.send(user_id="staff-string")
        front.send(user_id="42")
        front.flush()
        assert [message["userId"] for message in arrived(collector, 1)] == ["42"]
        stats = front.stats()
    finally:
        front.close()
    assert (stats["failed"], stats["delivered"], stats["invalid"]) == (2, 1, 0)
    assert [type(error) for error in errors] == [BeforeSendError, BeforeSendError]
    raised, returned = (str(error) for error in errors)
    assert "before_send raised KeyError: 'no such team'" in raised
    assert "before_send returned str, not a message" in returned
    assert isinstance(errors[0].__cause__, KeyError)
    origin = "rule 1" if front_class is Rule else ("logger 'privacy." if issubclass(front_class, HandlerFront)
                                                   else f"{__file__}:")
    assert all(origin in str(error) for error in errors)


def test_before_send_failures_are_logged_without_an_error_handler(collector: LocalCollector) -> None:
    records = ListHandler()
    logging.getLogger("cdp_logging").addHandler(records)
    try:
        front = AnalyticsFront(collector.url, before_send=fail_for_staff)
        front.send(user_id="staff-raise")
        front.close()
    finally:
        logging.getLogger("cdp_logging").removeHandler(records)
    [warning] = [r.getMessage() for r in records.records if r.levelno == logging.WARNING]
    assert "before_send raised KeyError" in warning and __file__ in warning


def test_a_per_call_callback_hears_of_a_dropped_or_failed_event() -> None:
    heard: list[Any] = []
    analytics = Analytics("key", host="http://127.0.0.1:9", before_send=fail_for_staff, enable=False)
    analytics.track(user_id="staff-raise", event="E", callback=lambda error, batch: heard.append(error))
    dropping = Analytics("key", host="http://127.0.0.1:9", before_send=lambda message: None, enable=False)
    dropping.track(user_id="42", event="E", callback=lambda error, batch: heard.append(error))
    assert [type(error).__name__ for error in heard] == ["BeforeSendError", "EventDroppedError"]
    assert "before_send returned None" in str(heard[1])


def test_what_before_send_logs_or_sends_itself_does_not_loop(collector: LocalCollector) -> None:
    records = ListHandler()
    logging.getLogger("cdp_logging").addHandler(records)
    front = CallKeys(collector.url, before_send=lambda message: logging_inside(front, message))
    try:
        front.send()
        front.flush()
        assert [message["event"] for message in arrived(collector, 1)] == ["Logged In"]
    finally:
        front.close()
        logging.getLogger("cdp_logging").removeHandler(records)
    assert inside == ["called", "logged"]  # once: the record it logged was not handled
    # The event made with Analytics inside it is refused, and logged (a report inside user code).
    [warning] = [r.getMessage() for r in records.records if r.levelno == logging.WARNING]
    assert "made inside before_send" in warning
    assert front.stats()["failed"] == 1


inside: list[str] = []


def logging_inside(front: HandlerFront, message: dict[str, Any]) -> dict[str, Any]:
    inside.append("called")
    if len(inside) == 1:
        front.logger.info("again", extra={"track": {"event": "Again", "user_id": "1"}})  # ignored
        front.handler.client.track(user_id="1", event="Nested")  # refused
        inside.append("logged")
    return message


def test_before_send_given_as_a_dotted_path_in_dictconfig(collector: LocalCollector) -> None:
    name = f"privacy.dictconfig.{uuid.uuid4().hex[:6]}"
    logging.config.dictConfig({
        "version": 1, "disable_existing_loggers": False,
        "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "write_key": "key", "host": collector.url,
                             "before_send": "support.privacy_hooks.drop_internal_users",
                             "redact_keys": ["password", "plan"]}},
        "loggers": {name: {"handlers": ["cdp"], "level": "INFO", "propagate": False}},
    })
    logger = logging.getLogger(name)
    try:
        logger.info("x", extra={"track": {"event": "E", "user_id": "staff-1"}})
        logger.info("x", extra={"track": {"event": "E", "user_id": "42", "properties": {"plan": "pro", "token": "t"}}})
        [handler] = logger.handlers
        assert isinstance(handler, CDPHandler) and handler.client.flush(timeout=15.0)
        [message] = arrived(collector, 1)
        stats = handler.client.stats()
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    assert message["properties"] == {"plan": "[redacted]", "token": "t", "checked_by": "before_send"}
    assert stats["dropped_by_before_send"] == 1


def test_a_before_send_path_that_cannot_be_imported_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="before_send.*cannot import 'support.nothing.here'"):
        CDPHandler(write_key="key", before_send="support.nothing.here")
    with pytest.raises(TypeError, match="before_send"):
        Analytics("key", before_send=42)  # type: ignore[arg-type]


# -- cdp-logging check ------------------------------------------------------------------------

def test_check_shows_each_line_s_message_after_redaction_and_before_send(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    lines = "INFO:privacy.rule:user 42 logged in with password hunter2\n" \
            "INFO:privacy.rule:user staff-1 logged in with password x\n"
    environment = {"PATH": "", "CDP_RULES": str(rules), "CDP_ENABLE": "false",
                   "CDP_BEFORE_SEND": "support.privacy_hooks:drop_internal_users",
                   "PYTHONPATH": str(Path(__file__).parent)}
    shown = subprocess.run([sys.executable, "-m", "cdp_logging", "check"], input=lines, capture_output=True,
                           text=True, env=environment, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    outcomes = [line for line in shown.stdout.splitlines() if line.strip().startswith("->")]
    assert len(outcomes) == 2 and not any("hunter2" in line for line in outcomes)
    assert '"password": "[redacted]"' in shown.stdout and '"checked_by": "before_send"' in shown.stdout
    assert "(properties.password, properties.headers.Authorization redacted)" in shown.stdout
    assert "which before_send drops: nothing is sent" in shown.stdout
    as_json = subprocess.run([sys.executable, "-m", "cdp_logging", "check", "--json"], input=lines,
                             capture_output=True, text=True, env=environment, timeout=60, check=False)
    first, second = (json.loads(line) for line in as_json.stdout.splitlines())
    assert first["redacted"] == ["properties.password", "properties.headers.Authorization"]
    assert first["message"]["properties"]["password"] == "[redacted]"
    assert second["outcome"] == "dropped"
