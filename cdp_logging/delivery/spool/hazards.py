"""What the machine does to a spool: a folder others control, a full disk."""

from __future__ import annotations


import contextlib
import os
import stat
import time


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


class DiskFull:
    """Whether the spool's writes fail for a full disk, since when, and what to report: a
    full disk pauses the spool (the events are sent from memory), and the next write tries
    again, so the spool recovers when the disk does.

    Example::

        report = disk_full.failed(path, err)    # a SpoolError once a minute at most, else None
        disk_full.written(path)                 # after a write that worked: logs the recovery
    """

    def __init__(self) -> None:
        #: Since when (time.time()) writes fail; None while they work.
        self.since: float | None = None
        self._reported: float | None = None

    def failed(self, path: str, err: BaseException) -> SpoolError | None:
        now = time.time()
        if self.since is None:
            self.since = now
        # Once a minute at most: a disk at the edge fills and frees by turns.
        if self._reported is not None and now - self._reported < DISK_FULL_REPORT_INTERVAL:
            return None
        self._reported = now
        return SpoolError(f"cannot be written: the disk is full ({err}). Events are sent from "
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
