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

from cdp_logging import Analytics, EventDroppedError
from support.spool import SpoolConsole
from support.reliability import (
    BATCH_PATH, FAST_RETRIES, WRITE_KEY, Errors, Recorder, free_port, start_api, stop_api, url,
)
from support.helpers import wait_until

#: Another user's uid ("nobody" on most systems), for the folders root gives away.
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


# -- no room: a full disk, a file size limit ----------------------------------------------------------

def namespace(*flags: str) -> list[str]:
    """``unshare`` with ``flags``, or skip saying why this machine refuses it."""
    made = subprocess.run(["unshare", *flags, "true"], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"unshare {' '.join(flags)} is refused here ({made.stderr.strip()}): it needs root "
                    "or unprivileged user namespaces (kernel.unprivileged_userns_clone, AppArmor's "
                    "apparmor_restrict_unprivileged_userns)")
    return ["unshare", *flags]


def small_disk(disk: Path) -> list[str]:
    """A prefix that runs a command in a mount namespace of its own with a real 512 KiB file
    system (tmpfs) on ``disk``: as root, or as any user where user namespaces are allowed.
    Nothing is left mounted: the mount goes with the process."""
    disk.mkdir()
    flags = ["--mount"] if os.geteuid() == 0 else ["--map-root-user", "--mount"]
    return [*namespace(*flags), "sh", "-c", 'mount -t tmpfs -o size=512k,mode=0700 tmpfs "$0" && exec "$@"',
            str(disk)]


def spool_files_size(spool: Path) -> int:
    return max(Path(f"{spool}{suffix}").stat().st_size for suffix in ("", "-wal", "-shm"))


@pytest.mark.parametrize("no_room", ["file size limit", "full disk"])
def test_no_room_pauses_the_spool_which_recovers_when_there_is_room(
    api: HTTPServer, tmp_path: Path, no_room: str,
) -> None:
    # On main the spool was off for the rest of the process: the events of an outage after
    # the room came back were lost. A file size limit (or a quota: SQLite says "disk I/O error"
    # for both) turned it off at once.
    switch = Switch()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(switch)
    disk = tmp_path / "disk"
    spool = disk / "spool" / "events.db"
    prefix = small_disk(disk) if no_room == "full disk" else None
    with SpoolConsole(url(api), spool, prefix=prefix, max_retries=0, flush_interval=0.2,
                      **FAST_RETRIES) as app:
        app("track", 1, "before", 200)
        assert app("flush", 15)

        if no_room == "full disk":
            app("fill", str(disk / "filler"))
        else:                                          # no file of the spool's may grow
            app("limit", spool_files_size(spool))
        during = app("track", 100, "full", 2000)       # 200 KB: more than there is room for
        assert app("flush", 15), (app("stats"), app("errors"))  # sent from memory meanwhile
        assert set(during) <= set(switch.recorder.accepted)

        if no_room == "full disk":
            app("free", str(disk / "filler"))
        else:
            app("unlimit")
        switch.down = True                             # an outage after the room came back
        after = app("track", 30, "after", 200)
        wait_until(lambda: app("rows") == 30, message=lambda: f"the outage's events kept in the spool again: {app('rows')} {app('stats')} {app('errors')}")
        switch.down = False
        # Not one flush: a batch the outage answered may be given up after a flush began.
        wait_until(lambda: set(after) <= set(switch.recorder.accepted), timeout=30,
                   message=lambda: f"the outage's events sent from the spool: {app('stats')} {app('errors')}")
        stats, reported = app("stats"), app("errors")
    assert stats["failed"] == 0 and stats["dropped"] == 0
    [(paused, text)] = [(paused, text) for kind, paused, text in reported if kind == "SpoolError"]
    said = "the disk is full" if no_room == "full disk" else "file size limit is reached (RLIMIT_FSIZE"
    assert paused and said in text, reported           # reported once, never given up
    assert "used again as soon as there is room" in text


# -- the spool's folder ------------------------------------------------------------------------------

#: A folder of root's on every Linux system, which a user namespace that maps only this user
#: shows as the overflow uid's (another user's).
ROOTS_FOLDER = Path("/usr")


def overflow_uid() -> int:
    """The uid a user namespace shows for a user it does not map (65534 unless changed)."""
    return int(Path("/proc/sys/kernel/overflowuid").read_text())


def refused_folder(kind: str, tmp_path: Path) -> tuple[Path, list[str] | None]:
    """A folder of ``kind``, and the prefix to run the client under (None: as it is)."""
    folder = tmp_path / kind
    if kind == "linked":
        (tmp_path / "real").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "real")
    elif kind.startswith("other-users-") and os.geteuid() != 0:
        # Without root no folder can be given away, but one can be seen as another user's:
        # in a user namespace mapping only this user (to root), root's own /usr is owned by
        # a user it does not map. The spool's checks see the real lstat, as anywhere.
        if ROOTS_FOLDER.stat().st_uid != 0:
            pytest.skip(f"{ROOTS_FOLDER} is not root's here, so no folder is another user's to borrow")
        return ROOTS_FOLDER, namespace("--map-root-user")
    elif kind == "other-users-0777":
        folder.mkdir()
        os.chown(folder, OTHER_UID, OTHER_UID)
        folder.chmod(0o777)
    elif kind == "other-users-0755":
        folder.mkdir()
        os.chown(folder, OTHER_UID, OTHER_UID)
        folder.chmod(0o755)
    else:  # own, but others may write it and no sticky bit
        folder.mkdir()
        folder.chmod(0o777)
    return folder, None


ANOTHER_USERS = f"owned by another user (uid {OTHER_UID}"


@pytest.mark.parametrize("kind, said", [
    ("linked", "has a symbolic link for its folder"),
    pytest.param("other-users-0777", ANOTHER_USERS, marks=pytest.mark.skipif(
        os.geteuid() != 0, reason="only root can make a folder another user owns that all may write "
        "(chown), no system has one to borrow, and a user namespace without newuidmap maps only "
        "this user, whose folders stay its own; other-users-0755 runs for every user")),
    ("other-users-0755", ANOTHER_USERS),
    ("writable-by-others", "that other users may write (mode 777, no sticky bit)"),
])
def test_a_spool_folder_others_control_is_refused_and_events_are_sent_from_memory(
    api: HTTPServer, tmp_path: Path, kind: str, said: str,
) -> None:
    # On main the folder was used: its owner (or anyone, for 0777) could delete the spool.
    folder, prefix = refused_folder(kind, tmp_path)
    if prefix is not None:
        said = said.replace(str(OTHER_UID), str(overflow_uid()))
    recorder = Recorder()
    api.expect_request(BATCH_PATH, method="POST").respond_with_handler(recorder)
    with SpoolConsole(url(api), folder / "events.db", prefix=prefix, max_events_in_batch=10,
                      **FAST_RETRIES) as app:
        sent = app("track", 25, kind, 200)
        assert app("flush", 15)
        reported = app("errors")
    recorder.assert_each_once(sent)
    [(kind, _paused, text)] = reported
    assert kind == "SpoolError" and said in text and "events are kept in memory only" in text, text
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
