"""Text that cannot be encoded (lone surrogates: file names that are not UTF-8, as os.listdir
returns them) is sent with U+FFFD and reported, never fatal, the same with and without a spool;
and every event of a failed batch gets its callback. Issue 20, "text and rules"."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from cdp_logging import Analytics, DeliveryError, InvalidEventError, compat
from support.reliability import (
    BATCH_PATH, FAST_RETRIES, WRITE_KEY, Errors, Recorder, start_api, stop_api, url,
)
from support.helpers import wait_until

#: A file name that is not valid UTF-8, as Python hands it to the application.
UNDECODABLE = os.fsdecode(b"report-\xff.csv")


@pytest.fixture
def api() -> Iterator[HTTPServer]:
    server = start_api()
    yield server
    stop_api(server)


@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spool"])
def test_a_lone_surrogate_is_sent_as_u_fffd_and_reported_with_and_without_a_spool(
    api: HTTPServer, tmp_path: Path, spooled: bool,
) -> None:
    # On main: delivered as a "\udcff" escape without a spool, quarantined (lost) with one.
    recorder = Recorder()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    errors = Errors()
    options: dict[str, Any] = {"spool_path": tmp_path / "spool" / "events.db"} if spooled else {}
    client = Analytics(WRITE_KEY, host=url(api), error_handler=errors, **FAST_RETRIES, **options)
    try:
        ids = [client.track(user_id="u1", event="Uploaded", properties={"file": UNDECODABLE, "n": i})
               for i in range(3)]
        assert client.flush(timeout=15)
        received = recorder.messages
        assert [m["messageId"] for m in received] == ids
        assert {m["properties"]["file"] for m in received} == {"report-\ufffd.csv"}
        stats = client.stats()
        assert (stats["delivered"], stats["substituted"], stats["dropped"]) == (3, 3, 0)
        reports = errors.of(InvalidEventError)
        assert len(reports) == 3 and "properties.file" in str(reports[0])
        assert "not valid Unicode" in str(reports[0]) and "U+FFFD" in str(reports[0])
    finally:
        client.close(timeout=0)


def test_every_event_of_a_failed_batch_gets_its_callback(api: HTTPServer) -> None:
    # On main: one event with a lone surrogate in a batch of 5 and no callback ran (0/5).
    api.expect_request(BATCH_PATH, method="POST").respond_with_json({"message": "no"}, status=400)
    calls: list[tuple[Any, int]] = []
    client = Analytics(WRITE_KEY, host=url(api), max_retries=0, flush_interval=60,
                       error_handler=Errors(), **FAST_RETRIES)
    try:
        for i in range(5):
            client.track(user_id="u1", event="E", properties={"file": UNDECODABLE if i == 2 else "ok"},
                         callback=lambda error, batch: calls.append((error, len(batch))))
        assert client.flush(timeout=15) is False
        wait_until(lambda: len(calls) == 5, message="a callback for each of the 5 events")
        assert all(isinstance(error, DeliveryError) for error, _ in calls)
    finally:
        client.close(timeout=0)


def test_every_event_of_a_delivered_batch_gets_its_callback(api: HTTPServer) -> None:
    recorder = Recorder()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    calls: list[tuple[Any, list[dict[str, Any]]]] = []
    client = Analytics(WRITE_KEY, host=url(api), flush_interval=60, error_handler=Errors(), **FAST_RETRIES)
    try:
        for i in range(5):
            client.track(user_id="u1", event="E", properties={"file": UNDECODABLE if i == 2 else "ok"},
                         callback=lambda error, batch: calls.append((error, batch)))
        assert client.flush(timeout=15)
        wait_until(lambda: len(calls) == 5, message="a callback for each of the 5 events")
        assert all(error is None for error, _ in calls)
        files = {m["messageId"]: m["properties"]["file"] for _, batch in calls for m in batch}
        assert sorted(files.values()) == ["ok"] * 4 + ["report-\ufffd.csv"]
    finally:
        client.close(timeout=0)


def test_compat_on_error_is_called_for_a_batch_holding_a_lone_surrogate(api: HTTPServer) -> None:
    # On main: compat's on_error was not called.
    api.expect_request(BATCH_PATH, method="POST").respond_with_json({"message": "no"}, status=400)
    failed: list[tuple[Any, list[dict[str, Any]]]] = []
    client = compat.Client(WRITE_KEY, host=url(api), max_retries=0, upload_size=5, upload_interval=60.0,
                           on_error=lambda error, batch: failed.append((error, batch)))
    try:
        for i in range(5):
            client.track("u1", "E", {"file": UNDECODABLE if i == 2 else "ok"})
        client.flush()
        wait_until(lambda: sum(len(batch) for _, batch in failed) == 5, message="on_error for all 5")
        assert all(isinstance(error, DeliveryError) and error.status == 400 for error, _ in failed)
        files = [m["properties"]["file"] for _, batch in failed for m in batch]
        assert files == ["ok", "ok", "report-\ufffd.csv", "ok", "ok"]
    finally:
        client.shutdown()
