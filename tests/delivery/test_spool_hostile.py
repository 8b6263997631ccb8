"""The spool against what a machine really does to it: rows it never wrote filling its
quarantine, a full disk, a folder someone else owns or links. Issue 20, "the spool"."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cdp_logging import Analytics, EventDroppedError, SpoolError
from support.reliability import (
    BATCH_PATH, FAST_RETRIES, WRITE_KEY, Errors, Recorder, free_port, start_api, stop_api, url,
    wait_until,
)

#: Another user's uid ("nobody" on most systems); the tests that use it run as root.
OTHER_UID = 65534


@pytest.fixture
def api() -> Iterator[HTTPServer]:
    server = start_api()
    yield server
    stop_api(server)


@pytest.fixture
def errors() -> Errors:
    return Errors()


@pytest.fixture
def make_client(errors: Errors) -> Iterator[Callable[..., Analytics]]:
    made: list[Analytics] = []

    def make(host: str, spool: Path, **options: Any) -> Analytics:
        client = Analytics(WRITE_KEY, host=host, spool_path=spool, error_handler=errors,
                           **{**FAST_RETRIES, **options})
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=0)


def track(client: Analytics, count: int, prefix: str, size: int = 200) -> list[str]:
    return [client.track(user_id="u1", event="Spooled", message_id=f"{prefix}-{i}",
                         properties={"text": "p" * size}) for i in range(count)]


def rows(spool: Path, table: str = "events") -> int:
    with contextlib.closing(sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=10)) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


class Switch:
    """A /v1/batch handler: 503 while ``down``, else recorded and accepted."""

    def __init__(self) -> None:
        self.down = False
        self.recorder = Recorder()

    def __call__(self, request: Request) -> Response:
        if self.down:
            return Response('{"message": "down"}', status=503, content_type="application/json")
        return self.recorder(request)


# -- the quarantine ---------------------------------------------------------------------------------

def test_the_quarantine_is_bounded_and_outside_spool_max_bytes(
    api: HTTPServer, errors: Errors, tmp_path: Path, make_client: Callable[..., Analytics],
) -> None:
    # On main, after 3 MB of rows set aside, 26 of 200 events survived an outage (200/200 clean).
    spool = tmp_path / "spool" / "events.db"
    first = make_client(f"http://127.0.0.1:{free_port()}", spool, max_retries=0)
    track(first, 1, "opening")
    wait_until(lambda: first.stats()["spooled"] == 1, message="the spool made")
    first.close(timeout=0)
    with contextlib.closing(sqlite3.connect(spool)) as db, db:  # as a damaged disk would leave them
        db.executemany("INSERT INTO events (data) VALUES (?)", [(b"\xff" * 10_000,)] * 300)
    switch = Switch()
    switch.down = True
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(switch)
    second = make_client(url(api), spool, max_retries=0, spool_max_bytes=1_000_000, flush_interval=0.2)
    wait_until(lambda: sum(e.count for e in errors.of(EventDroppedError)) == 300,
               message="the 300 unreadable rows set aside")
    sent = track(second, 200, "outage")                # 200 x ~330 bytes: within 1 MB
    wait_until(lambda: rows(spool) == 201, message=lambda: f"all 200 kept through the outage: {rows(spool)} {second.stats()} {errors[-1:]}")
    switch.down = False
    assert second.flush(timeout=30)
    assert set(sent) <= set(switch.recorder.accepted)
    assert second.stats()["dropped"] == 300            # only the unreadable rows
    assert rows(spool, "quarantine") == 100           # the newest 100 kept
    with contextlib.closing(sqlite3.connect(f"file:{spool}?mode=ro", uri=True)) as db:
        assert db.execute("SELECT max(length(data)) FROM quarantine").fetchone()[0] <= 1_000


def test_an_old_spools_oversized_quarantine_is_cut_back_when_opened(
    api: HTTPServer, tmp_path: Path, make_client: Callable[..., Analytics],
) -> None:
    spool = tmp_path / "spool" / "events.db"
    first = make_client(f"http://127.0.0.1:{free_port()}", spool, max_retries=0)
    track(first, 1, "opening")
    wait_until(lambda: first.stats()["spooled"] == 1, message="the spool made")
    first.close(timeout=0)
    with contextlib.closing(sqlite3.connect(spool)) as db, db:  # an earlier release kept all, whole
        db.executemany("INSERT INTO quarantine VALUES (?, ?, 'old', ?)",
                       [(i, b"x" * 30_000, float(i)) for i in range(1, 201)])
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(Recorder())
    second = make_client(url(api), spool)
    assert second.flush(timeout=15)
    assert rows(spool, "quarantine") == 100


# -- a full disk ------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KiB file system (tmpfs), mounted for the test; skipped where mounting is not
    allowed (not root, or no CAP_SYS_ADMIN in the container)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError as err:
        assert err.errno == 28, err  # ENOSPC
    finally:
        os.close(fd)


def test_a_brief_disk_full_pauses_the_spool_which_recovers_when_the_disk_does(
    api: HTTPServer, errors: Errors, small_disk: Path, make_client: Callable[..., Analytics],
) -> None:
    # On main the spool was off for the rest of the process: the events of an outage after
    # the space came back were lost.
    switch = Switch()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(switch)
    spool = small_disk / "spool" / "events.db"
    client = make_client(url(api), spool, max_retries=0, flush_interval=0.2)
    track(client, 1, "before")
    assert client.flush(timeout=15)

    fill(small_disk / "filler")
    during = track(client, 100, "full", size=2000)     # 200 KB: more than the disk has left
    assert client.flush(timeout=15)                    # sent from memory meanwhile
    assert set(during) <= set(switch.recorder.accepted)

    (small_disk / "filler").unlink()
    switch.down = True                                 # an outage after the space came back
    after = track(client, 30, "after")
    wait_until(lambda: rows(spool) == 30, message=lambda: f"the outage's events kept in the spool again: {rows(spool)} {client.stats()}")
    switch.down = False
    assert client.flush(timeout=30)
    assert set(after) <= set(switch.recorder.accepted)
    assert client.stats()["failed"] == 0 and client.stats()["dropped"] == 0
    [paused] = errors.of(SpoolError)                   # reported once, never given up
    assert paused.paused and "the disk is full" in str(paused)
    assert "used again as soon as there is room" in str(paused)


# -- the spool's folder ------------------------------------------------------------------------------

def refused_folder(kind: str, tmp_path: Path) -> Path:
    folder = tmp_path / kind
    if kind == "linked":
        (tmp_path / "real").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "real")
    elif kind == "other-users-0777":
        folder.mkdir()
        os.chown(folder, OTHER_UID, OTHER_UID)
        folder.chmod(0o777)
    elif kind == "other-users-0700":
        folder.mkdir()
        os.chown(folder, OTHER_UID, OTHER_UID)
        folder.chmod(0o755)
    else:  # own, but others may write it and no sticky bit
        folder.mkdir()
        folder.chmod(0o777)
    return folder


@pytest.mark.skipif(os.geteuid() != 0, reason="making another user's folder needs root")
@pytest.mark.parametrize("kind, said", [
    ("linked", "has a symbolic link for its folder"),
    ("other-users-0777", "owned by another user (uid 65534"),
    ("other-users-0700", "owned by another user (uid 65534"),
    ("writable-by-others", "that other users may write (mode 777, no sticky bit)"),
])
def test_a_spool_folder_others_control_is_refused_and_events_are_sent_from_memory(
    api: HTTPServer, errors: Errors, tmp_path: Path, make_client: Callable[..., Analytics],
    kind: str, said: str,
) -> None:
    # On main the folder was used: its owner (or anyone, for 0777) could delete the spool.
    folder = refused_folder(kind, tmp_path)
    recorder = Recorder()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    client = make_client(url(api), folder / "events.db", max_events_in_batch=10)
    sent = track(client, 25, kind)
    assert client.flush(timeout=15)
    recorder.assert_each_once(sent)
    [error] = errors.of(SpoolError)
    assert said in str(error) and "events are kept in memory only" in str(error)
    assert not (folder / "events.db").exists()


def test_a_sticky_shared_folder_as_tmp_is_accepted(
    api: HTTPServer, errors: Errors, tmp_path: Path, make_client: Callable[..., Analytics],
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o1777)
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(Recorder())
    client = make_client(url(api), folder / "events.db")
    track(client, 3, "sticky")
    assert client.flush(timeout=15)
    assert errors == [] and (folder / "events.db").exists()
