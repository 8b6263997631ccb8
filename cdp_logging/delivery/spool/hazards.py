"""What the machine does to a spool: a folder others control, a full disk (or quota, or file
size limit)."""

from __future__ import annotations


import contextlib
import errno
import os
import secrets
import sqlite3
import stat
import time

try:
    import resource
except ImportError:  # Windows: no file size limit to read
    resource = None  # type: ignore[assignment]


from ...errors import SpoolError
from .common import logger


#: A full disk is reported at most once in this many seconds.
DISK_FULL_REPORT_INTERVAL = 60.0


def private_folder(folder: str) -> str | None:
    """Create ``folder`` (and missing parents) 0700 if missing, then check it: why it is not
    safe to keep the spool in, or None (see :func:`folder_problem`)."""
    _make_private_directory(folder)
    return folder_problem(folder)


def folder_problem(folder: str) -> str | None:
    """Why the spool's folder is not safe to keep it in, None when it is: a link (whoever may
    change it decides where the spool is), or a folder that a user other than this one (or
    root) owns, or that others may write without the sticky bit (as /tmp has): its owner, or
    they, could delete or replace the spool.

    Example::

        folder_problem("/var/lib/app")   # None for a folder of this user's, 0700
    """
    try:
        status = os.lstat(folder)
    except OSError as err:
        return f"cannot be used: its folder {folder} cannot be read ({err.strerror or err})"
    if stat.S_ISLNK(status.st_mode):
        return (f"has a symbolic link for its folder {folder}; left as it is. Give the folder's "
                "real path")
    if not stat.S_ISDIR(status.st_mode):
        return f"cannot be used: {folder} is not a folder; left as it is"
    if status.st_uid not in (os.geteuid(), 0):
        return (f"is in a folder {folder} owned by another user (uid {status.st_uid}; this process "
                f"runs as uid {os.geteuid()}), who could delete or replace it; left as it is. Put "
                "the spool in a folder of this user's own")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not status.st_mode & stat.S_ISVTX:
        return (f"is in a folder {folder} that other users may write (mode "
                f"{stat.S_IMODE(status.st_mode):o}, no sticky bit), who could delete or replace it; "
                "left as it is. Put the spool in a folder of this user's own")
    return None


#: SQLite's extended codes for a write that failed with an errno other than ENOSPC (which it
#: reports as SQLITE_FULL): SQLITE_IOERR_WRITE, SQLITE_IOERR_SHMSIZE. EDQUOT and EFBIG come so.
_WRITE_FAILED = (778, 4874)
#: The most SQLite writes to one of the spool's files at once: a WAL frame of the largest page.
_LARGEST_WRITE = 65_536 + 24
#: What the probe of a failed write writes beside the spool.
_PROBE_BYTES = 65_536

_NO_ROOM = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file size limit is reached",
}


def no_room(err: BaseException, path: str) -> str | None:
    """Why the spool at ``path`` has no room for now, after ``err`` from SQLite or the file
    system: the disk is full, the user's disk quota is used up or the process's file size
    limit (RLIMIT_FSIZE, ``ulimit -f``) is reached. None for any other error.

    SQLite reports ENOSPC as "database or disk is full" but EDQUOT and EFBIG only as "disk
    I/O error", as it does a failing disk; for that one the cause is found out: a file size
    limit the spool's files are at, or a write of 64 KiB beside the spool failing for want
    of room.

    Example::

        no_room(sqlite3.OperationalError("database or disk is full"), path)  # "the disk is full"
    """
    if isinstance(err, OSError):
        return _NO_ROOM.get(err.errno or 0)
    if not isinstance(err, sqlite3.Error):
        return None
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    if code is None:  # Python 3.10: the message alone
        text = str(err)
        if "disk is full" in text:
            return _NO_ROOM[errno.ENOSPC]
        return _write_limit(path) if text == "disk I/O error" else None
    if code & 0xFF == 13:  # SQLITE_FULL
        return _NO_ROOM[errno.ENOSPC]
    return _write_limit(path) if code in _WRITE_FAILED else None


def _write_limit(path: str) -> str | None:
    """After a write to the spool's files failed: the limit that stopped it, or None."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource is not None else -1
    if limit >= 0 and limit != getattr(resource, "RLIM_INFINITY", -1):
        sizes = []
        for name in (path, path + "-wal", path + "-shm"):
            with contextlib.suppress(OSError):
                sizes.append(os.stat(name).st_size)
        if max(sizes, default=0) + _LARGEST_WRITE > limit:  # a write past it fails (EFBIG)
            return f"the process's file size limit is reached (RLIMIT_FSIZE {limit} bytes)"
    probe = f"{path}.probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as err:
        return _NO_ROOM.get(err.errno or 0)
    try:
        os.write(fd, bytes(_PROBE_BYTES))
    except OSError as err:
        return _NO_ROOM.get(err.errno or 0)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return None


class DiskFull:
    """Whether the spool's writes fail for want of room (see :func:`no_room`), since when,
    and what to report: no room pauses the spool (the events are sent from memory), and the
    next write tries again, so the spool recovers when there is room again.

    Example::

        report = disk_full.failed(path, err)    # a SpoolError once a minute at most, else None
        disk_full.written(path)                 # after a write that worked: logs the recovery
    """

    def __init__(self) -> None:
        #: Since when (time.time()) writes fail; None while they work.
        self.since: float | None = None
        self._reported: float | None = None

    def failed(self, path: str, err: BaseException,
               reason: str = "the disk is full") -> SpoolError | None:
        now = time.time()
        if self.since is None:
            self.since = now
        # Once a minute at most: a disk at the edge fills and frees by turns.
        if self._reported is not None and now - self._reported < DISK_FULL_REPORT_INTERVAL:
            return None
        self._reported = now
        return SpoolError(f"cannot be written: {reason} ({err}). Events are sent from "
                          "memory meanwhile; the spool is used again as soon as there is room",
                          path=path, paused=True)

    def written(self, path: str) -> None:
        if self.since is not None:
            logger.info("cdp-logging: spool %s has room again after %.0fs; events are written "
                        "to it again", path, time.time() - self.since)
            self.since = None


def _make_private_directory(path: str) -> None:
    """Create ``path`` and any missing parents, each 0700 whatever the umask."""
    missing: list[str] = []
    while path and not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
            os.chmod(folder, 0o700)
