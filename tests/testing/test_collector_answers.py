"""The collector answers a refusal in the shape clients read: a JSON body with ``code`` and
``message`` (and the API's documented ``meta.errors``). The official Python client
(customerio-cdp-analytics) parses it and gives up on a 4xx at once, instead of failing to
parse the answer ("error uploading: 'code'") and retrying it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from cdp_logging.testing.collector import LocalCollector
from support.helpers import wait_until

analytics = pytest.importorskip("customerio.analytics")
APIError = pytest.importorskip("customerio.analytics.request").APIError


@pytest.fixture
def collector() -> Iterator[LocalCollector]:
    with LocalCollector(write_key="right-key") as collector:
        yield collector


@pytest.mark.parametrize(("how", "status", "code"), [("wrong key", 401, "unauthorized"),
                                                     ("a 400", 400, "invalid_request")])
def test_the_official_client_reads_a_refusal_and_does_not_retry_it(
    collector: LocalCollector, how: str, status: int, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[Any] = []
    key = "wrong-key" if how == "wrong key" else "right-key"
    if how == "a 400":
        collector.fail_next(1, status=400)
    client = analytics.Client(key, host=collector.url, max_retries=2, on_error=lambda error, batch: errors.append(error))
    with caplog.at_level(logging.DEBUG, logger="customerio"):
        client.track("42", "Order Completed")
        client.flush()
        wait_until(lambda: errors, timeout=30, message="the official client's on_error")
    client.join()
    [error] = errors
    assert isinstance(error, APIError), repr(error)
    assert (error.status, error.code) == (status, code) and error.message
    assert "error uploading: 'code'" not in caplog.text
    assert len(collector.requests) == 1, "a 4xx is not retried"


def test_every_refusal_body_has_code_message_and_the_documented_meta_errors(collector: LocalCollector) -> None:
    with requests.Session() as session:
        session.trust_env = False
        answers = [
            session.post(collector.url + "/v1/batch", json={"batch": []}, auth=("wrong-key", "")),
            session.post(collector.url + "/v1/nowhere", json={}, auth=("right-key", "")),
            session.post(collector.url + "/v1/batch", data=b"not json", auth=("right-key", "")),
            session.post(collector.url + "/v1/batch", json={"batch": [{"type": "track"}]},
                         auth=("right-key", ""), headers={"X-Strict-Mode": "1"}),
        ]
    assert [answer.status_code for answer in answers] == [401, 404, 400, 400]
    for answer in answers:
        body = answer.json()
        assert isinstance(body["code"], str) and body["code"] and isinstance(body["message"], str)
        assert body["message"] and all(isinstance(line, str) for line in body["meta"]["errors"])
