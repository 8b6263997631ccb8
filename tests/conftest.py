"""Shared fixtures: a local CDP API on 127.0.0.1, clients pointed at it, the OpenAPI schemas."""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import pytest
import requests
from pytest_httpserver import HTTPServer

import cdp_logging
from support.helpers import DEADLINE, WRITE_KEY, wait_until
from support.tiers import mark_by_tier, tier_audit  # noqa: F401  (the audit's fixture)

#: Customer.io's description of the Data Pipelines API, the project's own copy (unchanged).
OPENAPI_FILE = Path(__file__).resolve().parent / "data" / "customerio-pipelines-openapi.json"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test unit, server or subprocess (tests/support/tiers.py): pytest -m unit."""
    mark_by_tier(items)


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver listens on 127.0.0.1 (not "localhost", which may resolve to ::1)."""
    return ("127.0.0.1", 0)


@pytest.fixture
def local_time_is_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time nine hours ahead of UTC, so that "taken as local time" cannot pass for UTC."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is not available on this platform")
    monkeypatch.setenv("TZ", "XST-9")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def api(httpserver: HTTPServer) -> HTTPServer:
    """The local API, accepting every batch with 200."""
    httpserver.expect_request("/v1/batch", method="POST").respond_with_json({})
    return httpserver


@pytest.fixture
def second_api() -> Iterator[HTTPServer]:
    """A second local API on its own port, accepting every batch."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    server.expect_request("/v1/batch", method="POST").respond_with_json({})
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def server_release() -> Iterator[threading.Event]:
    """For handlers that hold a request: set when the test ends, if the test did not set it."""
    release = threading.Event()
    yield release
    release.set()


@pytest.fixture
def make_client(
    httpserver: HTTPServer, server_release: threading.Event
) -> Iterator[Callable[..., cdp_logging.Analytics]]:
    """Make clients pointed at the local API (override any option); each is closed after the test.

    Afterwards, held requests are released and the server is drained, so that no request of
    this test reaches the (shared) server's log during the next one.
    """
    clients: list[cdp_logging.Analytics] = []

    def make(**options: Any) -> cdp_logging.Analytics:
        options.setdefault("write_key", WRITE_KEY)
        options.setdefault("host", httpserver.url_for("").rstrip("/"))
        client = cdp_logging.Analytics(**options)
        clients.append(client)
        return client

    yield make
    server_release.set()
    for client in clients:
        client.close_and_flush(timeout=5.0)
    for client in clients:
        wait_until(lambda client=client: client.stats()["pending"] == 0, message="the client's last request to finish")
    drain(httpserver)


def drain(server: HTTPServer) -> None:
    """Return once the server has finished every request that came before this one.

    The server handles one request at a time, so the answer to this request comes after
    every earlier request was handled and logged.
    """
    server.expect_request("/drained").respond_with_data("")
    requests.get(server.url_for("/drained"), timeout=DEADLINE).raise_for_status()


@pytest.fixture
def client(api: HTTPServer, make_client: Callable[..., cdp_logging.Analytics]) -> cdp_logging.Analytics:
    """A client with the default options, talking to an API that accepts everything."""
    return make_client()


class OpenAPISchemas:
    """Validates messages and request bodies against Customer.io's OpenAPI description.

    The description's quirks (see the reference README) are handled here:

    - its ``oneOf`` branches overlap (a small ``context`` matches both the mobile and the
      non-mobile shape; the "Known User" and "Anonymous User" branches of group, and of track
      in the batch item list, do not exclude each other), so every ``oneOf`` is read as
      ``anyOf``;
    - the batch item list has no alias branch: alias items are checked against ``alias_all``
      (the ``alias`` schema with the common fields).
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self.components = copy.deepcopy(document["components"])
        _one_of_as_any_of(self.components)

    def validator(self, schema_name: str) -> Any:
        from jsonschema import Draft202012Validator

        return Draft202012Validator(
            {"components": self.components, "$ref": f"#/components/schemas/{schema_name}"}
        )

    def validate_message(self, message: dict[str, Any]) -> None:
        """Check one message against the schema of its call (alias: ``alias_all``)."""
        kind = message["type"]
        self.validator("alias_all" if kind == "alias" else kind).validate(message)

    def validate_body(self, body: dict[str, Any]) -> None:
        """Check a ``/v1/batch`` body, and each of its messages against its own call's schema."""
        others = [message for message in body["batch"] if message["type"] != "alias"]
        self.validator("batch").validate({**body, "batch": others})
        for message in body["batch"]:
            self.validate_message(message)


def _one_of_as_any_of(node: Any) -> None:
    if isinstance(node, dict):
        if "oneOf" in node:
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _one_of_as_any_of(value)
    elif isinstance(node, list):
        for value in node:
            _one_of_as_any_of(value)


@pytest.fixture(scope="session")
def openapi() -> OpenAPISchemas:
    """The OpenAPI schemas, read from the copy in tests/data."""
    return OpenAPISchemas(json.loads(OPENAPI_FILE.read_text(encoding="utf-8")))
